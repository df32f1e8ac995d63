package dags

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Expand is a mapped task's expansion, as dag-factory 1.x writes it:
// partial holds the fields every mapped instance shares (merged into the
// task's own), expand the fields that vary, each over a list (the
// instances are their cross product, the last field varying fastest, as
// Airflow's), or expand_kwargs one list of field mappings.
type Expand struct {
	Fields []ExpandField `json:"fields,omitempty"`
	Kwargs *MapSource    `json:"kwargs,omitempty"`
	// MapIndexTemplate labels each instance (map_index_template).
	MapIndexTemplate string `json:"map_index_template,omitempty"`

	// What the task's fields are decoded from again for each instance.
	Own      map[string]any    `json:"own"`
	Defaults map[string]any    `json:"defaults,omitempty"`
	Files    map[string]string `json:"files,omitempty"` // files the task read when it loaded (.sql, .py)
	Dir      string            `json:"dir,omitempty"`   // the DAG file's folder, from the DAG folder's root
}

// ExpandField is one expanded field and what it is mapped over.
type ExpandField struct {
	Name   string    `json:"name"`
	Source MapSource `json:"source"`
}

// MapSource is what a mapped field (or expand_kwargs) takes its list from:
// a literal list, a template that renders to one ({{ var.json.schemas }}),
// or an upstream task's XCom ("task.output", "+task").
type MapSource struct {
	Literal  []any  `json:"literal,omitempty"`
	Template string `json:"template,omitempty"`
	Task     string `json:"task,omitempty"`
	Key      string `json:"key,omitempty"` // the upstream's XCom key (return_value)
}

// Sources lists the map sources of the expansion.
func (e *Expand) Sources() []MapSource {
	var out []MapSource
	for _, f := range e.Fields {
		out = append(out, f.Source)
	}
	if e.Kwargs != nil {
		out = append(out, *e.Kwargs)
	}
	return out
}

// Zipped reports whether the expansion maps over the output of task up
// and nothing else: with up mapped too, instance i then takes up's
// instance i's XCom and follows its state (updraft's rule, as a mapped
// task group has it in Airflow).
func (e *Expand) Zipped(up string) bool {
	src := e.Sources()
	return len(src) == 1 && src[0].Task == up
}

// MapRef is an expanded value that an upstream mapped instance's XCom
// will give, read when the instance renders.
type MapRef struct {
	Task     string `json:"task"`
	MapIndex int    `json:"map_index"`
	Key      string `json:"key"`
}

// MapInputs combines the lists of the sources (one per source, in order)
// into each instance's field values: the cross product of the fields, or
// expand_kwargs' mappings. A list element of expand_kwargs that is not a
// mapping is an error.
func (e *Expand) MapInputs(lists [][]any) ([]map[string]any, error) {
	if e.Kwargs != nil {
		var out []map[string]any
		for i, item := range lists[len(lists)-1] {
			switch m := item.(type) {
			case map[string]any:
				out = append(out, m)
			case MapRef:
				out = append(out, map[string]any{"": m})
			default:
				return nil, fmt.Errorf("expand_kwargs: item %d is %s, not a mapping of fields", i, describeValue(item))
			}
		}
		return out, nil
	}
	out := []map[string]any{{}}
	for fi, f := range e.Fields {
		var next []map[string]any
		for _, prev := range out {
			for _, v := range lists[fi] {
				m := make(map[string]any, len(prev)+1)
				for k, pv := range prev {
					m[k] = pv
				}
				m[f.Name] = v
				next = append(next, m)
			}
		}
		out = next
	}
	if len(e.Fields) == 0 {
		return nil, nil
	}
	return out, nil
}

// MaxMapLength bounds how many instances one mapped task may have, as
// Airflow's [core] max_map_length.
const MaxMapLength = 1024

// ListOf reads a rendered template or an XCom value as a map source's
// list: a list as it is, a mapping as its [key, value] pairs (Airflow
// maps over a dict's items), a JSON or Python literal in a string.
func ListOf(v any) ([]any, error) {
	if s, ok := v.(string); ok {
		v = PythonValue(s)
	}
	switch x := v.(type) {
	case []any:
		return x, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = []any{k, x[k]}
		}
		return out, nil
	case nil:
		return nil, fmt.Errorf("it is None")
	}
	return nil, fmt.Errorf("%s is not a list", describeValue(v))
}

