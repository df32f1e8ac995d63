package dags

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nikolalohinski/gonja/v2"
	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// RunContext is what a task try's templates may refer to: the run it
// belongs to and its try. Render is a pure function of (task, RunContext,
// variables), so the scheduler and "updraft tasks render" agree.
type RunContext struct {
	DAG          *DAG
	RunID        string
	RunType      string // scheduled, manual, backfill
	LogicalDate  time.Time
	DataInterval DataInterval
	Conf         map[string]any
	TryNumber    int

	// The last successful run before this one, when there is one.
	PrevSuccessInterval *DataInterval
	PrevSuccessStart    *time.Time
	PrevSuccessEnd      *time.Time

	// MapIndex is the task instance's map index (-1: not mapped), and
	// MapInput a mapped instance's expanded field values.
	MapIndex int
	MapInput map[string]any
	// XCom is where ti.xcom_pull reads; nil pulls nothing (None).
	XCom XComSource
	// Now is the time branch operators compare with (zero: the clock).
	Now time.Time
}

// XComSource reads the XComs templates pull.
type XComSource interface {
	// PullXCom returns the XComs matching q: of the run (or, with
	// IncludePrior, of it and the DAG's earlier runs, newest first),
	// ordered by task id and map index within a run.
	PullXCom(q XComQuery) ([]XComValue, error)
}

// XComQuery is one ti.xcom_pull: empty TaskIDs or Key match any, nil
// MapIndexes any map index.
type XComQuery struct {
	DagID, RunID string
	TaskIDs      []string
	Key          string
	MapIndexes   []int
	IncludePrior bool
}

// XComValue is one pulled XCom.
type XComValue struct {
	TaskID   string
	MapIndex int
	RunID    string
	Value    json.RawMessage
}

// Render renders t's templated fields for one try. vars are the Variables
// (var.value.X, var.json.X); a missing variable is an error, as in Airflow.
//
// A mapped instance (rc.MapIndex >= 0) is first decoded with its
// expanded values (rc.MapInput).
func Render(t *Task, rc RunContext, vars map[string]string) (OperatorSpec, error) {
	r := NewRenderer(t, rc, vars)
	base := t.Spec
	if t.Mapped() && rc.MapIndex >= 0 {
		var err error
		if base, err = t.ExpandedSpec(rc.DAG, rc.MapInput); err != nil {
			return nil, fmt.Errorf("dag %q, task %q[%d]: %w", rc.DAG.ID, t.ID, rc.MapIndex, err)
		}
	}
	spec, err := base.Render(r)
	if err != nil {
		return nil, fmt.Errorf("dag %q, task %q: %w", rc.DAG.ID, t.ID, err)
	}
	return spec, nil
}

// RenderLabel renders a mapped instance's map_index_template ("" when the
// task has none).
func RenderLabel(t *Task, rc RunContext, vars map[string]string) (string, error) {
	if !t.Mapped() || t.Expand.MapIndexTemplate == "" {
		return "", nil
	}
	return NewRenderer(t, rc, vars).field("map_index_template", t.Expand.MapIndexTemplate)
}

// Renderer renders templates with one task try's Airflow context.
type Renderer struct {
	ctx     map[string]any
	logical time.Time // the run's logical date
	rc      RunContext
}

// now is the time the branch operators compare with.
func (r *Renderer) now() time.Time { return renderNow(r.rc) }

func renderNow(rc RunContext) time.Time {
	if rc.Now.IsZero() {
		return time.Now()
	}
	return rc.Now
}

// location is the DAG's time zone (UTC when it has none).
func (r *Renderer) location() *time.Location {
	if r.rc.DAG != nil && r.rc.DAG.Location != nil {
		return r.rc.DAG.Location
	}
	return time.UTC
}

