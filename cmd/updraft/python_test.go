package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The monitoring DAG with its resolvers as Python callables runs with the
// machine's python3: the callables pull the HTTP checks' XComs through
// the Execution API, import a helper module from the DAG folder, and
// skip their post when nothing failed.
func TestPythonMonitoringResolvers(t *testing.T) {
	ago := func(d time.Duration) string { return time.Now().UTC().Add(-d).Format(time.RFC3339) }
	inHour, earlier := ago(30*time.Minute), ago(5*time.Hour)
	svc, _ := monitoringServices(t,
		`{"data": [{"source_id": 101, "tap_exit_status": 1, "tap_description": "tap-postgres crashed", "completion_time": "`+inHour+`"},
		           {"source_id": 102, "tap_exit_status": 1, "completion_time": "`+earlier+`"}]}`,
		`{"data": [{"source_name": "hubspot", "last_batch_loaded_at": "`+inHour+`", "error_state": {"notification_data": {"warehouse_message": "permission denied"}}}]}`,
		`{"data": [{"id": 8, "slug": "leads", "status": "success", "lastRunAt": "`+inHour+`"}]}`)
	mm, env := monitoringEnv(t, svc.URL)
	args := append([]string{"dags", "test", "--dags", "../../dags/examples"}, monitoringVars()...)
	code, out, errOut := run(t, env, append(args, "python_monitoring", "2024-03-01")...)
	if code != 0 || !regexp.MustCompile(`resolve_stitch\s+success`).MatchString(out) ||
		!regexp.MustCompile(`resolve_hightouch\s+skipped`).MatchString(out) || !regexp.MustCompile(`notify_hightouch\s+skipped`).MatchString(out) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	posts := mm.Posts()
	if len(posts) != 1 || !strings.HasPrefix(posts[0].Text, "**STITCH**: :red_circle:\n") ||
		!strings.Contains(posts[0].Text, "- extraction of `101` failed at "+inHour+": tap-postgres crashed") ||
		!strings.Contains(posts[0].Text, "- load of `hubspot` failed at "+inHour+": permission denied") || strings.Contains(posts[0].Text, "102") {
		t.Fatalf("posts: %+v", posts)
	}
}

