package builtin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"testing"
	"testing/fstest"

	"updraft/dags"
	"updraft/executor"
)

// loadTask loads a one-DAG file and renders one of its tasks as the
// scheduler would.
func loadTask(t *testing.T, src, task string, conf map[string]any) executor.Try {
	t.Helper()
	res := dags.Load(fstest.MapFS{"x.yaml": {Data: []byte(src)}}, dags.Options{})
	if ps := res.Problems(); ps.HasErrors() {
		t.Fatal(ps)
	}
	d := res.DAGs[0]
	tk := d.Task(task)
	spec, err := dags.Render(tk, dags.RunContext{DAG: d, RunID: "r", RunType: "manual", Conf: conf, MapIndex: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := try(t, task, spec)
	tr.XComPush = tk.PushesXCom()
	return tr
}

func TestInProcessResults(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Count", "2")
		io.WriteString(w, `{"items": [{"id": 1}, {"id": 2}], "failed": []}`)
	}))
	defer srv.Close()
	os.Setenv("UPDRAFT_CONN_API", srv.URL)
	defer os.Unsetenv("UPDRAFT_CONN_API")
	ex := New(Options{Connections: Connections{Getenv: os.Getenv}})
	src := `x:
  schedule: null
  start_date: 2024-01-01
  tasks:
    get: {operator: HttpOperator, http_conn_id: api, endpoint: /items, method: GET}
    quiet: {operator: HttpOperator, http_conn_id: api, endpoint: /items, method: GET, do_xcom_push: false}
    ids:
      operator: SimpleHttpOperator
      http_conn_id: api
      method: GET
      response_filter: "{{ response.json()['items'] | map(attribute='id') | join(',') }} of {{ response.headers['X-Count'] }}"
    gate:
      operator: ShortCircuitOperator
      condition: "{{ dag_run.conf.go }}"
      dependencies: [get]
    pick:
      operator: BranchOperator
      follow_task_ids: "{{ dag_run.conf.branch }}"
      dependencies: [get]
    a: {operator: EmptyOperator, dependencies: [gate, pick]}
    b: {operator: EmptyOperator, dependencies: [gate, pick]}
`
	run := func(task string, conf map[string]any) executor.Event {
		tr := loadTask(t, src, task, conf)
		if err := ex.Start(t.Context(), tr); err != nil {
			t.Fatal(err)
		}
		return final(t, ex, tr.Key)
	}
	if ev := run("get", nil); ev.State != executor.Succeeded || string(ev.XCom["return_value"]) != `"{\"items\": [{\"id\": 1}, {\"id\": 2}], \"failed\": []}"` {
		t.Errorf("HTTP response text: %+v %s", ev, ev.XCom["return_value"])
	}
	if ev := run("quiet", nil); ev.State != executor.Succeeded || ev.XCom != nil {
		t.Errorf("do_xcom_push: false still pushed: %+v", ev)
	}
	if ev := run("ids", nil); string(ev.XCom["return_value"]) != `"1,2 of 2"` {
		t.Errorf("response_filter: %+v %s", ev, ev.XCom["return_value"])
	}
	ev := run("gate", map[string]any{"go": "[]"})
	if ev.State != executor.Succeeded || ev.Branch == nil || !ev.Branch.All || len(ev.Branch.Follow) != 0 || string(ev.XCom["return_value"]) != "[]" {
		t.Errorf("short-circuit on an empty list: %+v", ev)
	}
	if ev := run("gate", map[string]any{"go": 1}); ev.Branch != nil || string(ev.XCom["return_value"]) != "1" {
		t.Errorf("short-circuit on 1: %+v", ev)
	}
	if ev := run("pick", map[string]any{"branch": "['b']"}); ev.Branch == nil || !reflect.DeepEqual(ev.Branch.Follow, []string{"b"}) {
		t.Errorf("branch: %+v", ev)
	}
}