// NewRenderer builds Airflow's template context for task t in run rc.
func NewRenderer(t *Task, rc RunContext, vars map[string]string) *Renderer {
	ld := NewDateTime(rc.LogicalDate)
	nextLD, prevLD := ld, ld
	if rc.RunType != "manual" && rc.DAG != nil && rc.DAG.Schedule != nil {
		nextLD = NewDateTime(rc.DataInterval.End)
		if p, ok := previousLogical(rc.DAG.Schedule, rc.LogicalDate); ok {
			prevLD = NewDateTime(p)
		}
	}
	dagID := ""
	var dagParams map[string]any
	var dagTags []string
	if rc.DAG != nil {
		dagID, dagParams, dagTags = rc.DAG.ID, rc.DAG.Params, rc.DAG.Tags
	}
	params := map[string]any{}
	mappedParams, _ := rc.MapInput["params"].(map[string]any) // a mapped instance's own
	for _, src := range []map[string]any{dagParams, t.Params, mappedParams, rc.Conf} {
		for k, v := range src {
			params[k] = paramValue(v)
		}
	}
	conf := rc.Conf
	if conf == nil {
		conf = map[string]any{}
	}
	optional := func(t *time.Time) any {
		if t == nil {
			return nil
		}
		return NewDateTime(*t)
	}
	var prevStart, prevEnd *time.Time
	if rc.PrevSuccessInterval != nil {
		prevStart, prevEnd = &rc.PrevSuccessInterval.Start, &rc.PrevSuccessInterval.End
	}
	day := func(d DateTime, n int) string { return d.t.AddDate(0, 0, n).Format("2006-01-02") }
	ctx := map[string]any{
		"ds":                               ld.t.Format("2006-01-02"),
		"ds_nodash":                        ld.t.Format("20060102"),
		"ts":                               ld.iso(),
		"ts_nodash":                        ld.t.Format("20060102T150405"),
		"ts_nodash_with_tz":                ld.t.Format("20060102T150405-0700"),
		"logical_date":                     ld,
		"execution_date":                   ld,
		"data_interval_start":              NewDateTime(rc.DataInterval.Start),
		"data_interval_end":                NewDateTime(rc.DataInterval.End),
		"next_execution_date":              nextLD,
		"next_ds":                          nextLD.t.Format("2006-01-02"),
		"next_ds_nodash":                   nextLD.t.Format("20060102"),
		"prev_execution_date":              prevLD,
		"prev_ds":                          prevLD.t.Format("2006-01-02"),
		"prev_ds_nodash":                   prevLD.t.Format("20060102"),
		"yesterday_ds":                     day(ld, -1),
		"yesterday_ds_nodash":              strings.ReplaceAll(day(ld, -1), "-", ""),
		"tomorrow_ds":                      day(ld, 1),
		"tomorrow_ds_nodash":               strings.ReplaceAll(day(ld, 1), "-", ""),
		"prev_data_interval_start_success": optional(prevStart),
		"prev_data_interval_end_success":   optional(prevEnd),
		"prev_start_date_success":          optional(rc.PrevSuccessStart),
		"prev_end_date_success":            optional(rc.PrevSuccessEnd),
		"run_id":                           rc.RunID,
		"task_instance_key_str":            fmt.Sprintf("%s__%s__%s", dagID, t.ID, ld.t.Format("20060102")),
		"params":                           params,
		"test_mode":                        false,
		"dag_run": attrs{
			"conf": conf, "run_id": rc.RunID, "run_type": rc.RunType, "dag_id": dagID,
			"logical_date": ld, "execution_date": ld, "external_trigger": rc.RunType == "manual",
			"data_interval_start": NewDateTime(rc.DataInterval.Start), "data_interval_end": NewDateTime(rc.DataInterval.End),
		},
		"dag":  attrs{"dag_id": dagID, "tags": dagTags, "owner": t.Owner, "_str": fmt.Sprintf("<DAG: %s>", dagID)},
		"task": taskAttrs(t, rc.MapInput),
		"macros": attrs{
			"ds_add":    dsAdd,
			"ds_format": dsFormat,
			// macros.datetime.utcnow() / now(): the time the try is rendered
			// (it starts then), with pendulum's methods (subtract, add...).
			"datetime": attrs{
				"utcnow": func(*exec.VarArgs) (any, error) { return NewDateTime(renderNow(rc)), nil },
				"now":    func(*exec.VarArgs) (any, error) { return NewDateTime(renderNow(rc)), nil },
				"_str":   "<module 'datetime'>",
			},
		},
		"var": attrs{"value": variables{vars: vars}, "json": variables{vars: vars, json: true}},
	}
	mapIndex := rc.MapIndex
	if mapIndex == 0 && !t.Mapped() {
		mapIndex = -1
	}
	ti := attrs{
		"task_id": t.ID, "dag_id": dagID, "run_id": rc.RunID, "try_number": rc.TryNumber, "map_index": mapIndex,
		"xcom_pull": func(va *exec.VarArgs) (any, error) { return xcomPull(rc, dagID, t.ID, va) },
		"_str":      fmt.Sprintf("<TaskInstance: %s.%s %s [running]>", dagID, t.ID, rc.RunID),
	}
	ctx["ti"], ctx["task_instance"] = ti, ti
	return &Renderer{ctx: ctx, logical: rc.LogicalDate, rc: rc}
}