func describeValue(v any) string {
	b, _ := json.Marshal(v)
	s := string(b)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// ExpandedSpec decodes the operator spec of one mapped instance: the
// task's fields with values (field -> value) set over them, checked as a
// file's would be. The result is to be rendered as usual.
func (t *Task) ExpandedSpec(d *DAG, values map[string]any) (OperatorSpec, error) {
	if t.Expand == nil {
		return t.Spec, nil
	}
	own := valueOf(t.Expand.Own, "")
	for _, k := range sortedKeys(values) {
		if k == "" { // expand_kwargs from a reference: its value is the whole mapping
			if m, ok := values[k].(map[string]any); ok {
				for _, mk := range sortedKeys(m) {
					own.set(&val{kind: kindScalar, str: mk, tag: "!!str"}, valueOf(m[mk], ""))
				}
			}
			continue
		}
		own.set(&val{kind: kindScalar, str: k, tag: "!!str"}, valueOf(values[k], ""))
	}
	var probs Problems
	r := report{probs: &probs, dag: d.ID, task: t.ID}
	loc := d.Location
	if loc == nil {
		loc = time.UTC
	}
	files := t.Expand.Files
	rt := decodeTask(r, t.ID, own, valueOf(t.Expand.Defaults, ""), loc, time.Now(), taskFiles{dir: t.Expand.Dir, read: func(name string) ([]byte, error) {
		if body, ok := files[name]; ok {
			return []byte(body), nil
		}
		return nil, fmt.Errorf("file %s was not read when the DAG loaded", name)
	}})
	if errs := probs.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("mapped instance: %s", errs[0].Msg)
	}
	if rt == nil {
		return nil, fmt.Errorf("mapped instance: its fields do not make a task")
	}
	return rt.task.Spec, nil
}

// valueOf builds a value tree from plain Go values (what toAny gives, or
// decoded JSON), so mapped instances decode like a file's tasks.
func valueOf(x any, file string) *val {
	switch t := x.(type) {
	case nil:
		return &val{kind: kindNull, file: file}
	case map[string]any:
		v := &val{kind: kindMap, file: file}
		for _, k := range sortedKeys(t) {
			v.keys = append(v.keys, &val{kind: kindScalar, str: k, tag: "!!str", file: file})
			v.vals = append(v.vals, valueOf(t[k], file))
		}
		return v
	case []any:
		v := &val{kind: kindSeq, file: file}
		for _, e := range t {
			v.items = append(v.items, valueOf(e, file))
		}
		return v
	case string:
		return &val{kind: kindScalar, str: t, tag: "!!str", quoted: true, file: file}
	case bool:
		return &val{kind: kindScalar, str: strconv.FormatBool(t), tag: "!!bool", file: file}
	case int:
		return &val{kind: kindScalar, str: strconv.Itoa(t), tag: "!!int", file: file}
	case int64:
		return &val{kind: kindScalar, str: strconv.FormatInt(t, 10), tag: "!!int", file: file}
	case float64:
		if t == float64(int64(t)) {
			return &val{kind: kindScalar, str: strconv.FormatInt(int64(t), 10), tag: "!!int", file: file}
		}
		return &val{kind: kindScalar, str: strconv.FormatFloat(t, 'g', -1, 64), tag: "!!float", file: file}
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return valueOf(n, file)
		}
		f, _ := t.Float64()
		return valueOf(f, file)
	}
	return &val{kind: kindScalar, str: fmt.Sprint(x), tag: "!!str", quoted: true, file: file}
}

var outputRefRE = regexp.MustCompile(`^\s*\+?([\w.-]+?)(?:\.output)?\s*$`)

