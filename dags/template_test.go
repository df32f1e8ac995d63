package dags

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func templateDAG(t *testing.T) *DAG {
	t.Helper()
	src := `tmpl:
  start_date: 2024-01-01
  schedule: "0 3 * * *"
  params: {table: events, limit: 10}
  tasks:
    - task_id: print_task
      operator: BashOperator
      bash_command: "echo"
      params: {limit: 20}
    - task_id: pod
      operator: KubernetesPodOperator
      image: "etl:{{ var.value.tag }}"
      namespace: "{{ var.value.ns }}"
      cmds: ["/bin/bash", "-c"]
      arguments: ["load {{ ds }} ${SNOWFLAKE_USER}"]
      env_vars: {EXECUTION_DATE: "{{ next_execution_date }}", PLAIN: "$HOME"}
      labels: {day: "{{ ds_nodash }}"}
      secrets: [{deploy_type: env, deploy_target: PASSWORD, secret: creds, key: password}]
`
	res := Load(fstest.MapFS{"t.yaml": {Data: []byte(src)}}, Options{})
	if ps := res.Problems(); len(ps) > 0 {
		t.Fatal(ps)
	}
	return res.DAG("tmpl")
}

func scheduledContext(d *DAG) RunContext {
	logical := utc("2024-01-01T03:00:00Z")
	info, _ := ScheduledRunAt(d, logical)
	return RunContext{DAG: d, RunID: RunID(RunTypeScheduled, logical), RunType: RunTypeScheduled,
		LogicalDate: logical, DataInterval: info.Interval, TryNumber: 1,
		Conf: map[string]any{"table": "override"}}
}

func TestTemplateContext(t *testing.T) {
	d := templateDAG(t)
	r := NewRenderer(d.Task("print_task"), scheduledContext(d), map[string]string{"tbl": "EVENTS", "cfg": `{"a": {"b": 7}}`})
	for src, want := range map[string]string{
		"{{ ds }}":                             "2024-01-01",
		"{{ ds_nodash }}":                      "20240101",
		"{{ ts }}":                             "2024-01-01T03:00:00+00:00",
		"{{ ts_nodash }}":                      "20240101T030000",
		"{{ ts_nodash_with_tz }}":              "20240101T030000+0000",
		"{{ logical_date }}":                   "2024-01-01T03:00:00+00:00",
		"{{ execution_date }}":                 "2024-01-01T03:00:00+00:00",
		"{{ data_interval_start }}":            "2024-01-01T03:00:00+00:00",
		"{{ data_interval_end }}":              "2024-01-02T03:00:00+00:00",
		"{{ next_ds }}":                        "2024-01-02",
		"{{ next_execution_date }}":            "2024-01-02T03:00:00+00:00",
		"{{ prev_ds }}":                        "2023-12-31",
		"{{ yesterday_ds }} {{ tomorrow_ds }}": "2023-12-31 2024-01-02",
		"{{ run_id }}":                         "scheduled__2024-01-01T03:00:00+00:00",
		"{{ dag_run.conf.table }}":             "override",
		"{{ dag_run.conf['missing'] | default('none') }}":    "none",
		"{{ params.table }} {{ params.limit }}":              "override 20",
		"{{ var.value.tbl }}":                                "EVENTS",
		"{{ var.json.cfg.a.b }}":                             "7",
		"{{ var.value.get('nope', 'fallback') }}":            "fallback",
		"{{ macros.ds_add(ds, 7) }}":                         "2024-01-08",
		"{{ macros.ds_add('2015-01-01', 5) }}":               "2015-01-06",
		"{{ macros.ds_format(ds, '%Y-%m-%d', '%d/%m/%Y') }}": "01/01/2024",
		"{{ logical_date | ds_nodash }}":                     "20240101",
		"{{ execution_date.strftime('%Y/%m/%d') }}":          "2024/01/01",
		"{{ logical_date.year }}":                            "2024",
		"{{ task }}":                                         "<Task(BashOperator): print_task>",
		"{{ task.task_id }} {{ dag.dag_id }}":                "print_task tmpl",
		"{{ ti.try_number }}":                                "1",
		"{{ task_instance_key_str }}":                        "tmpl__print_task__20240101",
		"{{ params.table | upper }}":                         "OVERRIDE",
		"plain ${HOME:+kept} $VAR":                           "plain ${HOME:+kept} $VAR",
		"{% if ds > '2023' %}new{% endif %}":                 "new",
	} {
		got, err := r.RenderString(src)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
}

// Manual runs: next_* and prev_* equal the logical date (Airflow's rule).
func TestManualRunContext(t *testing.T) {
	d := templateDAG(t)
	logical := utc("2024-05-05T10:30:00Z")
	rc := RunContext{DAG: d, RunType: RunTypeManual, LogicalDate: logical, DataInterval: d.Schedule.InferManual(logical)}
	r := NewRenderer(d.Task("print_task"), rc, nil)
	got, err := r.RenderString("{{ next_ds }} {{ prev_ds }} {{ data_interval_start }}")
	eq(t, "manual", got, "2024-05-05 2024-05-05 2024-05-04T03:00:00+00:00")
	if err != nil {
		t.Fatal(err)
	}
}

func TestTemplateErrors(t *testing.T) {
	d := templateDAG(t)
	r := NewRenderer(d.Task("print_task"), scheduledContext(d), map[string]string{"bad": "{"})
	for src, want := range map[string]string{
		"{{ var.value.missing }}":                 "variable missing does not exist",
		"{{ var.json.bad }}":                      "not valid JSON",
		"{{ undefined_name }}":                    "undefined_name",
		"{{ macros.ds_add('x', 1) }}":             "not a YYYY-MM-DD date",
		"{{ 0 % 0 }}":                             "template failed", // the engine panics; found by FuzzTemplate
		"{% for i in range(99999) %}{% endfor %}": "over the limit of 10000",
		"{{ 'x' * 2000000 }}":                     "larger than 1048576 bytes",
	} {
		if _, err := r.RenderString(src); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to mention %q", src, err, want)
		}
	}
	for src, want := range map[string]string{
		"{{ ds ":               "expected",
		"{% if %}":             "if",
		"{{ ds | nosuch }}":    `unknown filter "nosuch"`,
		"a || b {{ ds }}":      "",
		"{{ ds | ds_nodash }}": "",
	} {
		err := CheckTemplate(src)
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("CheckTemplate(%q) = %v, want %q", src, err, want)
		}
	}
}