// Every kind of Python task, run for real: a TaskFlow task with
// multiple_outputs and a reference to one of its keys, templated
// op_kwargs, Variables and connections read through the shim, a short
// circuit that skips its chain, a branch by callable, a sensor that
// succeeds on its second poke, AirflowSkipException and
// AirflowFailException (no retry), a raised error with its traceback in
// the log, and a timeout.
func TestPythonCallablesRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("lib/helpers.py", `
import json, os, time
from airflow.exceptions import AirflowSkipException, AirflowFailException
from airflow.models import Variable
from airflow.hooks.base import BaseHook
from airflow.operators.python import get_current_context

def collect():
    return {"key1": 41, "key2": "b"}

def add_one(value):
    return value + 1

def describe(day, ti, params, **kwargs):
    conn = BaseHook.get_connection("warehouse")
    return {"day": day, "ds": kwargs["ds"], "table": Variable.get("table"), "cfg": Variable.get("cfg", deserialize_json=True),
            "host": conn.host, "login": conn.login, "pulled": ti.xcom_pull(task_ids="add"), "param": params["p"],
            "run": get_current_context()["run_id"], "token_hidden": "UPDRAFT_TRY_TOKEN" not in os.environ}

def no_tables():
    return json.dumps({"new_tables": []})

def pick(ds):
    return "left" if ds.endswith("01") else "right"

def ready(ti):
    marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "poked")
    if os.path.exists(marker):
        return True
    open(marker, "w").close()
    return False

def skip_me():
    raise AirflowSkipException("not today")

def fail_for_good():
    raise AirflowFailException("bad input, do not retry")

def broken():
    return {"a": 1}["missing"]

def sleepy():
    time.sleep(60)
`)
	write("dags/python.yaml", `
py:
  schedule: null
  start_date: 2024-01-01
  params: {p: 7}
  tasks:
    - task_id: collect
      decorator: airflow.decorators.task
      multiple_outputs: true
      python_callable: lib.helpers.collect
    - task_id: add
      decorator: airflow.sdk.task
      python_callable: lib.helpers.add_one
      value: "+collect['key1']"
    - task_id: describe
      operator: airflow.operators.python.PythonOperator
      python_callable: lib.helpers.describe
      op_kwargs: {day: "{{ ds_nodash }}"}
      dependencies: [add]
    - task_id: check
      operator: PythonOperator
      python_callable: lib.helpers.no_tables
    - task_id: short
      operator: ShortCircuitOperator
      python_callable_name: has_new_tables
      python_callable_file: $CONFIG_ROOT_DIR/../lib/tables.py
      op_args: ["{{ ti.xcom_pull(task_ids='check') }}"]
      dependencies: [check]
    - task_id: after_short
      operator: EmptyOperator
      dependencies: [short]
    - task_id: choose
      operator: BranchPythonOperator
      python_callable: lib.helpers.pick
    - task_id: left
      operator: EmptyOperator
      dependencies: [choose]
    - task_id: right
      operator: EmptyOperator
      dependencies: [choose]
    - task_id: wait
      operator: PythonSensor
      python_callable: lib.helpers.ready
      poke_interval: 1
      timeout: 60
    - task_id: skip
      operator: PythonOperator
      python_callable: lib.helpers.skip_me
    - task_id: fail
      operator: PythonOperator
      python_callable: lib.helpers.fail_for_good
      retries: 2
      retry_delay: 1
    - task_id: broken
      operator: PythonOperator
      python_callable: lib.helpers.broken
    - task_id: slow
      operator: PythonOperator
      python_callable: lib.helpers.sleepy
      execution_timeout: 2
`)
	write("lib/__init__.py", "")
	write("lib/tables.py", "import json\n\ndef has_new_tables(check):\n    return bool(json.loads(check)[\"new_tables\"])\n")
	code, out, errOut := run(t, map[string]string{"UPDRAFT_CONN_WAREHOUSE": "postgres://loader:pw-very-secret@db.example.com:5432/raw"},
		"dags", "validate", dir)
	if code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, map[string]string{"UPDRAFT_CONN_WAREHOUSE": "postgres://loader:pw-very-secret@db.example.com:5432/raw"},
		"dags", "test", "--dags", dir, "--keep", "--var", "table=events", "--var", `cfg={"n": 2}`, "py", "2024-03-01")
	for task, state := range map[string]string{"collect": "success", "add": "success", "describe": "success", "check": "success",
		"short": "success", "after_short": "skipped", "choose": "success", "left": "success", "right": "skipped", "wait": "success",
		"skip": "skipped", "fail": "failed", "broken": "failed", "slow": "failed"} {
		if !regexp.MustCompile(`(?m)^` + task + `\s+` + state + `\s`).MatchString(out) {
			t.Errorf("%s is not %s:\n%s", task, state, out)
		}
	}
	if !regexp.MustCompile(`(?m)^fail\s+failed\s+1\s`).MatchString(out) {
		t.Errorf("AirflowFailException was retried:\n%s", out)
	}
	if code != 1 {
		t.Errorf("exit %d", code)
	}
	if m := regexp.MustCompile(`(/\S+/updraft-dags-test-[^/\s]+)/`).FindStringSubmatch(out); m != nil {
		t.Cleanup(func() { os.RemoveAll(m[1]) }) // --keep kept it for the logs
	}
	logs := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^(\w+)\s+\w+\s+\d+\s+(\S+\.log)$`).FindAllStringSubmatch(out, -1) {
		b, _ := os.ReadFile(m[2])
		logs[m[1]] = string(b)
	}
	if !strings.Contains(logs["broken"], "KeyError") || !strings.Contains(logs["broken"], "Traceback") {
		t.Errorf("broken's log has no traceback:\n%s", logs["broken"])
	}
	if !strings.Contains(logs["slow"], "execution_timeout") {
		t.Errorf("slow's log:\n%s", logs["slow"])
	}
	if !strings.Contains(logs["describe"], `'day': '20240301'`) || !strings.Contains(logs["describe"], `'pulled': 42`) ||
		!strings.Contains(logs["describe"], `'table': 'events'`) || !strings.Contains(logs["describe"], `'cfg': {'n': 2}`) ||
		!strings.Contains(logs["describe"], `'host': 'db.example.com'`) || !strings.Contains(logs["describe"], `'param': 7`) ||
		!strings.Contains(logs["describe"], `'token_hidden': True`) || strings.Contains(logs["describe"], "pw-very-secret") {
		t.Errorf("describe's log:\n%s", logs["describe"])
	}
	if !slices.Contains([]int{0, 1}, code) {
		t.Errorf("exit %d\n%s", code, errOut)
	}
}

// dags validate compiles the callables' files with python3 and points at
// a syntax error's line and column; a callable the file does not define
// is reported at the task's line.
func TestValidateChecksPythonFiles(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "flow.yaml"), []byte(`
flow:
  schedule: null
  start_date: 2024-01-01
  tasks:
    - task_id: a
      operator: PythonOperator
      python_callable_name: run
      python_callable_file: $CONFIG_ROOT_DIR/jobs.py
    - task_id: b
      operator: PythonOperator
      python_callable: jobs.walk