// mapSource reads one expand value: a list, a template, or a reference
// to an upstream task's output ("task.output", "+task").
func mapSource(r report, key string, v *val) (MapSource, bool) {
	switch v.kind {
	case kindSeq:
		l, _ := toAny(v).([]any)
		if l == nil {
			l = []any{}
		}
		return MapSource{Literal: l}, true
	case kindMap:
		m, _ := toAny(v).(map[string]any)
		l, _ := ListOf(m)
		return MapSource{Literal: l}, true
	case kindScalar:
		s := v.str
		if looksTemplated(s) {
			if err := CheckTemplate(s); err != nil {
				r.errf(v, "%s: %v", key, err)
				return MapSource{}, false
			}
			return MapSource{Template: s}, true
		}
		if m := outputRefRE.FindStringSubmatch(s); m != nil && (strings.HasSuffix(strings.TrimSpace(s), ".output") || strings.HasPrefix(strings.TrimSpace(s), "+")) {
			return MapSource{Task: m[1], Key: ReturnValueKey}, true
		}
	}
	r.errf(v, "%s: map over a list, a template that renders to one (\"{{ var.json.items }}\") or an upstream task's output (\"task.output\"), got %s", key, v.describe())
	return MapSource{}, false
}

// placeholders are what a dynamically mapped field holds when the task is
// checked at load time, tried in turn until one fits the field's type.
var placeholders = []any{"mapped", map[string]any{}, []any{}, int64(0)}

// decodeMapped decodes a task with partial/expand: the fields that vary
// are checked with each literal value (or a placeholder when the list is
// only known at run time), and the task keeps what each instance is decoded
// from again when it runs.
func decodeMapped(r report, name string, own, defaults *val, loc *time.Location, now time.Time, tf taskFiles) *rawTask {
	base := own.shallow()
	for _, k := range []string{"partial", "expand", "expand_kwargs", "map_index_template"} {
		base.del(k)
	}
	if p := own.get("partial"); p != nil {
		if p.kind != kindMap {
			r.errf(p, "partial: expected a mapping of the fields every mapped instance shares, got %s", p.describe())
			return nil
		}
		for i, k := range p.keys {
			if base.get(k.str) != nil {
				r.errf(k, "%s is set both in partial and on the task", k.str)
			}
			base.set(k, p.vals[i])
		}
	}
	e := &Expand{}
	if v := own.get("map_index_template"); v != nil {
		e.MapIndexTemplate, _ = r.str("map_index_template", v)
		if err := CheckTemplate(e.MapIndexTemplate); err != nil {
			r.errf(v, "map_index_template: %v", err)
		}
	}
	exp, kw := own.get("expand"), own.get("expand_kwargs")
	switch {
	case exp != nil && kw != nil:
		r.errf(kw, "a task has expand or expand_kwargs, not both")
		return nil
	case exp != nil:
		if exp.kind != kindMap || len(exp.keys) == 0 {
			r.errf(exp, "expand: expected a mapping of field: list, got %s", exp.describe())
			return nil
		}
		for i, k := range exp.keys {
			if base.get(k.str) != nil {
				r.errf(k, "%s is both expanded and set (on the task or in partial)", k.str)
				continue
			}
			src, ok := mapSource(r, "expand."+k.str, exp.vals[i])
			if !ok {
				continue
			}
			e.Fields = append(e.Fields, ExpandField{Name: k.str, Source: src})
		}
	case kw != nil:
		if kw.kind == kindSeq {
			for _, item := range kw.items {
				if item.kind != kindMap {
					r.errf(item, "expand_kwargs: each item is a mapping of fields, got %s", item.describe())
					return nil
				}
			}
		}
		src, ok := mapSource(r, "expand_kwargs", kw)
		if !ok {
			return nil
		}
		e.Kwargs = &src
	default:
		r.errf(own.get("partial"), "partial needs expand or expand_kwargs: the fields that vary between mapped instances")
		return nil
	}
	if len(Problems(*r.probs).Errors()) > 0 {
		return nil
	}
	files := map[string]string{}
	recording := taskFiles{dir: tf.dir, read: func(name string) ([]byte, error) {
		b, err := tf.read(name)
		if err == nil {
			files[name] = string(b)
		}
		return b, err
	}}
	// Check the task with each literal value (at most a few), or with a
	// placeholder that fits the field.
	var first *rawTask
	samples := e.samples(placeholders[0])
	for _, ph := range placeholders[1:] { // a dynamic field whose type the first placeholder does not fit
		if sampleFits(name, base, samples[0], defaults, loc, now, recording) {
			break
		}
		samples = e.samples(ph)
	}
	for i, sample := range samples {
		trial := base.shallow()
		for _, k := range sortedKeys(sample) {
			trial.set(&val{kind: kindScalar, str: k, tag: "!!str", file: own.file, line: own.line, col: own.col}, valueOf(sample[k], own.file))
		}
		var probs Problems
		sub := report{probs: &probs, dag: r.dag, task: r.task}
		rt := decodeTask(sub, name, trial, defaults, loc, now, recording)
		if errs := probs.Errors(); len(errs) > 0 {
			for _, p := range errs {
				if p.Line == 0 || p.Line == own.line {
					p.File, p.Line, p.Col = own.pos()
				}
				p.Msg = fmt.Sprintf("mapped instance %d: %s", i, p.Msg)
				*r.probs = append(*r.probs, p)
			}
			return nil
		}
		if i == 0 {
			*r.probs = append(*r.probs, probs...) // warnings once
			first = rt
		}
	}
	if first == nil {
		return nil
	}
	kind, _ := resolveOperator(strings.TrimSpace(first.task.OperatorPath))
	for _, f := range e.Fields {
		if kind != nil && !contains(kind.fields, f.Name) && !contains(baseMappable, f.Name) {
			r.errf(exp.get(f.Name), "expand: %s is not a field of %s that can vary", f.Name, first.task.Operator)
			return nil
		}
	}
	e.Own, _ = toAny(base).(map[string]any)
	for _, k := range []string{"task_id", "dependencies", "task_group_name"} {
		delete(e.Own, k)
	}
	if _, taskFlow := e.Own["decorator"]; !taskFlow {
		e.Own["operator"] = first.task.OperatorPath
	}
	e.Defaults, _ = toAny(defaults).(map[string]any)
	if len(files) > 0 {
		e.Files = files
	}
	e.Dir = tf.dir
	// Mapping over a task's output depends on that task, as an XComArg
	// makes it in Airflow.
	for _, src := range e.Sources() {
		if src.Task != "" && !contains(first.deps, src.Task) {
			first.deps = append(first.deps, src.Task)
			if first.depAt == nil {
				first.depAt = own
			}
		}
	}
	first.task.Expand = e
	return first
}