// xcomPull is ti.xcom_pull(task_ids=None, dag_id=None, key="return_value",
// include_prior_dates=False, *, map_indexes=None, default=None) with
// Airflow's return shapes: one task id (and no list of map indexes) gives
// one value (a mapped task's values as a list, by map index), a list of
// task ids a list. With no task_ids the calling task's own XCom is read
// (Airflow 3), and failing that any task's (Airflow 2).
func xcomPull(rc RunContext, dagID, self string, va *exec.VarArgs) (any, error) {
	arg := func(pos int, name string) *exec.Value {
		if v, ok := va.KwArgs[name]; ok {
			return v
		}
		if pos >= 0 && pos < len(va.Args) {
			return va.Args[pos]
		}
		return nil
	}
	list := func(v *exec.Value) ([]any, bool) {
		if !v.IsList() {
			return nil, false
		}
		out := make([]any, v.Len())
		for i := range out {
			out[i] = v.Index(i).Interface()
		}
		return out, true
	}
	q := XComQuery{DagID: dagID, RunID: rc.RunID, Key: "return_value"}
	single := true
	if v := arg(0, "task_ids"); v != nil && !v.IsNil() {
		if v.IsString() {
			q.TaskIDs = []string{v.String()}
		} else if items, ok := list(v); ok {
			single = false
			for _, it := range items {
				q.TaskIDs = append(q.TaskIDs, fmt.Sprint(it))
			}
		} else {
			return nil, fmt.Errorf("xcom_pull: task_ids must be a task id or a list of them, got %s", v.String())
		}
	}
	if v := arg(1, "dag_id"); v != nil && !v.IsNil() {
		q.DagID = v.String()
	}
	if v := arg(2, "key"); v != nil {
		q.Key = ""
		if !v.IsNil() {
			q.Key = v.String()
		}
	}
	if v := arg(3, "include_prior_dates"); v != nil {
		q.IncludePrior = v.IsTrue()
	}
	listOfIndexes := false
	if v := arg(-1, "map_indexes"); v != nil && !v.IsNil() {
		if v.IsInteger() {
			q.MapIndexes = []int{v.Integer()}
		} else if items, ok := list(v); ok {
			listOfIndexes, single = true, false
			for _, it := range items {
				n, ok := toInt(it)
				if !ok {
					return nil, fmt.Errorf("xcom_pull: map_indexes must be whole numbers, got %v", it)
				}
				q.MapIndexes = append(q.MapIndexes, n)
			}
		} else {
			return nil, fmt.Errorf("xcom_pull: map_indexes must be a number or a list of them")
		}
	}
	var dflt any
	if v := arg(-1, "default"); v != nil {
		dflt = v.Interface()
	}
	if rc.XCom == nil {
		return dflt, nil
	}
	pull := func(q XComQuery) ([]XComValue, error) {
		if q.DagID != dagID && !q.IncludePrior {
			q.RunID = rc.RunID // another DAG's run with the same run id, as Airflow
		}
		return rc.XCom.PullXCom(q)
	}
	var got []XComValue
	var err error
	if q.TaskIDs == nil {
		own := q
		own.TaskIDs = []string{self}
		if got, err = pull(own); err == nil && len(got) == 0 {
			got, err = pull(q)
		}
	} else {
		got, err = pull(q)
	}
	if err != nil {
		return nil, fmt.Errorf("xcom_pull: %w", err)
	}
	decode := func(x XComValue) (any, error) {
		v, err := decodeJSON(string(x.Value))
		if err != nil {
			return nil, fmt.Errorf("xcom_pull: the XCom of %s is not JSON: %v", x.TaskID, err)
		}
		return v, nil
	}
	if single {
		if len(got) == 0 {
			return dflt, nil
		}
		first := got[0]
		if q.MapIndexes != nil || first.MapIndex < 0 {
			return decode(first)
		}
		var out []any
		for _, x := range got {
			if x.TaskID == first.TaskID && x.RunID == first.RunID {
				v, err := decode(x)
				if err != nil {
					return nil, err
				}
				out = append(out, v)
			}
		}
		return out, nil
	}
	// Several task ids (or map indexes): in the order asked, newest run first.
	order := map[string]int{}
	for i, id := range q.TaskIDs {
		order[id] = i
	}
	idx := map[int]int{}
	for i, m := range q.MapIndexes {
		idx[m] = i
	}
	sort.SliceStable(got, func(i, j int) bool {
		a, b := got[i], got[j]
		if a.RunID != b.RunID {
			return false
		}
		if order[a.TaskID] != order[b.TaskID] {
			return order[a.TaskID] < order[b.TaskID]
		}
		if listOfIndexes {
			return idx[a.MapIndex] < idx[b.MapIndex]
		}
		return a.MapIndex < b.MapIndex
	})
	out := []any{}
	for _, x := range got {
		v, err := decode(x)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int64:
		return int(n), true
	case float64:
		return int(n), n == float64(int(n))
	}
	return 0, false
}

