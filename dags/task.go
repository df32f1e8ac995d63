package dags

import (
	"regexp"
	"strings"
	"time"
)

// baseTaskKeys are BaseOperator's arguments (and dag-factory's task keys)
// accepted on every task, whatever its operator.
var baseTaskKeys = []string{
	"task_id", "operator", "dependencies", "task_group_name", "owner", "email", "email_on_failure",
	"email_on_retry", "retries", "retry_delay", "retry_delay_sec", "retry_exponential_backoff",
	"max_retry_delay", "execution_timeout", "execution_timeout_secs", "start_date", "end_date",
	"depends_on_past", "ignore_first_depends_on_past", "wait_for_downstream", "trigger_rule", "pool",
	"pool_slots", "priority_weight", "weight_rule", "queue", "sla", "sla_secs", "params", "doc_md",
	"doc", "doc_json", "doc_yaml", "doc_rst", "task_display_name", "max_active_tis_per_dag",
	"max_active_tis_per_dagrun", "task_concurrency", "run_as_user", "resources", "ui_color",
	"ui_fgcolor", "do_xcom_push", "variables_as_arguments", "timezone", "executor_config",
	"inlets", "outlets",
	"on_execute_callback", "on_success_callback", "on_failure_callback", "on_retry_callback", "on_skipped_callback",
}

// pythonTaskKeys only make sense with a Python runtime.
var pythonTaskKeys = map[string]string{
	"python_callable":       "python_callable",
	"python_callable_name":  "python_callable_name",
	"python_callable_file":  "python_callable_file",
	"op_args":               "op_args",
	"op_kwargs":             "op_kwargs",
	"multiple_outputs":      "multiple_outputs",
	"response_check_lambda": "response_check_lambda",
	"execution_date_fn":     "execution_date_fn",
}

var (
	taskIDRE       = regexp.MustCompile(`^[\w.-]{1,250}$`)
	variableNameRE = regexp.MustCompile(`^[A-Za-z_]\w*$`)
)

// taskDecoder decodes one task: its own mapping merged over the default_args
// that apply to it (its groups', then the DAG's).
type taskDecoder struct {
	r        report
	own      *val
	defaults *val
	kind     *operatorKind
	used     map[string]bool
	// readFile reads a file relative to the DAG file (a .sql script).
	readFile func(name string) ([]byte, error)
	// dir is the DAG file's folder, from the DAG folder's root ("" the root).
	dir string
	loc *time.Location // the DAG's time zone
}

// take returns the value for key (the task's own, else from default_args)
// and marks it as understood.
func (d *taskDecoder) take(key string) *val {
	d.used[key] = true
	if v := d.own.get(key); v != nil {
		return v
	}
	return d.defaults.get(key)
}

func (d *taskDecoder) isOwn(key string) bool { return d.own.get(key) != nil }

// taskFiles reads the files a task names (a .sql script, a Python
// callable's module): read takes a path relative to the DAG file, dir is
// the DAG file's folder from the DAG folder's root ("" the root).
type taskFiles struct {
	dir  string
	read func(name string) ([]byte, error)
}

// rawTask is a task before the dependency graph is built.
type rawTask struct {
	task  *Task
	name  string
	group string // group name as written
	deps  []string
	depAt *val
	at    *val
	order int
}

