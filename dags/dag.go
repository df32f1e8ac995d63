package dags

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// dagKeys are the DAG-level keys updraft understands.
var dagKeys = []string{
	"description", "schedule", "schedule_interval", "timetable", "start_date", "end_date", "timezone",
	"default_args", "catchup", "max_active_runs", "max_active_tasks", "concurrency", "dagrun_timeout",
	"dagrun_timeout_sec", "deadline", "tags", "params", "doc_md", "doc_md_file_path", "dag_display_name",
	"is_paused_upon_creation", "default_view", "orientation", "render_template_as_native_obj",
	"template_searchpath", "access_control", "owner_links", "fail_stop", "max_consecutive_failed_dag_runs",
	"tasks", "task_groups", "vars",
	"on_success_callback", "on_failure_callback", "on_execute_callback", "sla_miss_callback",
}

// pythonDAGKeys need a Python runtime.
var pythonDAGKeys = []string{
	"user_defined_macros", "user_defined_filters", "doc_md_python_callable", "doc_md_python_callable_name",
	"doc_md_python_callable_file", "doc_md_python_arguments", "jinja_environment_kwargs", "template_undefined",
}

// dagOnlyKeys have no effect inside default_args (Airflow ignores them there).
var dagOnlyKeys = []string{"catchup", "schedule", "schedule_interval", "max_active_runs", "max_active_tasks",
	"concurrency", "dagrun_timeout", "tags", "description", "timetable", "is_paused_upon_creation"}

var dagIDRE = regexp.MustCompile(`^[\w.-]{1,250}$`)

type dagDecoder struct {
	r       report
	file    string
	spec    *val // the DAG mapping, defaults merged in
	defArgs *val // merged default_args
	loc     *time.Location
	now     time.Time
	readDoc func(name string) ([]byte, error)
}

// decodeDAG builds one DAG from its merged mapping. It returns nil when the
// DAG has errors; every problem is added to probs.
func decodeDAG(id string, at *val, spec *val, probs *Problems, now time.Time, readDoc func(string) ([]byte, error)) *DAG {
	r := report{probs: probs, dag: id}
	start := len(*probs)
	if !dagIDRE.MatchString(id) {
		r.errf(at, "invalid DAG id: use letters, digits, '_', '-' and '.' (at most 250)")
		return nil
	}
	if spec.kind != kindMap {
		r.errf(spec, "expected a mapping of DAG settings, got %s", spec.describe())
		return nil
	}
	d := &dagDecoder{r: r, file: at.file, spec: spec, now: now, readDoc: readDoc}
	d.defArgs = spec.get("default_args")
	if d.defArgs != nil && d.defArgs.kind != kindMap {
		r.errf(d.defArgs, "default_args: expected a mapping, got %s", d.defArgs.describe())
		d.defArgs = nil
	}
	dag := &DAG{
		ID:                   id,
		File:                 at.file,
		Line:                 at.line,
		Catchup:              true,
		MaxActiveRuns:        DefaultMaxActiveRuns,
		MaxActiveTasks:       DefaultMaxActiveTasks,
		Location:             time.UTC,
		IsPausedUponCreation: true,
	}
	d.checkKeys()
	d.location(dag)
	d.settings(dag)
	d.deadlines(dag)
	tasks := d.tasks(dag)
	if len(Problems((*probs)[start:]).Errors()) > 0 || tasks == nil {
		return nil
	}
	dag.byID = map[string]*Task{}
	for _, t := range dag.Tasks {
		dag.byID[t.ID] = t
	}
	d.dates(dag)
	d.schedule(dag)
	d.checkTemplates(dag)
	if len(Problems((*probs)[start:]).Errors()) > 0 {
		return nil
	}
	dag.Hash = hashDAG(dag)
	return dag
}