// taskAttrs is the template's task: its id and settings, and a mapped
// instance's expanded fields (map_index_template reads "{{ task.env_vars.X }}").
func taskAttrs(t *Task, input map[string]any) attrs {
	a := attrs{"task_id": t.ID, "owner": t.Owner, "retries": t.Retries, "operator": t.Operator, "_str": fmt.Sprintf("<Task(%s): %s>", t.Operator, t.ID)}
	for k, v := range input {
		if m, ok := v.(map[string]any); ok && k == "" {
			for mk, mv := range m {
				a[mk] = mv
			}
			continue
		}
		a[k] = v
	}
	return a
}

// paramValue unwraps Airflow Param objects to their default value.
func paramValue(v any) any {
	if m, ok := v.(map[string]any); ok {
		if typ, _ := m["__type__"].(string); strings.HasSuffix(typ, ".Param") {
			if d, ok := m["default"]; ok {
				return d
			}
			if args, ok := m["__args__"].([]any); ok && len(args) > 0 {
				return args[0]
			}
			return nil
		}
	}
	return v
}

// previousLogical is the logical date of the scheduled run before the one
// at logical (Airflow's prev_execution_date).
func previousLogical(tt Timetable, logical time.Time) (time.Time, bool) {
	switch s := tt.(type) {
	case *CronTimetable:
		return s.prev(logical), true
	case DeltaTimetable:
		return logical.Add(-s.Delta), true
	}
	return time.Time{}, false
}

// field renders one templated string; plain strings are returned as they
// are, so "${VAR}" meant for the container's shell is never touched.
func (r *Renderer) field(name, src string) (string, error) {
	if !looksTemplated(src) {
		return src, nil
	}
	tpl, err := parseTemplate(src)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, cleanTemplateError(err))
	}
	out, err := execute(tpl, r.ctx)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, cleanTemplateError(err))
	}
	return out, nil
}

// Limits on rendering one templated field. Templates are code written by
// DAG authors; these bound what an accident (a runaway loop) can cost the
// scheduler. The engine cannot be interrupted, so a render over the time
// limit is abandoned: its goroutine finishes in the background.
var (
	renderTimeout       = 10 * time.Second
	maxRenderedBytes    = 1 << 20
	maxRangeItems       = 10_000
	errRenderedTooLarge = fmt.Errorf("rendered value is larger than %d bytes", maxRenderedBytes)
)

// execute runs a parsed template within the limits above. The engine
// panics on some expressions (integer division by zero); a DAG file must
// never crash the scheduler, so a panic becomes an error.
func execute(tpl *exec.Template, ctx map[string]any) (string, error) {
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if p := recover(); p != nil {
				r = result{err: fmt.Errorf("template failed: %v", p)}
			}
			done <- r
		}()
		w := &limitedBuilder{max: maxRenderedBytes}
		r.err = tpl.Execute(w, exec.NewContext(ctx))
		if w.over {
			r.err = errRenderedTooLarge
		}
		r.out = w.b.String()
	}()
	timer := time.NewTimer(renderTimeout)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.out, r.err
	case <-timer.C:
		return "", fmt.Errorf("template took longer than %v to render", renderTimeout)
	}
}

// limitedBuilder collects output up to max bytes and then refuses more.
type limitedBuilder struct {
	b    strings.Builder
	max  int
	over bool
}

