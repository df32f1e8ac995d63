package dags

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Python callables run in a process (or pod) of their own, never in the
// server: the spec says where the callable is and what it is given; the
// executors start updraft's runner with it (executor/python).

// Python call modes: what the callable's return value means.
const (
	PythonCall         = "python"        // PythonOperator, @task: the return value is the result
	PythonBranch       = "branch"        // BranchPythonOperator, @task.branch: task id(s) to follow
	PythonShortCircuit = "short_circuit" // ShortCircuitOperator, @task.short_circuit: falsy skips downstream
	PythonSensorMode   = "sensor"        // PythonSensor, @task.sensor: poked until truthy
)

// pythonClasses are the operators whose work is a Python callable, with
// their mode; ShortCircuitOperator is one too when it names a callable.
var pythonClasses = map[string]string{
	"PythonOperator":               PythonCall,
	"ExternalPythonOperator":       PythonCall,
	"BranchPythonOperator":         PythonBranch,
	"BranchExternalPythonOperator": PythonBranch,
	"PythonSensor":                 PythonSensorMode,
	TaskFlowClass:                  PythonCall,
}

// TaskFlowClass is Airflow's class for a @task function (dag-factory's
// decorator: form).
const TaskFlowClass = "_PythonDecoratedOperator"

var pythonFields = []string{"python_callable", "python_callable_name", "python_callable_file", "op_args", "op_kwargs",
	"templates_dict", "templates_exts", "multiple_outputs", "show_return_value_in_logs", "expect_airflow",
	"expect_pendulum", "skip_on_exit_code"}

// taskFlowDecorators maps dag-factory's decorator values (after the module
// prefix airflow.decorators. or airflow.sdk.) onto a mode.
var taskFlowDecorators = map[string]string{
	"task": PythonCall, "task.python": PythonCall, "task.external_python": PythonCall,
	"task.branch": PythonBranch, "task.branch_python": PythonBranch, "task.branch_external_python": PythonBranch,
	"task.short_circuit": PythonShortCircuit, "task.sensor": PythonSensorMode,
}

// PythonSpec is a task whose work is a Python callable.
type PythonSpec struct {
	Operator string `json:"operator"` // the class, e.g. BranchPythonOperator
	Mode     string `json:"mode"`
	// The callable: Module (dotted, imported from SysPath) or File (a
	// path from the DAG folder's root), and the top-level Name in it.
	Module string `json:"module,omitempty"`
	File   string `json:"file,omitempty"`
	Name   string `json:"name"`
	// SysPath are folders from the DAG folder's root ("" is the root)
	// put in front of sys.path: the DAG file's folder, then the root.
	SysPath []string `json:"sys_path"`
	// Python is ExternalPythonOperator's interpreter ("" the server's).
	Python string `json:"python,omitempty"`

	OpArgs          []any          `json:"op_args,omitempty"`
	OpKwargs        map[string]any `json:"op_kwargs,omitempty"`
	TemplatesDict   map[string]any `json:"templates_dict,omitempty"`
	MultipleOutputs bool           `json:"multiple_outputs,omitempty"`
	ShowReturnValue bool           `json:"show_return_value_in_logs"`
	// IgnoreDownstreamTriggerRules: a short circuit skips everything
	// downstream (true, Airflow's default) or only its direct downstream.
	IgnoreDownstreamTriggerRules bool            `json:"ignore_downstream_trigger_rules,omitempty"`
	Sensor                       *SensorSettings `json:"sensor,omitempty"`
	// PodOverride is executor_config's pod_override: the pod settings of
	// the task's pod on the Kubernetes executor.
	PodOverride *corev1.Pod `json:"pod_override,omitempty"`
	// Context is Airflow's context for the try, set by Render.
	Context map[string]any `json:"context,omitempty"`

	at map[string]*val
}

// Kind is the operator's class.
func (s PythonSpec) Kind() string { return s.Operator }
func (PythonSpec) pushesXCom()    {}

// Callable names the callable as a person reads it: "sample.double" or
// "helpers/x.py:double".
func (s PythonSpec) Callable() string {
	if s.Module != "" {
		return s.Module + "." + s.Name
	}
	return s.File + ":" + s.Name
}

func (s PythonSpec) templates() []templateField {
	var out []templateField
	collect := func(name string, x any) {
		walkStrings(x, func(str string) { out = append(out, templateField{name, str, s.at[name]}) })
	}
	collect("op_args", s.OpArgs)
	collect("op_kwargs", s.OpKwargs)
	collect("templates_dict", s.TemplatesDict)
	return out
}