func (d *dagDecoder) checkKeys() {
	for _, k := range d.spec.keys {
		switch {
		case contains(dagKeys, k.str):
		case contains(pythonDAGKeys, k.str):
			d.r.errf(k, "%s needs a Python runtime, which updraft does not have; remove it", k.str)
		case strings.HasSuffix(k.str, "_callback_name") || strings.HasSuffix(k.str, "_callback_file"):
			d.r.warnf(k, "%s names a Python function; updraft runs no Python and ignores it (failure alerts go to Mattermost)", k.str)
		default:
			d.r.errf(k, "unknown DAG key %q%s", k.str, suggest(k.str, dagKeys))
		}
	}
	if d.defArgs == nil {
		return
	}
	known := defaultArgKeys
	for _, k := range d.defArgs.keys {
		switch {
		case contains(dagOnlyKeys, k.str):
			d.r.warnf(k, "default_args.%s is ignored (Airflow applies default_args to tasks only); move it to the DAG level", k.str)
		case contains(known, k.str), strings.HasSuffix(k.str, "_callback_name"), strings.HasSuffix(k.str, "_callback_file"):
		default:
			d.r.warnf(k, "default_args.%s is not an argument of any operator and is ignored%s", k.str, suggest(k.str, known))
		}
	}
}

func (d *dagDecoder) location(dag *DAG) {
	for _, v := range []*val{d.spec.get("timezone"), d.defArgs.get("timezone")} {
		if v != nil && !v.isNull() {
			if loc, ok := d.r.location("timezone", v); ok {
				dag.Location = loc
			}
			d.loc = dag.Location
			return
		}
	}
	// Airflow: a DAG's time zone is its start date's.
	for _, v := range []*val{d.spec.get("start_date"), d.defArgs.get("start_date")} {
		if v != nil && v.kind == kindScalar {
			if m := isoRE.FindStringSubmatch(strings.TrimSpace(v.str)); m != nil && m[8] != "" {
				if t, err := isoTime(m, time.UTC); err == nil {
					dag.Location = t.Location()
				}
			}
			break
		}
	}
	d.loc = dag.Location
}

func (d *dagDecoder) settings(dag *DAG) {
	r, s := d.r, d.spec
	if v := s.get("description"); v != nil {
		dag.Description, _ = r.str("description", v)
	}
	if v := s.get("dag_display_name"); v != nil {
		dag.DisplayName, _ = r.str("dag_display_name", v)
	}
	if v := s.get("doc_md"); v != nil {
		dag.DocMD, _ = r.str("doc_md", v)
	}
	if v := s.get("doc_md_file_path"); v != nil {
		name, _ := r.str("doc_md_file_path", v)
		if strings.Contains(name, "$") || path.IsAbs(name) {
			r.errf(v, "doc_md_file_path must be a path relative to the DAG file (environment variables are not expanded)")
		} else if data, err := d.readDoc(path.Join(path.Dir(d.file), name)); err != nil {
			r.errf(v, "doc_md_file_path: %v", unwrapPathError(err))
		} else {
			dag.DocMD = string(data)
		}
	}
	if v := s.get("catchup"); v != nil {
		dag.Catchup, _ = r.boolean("catchup", v)
	}
	if v := s.get("is_paused_upon_creation"); v != nil {
		dag.IsPausedUponCreation, _ = r.boolean("is_paused_upon_creation", v)
	}
	if v := s.get("max_active_runs"); v != nil {
		dag.MaxActiveRuns = d.positive("max_active_runs", v)
	}
	if v := s.get("concurrency"); v != nil {
		dag.MaxActiveTasks = d.positive("concurrency", v)
	}
	if v := s.get("max_active_tasks"); v != nil {
		dag.MaxActiveTasks = d.positive("max_active_tasks", v)
	}
	for _, key := range []string{"dagrun_timeout_sec", "dagrun_timeout"} {
		if v := s.get(key); v != nil && !v.isNull() {
			dag.DagrunTimeout, _ = r.duration(key, v)
		}
	}
	if v := s.get("tags"); v != nil {
		dag.Tags, _ = r.strList("tags", v)
		for _, tag := range dag.Tags {
			if len(tag) > 100 {
				r.errf(v, "tags: tag %q is longer than 100 characters", tag[:20]+"...")
			}
		}
	}
	if v := s.get("params"); v != nil {
		dag.Params = toAnyMap(r, "params", v)
	}
	if v := s.get("default_view"); v != nil {
		dag.DefaultView, _ = r.str("default_view", v)
	}
	for _, key := range []string{"access_control", "template_searchpath"} {
		if v := s.get(key); v != nil && !v.isNull() {
			r.warnf(v, "%s is ignored by updraft", key)
		}
	}
	dag.Callbacks = decodeCallbacks(r, s.get, dagCallbackKeys)
}

func (d *dagDecoder) positive(key string, v *val) int {
	n, ok := d.r.integer(key, v)
	if ok && n < 1 {
		d.r.errf(v, "%s must be at least 1, got %d", key, n)
	}
	return n
}

