package dags

import (
	"fmt"
	"strings"
)

// OperatorSpec is an operator's own configuration. Each operator updraft
// runs has one implementation; adding an operator means adding a spec type
// and an entry in the operators table.
type OperatorSpec interface {
	// Kind is the canonical operator class name, e.g. "BashOperator".
	Kind() string
	// Render returns a copy with every templated field rendered. It never
	// modifies the receiver.
	Render(r *Renderer) (OperatorSpec, error)
	// templates lists the templated fields with their source text, for
	// syntax checks at load time.
	templates() []templateField
}

type templateField struct {
	name string
	src  string
	at   *val
}

// operatorKind describes one operator: the names it is known by, its own
// fields (beyond BaseOperator's) and how to decode them.
type operatorKind struct {
	class   string   // canonical class name
	aliases []string // other class names (DummyOperator for EmptyOperator)
	fields  []string // operator-specific keys
	decode  func(d *taskDecoder) OperatorSpec
	zero    OperatorSpec // the spec type, for reading stored versions back
}

// operators is the operator set. Entries are plain data; see operatorKind.
var operators = []*operatorKind{
	{class: "EmptyOperator", aliases: []string{"DummyOperator"}, decode: decodeEmpty, zero: EmptySpec{}},
	{class: "BashOperator", fields: bashFields, decode: decodeBash, zero: BashSpec{}},
	{class: "KubernetesPodOperator", fields: podFields, decode: decodePod, zero: PodSpec{}},
	{class: "HttpOperator", aliases: []string{"SimpleHttpOperator"}, fields: httpFields, decode: decodeHTTP, zero: HttpSpec{}},
	{class: "MattermostOperator", fields: mattermostFields, decode: decodeMattermost, zero: MattermostSpec{}},
	{class: "SQLExecuteQueryOperator", aliases: []string{"SnowflakeOperator", "SnowflakeSqlApiOperator", "PostgresOperator"}, fields: sqlFields, decode: decodeSQL, zero: SQLSpec{}},
	{class: "ExternalTaskSensor", fields: externalTaskFields, decode: decodeExternalTask, zero: ExternalTaskSpec{}},
	{class: "HttpSensor", fields: httpSensorFields, decode: decodeHTTPSensor, zero: HttpSensorSpec{}},
	{class: "SqlSensor", fields: sqlSensorFields, decode: decodeSQLSensor, zero: SqlSensorSpec{}},
	{class: "TriggerDagRunOperator", fields: triggerFields, decode: decodeTriggerDagRun, zero: TriggerDagRunSpec{}},
	{class: "ShortCircuitOperator", fields: append(append([]string{}, shortCircuitFields...), pythonFields...), decode: decodeShortCircuit, zero: ShortCircuitSpec{}},
	pythonKind("PythonOperator"),
	pythonKind("ExternalPythonOperator"),
	pythonKind("BranchPythonOperator"),
	pythonKind("BranchExternalPythonOperator"),
	pythonKind("PythonSensor", sensorFields...),
	{class: "BranchOperator", fields: branchFields, decode: decodeBranch, zero: BranchSpec{}},
	{class: "LatestOnlyOperator", decode: decodeLatestOnly, zero: LatestOnlySpec{}},
	{class: "BranchDayOfWeekOperator", fields: dayOfWeekFields, decode: decodeDayOfWeek, zero: BranchDayOfWeekSpec{}},
	{class: "BranchDateTimeOperator", fields: dateTimeFields, decode: decodeDateTime, zero: BranchDateTimeSpec{}},
	{class: "BranchSQLOperator", fields: branchSQLFields, decode: decodeBranchSQL, zero: BranchSQLSpec{}},
}

// pythonOnly are Airflow operators that build a virtualenv for each run.
var pythonOnly = []string{"PythonVirtualenvOperator", "BranchPythonVirtualenvOperator"}

// notYet are Airflow operators updraft plans to support; until then a file
// naming them gets a clear error instead of a silent gap.
var notYet = map[string]string{
	"ExternalTaskMarker": "clearing across DAGs",
}