func (l *limitedBuilder) Write(p []byte) (int, error) {
	if l.b.Len()+len(p) > l.max {
		l.over = true
		return 0, errRenderedTooLarge
	}
	return l.b.Write(p)
}

// boundedRange replaces Jinja's range(): at most maxRangeItems items, and
// a plain list (the engine's own feeds a goroutine that leaks when a loop
// stops early).
func boundedRange(_ *exec.Evaluator, params *exec.VarArgs) ([]int, error) {
	start, stop, step := 0, 0, 1
	ints := make([]int, len(params.Args))
	for i, a := range params.Args {
		if !a.IsInteger() {
			return nil, fmt.Errorf("range() takes whole numbers")
		}
		ints[i] = a.Integer()
	}
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return nil, fmt.Errorf("range([start, ]stop[, step]) takes 1 to 3 arguments")
	}
	if step == 0 {
		return nil, fmt.Errorf("range() step cannot be 0")
	}
	n := 0
	if step > 0 && stop > start {
		n = (stop - start + step - 1) / step
	} else if step < 0 && stop < start {
		n = (start - stop - step - 1) / -step
	}
	if n > maxRangeItems {
		return nil, fmt.Errorf("range() of %d items is over the limit of %d", n, maxRangeItems)
	}
	out := make([]int, n)
	for i := range out {
		out[i] = start + i*step
	}
	return out, nil
}