func (d *dagDecoder) dates(dag *DAG) {
	var earliest *time.Time
	for _, key := range []string{"start_date", "end_date"} {
		v := d.spec.get(key)
		if v == nil || v.isNull() {
			v = d.defArgs.get(key)
		}
		if v == nil || v.isNull() {
			continue
		}
		if t, ok := d.r.datetime(key, v, d.loc, d.now); ok {
			t = t.UTC()
			if key == "start_date" {
				earliest = &t
			} else {
				dag.EndDate = &t
			}
		}
	}
	for _, t := range dag.Tasks {
		if t.StartDate != nil && (earliest == nil || t.StartDate.Before(*earliest)) {
			s := *t.StartDate
			earliest = &s
		}
	}
	dag.StartDate = earliest
	if dag.StartDate != nil && dag.EndDate != nil && dag.EndDate.Before(*dag.StartDate) {
		d.r.warnf(nodeOr(d.spec.get("end_date"), d.defArgs.get("end_date")), "end_date %s is before start_date %s: no scheduled runs will be created",
			dag.EndDate.Format(time.RFC3339), dag.StartDate.Format(time.RFC3339))
	}
}

func (d *dagDecoder) schedule(dag *DAG) {
	var set []*val
	var keys []string
	for _, key := range []string{"schedule", "schedule_interval", "timetable"} {
		if k := d.spec.keyNode(key); k != nil {
			set = append(set, d.spec.get(key))
			keys = append(keys, key)
		}
	}
	switch len(set) {
	case 0:
		dag.Schedule = DeltaTimetable{Delta: 24 * time.Hour} // Airflow 2's default
	case 1:
		tt, err := parseSchedule(keys[0], set[0], dag.Location)
		if err != nil {
			d.r.errf(nodeOr(set[0], d.spec.keyNode(keys[0])), "%v", err)
			return
		}
		dag.Schedule = tt
	default:
		d.r.errf(d.spec.keyNode(keys[1]), "set only one of %s", strings.Join(keys, ", "))
		return
	}
	if dag.Schedule.Periodic() || dag.Schedule.Summary() == "@once" {
		written := !d.spec.get("start_date").isNull() || !d.defArgs.get("start_date").isNull()
		if dag.StartDate == nil && !written {
			d.r.errf(nodeOr(set0(set), d.spec), "a scheduled DAG needs a start_date (in the DAG or its default_args)")
		}
	}
}

func set0(s []*val) *val {
	if len(s) > 0 {
		return s[0]
	}
	return nil
}

// tasks decodes groups and tasks and builds the dependency graph.
func (d *dagDecoder) tasks(dag *DAG) []*Task {
	r := d.r
	groups := d.groups(dag)
	tv := d.spec.get("tasks")
	if tv == nil || tv.isNull() {
		r.errf(d.spec, "no tasks: a DAG needs a tasks list (is tasks indented under another key?)")
		return nil
	}
	entries := keyedEntries(r, "tasks", "task_id", tv)
	if entries == nil {
		return nil
	}
	var raws []*rawTask
	byName := map[string]*rawTask{}
	for i, e := range entries {
		tr := r.forTask(e.id)
		if !taskIDRE.MatchString(e.id) {
			tr.errf(e.at, "invalid task id: use letters, digits, '_', '-' and '.' (at most 250)")
			continue
		}
		defaults := d.defArgs
		if g := e.spec.get("task_group_name"); g != nil {
			for name := g.str; name != ""; {
				grp := groups[name]
				if grp == nil {
					break
				}
				defaults = mergeInto(grp.defaultArgs, defaults)
				name = grp.parent
			}
		}
		rt := decodeTask(tr, e.id, e.spec, defaults, d.loc, d.now, taskFiles{dir: fileDir(d.file), read: func(name string) ([]byte, error) {
			return d.readDoc(path.Join(path.Dir(d.file), name))
		}})
		if rt == nil {
			continue
		}
		rt.order = i
		if rt.group != "" && groups[rt.group] == nil {
			var names []string
			for n := range groups {
				names = append(names, n)
			}
			tr.errf(e.spec.get("task_group_name"), "unknown task group %q%s", rt.group, suggest(rt.group, names))
			continue
		}
		rt.task.ID = childID(groups, rt.group, e.id)
		rt.task.Group = ""
		if rt.group != "" {
			rt.task.Group = groups[rt.group].g.ID
		}
		raws = append(raws, rt)
		byName[e.id] = rt
	}
	failed := map[string]bool{}
	for _, e := range entries {
		if byName[e.id] == nil {
			failed[e.id] = true
		}
	}
	tasks := d.graph(dag, raws, byName, groups, failed)
	if len(failed) > 0 {
		return nil
	}
	return tasks
}