// decodeTask decodes everything about one task except its dependencies'
// targets. It returns nil when the task cannot be built.
func decodeTask(r report, name string, own, defaults *val, loc *time.Location, now time.Time, files taskFiles) *rawTask {
	if own.get("expand") != nil || own.get("expand_kwargs") != nil || own.get("partial") != nil {
		return decodeMapped(r, name, own, defaults, loc, now, files)
	}
	if own.get("variables_as_arguments") != nil {
		own = own.shallow() // variablesAsArguments rewrites attributes
	}
	d := &taskDecoder{r: r, own: own, defaults: defaults, used: make(map[string]bool, 2*len(own.keys)+len(defaults.keysOrNil())), readFile: files.read, dir: files.dir, loc: loc}
	ok := true
	nProblems := len(*r.probs)
	var taskFlow *operatorKind
	if dec := own.get("decorator"); dec != nil {
		if taskFlow = resolveDecorator(r, dec); taskFlow == nil {
			return nil
		}
	}
	// An operator of updraft's own may take a key Python operators have
	// (op_kwargs on a ShortCircuitOperator); resolve it first.
	var fieldsOf []string
	if opv := own.get("operator"); opv != nil && opv.kind == kindScalar {
		if k, _ := resolveOperator(strings.TrimSpace(opv.str)); k != nil {
			fieldsOf = k.fields
		}
	}
	if taskFlow != nil {
		fieldsOf = taskFlow.fields
	}
	for _, k := range own.keys {
		if what, bad := pythonTaskKeys[k.str]; bad && !contains(fieldsOf, k.str) {
			if contains(pythonFields, k.str) {
				r.errf(k, "%s is an argument of the Python operators (PythonOperator, BranchPythonOperator, ShortCircuitOperator, "+
					"PythonSensor, a decorator: task), not of this task's operator", what)
			} else {
				r.errf(k, "%s needs a Python runtime in the server, which updraft does not have; use a template or a Python task instead", what)
			}
			ok = false
		}
		if strings.HasSuffix(k.str, "_callback_name") || strings.HasSuffix(k.str, "_callback_file") {
			r.warnf(k, "%s names a Python function; updraft runs no Python and ignores it (failure alerts go to Mattermost)", k.str)
			d.used[k.str] = true
		}
	}
	kind, opName := taskFlow, TaskFlowClass
	if taskFlow != nil {
		d.used["decorator"] = true
		if opv := own.get("operator"); opv != nil {
			r.errf(opv, "a task has an operator or a decorator, not both")
			return nil
		}
	} else {
		opv := d.take("operator")
		if opv == nil {
			r.errf(own, "task has no operator")
			return nil
		}
		opName, _ = r.str("operator", opv)
		var why string
		if kind, why = resolveOperator(strings.TrimSpace(opName)); kind == nil {
			r.errf(opv, "%s", why)
			return nil
		}
	}
	d.kind = kind
	t := &Task{
		Operator:       kind.class,
		OperatorPath:   opName,
		Owner:          DefaultOwner,
		TriggerRule:    AllSuccess,
		RetryDelay:     DefaultRetryDelay,
		Pool:           DefaultPool,
		PoolSlots:      1,
		PriorityWeight: 1,
		WeightRule:     "downstream",
		Queue:          DefaultQueue,
		Line:           own.line,
	}
	rt := &rawTask{task: t, name: name, at: own}
	if v := d.take("task_group_name"); v != nil && d.isOwn("task_group_name") {
		rt.group, _ = r.str("task_group_name", v)
	}
	if v := d.own.get("dependencies"); v != nil {
		d.used["dependencies"] = true
		rt.deps, _ = r.strList("dependencies", v)
		rt.depAt = v
	}
	d.take("task_id")
	if v := d.take("owner"); v != nil {
		t.Owner, _ = r.str("owner", v)
	}
	if v := d.take("trigger_rule"); v != nil {
		s, _ := r.str("trigger_rule", v)
		rule, known := ParseTriggerRule(s)
		if !known {
			var names []string
			for _, tr := range TriggerRules {
				names = append(names, string(tr))
			}
			r.errf(v, "unknown trigger_rule %q%s", s, suggest(s, names))
		}
		t.TriggerRule = rule
	}
	if v := d.take("retries"); v != nil {
		t.Retries, _ = r.nonNegative("retries", v)
	}
	durations := []struct {
		keys []string
		dst  *time.Duration
	}{
		{[]string{"retry_delay_sec", "retry_delay"}, &t.RetryDelay},
		{[]string{"max_retry_delay"}, &t.MaxRetryDelay},
		{[]string{"execution_timeout_secs", "execution_timeout"}, &t.ExecutionTimeout},
	}
	for _, dur := range durations {
		for _, key := range dur.keys {
			if v := d.take(key); v != nil && !v.isNull() {
				*dur.dst, _ = r.duration(key, v)
			}
		}
	}
	// sla or sla_secs: the task's own wins over default_args'.
	ownSLA := false
	for _, key := range []string{"sla", "sla_secs"} {
		if v := d.take(key); v != nil && !v.isNull() {
			if dur, ok := r.duration(key, v); ok && (d.isOwn(key) || !ownSLA) {
				t.SLA, ownSLA = dur, ownSLA || d.isOwn(key)
			}
		}
	}
	bools := []struct {
		key string
		dst *bool
	}{
		{"retry_exponential_backoff", &t.RetryExponentialBackoff},
		{"depends_on_past", &t.DependsOnPast},
		{"wait_for_downstream", &t.WaitForDownstream},
		{"ignore_first_depends_on_past", &t.IgnoreFirstDependsOnPast},
	}
	for _, b := range bools {
		if v := d.take(b.key); v != nil {
			*b.dst, _ = r.boolean(b.key, v)
		}
	}
	if t.WaitForDownstream {
		t.DependsOnPast = true // as in Airflow
	}
	if v := d.take("pool"); v != nil {
		t.Pool, _ = r.str("pool", v)
	}
	if v := d.take("pool_slots"); v != nil {
		if n, valid := r.integer("pool_slots", v); valid && n < 1 {
			r.errf(v, "pool_slots must be at least 1, got %d", n)
		} else {
			t.PoolSlots = n
		}
	}
	if v := d.take("priority_weight"); v != nil {
		t.PriorityWeight, _ = r.integer("priority_weight", v)
	}
	if v := d.take("weight_rule"); v != nil {
		t.WeightRule, _ = r.str("weight_rule", v)
		if !contains([]string{"downstream", "upstream", "absolute"}, t.WeightRule) {
			r.errf(v, "weight_rule must be downstream, upstream or absolute, got %q", t.WeightRule)
		}
	}
	if v := d.take("queue"); v != nil {
		t.Queue, _ = r.str("queue", v)
	}
	for _, key := range []string{"task_concurrency", "max_active_tis_per_dag"} {
		if v := d.take(key); v != nil {
			t.MaxActiveTisPerDag, _ = r.nonNegative(key, v)
		}
	}
	if v := d.take("max_active_tis_per_dagrun"); v != nil {
		t.MaxActiveTisPerDagrun, _ = r.nonNegative("max_active_tis_per_dagrun", v)
	}
	for _, key := range []string{"start_date", "end_date"} {
		if v := d.take(key); v != nil && !v.isNull() {
			if tm, ok := r.datetime(key, v, loc, now); ok {
				tm = tm.UTC()
				if key == "start_date" {
					t.StartDate = &tm
				} else {
					t.EndDate = &tm
				}
			}
		}
	}
	if v := d.take("params"); v != nil {
		t.Params = toAnyMap(r, "params", v)
	}
	for _, key := range []string{"doc_md", "doc", "doc_json", "doc_yaml", "doc_rst"} {
		if v := d.take(key); v != nil && t.DocMD == "" {
			t.DocMD, _ = r.str(key, v)
		}
	}
	for _, key := range []string{"email", "email_on_failure", "email_on_retry"} {
		if v := d.take(key); v != nil && d.isOwn(key) {
			r.warnf(v, "%s is ignored: updraft alerts through Mattermost, not email", key)
		}
	}
	for _, key := range []string{"inlets", "outlets"} {
		if v := d.take(key); v != nil && !v.isNull() {
			r.errf(v, "%s: data-aware scheduling (datasets/assets) is not supported yet", key)
		}
	}
	if v := d.take("variables_as_arguments"); v != nil {
		variablesAsArguments(r, own, v)
	}
	t.Callbacks = decodeCallbacks(r, func(k string) *val { return d.take(k) }, taskCallbackKeys)
	if v := d.take("do_xcom_push"); v != nil && kind.class != "KubernetesPodOperator" {
		push, _ := r.boolean("do_xcom_push", v)
		t.XComPush = &push
	}
	for _, key := range []string{"task_display_name", "run_as_user", "resources", "ui_color", "ui_fgcolor", "timezone"} {
		d.used[key] = true // accepted; display or runtime hints with no effect here
	}
	t.Spec = kind.decode(d)
	if py, isPy := t.Spec.(PythonSpec); isPy {
		for _, up := range py.refs() {
			if !contains(rt.deps, up) {
				rt.deps = append(rt.deps, up)
			}
		}
		if rt.depAt == nil {
			rt.depAt = own
		}
	} else if v := d.take("executor_config"); v != nil && !v.isNull() {
		r.errf(v, "executor_config (pod_override) sets the pod of a Python callable's task; for a command, use a "+
			"KubernetesPodOperator task with container_resources instead")
	}

	// Keys the task itself wrote that nothing understood.
	known := append(append([]string{}, baseTaskKeys...), kind.fields...)
	for _, k := range own.keys {
		if d.used[k.str] || (pythonTaskKeys[k.str] != "" && !contains(kind.fields, k.str)) || strings.HasSuffix(k.str, "_callback_name") || strings.HasSuffix(k.str, "_callback_file") {
			continue
		}
		if contains(baseTaskKeys, k.str) || contains(operatorFields, k.str) {
			r.errf(k, "%s is not an argument of %s", k.str, kind.class)
		} else {
			r.errf(k, "unknown task key %q%s", k.str, suggest(k.str, known))
		}
		ok = false
	}
	if !ok || Problems((*r.probs)[nProblems:]).HasErrors() {
		return nil
	}
	return rt
}