// sampleFits reports whether the task decodes without errors with sample.
func sampleFits(name string, base *val, sample map[string]any, defaults *val, loc *time.Location, now time.Time, readFile taskFiles) bool {
	trial := base.shallow()
	for _, k := range sortedKeys(sample) {
		trial.set(&val{kind: kindScalar, str: k, tag: "!!str"}, valueOf(sample[k], ""))
	}
	var probs Problems
	decodeTask(report{probs: &probs}, name, trial, defaults, loc, now, readFile)
	return len(probs.Errors()) == 0
}

// baseMappable are BaseOperator fields a mapped instance may vary.
var baseMappable = []string{"retries", "retry_delay", "execution_timeout", "pool", "priority_weight", "params", "doc_md"}

// samples are the field values the task is checked with at load time:
// each literal combination (up to a few), or placeholders for sources
// known only at run time.
func (e *Expand) samples(placeholder any) []map[string]any {
	if e.Kwargs != nil {
		var out []map[string]any
		for _, item := range e.Kwargs.Literal {
			if m, ok := item.(map[string]any); ok && len(out) < 8 {
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			out = []map[string]any{{}} // known at run time (or empty): the shared fields alone
		}
		return out
	}
	lists := make([][]any, len(e.Fields))
	for i, f := range e.Fields {
		switch {
		case len(f.Source.Literal) > 0:
			lists[i] = f.Source.Literal
		default:
			lists[i] = []any{placeholder}
		}
	}
	all, _ := e.MapInputs(lists)
	if len(all) > 8 {
		all = all[:8]
	}
	return all
}