type groupInfo struct {
	g           *TaskGroup
	name        string
	parent      string
	deps        []string
	depAt       *val
	defaultArgs *val
	at          *val
}

var groupKeys = []string{"group_name", "tooltip", "prefix_group_id", "dependencies", "parent_group_name",
	"default_args", "ui_color", "ui_fgcolor", "add_suffix_on_collision",
	"on_success_callback", "on_failure_callback", "on_execute_callback", "on_retry_callback"}

func (d *dagDecoder) groups(dag *DAG) map[string]*groupInfo {
	r := d.r
	out := map[string]*groupInfo{}
	gv := d.spec.get("task_groups")
	if gv == nil || gv.isNull() {
		return out
	}
	for _, e := range keyedEntries(r, "task_groups", "group_name", gv) {
		gi := &groupInfo{name: e.id, at: e.at, g: &TaskGroup{Name: e.id, PrefixGroupID: true}}
		for i, k := range e.spec.keys {
			v := e.spec.vals[i]
			switch k.str {
			case "group_name":
			case "tooltip":
				gi.g.Tooltip, _ = r.str("tooltip", v)
			case "prefix_group_id":
				gi.g.PrefixGroupID, _ = r.boolean("prefix_group_id", v)
			case "dependencies":
				gi.deps, _ = r.strList("dependencies", v)
				gi.depAt = v
			case "parent_group_name":
				gi.parent, _ = r.str("parent_group_name", v)
			case "default_args":
				if v.kind != kindMap {
					r.errf(v, "default_args: expected a mapping, got %s", v.describe())
				} else {
					gi.defaultArgs = v
				}
			default:
				if strings.Contains(k.str, "callback") {
					r.warnf(k, "task group %s is ignored by updraft", k.str)
				} else if !contains(groupKeys, k.str) {
					r.errf(k, "unknown task group key %q%s", k.str, suggest(k.str, groupKeys))
				}
			}
		}
		out[e.id] = gi
	}
	// Parents must exist and not loop; then ids can be computed.
	for _, gi := range out {
		seen := map[string]bool{gi.name: true}
		for p := gi.parent; p != ""; p = out[p].parent {
			if out[p] == nil {
				var names []string
				for n := range out {
					names = append(names, n)
				}
				r.errf(gi.at, "task group %q: unknown parent_group_name %q%s", gi.name, p, suggest(p, names))
				gi.parent = ""
				break
			}
			if seen[p] {
				r.errf(gi.at, "task group %q: parent_group_name forms a loop", gi.name)
				gi.parent = ""
				break
			}
			seen[p] = true
		}
	}
	var names []string
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		gi := out[n]
		gi.g.ID = childID(out, gi.parent, n)
		if gi.parent != "" {
			gi.g.Parent = out[gi.parent].g.ID
		}
		dag.Groups = append(dag.Groups, gi.g)
	}
	return out
}

// childID is Airflow's TaskGroup.child_id: a label inside a group is
// prefixed with the group id of the nearest group that prefixes.
func childID(groups map[string]*groupInfo, group, label string) string {
	for group != "" {
		gi := groups[group]
		if gi.g.PrefixGroupID {
			return childID(groups, gi.parent, group) + "." + label
		}
		group = gi.parent
	}
	return label
}

type entry struct {
	id   string
	at   *val // where the id is written
	spec *val
}

