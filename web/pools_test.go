package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"updraft/dags"
	"updraft/store"
)

// A task in a pool that does not exist waits, the Pools page says why,
// and it runs once an Op creates the pool through the API.
func TestPools(t *testing.T) {
	e, _ := folderEnv(t, map[string]string{"pooled.yaml": `pooled:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: load, operator: BashOperator, bash_command: "true", pool: etl}
    - {task_id: other, operator: BashOperator, bash_command: "true"}
`})
	if status, body := e.call("POST", "/api/v1/dags/pooled/dagRuns", `{"dag_run_id": "r1"}`, "op"); status != 200 {
		t.Fatalf("trigger: %d %s", status, body)
	}
	state := func(task string) dags.TaskState {
		ti, err := e.st.TaskInstance(e.ctx, store.TIKey{DagID: "pooled", RunID: "r1", TaskID: task, MapIndex: -1})
		if err != nil {
			t.Fatal(err)
		}
		return ti.State
	}
	tickUntil := func(what string, done func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !done(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			if _, err := e.sched.Tick(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	tickUntil("the task in the default pool", func() bool { return state("other") == dags.StateSuccess })
	e.sched.Tick(e.ctx)
	if s := state("load"); s != dags.StateScheduled {
		t.Fatalf("a task in a missing pool: %s, want scheduled (waiting)", s)
	}
	if _, tiPage := e.call("GET", "/dags/pooled/runs/r1/tasks/load", "", "viewer"); !strings.Contains(tiPage, "pool etl does not exist") {
		t.Errorf("the task instance page does not say why it waits:\n%s", tiPage)
	}
	status, page := e.call("GET", "/pools", "", "viewer")
	if status != 200 || !strings.Contains(page, `id="missing-pools"`) || !strings.Contains(page, "<code>etl</code> (1 task)") || strings.Contains(page, `id="pool-form"`) {
		t.Fatalf("pools page for a viewer: %d\n%s", status, page)
	}
	status, body := e.call("POST", "/api/v1/pools", `{"name": "etl", "slots": 1, "description": "<b>loads</b>"}`, "op")
	var p apiPool
	if err := json.Unmarshal([]byte(body), &p); status != 200 || err != nil || p.Name != "etl" || p.Slots != 1 || p.OpenSlots != 1 {
		t.Fatalf("create: %d %s", status, body)
	}
	tickUntil("the task in the new pool", func() bool { return state("load") == dags.StateSuccess })

	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/pools", `{"name": "etl", "slots": 3}`},       // exists
		{"POST", "/api/v1/pools", `{"name": "bad name!", "slots": 3}`}, // name
		{"POST", "/api/v1/pools", `{"name": "neg", "slots": -2}`},      // slots
		{"POST", "/api/v1/pools", `{"name": "noslots"}`},               // required
		{"PATCH", "/api/v1/pools/etl", `{"name": "renamed"}`},          // rename
		{"DELETE", "/api/v1/pools/default_pool", ``},                   // default
		{"DELETE", "/api/v1/pools/nope", ``},                           // missing
	} {
		if status, body := e.call(c.method, c.path, c.body, "op"); status < 400 || !strings.Contains(body, `"detail"`) {
			t.Errorf("%s %s %s: %d %s, want a refusal", c.method, c.path, c.body, status, body)
		}
	}
	if status, body := e.call("PATCH", "/api/v1/pools/etl?update_mask=slots", `{"slots": 4, "description": "ignored"}`, "admin"); status != 200 ||
		!strings.Contains(body, `"slots":4`) || !strings.Contains(body, "loads") {
		t.Fatalf("patch: %d %s", status, body)
	}
	status, body = e.call("GET", "/api/v1/pools?order_by=-name", "", "viewer")
	var list struct {
		Pools        []apiPool
		TotalEntries int `json:"total_entries"`
	}
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || list.TotalEntries != 2 || list.Pools[0].Name != "etl" {
		t.Fatalf("list: %d %s", status, body)
	}
	if status, page = e.call("GET", "/pools", "", "op"); strings.Contains(page, `id="missing-pools"`) || !strings.Contains(page, `id="pool-form"`) ||
		strings.Contains(page, "<b>loads</b>") || !strings.Contains(page, "&lt;b&gt;loads&lt;/b&gt;") {
		t.Fatalf("pools page for an op: %d\n%s", status, page)
	}
	if status, _ := e.call("DELETE", "/api/v1/pools/etl", "", "op"); status != http.StatusNoContent {
		t.Fatalf("delete: %d", status)
	}
	log, _ := e.st.AuditLog(e.ctx, 100)
	actions := map[string]string{}
	for _, entry := range log {
		actions[entry.Action] = entry.Actor
	}
	if actions["pool_create"] != "op" || actions["pool_edit"] != "admin" || actions["pool_delete"] != "op" {
		t.Errorf("audit: %v", actions)
	}
}
