package web

import (
	"strings"
	"testing"
	"time"

	"updraft/dags"
	"updraft/store"
)

// The task instance page says what a task that has not started waits for.
func TestTaskInstancePageSaysWhatATaskWaitsFor(t *testing.T) {
	e, _ := folderEnv(t, map[string]string{"w.yaml": `w:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: true
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "true"}
    - {task_id: b, operator: BashOperator, bash_command: "true", dependencies: [a]}
    - {task_id: c, operator: BashOperator, bash_command: "true", pool: nopool}
    - {task_id: d, operator: BashOperator, bash_command: "true", depends_on_past: true}
`})
	for _, run := range []string{`{"dag_run_id": "r0", "logical_date": "2024-01-01T00:00:00Z"}`, `{"dag_run_id": "r1", "logical_date": "2024-01-02T00:00:00Z"}`} {
		if status, body := e.call("POST", "/api/v1/dags/w/dagRuns", run, "op"); status != 200 {
			t.Fatalf("trigger: %d %s", status, body)
		}
	}
	// set moves a task instance to state the way the scheduler would.
	set := func(run, task string, state dags.TaskState, next *time.Time) {
		t.Helper()
		path := []dags.TaskState{state}
		if state != dags.StateNone {
			path = []dags.TaskState{dags.StateScheduled, dags.StateQueued, dags.StateRunning, state}
		}
		for _, to := range path {
			ti, err := e.st.TaskInstance(e.ctx, store.TIKey{DagID: "w", RunID: run, TaskID: task, MapIndex: -1})
			if err != nil {
				t.Fatal(err)
			}
			from := ti.State
			ti.State, ti.NextTryAt = to, next
			if ok, err := e.st.UpdateTaskInstance(e.ctx, ti, from); err != nil || !ok {
				t.Fatalf("set %s/%s to %s: %v", run, task, to, err)
			}
		}
	}
	set("r0", "d", dags.StateFailed, nil)
	later := time.Now().Add(10 * time.Minute)
	set("r1", "a", dags.StateUpForRetry, &later)
	set("r1", "b", dags.StateSuccess, nil)
	page := func(task string) string {
		t.Helper()
		status, body := e.call("GET", "/dags/w/runs/r1/tasks/"+task, "", "viewer")
		if status != 200 {
			t.Fatalf("page of %s: %d", task, status)
		}
		return body
	}
	for task, want := range map[string][]string{
		"a": {"the DAG is paused", "its retry delay: the next try may start at"},
		"c": {"pool nopool does not exist"},
		"d": {"depends_on_past: d in the previous run (r0) is failed"},
	} {
		body := page(task)
		for _, w := range want {
			if !strings.Contains(body, w) {
				t.Errorf("page of %s lacks %q:\n%s", task, w, body)
			}
		}
	}
	if body := page("b"); strings.Contains(body, "Waiting for") {
		t.Errorf("a finished task waits for something:\n%s", body)
	}
	// b again, not started, with its upstream retrying.
	set("r1", "b", dags.StateNone, nil)
	if body := page("b"); !strings.Contains(body, "upstream tasks, by trigger rule all_success: a (up_for_retry)") {
		t.Errorf("page of b:\n%s", body)
	}
}