// keyedEntries normalises tasks or task_groups, written as a list of
// mappings with an id key or as a mapping keyed by id, to entries in file
// order. Duplicate ids are errors.
func keyedEntries(r report, key, idKey string, v *val) []entry {
	var out []entry
	seen := map[string]*val{}
	add := func(id string, at, spec *val) {
		if prev := seen[id]; prev != nil {
			r.errf(at, "duplicate %s %q (first defined at line %d)", idKey, id, prev.line)
			return
		}
		seen[id] = at
		out = append(out, entry{id: id, at: at, spec: spec})
	}
	switch v.kind {
	case kindSeq:
		for _, item := range v.items {
			if item.kind != kindMap {
				r.errf(item, "%s: each entry must be a mapping with %s, got %s", key, idKey, item.describe())
				continue
			}
			id := item.get(idKey)
			if id == nil || id.kind != kindScalar || id.str == "" {
				r.errf(item, "%s: entry has no %s", key, idKey)
				continue
			}
			add(id.str, id, item)
		}
	case kindMap: // keys written twice were reported by reportDups
		for i, k := range v.keys {
			spec := v.vals[i]
			if spec.isNull() {
				spec = &val{file: k.file, line: k.line, col: k.col, kind: kindMap}
			}
			if spec.kind != kindMap {
				r.errf(spec, "%s.%s: expected a mapping, got %s", key, k.str, spec.describe())
				continue
			}
			add(k.str, k, spec)
		}
	default:
		r.errf(v, "%s: expected a list or a mapping, got %s", key, v.describe())
		return nil
	}
	if out == nil {
		out = []entry{}
	}
	return out
}

// graph resolves dependencies (task names or group names), checks for
// cycles and orders tasks topologically.
func (d *dagDecoder) graph(dag *DAG, raws []*rawTask, byName map[string]*rawTask, groups map[string]*groupInfo, failed map[string]bool) []*Task {
	r := d.r
	up := map[*rawTask]map[*rawTask]bool{}
	for _, rt := range raws {
		up[rt] = map[*rawTask]bool{}
	}
	// Members of a group include tasks of its sub-groups.
	members := func(group string) []*rawTask {
		var out []*rawTask
		for _, rt := range raws {
			for g := rt.group; g != ""; g = groups[g].parent {
				if g == group {
					out = append(out, rt)
					break
				}
			}
		}
		return out
	}
	// Direct task-to-task edges first: group roots and leaves are computed on them.
	var candidates []string
	for n := range byName {
		candidates = append(candidates, n)
	}
	for n := range groups {
		candidates = append(candidates, n)
	}
	for _, rt := range raws {
		for _, dep := range rt.deps {
			if u := byName[dep]; u != nil {
				up[rt][u] = true
			} else if groups[dep] == nil && !failed[dep] {
				r.forTask(rt.task.ID).errf(rt.depAt, "unknown dependency %q%s", dep, suggest(dep, candidates))
			}
		}
	}
	inGroup := func(set []*rawTask, x *rawTask) bool { return contains(set, x) }
	leaves := func(group string) []*rawTask {
		m := members(group)
		var out []*rawTask
		for _, x := range m {
			leaf := true
			for _, y := range m {
				if up[y][x] {
					leaf = false
				}
			}
			if leaf {
				out = append(out, x)
			}
		}
		return out
	}
	roots := func(group string) []*rawTask {
		m := members(group)
		var out []*rawTask
		for _, x := range m {
			root := true
			for u := range up[x] {
				if inGroup(m, u) {
					root = false
				}
			}
			if root {
				out = append(out, x)
			}
		}
		return out
	}
	type edge struct{ down, upT *rawTask }
	var extra []edge
	for _, rt := range raws {
		for _, dep := range rt.deps {
			if byName[dep] == nil && groups[dep] != nil {
				for _, l := range leaves(dep) {
					extra = append(extra, edge{rt, l})
				}
			}
		}
	}
	var gnames []string
	for n := range groups {
		gnames = append(gnames, n)
	}
	sort.Strings(gnames)
	for _, gname := range gnames {
		gi := groups[gname]
		for _, dep := range gi.deps {
			var targets []*rawTask
			switch {
			case byName[dep] != nil:
				targets = []*rawTask{byName[dep]}
			case groups[dep] != nil:
				targets = leaves(dep)
			case failed[dep]:
				continue
			default:
				r.errf(gi.depAt, "task group %q: unknown dependency %q%s", gname, dep, suggest(dep, candidates))
				continue
			}
			for _, root := range roots(gname) {
				for _, t := range targets {
					extra = append(extra, edge{root, t})
				}
			}
		}
	}
	for _, e := range extra {
		up[e.down][e.upT] = true
	}
	for _, rt := range raws {
		rt.task.Upstream = []string{}
		for u := range up[rt] {
			rt.task.Upstream = append(rt.task.Upstream, u.task.ID)
		}
		sort.Strings(rt.task.Upstream)
	}
	if cycle := findCycle(raws, up); cycle != nil {
		var ids []string
		for _, rt := range cycle {
			ids = append(ids, rt.task.ID)
		}
		ids = append(ids, cycle[0].task.ID)
		at := cycle[0].depAt
		if at == nil {
			at = cycle[0].at
		}
		r.errf(at, "dependency cycle: %s", strings.Join(ids, " -> "))
		return nil
	}
	dag.Tasks = topoSort(raws, up)
	return dag.Tasks
}

