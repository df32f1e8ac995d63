package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"updraft/dags"
	"updraft/store"
)

// The Execution API answers a try's own credential while the try runs,
// and only for what a task reads: Variables, connections, the XComs of
// its own DAG, its bundle; it takes one result per try.
func TestExecutionAPI(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	logical := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	run := store.Run{DagID: "d", RunID: "manual__2024-03-01T00:00:00+00:00", RunType: dags.RunTypeManual, LogicalDate: logical,
		Interval: dags.DataInterval{Start: logical, End: logical}, State: dags.RunRunning, QueuedAt: logical}
	ti := func(task string, state dags.TaskState) store.TaskInstance {
		return store.TaskInstance{DagID: "d", RunID: run.RunID, TaskID: task, MapIndex: -1, State: state, TryNumber: 1, Operator: "PythonOperator", Pool: "default_pool", PoolSlots: 1}
	}
	if err := st.CreateRun(ctx, run, []store.TaskInstance{ti("up", dags.StateSuccess), ti("py", dags.StateRunning)}); err != nil {
		t.Fatal(err)
	}
	if err := st.PushXComs(ctx, store.Unmapped("d", run.RunID, "up"), 1, logical, map[string]json.RawMessage{"return_value": json.RawMessage(`{"n": 1}`)}); err != nil {
		t.Fatal(err)
	}
	st.SetVariable(ctx, store.Variable{Key: "table", Value: "events", UpdatedAt: logical})
	tokens := map[string]struct {
		k   store.TIKey
		try int
	}{
		"py":       {store.Unmapped("d", run.RunID, "py"), 1},
		"py-old":   {store.Unmapped("d", run.RunID, "py"), 0},
		"finished": {store.Unmapped("d", run.RunID, "up"), 1},
	}
	api := httptest.NewServer(http.StripPrefix("/execution", NewExecutionAPI(ExecutionOptions{Store: st,
		Verify: func(tok string) (store.TIKey, int, error) {
			v, ok := tokens[tok]
			if !ok {
				return store.TIKey{}, 0, errors.New("bad")
			}
			return v.k, v.try, nil
		},
		Connection: func(id string) (ExecConnection, error) {
			if id != "wh" {
				return ExecConnection{}, store.ErrNotFound
			}
			return ExecConnection{ConnID: "wh", Host: "db", Password: "pw"}, nil
		},
	})))
	defer api.Close()
	call := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, api.URL+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	xcom := "/execution/xcoms/d/manual__2024-03-01T00%3A00%3A00%2B00%3A00/up/return_value"
	for _, c := range []struct {
		method, path, token, body string
		status                    int
		has                       string
	}{
		{"GET", "/execution/variables/table", "", "", 401, "credential"},
		{"GET", "/execution/variables/table", "forged", "", 401, "not a valid"},
		{"GET", "/execution/variables/table", "py-old", "", 403, "has ended"},
		{"GET", "/execution/variables/table", "finished", "", 403, "has ended"},
		{"GET", "/execution/variables/table", "py", "", 200, `"value":"events"`},
		{"GET", "/execution/variables/nope", "py", "", 404, "does not exist"},
		{"GET", "/execution/connections/wh", "py", "", 200, `"password":"pw"`},
		{"GET", "/execution/connections/other", "py", "", 404, "isn't defined"},
		{"GET", xcom, "py", "", 200, `"value":{"n":1}`},
		{"GET", "/execution/xcoms/other/r/up/return_value", "py", "", 403, "own DAG"},
		{"GET", "/execution/xcoms/d/manual__2024-03-01T00%3A00%3A00%2B00%3A00/up/missing", "py", "", 404, "not found"},
		{"POST", "/execution/result", "py", `{"state": "success"}`, 204, ""},
		{"POST", "/execution/result", "py", `{"state": "failed"}`, 409, "already reported"},
		{"POST", "/execution/result", "py", `not json`, 400, "JSON"},
		{"GET", "/execution/bundle", "py", "", 404, "no DAG files"},
	} {
		status, body := call(c.method, c.path, c.token, c.body)
		if status != c.status || !strings.Contains(body, c.has) {
			t.Errorf("%s %s (%s): %d %s", c.method, c.path, c.token, status, body)
		}
	}
	if b, ok, err := st.TryResult(ctx, store.Unmapped("d", run.RunID, "py"), 1); err != nil || !ok || string(b) != `{"state": "success"}` {
		t.Errorf("stored result %s %v %v", b, ok, err)
	}
}