func (r *Renderer) list(name string, in []string) ([]string, error) {
	if in == nil {
		return nil, nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		var err error
		if out[i], err = r.field(fmt.Sprintf("%s[%d]", name, i), s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (r *Renderer) stringMap(name string, in map[string]string) (map[string]string, error) {
	if in == nil {
		return nil, nil
	}
	out := make(map[string]string, len(in))
	for k, s := range in {
		var err error
		if out[k], err = r.field(name+"."+k, s); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tree renders every string in a value made of maps and lists (JSON-like).
func (r *Renderer) tree(name string, x any) (any, error) {
	switch t := x.(type) {
	case string:
		return r.field(name, t)
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			v, err := r.tree(name, e)
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case []any:
		l := make([]any, len(t))
		for i, e := range t {
			v, err := r.tree(name, e)
			if err != nil {
				return nil, err
			}
			l[i] = v
		}
		return l, nil
	}
	return x, nil
}

// with returns a renderer whose context also has extra.
func (r *Renderer) with(extra map[string]any) *Renderer {
	ctx := make(map[string]any, len(r.ctx)+len(extra))
	for k, v := range r.ctx {
		ctx[k] = v
	}
	for k, v := range extra {
		ctx[k] = v
	}
	out := *r
	out.ctx = ctx
	return &out
}

// RenderString renders src with r's context (for tools and tests).
func (r *Renderer) RenderString(src string) (string, error) { return r.field("template", src) }

func looksTemplated(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

var (
	envOnce     sync.Once
	environment *exec.Environment
	tplConfig   *config.Config
)

// templateEnv is gonja's environment with Airflow's filters added and
// strict undefined variables (Airflow's DAG default).
func templateEnv() (*exec.Environment, *config.Config) {
	envOnce.Do(func() {
		gonja.SetLoggerOutput(io.Discard)
		filters := exec.NewFilterSet(map[string]exec.FilterFunction{})
		filters.Update(builtins.Filters)
		for name, layout := range map[string]func(DateTime) string{
			"ds":                func(d DateTime) string { return d.t.Format("2006-01-02") },
			"ds_nodash":         func(d DateTime) string { return d.t.Format("20060102") },
			"ts":                func(d DateTime) string { return d.iso() },
			"ts_nodash":         func(d DateTime) string { return d.t.Format("20060102T150405") },
			"ts_nodash_with_tz": func(d DateTime) string { return d.t.Format("20060102T150405-0700") },
		} {
			_ = filters.Register(name, dateFilter(layout))
		}
		_ = filters.Register("fromjson", fromJSONFilter)
		if tojson, ok := filters.Get("tojson"); ok {
			_ = filters.Replace("tojson", strictFilter(tojson))
		}
		ctx := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
		ctx.Set("range", boundedRange)
		environment = &exec.Environment{
			Context: ctx, Filters: filters, Tests: builtins.Tests,
			ControlStructures: builtins.ControlStructures, Methods: builtins.Methods,
		}
		tplConfig = config.New()
		tplConfig.StrictUndefined = true
		tplConfig.KeepTrailingNewline = true
	})
	return environment, tplConfig
}

// strictFilter makes a filter fail on an input that holds an error: the
// engine keeps a failed element of a list literal ([x.missing]) as an
// error value, which tojson would otherwise print as {}.
func strictFilter(f exec.FilterFunction) exec.FilterFunction {
	return func(e *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
		if bad := firstError(in, 0); bad != nil {
			return bad
		}
		return f(e, in, params)
	}
}

// firstError returns the first error value inside v (lists and dicts,
// to a bounded depth), or nil.
func firstError(v *exec.Value, depth int) *exec.Value {
	switch {
	case v == nil || depth > 64:
		return nil
	case v.IsError():
		return v
	case v.IsList():
		var bad *exec.Value
		v.Iterate(func(_, _ int, el, _ *exec.Value) bool {
			bad = firstError(el, depth+1)
			return bad == nil
		}, func() {})
		return bad
	case v.IsDict():
		for _, p := range v.Items() {
			if bad := firstError(p.Value, depth+1); bad != nil {
				return bad
			}
		}
	}
	return nil
}

// fromJSONFilter parses a JSON string ("{{ ti.xcom_pull('get') | fromjson }}"
// reads an HTTP response); a value that is not a string passes through.
func fromJSONFilter(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
	if !in.IsString() {
		return in
	}
	v, err := decodeJSON(in.String())
	if err != nil {
		return exec.AsValue(fmt.Errorf("fromjson: not JSON: %v", err))
	}
	return exec.AsValue(v)
}

func dateFilter(format func(DateTime) string) exec.FilterFunction {
	return func(_ *exec.Evaluator, in *exec.Value, _ *exec.VarArgs) *exec.Value {
		switch v := in.Interface().(type) {
		case DateTime:
			return exec.AsValue(format(v))
		case string:
			if t, err := time.Parse(time.RFC3339, v); err == nil {
				return exec.AsValue(format(NewDateTime(t)))
			}
			if t, err := time.Parse("2006-01-02", v); err == nil {
				return exec.AsValue(format(NewDateTime(t)))
			}
		}
		return exec.AsValue(fmt.Errorf("expected a date, got %s", in.String()))
	}
}

type sourceLoader string

func (s sourceLoader) Read(string) (io.Reader, error)         { return strings.NewReader(string(s)), nil }
func (s sourceLoader) Resolve(p string) (string, error)       { return p, nil }
func (s sourceLoader) Inherit(string) (loaders.Loader, error) { return s, nil }

// parsed caches parsed templates by source: DAG files repeat the same few
// templates, and every try of a task renders the same ones again. Parsed
// templates are safe to execute concurrently. The cache is bounded: when
// full it starts over, which keeps memory flat whatever the input.
var parsed = struct {
	sync.Mutex
	m map[string]parseResult
}{m: map[string]parseResult{}}

type parseResult struct {
	tpl *exec.Template
	err error
}

const maxParsedTemplates = 10_000

func parseTemplate(src string) (*exec.Template, error) {
	parsed.Lock()
	r, ok := parsed.m[src]
	parsed.Unlock()
	if ok {
		return r.tpl, r.err
	}
	r.tpl, r.err = parseUncached(src)
	parsed.Lock()
	if len(parsed.m) >= maxParsedTemplates {
		clear(parsed.m)
	}
	parsed.m[src] = r
	parsed.Unlock()
	return r.tpl, r.err
}

func parseUncached(src string) (tpl *exec.Template, err error) {
	env, cfg := templateEnv()
	defer func() {
		if p := recover(); p != nil {
			tpl, err = nil, fmt.Errorf("template cannot be parsed: %v", p)
		}
	}()
	return exec.NewTemplate("template", cfg, sourceLoader(src), env)
}

var (
	blockRE  = regexp.MustCompile(`(?s)\{\{.*?\}\}|\{%.*?%\}`)
	filterRE = regexp.MustCompile(`(?:^|[^|])\|\s*([A-Za-z_]\w*)`)
)

// CheckTemplate reports template syntax errors and unknown filters in src
// without rendering it. Plain strings are always fine.
func CheckTemplate(src string) error {
	if !looksTemplated(src) {
		return nil
	}
	if _, err := parseTemplate(src); err != nil {
		return cleanTemplateError(err)
	}
	env, _ := templateEnv()
	for _, block := range blockRE.FindAllString(src, -1) {
		for _, m := range filterRE.FindAllStringSubmatch(block, -1) {
			if !env.Filters.Exists(m[1]) {
				return fmt.Errorf("unknown filter %q", m[1])
			}
		}
	}
	return nil
}

var parseErrPrefix = regexp.MustCompile(`(?s)^failed to parse template '.*?': `)

func cleanTemplateError(err error) error {
	msg := parseErrPrefix.ReplaceAllString(err.Error(), "")
	msg = strings.TrimPrefix(msg, "unable to execute template: ")
	return fmt.Errorf("%s", msg)
}

// attrs is a template object with attributes (dag_run, task, macros...).
// Its "_str" entry, if any, is what {{ obj }} prints.
type attrs map[string]any

func (a attrs) GetAttribute(name string) (*exec.Value, bool) {
	v, ok := a[name]
	if !ok || strings.HasPrefix(name, "_") {
		return exec.AsValue(nil), false
	}
	return exec.AsValue(v), true
}

func (a attrs) GetItem(key any) (*exec.Value, bool) {
	if s, ok := key.(string); ok {
		return a.GetAttribute(s)
	}
	return exec.AsValue(nil), false
}

func (a attrs) String() string {
	if s, ok := a["_str"].(string); ok {
		return s
	}
	return "<object>"
}

// variables is var.value / var.json: Airflow Variables looked up by name.
type variables struct {
	vars map[string]string
	json bool
}

func (v variables) lookup(name string) (any, error) {
	s, ok := v.vars[name]
	if !ok {
		return nil, fmt.Errorf("variable %s does not exist", name)
	}
	if !v.json {
		return s, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("variable %s is not valid JSON: %v", name, err)
	}
	return JSONNumbers(out), nil
}

// JSONNumbers turns the json.Number values of a document decoded with
// UseNumber into int64 where they are whole and float64 otherwise, so
// templates print 7 and not 7.0, as Python's json module does.
func JSONNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = JSONNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = JSONNumbers(e)
		}
	}
	return v
}

func (v variables) GetAttribute(name string) (*exec.Value, bool) {
	if name == "get" {
		return exec.AsValue(func(va *exec.VarArgs) (any, error) {
			if len(va.Args) == 0 {
				return nil, fmt.Errorf("var.get needs a variable name")
			}
			got, err := v.lookup(va.Args[0].String())
			if err != nil {
				if len(va.Args) > 1 {
					return va.Args[1].Interface(), nil
				}
				return nil, err
			}
			return got, nil
		}), true
	}
	got, err := v.lookup(name)
	if err != nil {
		return exec.AsValue(err), true
	}
	return exec.AsValue(got), true
}

func (v variables) GetItem(key any) (*exec.Value, bool) {
	return v.GetAttribute(fmt.Sprint(key))
}

func (variables) String() string { return "<variables>" }

// dsAdd is macros.ds_add: ds_add("2015-01-01", 5) == "2015-01-06".
func dsAdd(va *exec.VarArgs) (any, error) {
	if len(va.Args) != 2 {
		return nil, fmt.Errorf("ds_add(ds, days) takes 2 arguments")
	}
	t, err := time.Parse("2006-01-02", va.Args[0].String())
	if err != nil {
		return nil, fmt.Errorf("ds_add: %q is not a YYYY-MM-DD date", va.Args[0].String())
	}
	if !va.Args[1].IsNumber() {
		return nil, fmt.Errorf("ds_add: days must be a number")
	}
	return t.AddDate(0, 0, va.Args[1].Integer()).Format("2006-01-02"), nil
}

// dsFormat is macros.ds_format(ds, input_format, output_format) with
// Python strftime formats.
func dsFormat(va *exec.VarArgs) (any, error) {
	if len(va.Args) != 3 {
		return nil, fmt.Errorf("ds_format(ds, input_format, output_format) takes 3 arguments")
	}
	layout, err := goLayout(va.Args[1].String())
	if err != nil {
		return nil, fmt.Errorf("ds_format: %v", err)
	}
	t, err := time.Parse(layout, va.Args[0].String())
	if err != nil {
		return nil, fmt.Errorf("ds_format: %q does not match %q", va.Args[0].String(), va.Args[1].String())
	}
	return Strftime(t, va.Args[2].String()), nil
}