// variablesAsArguments maps dag-factory's variables_as_arguments onto
// templates: the attribute reads the Variable when the task runs
// ({{ var.value.NAME }}) instead of when the file is parsed.
func variablesAsArguments(r report, own, v *val) {
	if v.kind != kindSeq {
		r.errf(v, "variables_as_arguments: expected a list of {variable, attribute}, got %s", v.describe())
		return
	}
	for _, item := range v.items {
		variable, attribute := item.get("variable"), item.get("attribute")
		if item.kind != kindMap || variable == nil || attribute == nil || len(item.keys) != 2 {
			r.errf(item, "variables_as_arguments: each entry needs exactly variable and attribute")
			continue
		}
		if !variableNameRE.MatchString(variable.str) {
			r.errf(variable, "variables_as_arguments: variable %q is not a plain name", variable.str)
			continue
		}
		ref := &val{file: item.file, line: item.line, col: item.col, kind: kindScalar, tag: "!!str",
			str: "{{ var.value." + variable.str + " }}"}
		own.set(&val{kind: kindScalar, str: attribute.str, file: attribute.file, line: attribute.line, col: attribute.col}, ref)
	}
}

// operatorFields are the fields of every operator, and defaultArgKeys what
// default_args may hold; both are fixed when the package is initialised
// (files load concurrently, so nothing here is filled lazily).
var (
	operatorFields = func() []string {
		var out []string
		for _, k := range operators {
			out = append(out, k.fields...)
		}
		return out
	}()
	defaultArgKeys = append(append(append([]string{}, baseTaskKeys...), operatorFields...), mapKeys(pythonTaskKeys)...)
)