// Rendering a pod renders exactly the templated fields, leaves shell
// variables and secret references alone, and never changes the task.
func TestRenderPod(t *testing.T) {
	d := templateDAG(t)
	task := d.Task("pod")
	spec, err := Render(task, scheduledContext(d), map[string]string{"tag": "v1.2", "ns": "etl"})
	if err != nil {
		t.Fatal(err)
	}
	pod := spec.(PodSpec)
	eq(t, "image", pod.Image, "etl:v1.2")
	eq(t, "namespace", pod.Namespace, "etl")
	eq(t, "arguments", pod.Arguments[0], "load 2024-01-01 ${SNOWFLAKE_USER}")
	eq(t, "env", pod.EnvVars[0].Value, "2024-01-02T03:00:00+00:00")
	eq(t, "plain env", pod.EnvVars[1].Value, "$HOME")
	eq(t, "label", pod.Labels["day"], "20240101")
	eq(t, "secret stays a reference", pod.Secrets[0].Secret+"/"+pod.Secrets[0].Key, "creds/password")
	orig := task.Spec.(PodSpec)
	eq(t, "task unchanged", orig.Image+" "+orig.EnvVars[0].Value+" "+orig.Labels["day"], "etl:{{ var.value.tag }} {{ next_execution_date }} {{ ds_nodash }}")
	if _, err := Render(task, scheduledContext(d), nil); err == nil || !strings.Contains(err.Error(), `task "pod"`) {
		t.Errorf("missing variable: %v", err)
	}
}

// A runaway template is abandoned after renderTimeout instead of holding up
// the scheduler; range() still works within its limit.
func TestRenderLimits(t *testing.T) {
	d := templateDAG(t)
	r := NewRenderer(d.Task("print_task"), scheduledContext(d), nil)
	got, err := r.RenderString("{% for i in range(10, 0, -3) %}{{ i }},{% endfor %}")
	eq(t, "range", got, "10,7,4,1,")
	if err != nil {
		t.Fatal(err)
	}
	old := renderTimeout
	renderTimeout = 50 * time.Millisecond
	defer func() { renderTimeout = old }()
	_, err = r.RenderString("{% for i in range(3000) %}{% for j in range(3000) %}{% endfor %}{% endfor %}")
	if err == nil || !strings.Contains(err.Error(), "took longer than 50ms") {
		t.Fatalf("runaway template: %v", err)
	}
}

func TestStrftime(t *testing.T) {
	tm := time.Date(2024, 3, 5, 14, 7, 9, 123456000, time.UTC)
	eq(t, "strftime", Strftime(tm, "%Y-%m-%d %H:%M:%S.%f %a %b %j %I%p %% %y"), "2024-03-05 14:07:09.123456 Tue Mar 065 02PM % 24")
}