// findCycle returns the tasks of one dependency cycle (each depends on the
// next... read as "a is upstream of b"), or nil.
func findCycle(raws []*rawTask, up map[*rawTask]map[*rawTask]bool) []*rawTask {
	const (
		white = iota
		grey
		black
	)
	color := map[*rawTask]int{}
	var stack []*rawTask
	var found []*rawTask
	var visit func(x *rawTask) bool
	visit = func(x *rawTask) bool {
		color[x] = grey
		stack = append(stack, x)
		ups := make([]*rawTask, 0, len(up[x]))
		for u := range up[x] {
			ups = append(ups, u)
		}
		sort.Slice(ups, func(i, j int) bool { return ups[i].order < ups[j].order })
		for _, u := range ups {
			if color[u] == grey {
				for i := len(stack) - 1; i >= 0; i-- {
					if stack[i] == u {
						path := append([]*rawTask{}, stack[i:]...)
						// stack holds downstream -> upstream; report upstream first.
						for a, b := 0, len(path)-1; a < b; a, b = a+1, b-1 {
							path[a], path[b] = path[b], path[a]
						}
						found = path
						return true
					}
				}
			}
			if color[u] == white && visit(u) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[x] = black
		return false
	}
	for _, x := range raws {
		if color[x] == white && visit(x) {
			return found
		}
	}
	return nil
}

// topoSort orders tasks upstream first, ties broken by file order.
func topoSort(raws []*rawTask, up map[*rawTask]map[*rawTask]bool) []*Task {
	indeg := map[*rawTask]int{}
	down := map[*rawTask][]*rawTask{}
	for _, x := range raws {
		indeg[x] = len(up[x])
		for u := range up[x] {
			down[u] = append(down[u], x)
		}
	}
	var ready []*rawTask
	for _, x := range raws {
		if indeg[x] == 0 {
			ready = append(ready, x)
		}
	}
	var out []*Task
	for len(ready) > 0 {
		sort.Slice(ready, func(i, j int) bool { return ready[i].order < ready[j].order })
		x := ready[0]
		ready = ready[1:]
		out = append(out, x.task)
		for _, y := range down[x] {
			indeg[y]--
			if indeg[y] == 0 {
				ready = append(ready, y)
			}
		}
	}
	return out
}

// checkTemplates parses every templated field so syntax errors surface when
// the file is loaded, not when the task runs.
func (d *dagDecoder) checkTemplates(dag *DAG) {
	for _, t := range dag.Tasks {
		for _, f := range t.Spec.templates() {
			if err := CheckTemplate(f.src); err != nil {
				at := f.at
				if at == nil {
					at = &val{file: d.file, line: t.Line}
				}
				d.r.forTask(t.ID).errf(at, "%s: template error: %v", f.name, err)
			}
		}
		// Where its fields are written served these errors alone: the
		// loaded DAG does not keep the file's tree for it.
		if p, ok := t.Spec.(positioned); ok {
			t.Spec = p.withoutPositions()
		}
	}
}

// hashDAG fingerprints everything that affects how the DAG runs.
func hashDAG(dag *DAG) string {
	h := sha256.New()
	tz := dag.Location.String()
	_ = json.NewEncoder(h).Encode(struct {
		*DAG
		Schedule string
		TZ       string
	}{dag, dag.Schedule.Summary(), tz})
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Errorf("cannot read %s: %v", pe.Path, pe.Err)
	}
	return err
}

func scalarValue(v *val) any {
	switch v.tag {
	case "!!int":
		if n, err := strconv.ParseInt(strings.ReplaceAll(v.str, "_", ""), 0, 64); err == nil {
			return n
		}
	case "!!float":
		if f, err := strconv.ParseFloat(v.str, 64); err == nil {
			return f
		}
	case "!!bool":
		b, err := strconv.ParseBool(lower(v.str))
		if err == nil {
			return b
		}
	}
	return v.str
}

// fileDir is the folder of a file from the DAG folder's root, "" for the
// root itself.
func fileDir(file string) string {
	if dir := path.Dir(file); dir != "." {
		return dir
	}
	return ""
}
