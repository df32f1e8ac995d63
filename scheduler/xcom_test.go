package scheduler

import (
	"encoding/json"
	"strings"
	"testing"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
)

// XCom flows from one task's try into the next one's templates, a new try
// replaces it, clearing removes it, and one over the limit fails its try.
func TestXComBetweenTasks(t *testing.T) {
	h := newHarness(t, `
x:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    produce: {operator: BashOperator, bash_command: "echo"}
    consume:
      operator: BashOperator
      bash_command: "echo {{ (ti.xcom_pull(task_ids='produce') | fromjson).tables | join(' ') }}"
      dependencies: [produce]
    big: {operator: BashOperator, bash_command: "echo"}
`, utc("2024-01-01T00:00:00Z"), succeed)
	payload := `{"tables": ["a", "b"]}`
	h.ex.push = func(tr executor.Try) map[string]json.RawMessage {
		v, _ := json.Marshal(payload)
		if tr.Key.TaskID == "big" {
			v, _ = json.Marshal(strings.Repeat("x", 100))
		}
		return executor.ReturnValue(v)
	}
	h.s.opts.XComMaxBytes = 64
	r, _ := h.s.Trigger(h.ctx, "x", TriggerOptions{})
	h.settle()
	cmd := func() string {
		var last string
		for _, tr := range h.ex.started {
			if tr.Key.TaskID == "consume" {
				last = tr.Spec.(dags.BashSpec).Command
			}
		}
		return last
	}
	if got := cmd(); got != "echo a b" {
		t.Fatalf("consume rendered %q", got)
	}
	big := h.ti(r, "big")
	tries, _ := h.st.Tries(h.ctx, big.Key())
	if big.State != dags.StateFailed || !strings.Contains(tries[0].Reason, "over the limit of 64 bytes") {
		t.Fatalf("an XCom over the limit: %s %+v", big.State, tries)
	}
	xs, _ := h.st.XComs(h.ctx, store.XComFilter{DagID: "x", RunID: r.RunID, TaskIDs: []string{"produce", "big"}})
	if len(xs) != 1 || xs[0].TaskID != "produce" || xs[0].TryNumber != 1 {
		t.Fatalf("stored XComs: %+v", xs)
	}
	// Cleared: the XCom goes; the new try pushes again and the consumer sees the new value.
	payload = `{"tables": ["c"]}`
	if _, err := h.s.Clear(h.ctx, "x", r.RunID, []string{"produce"}, ClearOptions{Downstream: true}); err != nil {
		t.Fatal(err)
	}
	if xs, _ := h.st.XComs(h.ctx, store.XComFilter{DagID: "x", RunID: r.RunID, TaskIDs: []string{"produce", "consume"}}); len(xs) != 0 {
		t.Fatalf("XComs after the clear: %+v", xs)
	}
	h.settle()
	if got := cmd(); got != "echo c" {
		t.Fatalf("consume after the clear rendered %q", got)
	}
	if xs, _ := h.st.XComs(h.ctx, store.XComFilter{DagID: "x", RunID: r.RunID, TaskIDs: []string{"produce"}}); len(xs) != 1 || xs[0].TryNumber != 2 {
		t.Fatalf("XComs after the second try: %+v", xs)
	}
}

// Branching: a short-circuit skips everything downstream (or, without
// ignore_downstream_trigger_rules, only its direct downstream tasks and
// then trigger rules decide), a branch skips the direct downstream tasks it
// does not follow, a join with none_failed_min_one_success runs, and a run
// whose leaves are skipped succeeds.
func TestBranchingSkipsAsAirflow(t *testing.T) {
	h := newHarness(t, `
b:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    gate: {operator: ShortCircuitOperator, condition: "{{ dag_run.conf.go }}"}
    after_gate: {operator: EmptyOperator, dependencies: [gate]}
    cleanup: {operator: EmptyOperator, dependencies: [after_gate], trigger_rule: all_done}
    soft_gate: {operator: ShortCircuitOperator, condition: "{{ dag_run.conf.go }}", ignore_downstream_trigger_rules: false}
    after_soft: {operator: EmptyOperator, dependencies: [soft_gate]}
    soft_cleanup: {operator: EmptyOperator, dependencies: [after_soft], trigger_rule: all_done}
    pick: {operator: BranchOperator, follow_task_ids: "{{ dag_run.conf.branch }}"}
    left: {operator: EmptyOperator, dependencies: [pick]}
    right: {operator: EmptyOperator, dependencies: [pick]}
    after_right: {operator: EmptyOperator, dependencies: [right]}
    join: {operator: EmptyOperator, dependencies: [left, after_right], trigger_rule: none_failed_min_one_success}
    wrong: {operator: BranchOperator, follow_task_ids: "nowhere"}
`, utc("2024-01-01T00:00:00Z"), succeed)
	r, err := h.s.Trigger(h.ctx, "b", TriggerOptions{Conf: map[string]any{"go": "False", "branch": "left"}})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	want := map[string]dags.TaskState{
		"gate": dags.StateSuccess, "after_gate": dags.StateSkipped, "cleanup": dags.StateSkipped,
		"soft_gate": dags.StateSuccess, "after_soft": dags.StateSkipped, "soft_cleanup": dags.StateSuccess,
		"pick": dags.StateSuccess, "left": dags.StateSuccess, "right": dags.StateSkipped, "after_right": dags.StateSkipped,
		"join": dags.StateSuccess, "wrong": dags.StateFailed,
	}
	for id, st := range want {
		if got := h.ti(r, id).State; got != st {
			t.Errorf("%s is %s, want %s (%s)", id, got, st, h.states(r))
		}
	}
	tries, _ := h.st.Tries(h.ctx, h.ti(r, "wrong").Key())
	if len(tries) != 1 || !strings.Contains(tries[0].Reason, "nowhere") {
		t.Errorf("a branch to an unknown task: %+v", tries)
	}
	xs, _ := h.st.XComs(h.ctx, store.XComFilter{DagID: "b", RunID: r.RunID, TaskIDs: []string{"gate", "pick"}})
	if len(xs) != 2 || string(xs[0].Value) != "false" || string(xs[1].Value) != `["left"]` {
		t.Errorf("branch XComs: %+v", xs)
	}
	// With the gate open, nothing is skipped.
	h.clock.Set(utc("2024-01-01T01:00:00Z"))
	r2, err := h.s.Trigger(h.ctx, "b", TriggerOptions{Conf: map[string]any{"go": "True", "branch": "['left', 'right']"}})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	for _, id := range []string{"after_gate", "cleanup", "after_soft", "left", "right", "after_right", "join"} {
		if got := h.ti(r2, id).State; got != dags.StateSuccess {
			t.Errorf("open run: %s is %s", id, got)
		}
	}
	if run, _ := h.st.Run(h.ctx, "b", r2.RunID); run.State != dags.RunFailed { // "wrong" is a failed leaf
		t.Errorf("run state %s", run.State)
	}
}