`), 0o644)
	os.WriteFile(filepath.Join(dir, "jobs.py"), []byte("def run():\n    return [1,\n\ndef other():\n    pass\n"), 0o644)
	code, out, _ := run(t, nil, "dags", "validate", dir)
	if code != 1 || !strings.Contains(out, "flow.yaml:12:24:") || !strings.Contains(out, "jobs.py defines no top-level function walk") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	os.WriteFile(filepath.Join(dir, "flow.yaml"), []byte("flow:\n  schedule: null\n  start_date: 2024-01-01\n  tasks:\n"+
		"    - {task_id: a, operator: PythonOperator, python_callable: jobs.run}\n"), 0o644)
	code, out, _ = run(t, nil, "dags", "validate", dir)
	if code != 1 || !regexp.MustCompile(`jobs\.py:2:\d+: Python: '\[' was never closed`).MatchString(out) {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// A Python task through the real server: it pulls its upstream's XCom
// through the server's Execution API, the server is killed while it runs,
// and the next server adopts it and records its result.
func TestServerRunsPythonTaskAcrossKill(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	writeFile(t, filepath.Join(dir, "dags", "py.yaml"), `
pyserver:
  start_date: 2024-01-01
  schedule: "@once"
  is_paused_upon_creation: false
  tasks:
    - {task_id: up, operator: BashOperator, bash_command: "echo 41"}
    - task_id: py
      operator: PythonOperator
      python_callable: helpers.wait_then_add
      dependencies: [up]
`)
	writeFile(t, filepath.Join(dir, "dags", "helpers.py"), `
import os, time

here = os.path.dirname(os.path.abspath(__file__))

def wait_then_add(ti):
    n = int(ti.xcom_pull(task_ids="up"))
    open(os.path.join(here, "started"), "w").close()
    for _ in range(600):
        if os.path.exists(os.path.join(here, "go")):
            return n + 1
        time.sleep(0.1)
    raise TimeoutError("never told to go")
`)
	srv := startServer(t, bin, dir)
	waitFor(t, "the callable to start", 60*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "dags", "started"))
		return err == nil
	}, srv.out)
	srv.cmd.Process.Kill()
	srv.cmd.Wait()
	again := startServer(t, bin, dir)
	writeFile(t, filepath.Join(dir, "dags", "go"), "")
	waitFor(t, "the adopted Python try to succeed", 60*time.Second, func() bool {
		return query(t, dir, `SELECT state FROM task_instances WHERE task_id = 'py'`) == "success"
	}, srv.out, again.out)
	if v := query(t, dir, `SELECT value FROM xcom WHERE task_id = 'py' AND xcom_key = 'return_value'`); v != "42" {
		t.Fatalf("py's XCom = %q", v)
	}
	if n := query(t, dir, `SELECT COUNT(*) FROM task_tries WHERE task_id = 'py'`); n != "1" {
		t.Fatalf("py ran %s times", n)
	}
}

// event_table_monitoring's short circuit and formatter, the example's own
// callables (dags/examples/callables) as dag-factory Python tasks: new
// tables are listed one per line; no new table skips the chain.
func TestPythonEventTableFormatter(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "callables"), 0o755)
	for _, name := range []string{"__init__.py", "monitoring.py", "timeutil.py"} {
		b, err := os.ReadFile(filepath.Join("../../dags/examples/callables", name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "callables", name), string(b))
	}
	writeFile(t, filepath.Join(dir, "events.yaml"), `
events:
  schedule: null
  start_date: 2024-01-01
  tasks:
    - {task_id: check, operator: BashOperator, bash_command: "echo '{{ params.answer }}'"}
    - task_id: short
      operator: airflow.operators.python.ShortCircuitOperator
      python_callable: callables.monitoring.has_new_tables
      op_args: ["{{ ti.xcom_pull(task_ids='check') }}"]
      dependencies: [check]
    - task_id: apply_format
      operator: airflow.operators.python.PythonOperator
      python_callable: callables.monitoring.apply_format
      op_args: ["{{ ti.xcom_pull(task_ids='check') }}"]
      dependencies: [short]
    - {task_id: notify, operator: BashOperator, bash_command: "echo \"{{ ti.xcom_pull(task_ids='apply_format') }}\"", dependencies: [apply_format]}
`)
	code, out, errOut := run(t, nil, "dags", "test", "--dags", dir, "--keep", "--conf", `{"answer": "{\"new_tables\": [\"signups\", \"trials\"]}"}`, "events", "2024-03-01")
	if m := regexp.MustCompile(`(/\S+/updraft-dags-test-[^/\s]+)/`).FindStringSubmatch(out); m != nil {
		t.Cleanup(func() { os.RemoveAll(m[1]) })
	}
	if code != 0 || !regexp.MustCompile(`(?m)^notify\s+success`).MatchString(out) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	notifyLog := regexp.MustCompile(`(?m)^notify\s+success\s+1\s+(\S+)$`).FindStringSubmatch(out)
	b, _ := os.ReadFile(notifyLog[1])
	if !strings.Contains(string(b), " - signups\n - trials\n") {
		t.Errorf("notify's log:\n%s", b)
	}
	code, out, errOut = run(t, nil, "dags", "test", "--dags", dir, "--conf", `{"answer": "{\"new_tables\": []}"}`, "events", "2024-03-02")
	if code != 0 || !regexp.MustCompile(`(?m)^apply_format\s+skipped`).MatchString(out) || !regexp.MustCompile(`(?m)^notify\s+skipped`).MatchString(out) {
		t.Fatalf("no new tables: exit %d\n%s%s", code, out, errOut)
	}
}
