package python

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests drive runtime/updraft_runner.py and the airflow shim with the
// machine's python3, against fakeAPI.

const (
	rtToken = "updraft-try.test-token-0123456789"
	rtDag   = "d1"
	rtRun   = "manual__2024-01-02T03:00:00+00:00"
)

// fakeAPI stands in for the real server's Execution API (the other
// engineer's end-to-end tests cover the real one): in-memory Variables,
// connections and XComs, and the results POSTed to it.
type fakeAPI struct {
	srv   *httptest.Server
	vars  map[string]string
	conns map[string]map[string]any
	xcoms map[xcomID]any // map index -1: unmapped

	mu      sync.Mutex
	results [][]byte
}

type xcomID struct {
	dag, run, task, key string
	mapIndex            int
}

func newFakeAPI(t *testing.T) *fakeAPI {
	a := &fakeAPI{
		vars: map[string]string{"greeting": "hello", "cfg": `{"n": 7}`, "a/b c": "slashed"},
		conns: map[string]map[string]any{"db": {
			"conn_id": "db", "conn_type": "postgres", "host": "db.example", "schema": "app", "login": "u",
			"password": "p@ss", "port": 5432, "extra": `{"sslmode": "require"}`,
		}},
		xcoms: map[xcomID]any{
			{rtDag, rtRun, "up", "return_value", -1}:    map[string]any{"rows": []any{map[string]any{"name": "a"}, map[string]any{"name": "b"}}},
			{rtDag, rtRun, "up", "other", -1}:           "o",
			{rtDag, rtRun, "up2", "return_value", -1}:   2,
			{rtDag, rtRun, "mapped", "return_value", 0}: "m0",
			{rtDag, rtRun, "mapped", "return_value", 1}: "m1",
			{rtDag, rtRun, "mapped", "return_value", 2}: "m2",
			{"d2", rtRun, "up", "return_value", -1}:     "from d2",
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /execution/variables/{key}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := a.vars[r.PathValue("key")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, map[string]any{"key": r.PathValue("key"), "value": v})
	})
	mux.HandleFunc("GET /execution/connections/{id}", func(w http.ResponseWriter, r *http.Request) {
		c, ok := a.conns[r.PathValue("id")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, c)
	})
	mux.HandleFunc("GET /execution/xcoms/{dag}/{run}/{task}/{key}", func(w http.ResponseWriter, r *http.Request) {
		id := xcomID{r.PathValue("dag"), r.PathValue("run"), r.PathValue("task"), r.PathValue("key"), -1}
		var v any
		found := false
		if s := r.URL.Query().Get("map_index"); s != "" {
			id.mapIndex, _ = strconv.Atoi(s)
			v, found = a.xcoms[id]
		} else if v, found = a.xcoms[id]; !found {
			// "any" map index of a mapped task: all its values in order.
			var all []any
			for id.mapIndex = 0; ; id.mapIndex++ {
				x, ok := a.xcoms[id]
				if !ok {
					break
				}
				all = append(all, x)
			}
			v, found = all, len(all) > 0
		}
		if !found {
			http.NotFound(w, r)
			return
		}
		writeJSON(w, map[string]any{"key": id.key, "value": v})
	})
	mux.HandleFunc("POST /execution/result", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" || !json.Valid(b) {
			http.Error(w, "want a JSON body", http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.results = append(a.results, b)
		a.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+rtToken {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": 401, "title": "Unauthorized", "detail": "not a valid try credential"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// rtDagFiles is the DAG folder the callables come from.
var rtDagFiles = map[string]string{
	"util.py": `
def shout(s):
    return s.upper() + "!"
`,
	"pkg/__init__.py": ``,
	"pkg/helpers.py": `
import util

def loud():
    return util.shout("hi")
`,
	"airflow2/local_helper.py": `
def twice(n):
    return 2 * n
`,
	"airflow2/expand_tasks.py": `
from __future__ import annotations

import dataclasses
import pickle

from local_helper import twice


@dataclasses.dataclass
class Point:
    x: int


def expand(n):
    p = pickle.loads(pickle.dumps(Point(n)))
    return {"twice": twice(n), "point": dataclasses.asdict(p), "name": __name__}
`,
	"sample.py": `
import os
import subprocess
import sys

import airflow
from airflow.exceptions import AirflowNotFoundException, AirflowSkipException
from airflow.hooks.base import BaseHook
from airflow.models import Variable
from airflow.operators.python import get_current_context
from airflow.sdk import Connection, PokeReturnValue, task
from airflow.sdk import Variable as SdkVariable
from airflow.sdk import get_current_context as sdk_context
from airflow.sdk.exceptions import AirflowFailException


def _raises(fn, cls):
    try:
        fn()
    except cls as e:
        return str(e)
    return "no error"


def plain(a, b, ds, ti, params, c=3):
    return {"a": a, "b": b, "c": c, "ds": ds, "task": ti.task_id, "try": ti.try_number,
            "map_index": ti.map_index, "p": params["p"]}


def with_kwargs(x, **kwargs):
    ld = kwargs["logical_date"]
    m = kwargs["macros"]
    return {"x": x, "y": kwargs["y"], "ld": ld.isoformat(), "utc": ld.utcoffset().total_seconds() == 0,
            "same": kwargs["execution_date"] == ld, "end": kwargs["data_interval_end"],
            "prev": kwargs["prev_data_interval_start_success"], "run": kwargs["dag_run"].run_id,
            "start": kwargs["dag_run"].start_date.isoformat(), "conf": kwargs["conf"],
            "td": kwargs["templates_dict"], "tomorrow": m.ds_add(kwargs["ds"], 1),
            "fmt": m.ds_format(kwargs["ds"], "%Y-%m-%d", "%d/%m/%Y"),
            "same_ti": kwargs["ti"] is kwargs["task_instance"], "dag": kwargs["dag"].dag_id,
            "tid": kwargs["task"].task_id, "ext": kwargs["dag_run"].external_trigger,
            "inlets": kwargs["inlets"], "ds_nodash": kwargs["ds_nodash"]}


def split():
    return {"left": 1, "right": (2, 3)}


def not_a_dict():
    return [1]


def pull(ti, var, conn):
    c = BaseHook.get_connection("db")
    return {
        "up": ti.xcom_pull(task_ids="up"),
        "key": ti.xcom_pull(task_ids="up", key="other"),
        "many": ti.xcom_pull(task_ids=["up", "nope", "up2"]),
        "missing": ti.xcom_pull(task_ids="nope", default="dflt"),
        "mapped_all": ti.xcom_pull(task_ids="mapped"),
        "mapped_one": ti.xcom_pull(task_ids="mapped", map_indexes=1),
        "mapped_some": ti.xcom_pull(task_ids="mapped", map_indexes=[2, 0]),
        "other_dag": ti.xcom_pull(task_ids="up", dag_id="d2", include_prior_dates=True),
        "no_task_ids": _raises(lambda: ti.xcom_pull(), ValueError),
        "var": Variable.get("greeting"),
        "var_json": Variable.get("cfg", deserialize_json=True),
        "var_default": Variable.get("absent", default_var="fallback"),
        "var_missing": _raises(lambda: Variable.get("absent"), KeyError),
        "var_set": _raises(lambda: Variable.set("k", "v"), NotImplementedError),
        "sdk_var": SdkVariable.get("greeting"),
        "sdk_default": SdkVariable.get("absent", default=None),
        "slash": Variable.get("a/b c"),
        "ctx_var": var.value.greeting,
        "ctx_json": var.json.cfg["n"],
        "ctx_get": var.value.get("absent", "d"),
        "conn": {"type": c.conn_type, "host": c.host, "port": c.port, "login": c.login,
                 "password": c.password, "schema": c.schema, "extra": c.extra_dejson, "uri": c.get_uri()},
        "sdk_conn": Connection.get("db").host,
        "ctx_conn": conn.db.schema,
        "conn_missing": _raises(lambda: BaseHook.get_connection("nope"), AirflowNotFoundException),
    }


def pusher(ti):
    ti.xcom_push("extra", {"k": [1, 2]})
    ti.xcom_push(key="return_value", value="overridden")
    return {"err": _raises(lambda: ti.xcom_push("bad", object()), TypeError),
            "own": ti.xcom_pull(task_ids=ti.task_id, key="extra")}


def ctx_fn():
    c = get_current_context()
    return {"task": c["ti"].task_id, "ds": c["ds"], "td": c["templates_dict"], "k": c.get("k"),
            "same": sdk_context() is c}


def consume(v, w, whole):
    return {"v": v, "w": w, "whole_rows": len(whole["rows"])}


def choose(v):
    return v


def choose_set():
    return {"b", "a"}


_pokes = 0


def third_time():
    global _pokes
    _pokes += 1
    return PokeReturnValue(_pokes >= 3, {"pokes": _pokes})


def third_time_plain():
    global _pokes
    _pokes += 1
    return _pokes >= 3


def never():
    return False


def skip():
    raise AirflowSkipException("not today")


def fail():
    raise AirflowFailException("hard stop")


def boom():
    raise ValueError("kaput")


def unserialisable():
    return {"s": {1, 2}}


def nan():
    return float("nan")


def exits(code):
    sys.exit(code)


def env_check():
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ.get('UPDRAFT_TRY_TOKEN', 'absent'))"],
                           stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    here = os.path.dirname(os.path.abspath(airflow.__file__))
    return {"in_env": "UPDRAFT_TRY_TOKEN" in os.environ, "child": child, "version": airflow.__version__,
            "shim_last": os.path.dirname(here) == sys.path[-1],
            "runner_importable": any(os.path.isfile(os.path.join(p or ".", "updraft_runner.py")) for p in sys.path)}


def read_var():
    return Variable.get("greeting")


@task
def tf_double(x):
    return x * 2


@task(multiple_outputs=True)
def tf_split(n):
    return {"n": n}


@task.branch
def tf_branch():
    return "left"
`,
}

func rtContext() map[string]any {
	return map[string]any{
		"dag_id": rtDag, "task_id": "t1", "run_id": rtRun, "try_number": 1, "map_index": -1,
		"ds": "2024-01-02", "ds_nodash": "20240102", "ts": "2024-01-02T03:00:00+00:00",
		"ts_nodash": "20240102T030000", "ts_nodash_with_tz": "20240102T030000+0000",
		"logical_date": "2024-01-02T03:00:00Z", "data_interval_start": "2024-01-01T03:00:00Z",
		"data_interval_end": "2024-01-02T03:00:00.123Z", "prev_data_interval_start_success": nil,
		"prev_data_interval_end_success": nil, "next_ds": "2024-01-03", "prev_ds": "2024-01-01",
		"yesterday_ds": "2024-01-01", "tomorrow_ds": "2024-01-03", "run_type": "manual",
		"conf": map[string]any{"c": 1}, "params": map[string]any{"p": "pv"},
		"dag_run_start_date": "2024-01-02T03:00:01+00:00", "external_trigger": true,
	}
}

func xref(task string, mapIndex any, path ...any) map[string]any {
	return map[string]any{"__updraft_xcom__": map[string]any{"task_id": task, "key": "return_value", "map_index": mapIndex, "path": path}}
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.TrimPrefix(body, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// rtRunner returns python3 and the runner's absolute path; no python3 is a
// failure, not a skip.
func rtRunner(t *testing.T) (string, string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is needed to test the Python runtime: %v", err)
	}
	runner, err := filepath.Abs(filepath.Join("runtime", "updraft_runner.py"))
	if err != nil {
		t.Fatal(err)
	}
	return py, runner
}

type rtOpts struct {
	token      string // "" is the right one
	post       bool   // input in UPDRAFT_TRY_INPUT, result POSTed (a pod)
	resultFile string // "" is one in a temporary folder
}

type rtOutcome struct {
	result         map[string]any // nil: no result file
	stdout, stderr string
	code           int
}

func (a *fakeAPI) run(t *testing.T, dags string, in map[string]any, o rtOpts) rtOutcome {
	t.Helper()
	py, runner := rtRunner(t)
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	tok := rtToken
	if o.token != "" {
		tok = o.token
	}
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "UPDRAFT_") && !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	env = append(env, "UPDRAFT_DAGS_DIR="+dags, "UPDRAFT_API_URL="+a.srv.URL, "UPDRAFT_TRY_TOKEN="+tok)
	resultPath := filepath.Join(dir, "result.json")
	if o.resultFile != "" {
		resultPath = o.resultFile
	}
	if o.post {
		env = append(env, "UPDRAFT_TRY_INPUT="+string(body))
	} else {
		inputPath := filepath.Join(dir, "input.json")
		if err := os.WriteFile(inputPath, body, 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "UPDRAFT_TRY_INPUT_FILE="+inputPath, "UPDRAFT_RESULT_FILE="+resultPath)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "-u", runner)
	cmd.Env, cmd.Dir = env, dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	out := rtOutcome{}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running the runner: %v", err)
		}
		out.code = ee.ExitCode()
	}
	out.stdout, out.stderr = stdout.String(), stderr.String()
	if strings.Contains(out.stdout+out.stderr, tok) {
		t.Errorf("the runner printed its token:\n%s\n%s", out.stdout, out.stderr)
	}
	if b, err := os.ReadFile(resultPath); err == nil {
		if err := json.Unmarshal(b, &out.result); err != nil {
			t.Fatalf("result %s: %v", b, err)
		}
	}
	if _, err := os.Stat(resultPath + ".tmp"); err == nil {
		t.Errorf("the runner left %s.tmp behind", resultPath)
	}
	return out
}

// sameJSON compares got with the JSON text want.
func sameJSON(t *testing.T, got any, want string) {
	t.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	b, _ := json.Marshal(got)
	_ = json.Unmarshal(b, &g)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("result\n got %s\nwant %s", b, want)
	}
}

func rtInput(mode, module, name string, args []any, kwargs map[string]any) map[string]any {
	return map[string]any{
		"mode": mode, "callable": map[string]any{"module": module, "name": name}, "sys_path": []any{""},
		"op_args": args, "op_kwargs": kwargs, "templates_dict": map[string]any{"k": "rendered"},
		"multiple_outputs": false, "show_return_value_in_logs": true, "context": rtContext(),
	}
}

func sensorInput(name string, sensor map[string]any) map[string]any {
	in := rtInput("sensor", "sample", name, nil, nil)
	s := map[string]any{"poke_interval": 0, "timeout": 30, "mode": "poke", "soft_fail": false, "exponential_backoff": false, "max_wait": 0}
	for k, v := range sensor {
		s[k] = v
	}
	in["sensor"] = s
	return in
}

func TestRuntimeCallables(t *testing.T) {
	api := newFakeAPI(t)
	dags := t.TempDir()
	writeTree(t, dags, rtDagFiles)
	with := func(in map[string]any, k string, v any) map[string]any { in[k] = v; return in }

	cases := []struct {
		name   string
		in     map[string]any
		opts   rtOpts
		want   string   // the whole result; "" to check state and reason only
		state  string   // when want is ""
		reason string   // when want is "": the reason's beginning
		code   int      // exit code
		stdout []string // substrings
		stderr []string
	}{
		{name: "plain", in: rtInput("python", "sample", "plain", []any{1, "x"}, map[string]any{"c": 5}),
			want:   `{"state":"success","xcom":{"return_value":{"a":1,"b":"x","c":5,"ds":"2024-01-02","task":"t1","try":1,"map_index":-1,"p":"pv"}}}`,
			stdout: []string{"Done. Returned value was: {'a': 1,"}},
		{name: "kwargs", in: rtInput("python", "sample", "with_kwargs", []any{"X"}, map[string]any{"y": 2, "ds_nodash": "overridden"}),
			want: `{"state":"success","xcom":{"return_value":{"x":"X","y":2,"ld":"2024-01-02T03:00:00+00:00","utc":true,"same":true,
				"end":"2024-01-02T03:00:00.123000+00:00","prev":null,"run":"manual__2024-01-02T03:00:00+00:00",
				"start":"2024-01-02T03:00:01+00:00","conf":{"c":1},"td":{"k":"rendered"},"tomorrow":"2024-01-03",
				"fmt":"02/01/2024","same_ti":true,"dag":"d1","tid":"t1","ext":true,"inlets":[],"ds_nodash":"overridden"}}}`},
		{name: "missing parameter", in: rtInput("python", "sample", "plain", nil, nil), code: 1,
			want: `{"state":"failed","reason":"TypeError: plain() needs a value for its parameter 'a': give it in op_args or op_kwargs (it is not an Airflow context key)"}`},
		{name: "multiple outputs", in: with(rtInput("python", "sample", "split", nil, nil), "multiple_outputs", true),
			want: `{"state":"success","xcom":{"left":1,"right":[2,3],"return_value":{"left":1,"right":[2,3]}}}`},
		{name: "multiple outputs not a dict", in: with(rtInput("python", "sample", "not_a_dict", nil, nil), "multiple_outputs", true), code: 1,
			want: `{"state":"failed","reason":"multiple_outputs is set but not_a_dict returned a list, not a dict"}`},
		{name: "xcom variables connections", in: with(rtInput("python", "sample", "pull", nil, nil), "show_return_value_in_logs", false),
			stdout: []string{"Done. Returned value not shown"},
			want: `{"state":"success","xcom":{"return_value":{
				"up":{"rows":[{"name":"a"},{"name":"b"}]},"key":"o","many":[{"rows":[{"name":"a"},{"name":"b"}]},2],
				"missing":"dflt","mapped_all":["m0","m1","m2"],"mapped_one":"m1","mapped_some":["m2","m0"],
				"other_dag":"from d2","no_task_ids":"xcom_pull needs task_ids",
				"var":"hello","var_json":{"n":7},"var_default":"fallback","var_missing":"'Variable absent does not exist'",
				"var_set":"updraft tasks cannot write Variables; set them in the UI or API",
				"sdk_var":"hello","sdk_default":null,"slash":"slashed","ctx_var":"hello","ctx_json":7,"ctx_get":"d",
				"conn":{"type":"postgres","host":"db.example","port":5432,"login":"u","password":"p@ss","schema":"app",
					"extra":{"sslmode":"require"},"uri":"postgres://u:p%40ss@db.example:5432/app?sslmode=require"},
				"sdk_conn":"db.example","ctx_conn":"app","conn_missing":"The conn_id ` + "`nope`" + ` isn't defined"}}}`},
		{name: "xcom push", in: rtInput("python", "sample", "pusher", nil, nil),
			want: `{"state":"success","xcom":{"extra":{"k":[1,2]},"return_value":{
				"err":"the XCom bad is not JSON-serialisable: Object of type object is not JSON serializable","own":{"k":[1,2]}}}}`},
		{name: "current context", in: rtInput("python", "sample", "ctx_fn", nil, map[string]any{"k": "v"}),
			want:   `{"state":"success","xcom":{"return_value":{"task":"t1","ds":"2024-01-02","td":{"k":"rendered"},"k":"v","same":true}}}`,
			stderr: []string{"op_kwargs k are not parameters of ctx_fn()"}},
		{name: "xcom references", in: rtInput("python", "sample", "consume", []any{xref("up", nil, "rows", 1, "name")},
			map[string]any{"w": []any{map[string]any{"nested": xref("mapped", 1)}}, "whole": map[string]any{"__updraft_xcom__": map[string]any{"task_id": "up"}}}),
			want: `{"state":"success","xcom":{"return_value":{"v":"b","w":[{"nested":"m1"}],"whole_rows":2}}}`},
		{name: "missing xcom reference", in: rtInput("python", "sample", "consume", []any{xref("nope", nil)}, nil), code: 1,
			want: `{"state":"failed","reason":"XCom return_value of task nope not found"}`},
		{name: "branch str", in: rtInput("branch", "sample", "choose", []any{"a"}, nil),
			want: `{"state":"success","branch":["a"],"xcom":{"return_value":["a"]}}`},
		{name: "branch list", in: rtInput("branch", "sample", "choose", []any{[]any{"a", "b"}}, nil),
			want: `{"state":"success","branch":["a","b"],"xcom":{"return_value":["a","b"]}}`},
		{name: "branch set", in: rtInput("branch", "sample", "choose_set", nil, nil),
			want: `{"state":"success","branch":["a","b"],"xcom":{"return_value":["a","b"]}}`},
		{name: "branch none", in: rtInput("branch", "sample", "choose", []any{nil}, nil),
			want: `{"state":"success","branch":[]}`},
		{name: "branch bad type", in: rtInput("branch", "sample", "choose", []any{5}, nil), code: 1,
			want: `{"state":"failed","reason":"branch callable must return a task id, a list of task ids or None, got int"}`},
		{name: "short circuit truthy", in: rtInput("short_circuit", "sample", "choose", []any{"go"}, nil),
			want: `{"state":"success","condition":true,"xcom":{"return_value":"go"}}`, stdout: []string{"Condition result is True"}},
		{name: "short circuit falsy", in: rtInput("short_circuit", "sample", "choose", []any{0}, nil),
			want: `{"state":"success","condition":false,"xcom":{"return_value":0}}`, stdout: []string{"Condition result is False"}},
		{name: "sensor done on third poke", in: sensorInput("third_time", nil),
			want:   `{"state":"success","xcom":{"return_value":{"pokes":3}}}`,
			stdout: []string{"Poking callable: third_time\n", "Poking callable: third_time\nPoking callable: third_time\n"}},
		{name: "sensor plain truthy with backoff", in: sensorInput("third_time_plain", map[string]any{"poke_interval": 0.01, "exponential_backoff": true, "max_wait": 0.02, "mode": "reschedule"}),
			want: `{"state":"success"}`, stdout: []string{"mode reschedule: updraft pokes in this process between waits"}},
		{name: "sensor timeout", in: sensorInput("never", map[string]any{"timeout": 0.2, "poke_interval": 0.05}), code: 1,
			want: `{"state":"failed","final":true,"reason":"sensor timed out after 0.2 s"}`},
		{name: "sensor timeout soft fail", in: sensorInput("never", map[string]any{"timeout": 0.2, "poke_interval": 0.05, "soft_fail": true}),
			want: `{"state":"skipped","reason":"sensor timed out after 0.2 s (soft_fail)"}`},
		{name: "skip", in: rtInput("python", "sample", "skip", nil, nil),
			want: `{"state":"skipped","reason":"skipped: not today"}`, stdout: []string{"Skipping: not today"}},
		{name: "fail", in: rtInput("python", "sample", "fail", nil, nil), code: 1,
			want: `{"state":"failed","final":true,"reason":"hard stop"}`, stderr: []string{"Traceback", "AirflowFailException: hard stop"}},
		{name: "exception", in: rtInput("python", "sample", "boom", nil, nil), code: 1,
			want: `{"state":"failed","reason":"ValueError: kaput"}`, stderr: []string{"Traceback (most recent call last)", `raise ValueError("kaput")`}},
		{name: "not serialisable", in: rtInput("python", "sample", "unserialisable", nil, nil), code: 1,
			want: `{"state":"failed","reason":"the return value of unserialisable is not JSON-serialisable: Object of type set is not JSON serializable"}`},
		{name: "nan", in: rtInput("python", "sample", "nan", nil, nil), code: 1, state: "failed", // Python 3.12 adds ": nan"
			reason: "the return value of nan is not JSON-serialisable: Out of range float values are not JSON compliant"},
		{name: "sys exit 0", in: rtInput("python", "sample", "exits", []any{0}, nil), want: `{"state":"success"}`},
		{name: "sys exit 4", in: rtInput("python", "sample", "exits", []any{4}, nil), code: 1,
			want: `{"state":"failed","reason":"Task failed due to SystemExit(4)"}`},
		{name: "no such function", in: rtInput("python", "sample", "nope", nil, nil), code: 1,
			want: `{"state":"failed","reason":"module sample has no function nope"}`},
		{name: "no such module", in: rtInput("python", "does_not_exist", "f", nil, nil), code: 1,
			want: `{"state":"failed","reason":"ModuleNotFoundError: No module named 'does_not_exist'"}`, stderr: []string{"Traceback"}},
		{name: "helper module importing another", in: rtInput("python", "pkg.helpers", "loud", nil, nil),
			want: `{"state":"success","xcom":{"return_value":"HI!"}}`},
		{name: "by file", in: with(with(rtInput("python", "", "expand", []any{21}, nil), "callable", map[string]any{"file": "airflow2/expand_tasks.py", "name": "expand"}), "sys_path", []any{"airflow2", ""}),
			want: `{"state":"success","xcom":{"return_value":{"twice":42,"point":{"x":21},"name":"expand_tasks"}}}`},
		{name: "taskflow", in: rtInput("python", "sample", "tf_double", []any{4}, nil),
			want: `{"state":"success","xcom":{"return_value":8}}`},
		{name: "taskflow multiple outputs", in: with(rtInput("python", "sample", "tf_split", []any{4}, nil), "multiple_outputs", true),
			want: `{"state":"success","xcom":{"n":4,"return_value":{"n":4}}}`},
		{name: "taskflow branch", in: rtInput("branch", "sample", "tf_branch", nil, nil),
			want: `{"state":"success","branch":["left"],"xcom":{"return_value":["left"]}}`},
		{name: "environment", in: rtInput("python", "sample", "env_check", nil, nil),
			want: `{"state":"success","xcom":{"return_value":{"in_env":false,"child":"absent","version":"3.0.0+updraft","shim_last":true,"runner_importable":false}}}`},
		{name: "refused credential", in: rtInput("python", "sample", "read_var", nil, nil), opts: rtOpts{token: "updraft-try.wrong"}, code: 1,
			want: `{"state":"failed","reason":"the server refused the try's credential (401): the try has ended or its token is not valid (the server said: not a valid try credential)"}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := api.run(t, dags, c.in, c.opts)
			if out.result == nil {
				t.Fatalf("no result (exit %d)\nstdout:\n%s\nstderr:\n%s", out.code, out.stdout, out.stderr)
			}
			if c.want != "" {
				sameJSON(t, out.result, c.want)
			} else if r, _ := out.result["reason"].(string); out.result["state"] != c.state || !strings.HasPrefix(r, c.reason) {
				t.Errorf("result %v, want state %s and a reason beginning %q", out.result, c.state, c.reason)
			}
			if out.code != c.code {
				t.Errorf("exit code %d, want %d", out.code, c.code)
			}
			for _, s := range c.stdout {
				if !strings.Contains(out.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.stdout)
				}
			}
			for _, s := range c.stderr {
				if !strings.Contains(out.stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, out.stderr)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", out.stdout, out.stderr)
			}
		})
	}
	t.Cleanup(func() {
		// The runtime is embedded and content-hashed, the DAG folder is a
		// checkout: the runner must leave no bytecode in either.
		for _, dir := range []string{"runtime", dags} {
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() && d.Name() == "__pycache__" {
					t.Errorf("the runner wrote %s", p)
				}
				return err
			})
		}
	})
}

func TestRuntimeReportsResult(t *testing.T) {
	api := newFakeAPI(t)
	dags := t.TempDir()
	writeTree(t, dags, rtDagFiles)

	out := api.run(t, dags, rtInput("python", "sample", "tf_double", []any{"ab"}, nil), rtOpts{post: true})
	if out.code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", out.code, out.stdout, out.stderr)
	}
	api.mu.Lock()
	posted := append([][]byte{}, api.results...)
	api.mu.Unlock()
	if len(posted) != 1 {
		t.Fatalf("%d results POSTed, want 1", len(posted))
	}
	var res any
	_ = json.Unmarshal(posted[0], &res)
	sameJSON(t, res, `{"state":"success","xcom":{"return_value":"abab"}}`)

	// A refused POST: exit 3 and the reason on stderr.
	out = api.run(t, dags, rtInput("python", "sample", "tf_double", []any{1}, nil), rtOpts{post: true, token: "updraft-try.wrong"})
	if out.code != 3 || !strings.Contains(out.stderr, "refused the try's credential (401)") {
		t.Errorf("refused POST: exit %d, stderr:\n%s", out.code, out.stderr)
	}
	api.mu.Lock()
	n := len(api.results)
	api.mu.Unlock()
	if n != 1 {
		t.Errorf("%d results POSTed after a refused one, want 1", n)
	}

	// A result file that cannot be written: exit 2.
	bad := filepath.Join(t.TempDir(), "no-such-dir", "result.json")
	out = api.run(t, dags, rtInput("python", "sample", "tf_double", []any{1}, nil), rtOpts{resultFile: bad})
	if out.code != 2 || !strings.Contains(out.stderr, "cannot write the result file") {
		t.Errorf("unwritable result file: exit %d, stderr:\n%s", out.code, out.stderr)
	}
}

// TestRuntimePython38Syntax checks the runtime parses as Python 3.8, the
// oldest interpreter it supports.
func TestRuntimePython38Syntax(t *testing.T) {
	py, _ := rtRunner(t)
	const prog = `import ast, pathlib, sys
n = 0
for p in sorted(pathlib.Path(sys.argv[1]).rglob("*.py")):
    ast.parse(p.read_text(encoding="utf-8"), str(p), feature_version=(3, 8))
    n += 1
print(n)
`
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-B", "-c", prog, "runtime").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(string(out))); n < 10 {
		t.Errorf("parsed %s files, want the runner and the shim", out)
	}
}