var taskCallbackKeys = []string{"on_execute_callback", "on_success_callback", "on_failure_callback", "on_retry_callback", "on_skipped_callback"}
var dagCallbackKeys = []string{"on_success_callback", "on_failure_callback", "on_execute_callback", "sla_miss_callback"}

// decodeCallbacks reads callback keys. A Slack or Mattermost notifier maps
// onto updraft's webhook alerts; any other callback is a Python function,
// reported and ignored.
// Warnings about callbacks inherited from default_args point at
// default_args and are reported once, not once per task.
func decodeCallbacks(r report, get func(string) *val, keys []string) Callbacks {
	var out Callbacks
	for _, key := range keys {
		v := get(key)
		if v.isNull() {
			continue
		}
		items := []*val{v}
		if v.kind == kindSeq {
			items = v.items
		}
		for _, item := range items {
			cb := Callback{Name: key, Line: item.line}
			switch item.kind {
			case kindScalar:
				cb.Target = item.str
			case kindMap:
				target := item.get("callback")
				if target == nil {
					r.errf(item, "%s: a callback mapping needs a callback: key naming the function or notifier", key)
					continue
				}
				cb.Target = target.str
				cb.Args = map[string]string{}
				for i, k := range item.keys {
					if k.str != "callback" && item.vals[i].kind == kindScalar {
						cb.Args[k.str] = item.vals[i].str
					}
				}
			default:
				r.errf(item, "%s: expected a callback path or mapping, got %s", key, item.describe())
				continue
			}
			lt := lower(cb.Target)
			switch {
			case strings.Contains(lt, "slack"):
				cb.Notifier = "slack"
			case strings.Contains(lt, "mattermost"):
				cb.Notifier = "mattermost"
			}
			if cb.Notifier == "" {
				r.warnf(item, "%s %s is a Python function; updraft runs no Python and ignores it (failure alerts go to Mattermost)", key, cb.Target)
			}
			if out == nil {
				out = Callbacks{}
			}
			out[key] = cb
		}
	}
	return out
}

// toAnyMap converts a mapping to plain Go values (params, conf).
func toAnyMap(r report, key string, v *val) map[string]any {
	if v.isNull() {
		return nil
	}
	if v.kind != kindMap {
		r.errf(v, "%s: expected a mapping, got %s", key, v.describe())
		return nil
	}
	m, _ := toAny(v).(map[string]any)
	return m
}

func toAny(v *val) any {
	switch {
	case v.isNull():
		return nil
	case v.kind == kindMap:
		m := make(map[string]any, len(v.keys))
		for i, k := range v.keys {
			m[k.str] = toAny(v.vals[i])
		}
		return m
	case v.kind == kindSeq:
		s := make([]any, len(v.items))
		for i, item := range v.items {
			s[i] = toAny(item)
		}
		return s
	}
	return scalarValue(v)
}