func walkStrings(x any, fn func(string)) {
	switch t := x.(type) {
	case string:
		fn(t)
	case []any:
		for _, v := range t {
			walkStrings(v, fn)
		}
	case map[string]any:
		for _, k := range sortedKeys(t) {
			walkStrings(t[k], fn)
		}
	}
}

// Render renders op_args, op_kwargs and templates_dict (Airflow's
// template fields of PythonOperator) and records the try's context.
func (s PythonSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	if s.OpArgs != nil {
		v, err := r.tree("op_args", s.OpArgs)
		if err != nil {
			return nil, err
		}
		out.OpArgs, _ = v.([]any)
	}
	for _, f := range []struct {
		name string
		src  map[string]any
		dst  *map[string]any
	}{{"op_kwargs", s.OpKwargs, &out.OpKwargs}, {"templates_dict", s.TemplatesDict, &out.TemplatesDict}} {
		if f.src == nil {
			continue
		}
		v, err := r.tree(f.name, f.src)
		if err != nil {
			return nil, err
		}
		*f.dst, _ = v.(map[string]any)
	}
	out.Context = r.PythonContext()
	return out, nil
}

// XComRefKey marks an argument that is an upstream task's XCom
// ("+task" in dag-factory's TaskFlow form): the runner pulls it.
const XComRefKey = "__updraft_xcom__"

// xcomArgRE is dag-factory's reference to a task's output: +task,
// +task['key'] (a key pushed with multiple_outputs), task.output.
var xcomArgRE = regexp.MustCompile(`^\+([\w.-]+)(?:\[\s*['"]([^'"]+)['"]\s*\])?$|^([\w.-]+)\.output$`)

// xcomRef returns the XCom reference a string stands for, if any.
func xcomRef(s string) (map[string]any, string, bool) {
	m := xcomArgRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return nil, "", false
	}
	task, key := m[1], m[2]
	if task == "" {
		task = m[3]
	}
	if key == "" {
		key = ReturnValueKey
	}
	return map[string]any{XComRefKey: map[string]any{"task_id": task, "key": key}}, task, true
}

// refs are the tasks whose XCom the arguments reference.
func (s PythonSpec) refs() []string {
	var out []string
	var walk func(any)
	walk = func(x any) {
		switch t := x.(type) {
		case []any:
			for _, v := range t {
				walk(v)
			}
		case map[string]any:
			if ref, ok := t[XComRefKey].(map[string]any); ok {
				if id, _ := ref["task_id"].(string); id != "" && !slices.Contains(out, id) {
					out = append(out, id)
				}
				return
			}
			for _, v := range t {
				walk(v)
			}
		}
	}
	walk(s.OpArgs)
	walk(s.OpKwargs)
	return out
}