// resolveOperator maps an operator name as written (short class name or a
// dotted Airflow path) to its kind. On failure it returns a message that
// says why and what to do instead.
func resolveOperator(name string) (*operatorKind, string) {
	class := name
	module := ""
	if i := strings.LastIndex(name, "."); i >= 0 {
		module, class = name[:i], name[i+1:]
	}
	// A MattermostOperator is a team's own class in their plugins (Airflow
	// has none); its arguments are the webhook's fields, which updraft posts.
	if module != "" && module != "airflow" && !strings.HasPrefix(module, "airflow.") && class != "MattermostOperator" {
		return nil, fmt.Sprintf("operator %s is a custom Python class; updraft runs no Python in the scheduler: "+
			"package the code in an image and run it as a KubernetesPodOperator task", name)
	}
	if contains(pythonOnly, class) {
		return nil, fmt.Sprintf("operator %s builds a virtualenv for every run, which updraft does not do; use an ExternalPythonOperator "+
			"with an interpreter that has the requirements, or a Python task with an image that has them (executor_config.pod_override)", name)
	}
	if what, ok := notYet[class]; ok {
		return nil, fmt.Sprintf("operator %s is not supported yet (%s is planned); run it as a KubernetesPodOperator task meanwhile", name, what)
	}
	for _, k := range operators {
		if k.class == class || contains(k.aliases, class) {
			return k, ""
		}
	}
	var known []string
	for _, k := range operators {
		known = append(known, k.class)
		known = append(known, k.aliases...)
	}
	return nil, fmt.Sprintf("operator %s is not supported%s; supported: %s", name, suggest(class, known), strings.Join(known, ", "))
}

// EmptySpec is EmptyOperator (DummyOperator): a task that does nothing.
type EmptySpec struct{}

func (EmptySpec) Kind() string                             { return "EmptyOperator" }
func (s EmptySpec) Render(*Renderer) (OperatorSpec, error) { return s, nil }
func (EmptySpec) templates() []templateField               { return nil }

func decodeEmpty(*taskDecoder) OperatorSpec { return EmptySpec{} }

var bashFields = []string{"bash_command", "env", "append_env", "cwd", "output_encoding", "skip_on_exit_code", "skip_exit_code"}

// BashSpec is BashOperator: a shell command run with bash -c.
type BashSpec struct {
	Command        string            `json:"bash_command"`
	Env            map[string]string `json:"env,omitempty"`
	AppendEnv      bool              `json:"append_env,omitempty"`
	Cwd            string            `json:"cwd,omitempty"`
	SkipOnExitCode []int             `json:"skip_on_exit_code"`

	at map[string]*val
}

func (BashSpec) Kind() string       { return "BashOperator" }
func (BashSpec) pushesXCom()        {}
func (s BashSpec) skipCodes() []int { return s.SkipOnExitCode }

func (s BashSpec) templates() []templateField {
	out := []templateField{{"bash_command", s.Command, s.at["bash_command"]}, {"cwd", s.Cwd, s.at["cwd"]}}
	for _, k := range sortedKeys(s.Env) {
		out = append(out, templateField{"env." + k, s.Env[k], s.at["env"]})
	}
	return out
}

// Render renders bash_command, env values and cwd.
func (s BashSpec) Render(r *Renderer) (OperatorSpec, error) {
	var err error
	out := s
	if out.Command, err = r.field("bash_command", s.Command); err != nil {
		return nil, err
	}
	if out.Cwd, err = r.field("cwd", s.Cwd); err != nil {
		return nil, err
	}
	if out.Env, err = r.stringMap("env", s.Env); err != nil {
		return nil, err
	}
	return out, nil
}

func decodeBash(d *taskDecoder) OperatorSpec {
	s := BashSpec{SkipOnExitCode: []int{99}, at: map[string]*val{}}
	cmd := d.take("bash_command")
	if cmd == nil {
		d.r.errf(d.own, "BashOperator needs bash_command")
	} else if c, ok := d.r.str("bash_command", cmd); ok {
		s.Command = c
		s.at["bash_command"] = cmd
		if strings.TrimSpace(c) == "" {
			d.r.errf(cmd, "bash_command is empty")
		}
	}
	if v := d.take("env"); v != nil {
		s.Env, _ = d.r.strMap("env", v)
		s.at["env"] = v
	}
	if v := d.take("append_env"); v != nil {
		s.AppendEnv, _ = d.r.boolean("append_env", v)
	}
	if v := d.take("cwd"); v != nil {
		s.Cwd, _ = d.r.str("cwd", v)
		s.at["cwd"] = v
	}
	if v := d.take("output_encoding"); v != nil {
		if enc, _ := d.r.str("output_encoding", v); lower(strings.ReplaceAll(enc, "-", "")) != "utf8" {
			d.r.warnf(v, "output_encoding %q is ignored: the output is logged as it is and its last line pushed as UTF-8", enc)
		}
	}
	for _, key := range []string{"skip_exit_code", "skip_on_exit_code"} {
		if v := d.take(key); v != nil {
			s.SkipOnExitCode = d.exitCodes(key, v)
		}
	}
	return s
}