// withRefs replaces dag-factory's output references in an argument tree.
func withRefs(x any) any {
	switch t := x.(type) {
	case string:
		if ref, _, ok := xcomRef(t); ok {
			return ref
		}
	case []any:
		out := make([]any, len(t))
		for i, v := range t {
			out[i] = withRefs(v)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, v := range t {
			out[k] = withRefs(v)
		}
		return out
	}
	return x
}

// decodePython decodes a task whose work is a Python callable. taskFlow is
// dag-factory's decorator form: keys that are no operator argument are
// the function's keyword arguments.
func decodePython(d *taskDecoder, class, mode string, taskFlow bool) OperatorSpec {
	s := PythonSpec{Operator: class, Mode: mode, ShowReturnValue: true, at: map[string]*val{}}
	if mode == PythonShortCircuit {
		s.IgnoreDownstreamTriggerRules = true
		if v := d.take("ignore_downstream_trigger_rules"); v != nil {
			s.IgnoreDownstreamTriggerRules, _ = d.r.boolean("ignore_downstream_trigger_rules", v)
		}
	}
	if mode == PythonSensorMode {
		settings := decodeSensor(d)
		s.Sensor = &settings
	}
	d.pythonCallable(&s)
	if v := d.take("op_args"); v != nil && !v.isNull() {
		if v.kind != kindSeq {
			d.r.errf(v, "op_args: expected a list, got %s", v.describe())
		} else {
			s.OpArgs, _ = withRefs(toAny(v)).([]any)
			s.at["op_args"] = v
		}
	}
	if v := d.take("op_kwargs"); v != nil && !v.isNull() {
		m := toAnyMap(d.r, "op_kwargs", v)
		if m != nil {
			s.OpKwargs, _ = withRefs(m).(map[string]any)
		}
		s.at["op_kwargs"] = v
	}
	if v := d.take("templates_dict"); v != nil && !v.isNull() {
		s.TemplatesDict = toAnyMap(d.r, "templates_dict", v)
		s.at["templates_dict"] = v
	}
	for _, key := range []string{"templates_exts", "expect_airflow", "expect_pendulum"} {
		if v := d.take(key); v != nil {
			d.r.warnf(v, "%s is ignored: templates are rendered in op_args, op_kwargs and templates_dict, and the runner brings its own Airflow stand-in", key)
		}
	}
	if v := d.take("multiple_outputs"); v != nil {
		s.MultipleOutputs, _ = d.r.boolean("multiple_outputs", v)
	}
	if v := d.take("show_return_value_in_logs"); v != nil {
		s.ShowReturnValue, _ = d.r.boolean("show_return_value_in_logs", v)
	}
	if v := d.take("skip_on_exit_code"); v != nil && !v.isNull() {
		d.r.warnf(v, "skip_on_exit_code is ignored: a callable skips its task by raising AirflowSkipException")
	}
	if external := d.kind != nil && contains(d.kind.fields, "python"); external {
		if v := d.take("python"); v == nil {
			d.r.errf(d.own, "%s needs python: the absolute path of the interpreter to run the callable with", class)
		} else if s.Python, _ = d.r.str("python", v); !path.IsAbs(s.Python) {
			d.r.errf(v, "python: the absolute path of the interpreter to run the callable with, got %q", s.Python)
		}
	}
	if v := d.take("executor_config"); v != nil && !v.isNull() {
		d.podOverride(&s, v)
	}
	if taskFlow {
		for i, k := range d.own.keys {
			if d.used[k.str] || contains(baseTaskKeys, k.str) || k.str == "decorator" {
				continue
			}
			d.used[k.str] = true
			if s.OpKwargs == nil {
				s.OpKwargs = map[string]any{}
			}
			s.OpKwargs[k.str] = withRefs(toAny(d.own.vals[i]))
			s.at["op_kwargs"] = d.own.vals[i]
		}
	}
	return s
}

// podOverride reads executor_config: {pod_override: <V1Pod>}, Airflow's
// per-task pod settings under its KubernetesExecutor.
func (d *taskDecoder) podOverride(s *PythonSpec, v *val) {
	if v.kind != kindMap {
		d.r.errf(v, "executor_config: expected a mapping with pod_override, got %s", v.describe())
		return
	}
	for i, k := range v.keys {
		if k.str != "pod_override" {
			d.r.errf(k, "executor_config: only pod_override is understood (the pod the callable runs in), not %q", k.str)
			continue
		}
		var pod corev1.Pod
		if d.r.kube("executor_config.pod_override", v.vals[i], &pod) {
			s.PodOverride = &pod
		}
	}
}

// pythonCallable finds the callable: python_callable_name in
// python_callable_file, or a dotted python_callable, and checks that the
// DAG folder has it.
func (d *taskDecoder) pythonCallable(s *PythonSpec) {
	dir := d.dir
	s.SysPath = []string{dir}
	if dir != "" {
		s.SysPath = append(s.SysPath, "")
	}
	name, file, dotted := d.take("python_callable_name"), d.take("python_callable_file"), d.take("python_callable")
	switch {
	case dotted != nil && (name != nil || file != nil):
		d.r.errf(dotted, "python_callable and python_callable_name/python_callable_file both name a callable: keep one")
	case dotted != nil:
		ref, _ := d.r.str("python_callable", dotted)
		i := strings.LastIndex(ref, ".")
		if i <= 0 || i == len(ref)-1 || !pythonDottedRE.MatchString(ref) {
			d.r.errf(dotted, "python_callable %q: name the function as module.function (the module in the DAG folder)", ref)
			return
		}
		s.Module, s.Name = ref[:i], ref[i+1:]
		for _, sp := range s.SysPath {
			base := path.Join(sp, strings.ReplaceAll(s.Module, ".", "/"))
			for _, cand := range []string{base + ".py", base + "/__init__.py"} {
				if src, err := d.readRoot(cand); err == nil {
					s.File = cand
					d.checkDefined(dotted, cand, src, s.Name)
					return
				}
			}
		}
		d.r.warnf(dotted, "module %s is not in the DAG folder: it must be installed in the interpreter (or image) that runs the task", s.Module)
	case name == nil && file == nil:
		d.r.errf(d.own, "%s needs python_callable (module.function) or python_callable_name and python_callable_file", s.Operator)
	case name == nil || file == nil:
		at := name
		if at == nil {
			at = file
		}
		d.r.errf(at, "python_callable_name and python_callable_file go together: name the function and the file that defines it")
	default:
		s.Name, _ = d.r.str("python_callable_name", name)
		if !pythonIdentRE.MatchString(s.Name) {
			d.r.errf(name, "python_callable_name %q is not a Python identifier", s.Name)
			return
		}
		written, _ := d.r.str("python_callable_file", file)
		rel, ok := d.callableFile(file, written)
		if !ok {
			return
		}
		s.File = rel
		s.at["python_callable_file"] = file
		if src, err := d.readRoot(rel); err != nil {
			d.r.errf(file, "python_callable_file %q: %v", written, unwrapPathError(err))
		} else {
			d.checkDefined(name, rel, src, s.Name)
		}
	}
}

var (
	pythonIdentRE  = regexp.MustCompile(`^[A-Za-z_]\w*$`)
	pythonDottedRE = regexp.MustCompile(`^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$`)
)

// callableFile maps python_callable_file as written onto a path from the
// DAG folder's root: $CONFIG_ROOT_DIR is the DAG file's folder (as
// dag-factory's examples use it), a relative path is taken from the DAG
// file's folder, and an absolute path (an Airflow deployment's
// /opt/airflow/dags/...) is matched by its longest tail that the folder
// has. Nothing outside the folder is ever read.
func (d *taskDecoder) callableFile(at *val, written string) (string, bool) {
	p := written
	for _, v := range []string{"$CONFIG_ROOT_DIR", "${CONFIG_ROOT_DIR}"} {
		if strings.HasPrefix(p, v) {
			p = "./" + strings.TrimPrefix(strings.TrimPrefix(p, v), "/")
		}
	}
	if strings.Contains(p, "$") {
		d.r.errf(at, "python_callable_file %q: only $CONFIG_ROOT_DIR (the DAG file's folder) is expanded", written)
		return "", false
	}
	if !strings.HasSuffix(p, ".py") {
		d.r.errf(at, "python_callable_file %q: name a .py file", written)
		return "", false
	}
	if path.IsAbs(p) {
		parts := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
		for i := range parts {
			cand := strings.Join(parts[i:], "/")
			for _, c := range []string{path.Join(d.dir, cand), cand} {
				if _, err := d.readRoot(c); err == nil {
					d.r.warnf(at, "python_callable_file %q is an absolute path; updraft reads %s from the DAG folder (write $CONFIG_ROOT_DIR/...)", written, c)
					return c, true
				}
			}
		}
		d.r.errf(at, "python_callable_file %q is outside the DAG folder: write it relative to the DAG file ($CONFIG_ROOT_DIR/name.py)", written)
		return "", false
	}
	rel := path.Join(d.dir, p)
	if rel == ".." || strings.HasPrefix(rel, "../") {
		d.r.errf(at, "python_callable_file %q is outside the DAG folder", written)
		return "", false
	}
	return rel, true
}

// readRoot reads a file by its path from the DAG folder's root.
func (d *taskDecoder) readRoot(rel string) ([]byte, error) {
	if d.readFile == nil {
		return nil, fmt.Errorf("no DAG folder to read %s from", rel)
	}
	up := "" // from the DAG file's folder back to the root
	if d.dir != "" {
		up = strings.Repeat("../", strings.Count(d.dir, "/")+1)
	}
	return d.readFile(up + rel)
}

// checkDefined checks that src defines name at its top level: a def, an
// async def, a class, an assignment or an import of that name. A module
// that imports * is given the benefit of the doubt.
func (d *taskDecoder) checkDefined(at *val, file string, src []byte, name string) {
	text := string(src)
	q := regexp.QuoteMeta(name)
	defRE := regexp.MustCompile(`(?m)^(?:async\s+def|def|class)\s+` + q + `\b|^` + q + `\s*(?::[^=\n]*)?=|^(?:from\s+\S+\s+)?import\s+.*\b` + q + `\b|^from\s+\S+\s+import\s+\*`)
	if defRE.MatchString(text) {
		return
	}
	var defs []string
	for _, m := range regexp.MustCompile(`(?m)^(?:async\s+)?def\s+([A-Za-z_]\w*)`).FindAllStringSubmatch(text, -1) {
		defs = append(defs, m[1])
	}
	d.r.errf(at, "%s defines no top-level function %s%s", file, name, suggest(name, defs))
}

// PythonContext is the try's context as the Python runner gives it to
// the callable: Airflow's names, date-times as RFC 3339 text.
func (r *Renderer) PythonContext() map[string]any {
	out := map[string]any{}
	for _, k := range []string{"ds", "ds_nodash", "ts", "ts_nodash", "ts_nodash_with_tz", "next_ds", "next_ds_nodash",
		"prev_ds", "prev_ds_nodash", "yesterday_ds", "yesterday_ds_nodash", "tomorrow_ds", "tomorrow_ds_nodash",
		"run_id", "task_instance_key_str", "logical_date", "data_interval_start", "data_interval_end",
		"prev_data_interval_start_success", "prev_data_interval_end_success", "prev_start_date_success", "prev_end_date_success"} {
		switch v := r.ctx[k].(type) {
		case DateTime:
			out[k] = v.t.Format("2006-01-02T15:04:05.999999Z07:00")
		default:
			out[k] = v
		}
	}
	out["params"] = JSONNumbers(r.ctx["params"])
	conf := map[string]any{}
	for k, v := range r.rc.Conf {
		conf[k] = v
	}
	out["conf"] = conf
	out["run_type"] = r.rc.RunType
	out["external_trigger"] = r.rc.RunType == "manual"
	out["try_number"] = r.rc.TryNumber
	if ti, ok := r.ctx["ti"].(attrs); ok {
		out["dag_id"], out["task_id"], out["map_index"] = ti["dag_id"], ti["task_id"], ti["map_index"]
	}
	return out
}

// isPythonSpec reports whether a stored spec of the class (JSON data) is
// a PythonSpec: the Python operators, and a ShortCircuitOperator that
// names a callable.
func isPythonSpec(class string, data []byte) bool {
	if _, ok := pythonClasses[class]; ok {
		return true
	}
	if class != "ShortCircuitOperator" || len(data) == 0 {
		return false
	}
	var probe struct {
		Mode string `json:"mode"`
	}
	return json.Unmarshal(data, &probe) == nil && probe.Mode == PythonShortCircuit
}

// resolveDecorator maps dag-factory's decorator (airflow.decorators.task,
// airflow.sdk.task.branch, ...) onto the TaskFlow kind with its mode.
func resolveDecorator(r report, dec *val) *operatorKind {
	written, ok := r.str("decorator", dec)
	if !ok {
		return nil
	}
	name := strings.TrimSpace(written)
	for _, prefix := range []string{"airflow.decorators.", "airflow.sdk.", "airflow.providers.standard.decorators."} {
		name = strings.TrimPrefix(name, prefix)
	}
	mode, known := taskFlowDecorators[name]
	if !known {
		r.errf(dec, "decorator %s is not supported: updraft runs @task, @task.branch, @task.short_circuit, @task.sensor and "+
			"@task.external_python callables (a pod of its own: use a KubernetesPodOperator task)", written)
		return nil
	}
	fields := pythonFields
	if strings.Contains(name, "external") {
		fields = append(append([]string{}, pythonFields...), "python")
	}
	if mode == PythonSensorMode {
		fields = append(append([]string{}, pythonFields...), sensorFields...)
	}
	if mode == PythonShortCircuit {
		fields = append(append([]string{}, pythonFields...), "ignore_downstream_trigger_rules")
	}
	return &operatorKind{class: TaskFlowClass, fields: fields, zero: PythonSpec{},
		decode: func(d *taskDecoder) OperatorSpec { return decodePython(d, TaskFlowClass, mode, true) }}
}

// pythonKind is the operators-table entry of a Python operator class.
func pythonKind(class string, extra ...string) *operatorKind {
	mode := pythonClasses[class]
	if strings.Contains(class, "External") {
		extra = append(extra, "python")
	}
	return &operatorKind{class: class, fields: append(append([]string{}, pythonFields...), extra...), zero: PythonSpec{},
		decode: func(d *taskDecoder) OperatorSpec { return decodePython(d, class, mode, false) }}
}

// hasCallable reports whether a task names a Python callable.
func (d *taskDecoder) hasCallable() bool {
	for _, k := range []string{"python_callable", "python_callable_name", "python_callable_file"} {
		if d.own.get(k) != nil || d.defaults.get(k) != nil {
			return true
		}
	}
	return false
}
