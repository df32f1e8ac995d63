package scheduler

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
)

// A year of @daily catchup: every interval runs once, oldest first, never
// more than max_active_runs at a time.
func TestYearOfDailyCatchup(t *testing.T) {
	h := newHarness(t, `
daily:
  start_date: 2023-01-01
  schedule: "@daily"
  max_active_runs: 16
  is_paused_upon_creation: false
  tasks:
    - {task_id: extract, operator: BashOperator, bash_command: "echo {{ ds }}"}
    - {task_id: load, operator: BashOperator, bash_command: "echo load", dependencies: [extract]}
`, utc("2024-01-01T00:00:00Z"), succeed)
	next := h.settle()
	runs := h.runs("daily")
	if len(runs) != 365 {
		t.Fatalf("%d runs, want 365", len(runs))
	}
	for i, r := range runs {
		want := utc("2023-01-01T00:00:00Z").AddDate(0, 0, i)
		if !r.LogicalDate.Equal(want) || r.State != dags.RunSuccess || !r.Interval.End.Equal(want.AddDate(0, 0, 1)) {
			t.Fatalf("run %d = %s %s %v", i, r.RunID, r.State, r.Interval)
		}
	}
	if got := h.ex.startedCount(); got != 730 {
		t.Fatalf("%d tries started, want 730 (no try twice)", got)
	}
	if !next.Equal(utc("2024-01-02T00:00:00Z")) {
		t.Fatalf("next wake %v, want the end of the next interval", next)
	}
	// The rendered template saw each run's own date.
	if got := h.ex.started[0].Spec.(dags.BashSpec).Command; got != "echo 2023-01-01" {
		t.Fatalf("first try rendered %q", got)
	}
}

// Midnight in New York moves from 04:00 to 05:00 UTC across the DST change.
func TestScheduleAcrossDST(t *testing.T) {
	h := newHarness(t, `
ny:
  timezone: America/New_York
  start_date: 2024-11-01
  schedule: "0 0 * * *"
  is_paused_upon_creation: false
  tasks: [{task_id: t, operator: EmptyOperator}]
`, utc("2024-11-06T12:00:00Z"), succeed)
	h.settle()
	var got []string
	for _, r := range h.runs("ny") {
		got = append(got, r.LogicalDate.Format("01-02T15"))
	}
	if strings.Join(got, " ") != "11-01T04 11-02T04 11-03T04 11-04T05 11-05T05" {
		t.Fatalf("logical dates %v", got)
	}
}

func TestCatchupFalseRunsOnlyTheLatest(t *testing.T) {
	h := newHarness(t, `
nocatch:
  start_date: 2019-01-01
  schedule: "0 3 * * *"
  catchup: false
  is_paused_upon_creation: false
  tasks: [{task_id: t, operator: EmptyOperator}]
`, utc("2024-03-10T12:00:00Z"), succeed)
	h.settle()
	runs := h.runs("nocatch")
	if len(runs) != 1 || runs[0].RunID != "scheduled__2024-03-09T03:00:00+00:00" {
		t.Fatalf("runs = %+v", runs)
	}
}

// Every trigger rule against one failed, one successful and one skipped upstream.
func TestEveryTriggerRuleInARun(t *testing.T) {
	var rules strings.Builder
	for _, r := range dags.TriggerRules {
		rules.WriteString("    - {task_id: " + string(r) + ", operator: EmptyOperator, trigger_rule: " + string(r) + ", dependencies: [ok, bad, skip]}\n")
	}
	h := newHarness(t, `
rules:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: ok, operator: BashOperator, bash_command: "true"}
    - {task_id: bad, operator: BashOperator, bash_command: "false"}
    - {task_id: skip, operator: BashOperator, bash_command: "exit 99"}
`+rules.String(), utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		switch k.TaskID {
		case "bad":
			return executor.Failed, 1
		case "skip":
			return executor.Skipped, 99
		}
		return executor.Succeeded, 0
	})
	r, err := h.s.Trigger(h.ctx, "rules", TriggerOptions{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	want := map[string]dags.TaskState{
		"all_success": "upstream_failed", "all_failed": "skipped", "all_done": "success", "all_skipped": "skipped",
		"one_success": "success", "one_failed": "success", "one_done": "success", "none_failed": "upstream_failed",
		"none_failed_min_one_success": "upstream_failed", "none_skipped": "skipped", "always": "success",
		"all_done_setup_success": "success",
	}
	for rule, state := range want {
		if got := h.ti(r, rule).State; got != state {
			t.Errorf("%s: %s, want %s", rule, got, state)
		}
	}
	// The leaves decide the run: upstream_failed leaves fail it.
	if r, _ = h.st.Run(h.ctx, "rules", r.RunID); r.State != dags.RunFailed {
		t.Errorf("run %s", r.State)
	}
}

// The reference workload's dbt_nightly: a failed job, all_done clean-up
// steps succeed, so the run succeeds (Airflow's leaf rule).
func TestAllDoneLeavesDecideTheRun(t *testing.T) {
	h := newHarness(t, `
chain:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: job, operator: BashOperator, bash_command: "false"}
    - {task_id: after, operator: BashOperator, bash_command: "true", dependencies: [job]}
    - {task_id: merge, operator: BashOperator, bash_command: "true", trigger_rule: all_done, dependencies: [after]}
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.TaskID == "job" {
			return executor.Failed, 1
		}
		return executor.Succeeded, 0
	})
	r, _ := h.s.Trigger(h.ctx, "chain", TriggerOptions{})
	h.settle()
	r, _ = h.st.Run(h.ctx, "chain", r.RunID)
	if got := h.states(r); got != "after=upstream_failed job=failed merge=success" || r.State != dags.RunSuccess {
		t.Fatalf("%s, run %s", got, r.State)
	}
}

// Retries wait Airflow's exponential backoff delays, and a try number is
// never run twice.
func TestRetriesWithBackoff(t *testing.T) {
	h := newHarness(t, `
retry:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - task_id: flaky
      operator: BashOperator
      bash_command: "true"
      retries: 3
      retry_delay: 60
      retry_exponential_backoff: true
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.TryNumber < 3 {
			return executor.Failed, 1
		}
		return executor.Succeeded, 0
	})
	logical := utc("2024-01-01T00:00:00Z")
	r, err := h.s.Trigger(h.ctx, "retry", TriggerOptions{LogicalDate: &logical})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	ti := h.ti(r, "flaky")
	task := h.s.DAG("retry").Task("flaky")
	wantNext := logical.Add(dags.RetryDelay(task, "retry", logical, 1))
	if ti.State != dags.StateUpForRetry || ti.TryNumber != 1 || !ti.NextTryAt.Equal(wantNext) {
		t.Fatalf("after try 1: %+v, want up_for_retry until %v", ti, wantNext)
	}
	if wantNext.Sub(logical) != 114*time.Second { // computed with Airflow 2.8's formula in Python
		t.Fatalf("first delay %v, want 114s", wantNext.Sub(logical))
	}
	h.at(wantNext.Add(-time.Second))
	if ti = h.ti(r, "flaky"); ti.State != dags.StateUpForRetry {
		t.Fatalf("retried early: %s", ti.State)
	}
	h.at(wantNext)
	ti = h.ti(r, "flaky")
	second := wantNext.Add(dags.RetryDelay(task, "retry", logical, 2))
	if ti.TryNumber != 2 || ti.State != dags.StateUpForRetry || !ti.NextTryAt.Equal(second) {
		t.Fatalf("after try 2: %+v", ti)
	}
	h.at(second)
	ti = h.ti(r, "flaky")
	tries, _ := h.st.Tries(h.ctx, ti.Key())
	if ti.State != dags.StateSuccess || len(tries) != 3 || tries[0].State != dags.StateFailed || tries[0].Reason != "exit code 1" {
		t.Fatalf("final: %+v, tries %+v", ti, tries)
	}
}

func TestRetriesExhausted(t *testing.T) {
	h := newHarness(t, `
fails:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks: [{task_id: x, operator: BashOperator, bash_command: "false", retries: 1, retry_delay: 10}]
`, utc("2024-01-01T00:00:00Z"), func(executor.TryKey) (executor.State, int) { return executor.Failed, 2 })
	r, _ := h.s.Trigger(h.ctx, "fails", TriggerOptions{})
	h.settle()
	h.at(utc("2024-01-01T00:00:10Z"))
	r, _ = h.st.Run(h.ctx, "fails", r.RunID)
	if ti := h.ti(r, "x"); ti.State != dags.StateFailed || ti.TryNumber != 2 || r.State != dags.RunFailed {
		t.Fatalf("ti %+v run %s", ti, r.State)
	}
}

// dagrun_timeout fails the run, skips what is unfinished and kills what runs.
func TestDagrunTimeout(t *testing.T) {
	h := newHarness(t, `
slow:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  dagrun_timeout: 600
  tasks:
    - {task_id: long, operator: BashOperator, bash_command: "sleep 9999", execution_timeout: 3600}
    - {task_id: next, operator: EmptyOperator, dependencies: [long]}
`, utc("2024-01-01T00:00:00Z"), func(executor.TryKey) (executor.State, int) { return "", 0 })
	r, _ := h.s.Trigger(h.ctx, "slow", TriggerOptions{})
	next := h.settle()
	if !next.Equal(utc("2024-01-01T00:10:00Z")) {
		t.Fatalf("next wake %v, want the dagrun_timeout deadline", next)
	}
	if h.ex.started[0].Timeout != time.Hour {
		t.Fatalf("execution_timeout not passed to the executor: %v", h.ex.started[0].Timeout)
	}
	h.at(utc("2024-01-01T00:10:00Z"))
	r, _ = h.st.Run(h.ctx, "slow", r.RunID)
	if got := h.states(r); got != "long=skipped next=skipped" || r.State != dags.RunFailed {
		t.Fatalf("%s, run %s", got, r.State)
	}
	if len(h.ex.killed) != 1 {
		t.Fatalf("killed %v", h.ex.killed)
	}
}

// depends_on_past: a task waits for its previous run, and a failure there
// blocks the next run (which deadlocks and fails, as in Airflow).
func TestDependsOnPast(t *testing.T) {
	h := newHarness(t, `
past:
  start_date: 2024-01-01
  schedule: "@daily"
  max_active_runs: 2
  is_paused_upon_creation: false
  default_args: {depends_on_past: true}
  tasks: [{task_id: x, operator: BashOperator, bash_command: "true"}]
`, utc("2024-01-04T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if strings.Contains(k.RunID, "2024-01-01") {
			return "", 0 // the first run's task is still running
		}
		return executor.Succeeded, 0
	})
	h.settle()
	runs := h.runs("past")
	if len(runs) != 2 || h.ti(runs[1], "x").State != dags.StateNone || runs[1].State != dags.RunRunning {
		t.Fatalf("second run did not wait: %+v / %s", runs, h.states(runs[1]))
	}
	h.ex.release(h.ex.runningKeys()[0], executor.Failed, 1)
	h.settle()
	runs = h.runs("past")
	if runs[0].State != dags.RunFailed || runs[1].State != dags.RunFailed || h.ti(runs[1], "x").State != dags.StateNone {
		t.Fatalf("after a failed past: %s %s (%s)", runs[0].State, runs[1].State, h.states(runs[1]))
	}
}

// max_active_runs, max_active_tasks and pools bound what runs at once.
func TestConcurrencyLimits(t *testing.T) {
	h := newHarness(t, `
limits:
  start_date: 2024-01-01
  schedule: "@daily"
  max_active_runs: 2
  max_active_tasks: 3
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: EmptyOperator}
    - {task_id: b, operator: EmptyOperator}
    - {task_id: c, operator: EmptyOperator}
    - {task_id: p1, operator: EmptyOperator, pool: tiny}
    - {task_id: p2, operator: EmptyOperator, pool: tiny}
`, utc("2024-01-10T00:00:00Z"), func(executor.TryKey) (executor.State, int) { return "", 0 })
	if err := h.st.SetPool(h.ctx, store.Pool{Name: "tiny", Slots: 1}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	active, _ := h.st.Runs(h.ctx, store.RunFilter{DagID: "limits", States: []dags.RunState{dags.RunQueued, dags.RunRunning}})
	if len(active) != 2 {
		t.Fatalf("%d active runs, want max_active_runs 2", len(active))
	}
	running := h.ex.runningKeys()
	if len(running) != 3 {
		t.Fatalf("%d tasks running, want max_active_tasks 3: %v", len(running), running)
	}
	pool := 0
	for _, k := range running {
		if strings.HasPrefix(k.TaskID, "p") {
			pool++
		}
	}
	if pool > 1 {
		t.Fatalf("%d tasks of a 1-slot pool running", pool)
	}
	// Finishing work frees the limits: everything eventually runs, each once.
	for i := 0; i < 100 && len(h.ex.runningKeys()) > 0; i++ {
		for _, k := range h.ex.runningKeys() {
			h.ex.release(k, executor.Succeeded, 0)
		}
		h.settle()
	}
	if runs := h.runs("limits"); len(runs) != 9 || runs[8].State != dags.RunSuccess {
		t.Fatalf("runs %d, last %s", len(runs), runs[len(runs)-1].State)
	}
	if h.ex.startedCount() != 45 {
		t.Fatalf("%d tries for 9 runs x 5 tasks", h.ex.startedCount())
	}
}

// Higher priority_weight (with the downstream weight rule) runs first.
func TestPriorityWeight(t *testing.T) {
	h := newHarness(t, `
prio:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  max_active_tasks: 1
  tasks:
    - {task_id: low, operator: EmptyOperator}
    - {task_id: high, operator: EmptyOperator, priority_weight: 5}
    - {task_id: chain_head, operator: EmptyOperator}
    - {task_id: chain_1, operator: EmptyOperator, dependencies: [chain_head], priority_weight: 3}
    - {task_id: chain_2, operator: EmptyOperator, dependencies: [chain_1], priority_weight: 3}
`, utc("2024-01-01T00:00:00Z"), succeed)
	h.s.Trigger(h.ctx, "prio", TriggerOptions{})
	h.settle()
	var order []string
	for _, tr := range h.ex.started {
		order = append(order, tr.Key.TaskID)
	}
	// chain_head weighs 1+3+3 = 7 through its downstream tasks, then
	// chain_1 3+3 = 6 beats high's 5.
	if got := strings.Join(order, ","); got != "chain_head,chain_1,high,chain_2,low" {
		t.Fatalf("order %v", order)
	}
}

// Clear re-runs a failed task with a new try and renewed retries; mark
// changes a state by hand; both are audited.
func TestClearAndMark(t *testing.T) {
	attempts := map[string]int{}
	h := newHarness(t, `
cm:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "x"}
    - {task_id: b, operator: BashOperator, bash_command: "y", dependencies: [a]}
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		attempts[k.TaskID]++
		if k.TaskID == "a" && k.TryNumber == 1 {
			return executor.Failed, 1
		}
		return executor.Succeeded, 0
	})
	r, _ := h.s.Trigger(h.ctx, "cm", TriggerOptions{Actor: "alice"})
	h.settle()
	if got := h.states(r); got != "a=failed b=upstream_failed" {
		t.Fatal(got)
	}
	preview, err := h.s.Clear(h.ctx, "cm", r.RunID, []string{"a"}, ClearOptions{Downstream: true, OnlyFailed: true, DryRun: true})
	if err != nil || len(preview) != 2 {
		t.Fatalf("dry run: %v %v", preview, err)
	}
	if got := h.states(r); got != "a=failed b=upstream_failed" {
		t.Fatalf("dry run changed states: %s", got)
	}
	if _, err := h.s.Clear(h.ctx, "cm", r.RunID, []string{"a"}, ClearOptions{Downstream: true, Actor: "alice"}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	r, _ = h.st.Run(h.ctx, "cm", r.RunID)
	tries, _ := h.st.Tries(h.ctx, store.TIKey{DagID: "cm", RunID: r.RunID, TaskID: "a", MapIndex: -1})
	if got := h.states(r); got != "a=success b=success" || r.State != dags.RunSuccess || len(tries) != 2 {
		t.Fatalf("after clear: %s run %s tries %d", got, r.State, len(tries))
	}
	if _, err := h.s.Mark(h.ctx, store.TIKey{DagID: "cm", RunID: r.RunID, TaskID: "b", MapIndex: -1}, dags.StateFailed, "bob"); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if r, _ = h.st.Run(h.ctx, "cm", r.RunID); r.State != dags.RunFailed {
		t.Fatalf("run after marking its leaf failed: %s", r.State)
	}
	if _, err := h.s.Mark(h.ctx, store.TIKey{DagID: "cm", RunID: r.RunID, TaskID: "b", MapIndex: -1}, dags.StateRunning, "bob"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("mark running: %v", err)
	}
	log, _ := h.st.AuditLog(h.ctx, 10)
	var actions []string
	for _, e := range log {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	if got := strings.Join(actions, " "); got != "bob:mark_failed alice:clear alice:trigger" {
		t.Fatalf("audit %s", got)
	}
}

// Marking with relatives and setting a run's state, as the UI's and the
// API's "mark success/failed" do.
func TestMarkTasksAndSetRunState(t *testing.T) {
	h := newHarness(t, `
ms:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "x"}
    - {task_id: b, operator: BashOperator, bash_command: "y", dependencies: [a]}
    - {task_id: c, operator: BashOperator, bash_command: "z", dependencies: [b]}
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) { return "", 0 })
	r, _ := h.s.Trigger(h.ctx, "ms", TriggerOptions{})
	h.settle()
	if got := h.states(r); got != "a=running b=none c=none" {
		t.Fatal(got)
	}
	dry, err := h.s.MarkTasks(h.ctx, "ms", r.RunID, []string{"b"}, dags.StateSuccess, MarkOptions{Upstream: true, DryRun: true})
	if err != nil || len(dry) != 2 || h.states(r) != "a=running b=none c=none" {
		t.Fatalf("dry run: %v %v %s", dry, err, h.states(r))
	}
	done, err := h.s.MarkTasks(h.ctx, "ms", r.RunID, []string{"b"}, dags.StateSuccess, MarkOptions{Upstream: true, Actor: "ann"})
	if err != nil || len(done) != 2 || len(h.ex.killed) != 1 {
		t.Fatalf("mark b and upstream: %v %v killed %v", done, err, h.ex.killed)
	}
	h.settle()
	if got := h.states(r); got != "a=success b=success c=running" {
		t.Fatalf("after marking: %s", got)
	}
	if _, err := h.s.MarkTasks(h.ctx, "ms", r.RunID, []string{"nope"}, dags.StateSuccess, MarkOptions{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unknown task: %v", err)
	}
	// Failing the run fails what runs and skips what has not started.
	got, err := h.s.SetRunState(h.ctx, "ms", r.RunID, dags.RunFailed, "ann")
	if err != nil || got.State != dags.RunFailed {
		t.Fatalf("set failed: %+v %v", got, err)
	}
	h.settle()
	if got := h.states(r); got != "a=success b=success c=failed" {
		t.Fatalf("after failing the run: %s", got)
	}
	if r, _ = h.st.Run(h.ctx, "ms", r.RunID); r.State != dags.RunFailed {
		t.Fatalf("run %s after settling", r.State)
	}
	// Success marks every unfinished task instance; then the run stays.
	h.clock.Set(utc("2024-01-01T01:00:00Z"))
	r2, err := h.s.Trigger(h.ctx, "ms", TriggerOptions{RunID: "second"})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got, err := h.s.SetRunState(h.ctx, "ms", r2.RunID, dags.RunSuccess, "ann"); err != nil || got.State != dags.RunSuccess {
		t.Fatalf("set success: %+v %v", got, err)
	}
	h.settle()
	if got := h.states(r2); got != "a=success b=success c=success" {
		t.Fatalf("after marking the run success: %s", got)
	}
	if _, err := h.s.SetRunState(h.ctx, "ms", r2.RunID, dags.RunRunning, "ann"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("set running: %v", err)
	}
}

// Clearing a running task kills it; it then starts over with a new try.
func TestClearRunningTask(t *testing.T) {
	h := newHarness(t, `
cr:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks: [{task_id: a, operator: BashOperator, bash_command: "x"}]
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.TryNumber == 1 {
			return "", 0
		}
		return executor.Succeeded, 0
	})
	r, _ := h.s.Trigger(h.ctx, "cr", TriggerOptions{})
	h.settle()
	if _, err := h.s.Clear(h.ctx, "cr", r.RunID, []string{"a"}, ClearOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	ti := h.ti(r, "a")
	if ti.State != dags.StateSuccess || ti.TryNumber != 2 || len(h.ex.killed) != 1 {
		t.Fatalf("ti %+v killed %v", ti, h.ex.killed)
	}
}

// Manual runs: conf, duplicates, and a paused DAG's triggered run waits.
func TestTriggerAndPause(t *testing.T) {
	h := newHarness(t, `
manual:
  start_date: 2024-01-01
  schedule: null
  params: {table: events}
  tasks: [{task_id: t, operator: BashOperator, bash_command: "echo {{ params.table }} {{ dag_run.conf.extra }}"}]
`, utc("2024-05-05T10:00:00Z"), succeed)
	logical := utc("2024-05-01T00:00:00Z")
	r, err := h.s.Trigger(h.ctx, "manual", TriggerOptions{LogicalDate: &logical, Conf: map[string]any{"table": "users", "extra": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if r.RunID != "manual__2024-05-01T00:00:00+00:00" || !r.ExternalTrigger || r.State != dags.RunQueued {
		t.Fatalf("run %+v", r)
	}
	if _, err := h.s.Trigger(h.ctx, "manual", TriggerOptions{LogicalDate: &logical}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate logical date: %v", err)
	}
	if _, err := h.s.Trigger(h.ctx, "nope", TriggerOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown DAG: %v", err)
	}
	if _, err := h.s.Trigger(h.ctx, "manual", TriggerOptions{RunID: "bad id!"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad run id: %v", err)
	}
	h.settle() // paused upon creation: the run waits queued
	if r, _ = h.st.Run(h.ctx, "manual", r.RunID); r.State != dags.RunQueued || h.ex.startedCount() != 0 {
		t.Fatalf("paused DAG ran: %s", r.State)
	}
	h.unpause("manual")
	h.settle()
	if r, _ = h.st.Run(h.ctx, "manual", r.RunID); r.State != dags.RunSuccess {
		t.Fatalf("run %s", r.State)
	}
	if got := h.ex.started[0].Spec.(dags.BashSpec).Command; got != "echo users 1" {
		t.Fatalf("rendered %q: conf overrides params", got)
	}
}

// A template that cannot render fails its try with the reason, and retries apply.
func TestRenderErrorFailsTheTry(t *testing.T) {
	h := newHarness(t, `
tmpl:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks: [{task_id: t, operator: BashOperator, bash_command: "echo {{ var.value.missing }}"}]
`, utc("2024-01-01T00:00:00Z"), succeed)
	r, _ := h.s.Trigger(h.ctx, "tmpl", TriggerOptions{})
	h.settle()
	ti := h.ti(r, "t")
	tries, _ := h.st.Tries(h.ctx, ti.Key())
	if ti.State != dags.StateFailed || len(tries) != 1 || !strings.Contains(tries[0].Reason, "variable missing does not exist") {
		t.Fatalf("ti %+v tries %+v", ti, tries)
	}
	if err := h.st.SetVariable(h.ctx, store.Variable{Key: "missing", Value: "here"}); err != nil {
		t.Fatal(err)
	}
	h.s.Clear(h.ctx, "tmpl", r.RunID, []string{"t"}, ClearOptions{})
	h.settle()
	if got := h.ex.started[0].Spec.(dags.BashSpec).Command; got != "echo here" || h.ti(r, "t").State != dags.StateSuccess {
		t.Fatalf("after setting the variable: %q %s", got, h.ti(r, "t").State)
	}
}

// After a restart, running tries are adopted and gone ones fail with a
// reason (then retry), queued instances without a try start again.
func TestRecoverAfterRestart(t *testing.T) {
	h := newHarness(t, `
rec:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: kept, operator: BashOperator, bash_command: "x"}
    - {task_id: lost, operator: BashOperator, bash_command: "y", retries: 1, retry_delay: 0}
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.TryNumber == 1 {
			return "", 0
		}
		return executor.Succeeded, 0
	})
	r, _ := h.s.Trigger(h.ctx, "rec", TriggerOptions{})
	h.settle()
	// A new scheduler process: "lost" died with the old one, "kept" still runs.
	h.ex.mu.Lock()
	delete(h.ex.running, executor.TryKey{DagID: "rec", RunID: r.RunID, TaskID: "lost", TryNumber: 1, MapIndex: -1})
	h.ex.mu.Unlock()
	h.s = New(h.st, h.ex, h.bag, Options{Clock: h.clock, LogDir: t.TempDir()})
	if err := h.s.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.settle()
	lost := h.ti(r, "lost")
	tries, _ := h.st.Tries(h.ctx, lost.Key())
	if lost.State != dags.StateSuccess || len(tries) != 2 || !strings.Contains(tries[0].Reason, "process is gone") {
		t.Fatalf("lost: %+v %+v", lost, tries)
	}
	if kept := h.ti(r, "kept"); kept.State != dags.StateRunning || kept.TryNumber != 1 {
		t.Fatalf("kept: %+v", kept)
	}
	h.ex.release(h.ex.runningKeys()[0], executor.Succeeded, 0)
	h.settle()
	if r, _ = h.st.Run(h.ctx, "rec", r.RunID); r.State != dags.RunSuccess {
		t.Fatalf("run %s", r.State)
	}
}

// A try recorded but never given a process or pod (the server died while
// creating it) runs after a restart with the same try number, instead of
// failing and using up a retry.
func TestRecoverStartsTriesThatNeverStarted(t *testing.T) {
	h := newHarness(t, `
unborn:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "x", retries: 0}
    - {task_id: b, operator: BashOperator, bash_command: "y", retries: 0}
`, utc("2024-01-01T00:00:00Z"), succeed)
	h.ex.unborn = true
	r, _ := h.s.Trigger(h.ctx, "unborn", TriggerOptions{})
	h.settle()
	if n := h.ex.startedCount(); n != 2 {
		t.Fatalf("%d tries handed to the executor, want 2", n)
	}
	// The server dies before the executor created anything.
	h.ex.mu.Lock()
	h.ex.unborn = false
	h.ex.mu.Unlock()
	h.s = New(h.st, h.ex, h.bag, Options{Clock: h.clock, LogDir: t.TempDir()})
	if err := h.s.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.settle()
	for _, task := range []string{"a", "b"} {
		ti := h.ti(r, task)
		tries, _ := h.st.Tries(h.ctx, ti.Key())
		if ti.State != dags.StateSuccess || ti.TryNumber != 1 || len(tries) != 1 || tries[0].State != dags.StateSuccess {
			t.Fatalf("%s: %+v, tries %+v", task, ti, tries)
		}
	}
	if r, _ = h.st.Run(h.ctx, "unborn", r.RunID); r.State != dags.RunSuccess {
		t.Fatalf("run %s", r.State)
	}
}

// The server-wide parallelism bounds task instances across all DAGs.
func TestGlobalParallelism(t *testing.T) {
	h := newHarness(t, `
p1:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks: [{task_id: a, operator: EmptyOperator}, {task_id: b, operator: EmptyOperator}]
p2:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks: [{task_id: a, operator: EmptyOperator}, {task_id: b, operator: EmptyOperator}]
`, utc("2024-01-01T00:00:00Z"), func(executor.TryKey) (executor.State, int) { return "", 0 })
	h.s.opts.Parallelism = 3
	h.s.Trigger(h.ctx, "p1", TriggerOptions{})
	h.s.Trigger(h.ctx, "p2", TriggerOptions{})
	h.settle()
	if n := len(h.ex.runningKeys()); n != 3 {
		t.Fatalf("%d running, want parallelism 3", n)
	}
	h.ex.release(h.ex.runningKeys()[0], executor.Succeeded, 0)
	h.settle()
	if n, started := len(h.ex.runningKeys()), h.ex.startedCount(); n != 3 || started != 4 {
		t.Fatalf("after one finished: %d running, %d started", n, started)
	}
}

// wait_for_downstream also waits for the previous run's direct downstream tasks.
func TestWaitForDownstream(t *testing.T) {
	h := newHarness(t, `
wfd:
  start_date: 2024-01-01
  schedule: "@daily"
  max_active_runs: 2
  is_paused_upon_creation: false
  tasks:
    - {task_id: extract, operator: EmptyOperator, wait_for_downstream: true}
    - {task_id: load, operator: EmptyOperator, dependencies: [extract]}
`, utc("2024-01-03T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.TaskID == "load" && strings.Contains(k.RunID, "2024-01-01") {
			return "", 0 // the first run's load is still running
		}
		return executor.Succeeded, 0
	})
	h.settle()
	runs := h.runs("wfd")
	if got := h.states(runs[1]); got != "extract=none load=none" {
		t.Fatalf("second run did not wait for the first run's load: %s", got)
	}
	h.ex.release(h.ex.runningKeys()[0], executor.Succeeded, 0)
	h.settle()
	if r, _ := h.st.Run(h.ctx, "wfd", runs[1].RunID); r.State != dags.RunSuccess {
		t.Fatalf("second run %s: %s", r.State, h.states(r))
	}
}

// A run finishes on the DAG version it started with, and versions no run
// needs are forgotten.
func TestRunKeepsItsVersion(t *testing.T) {
	h := newHarness(t, `
v:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "echo v1"}
    - {task_id: b, operator: BashOperator, bash_command: "echo v1", dependencies: [a]}
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.TaskID == "a" {
			return "", 0
		}
		return executor.Succeeded, 0
	})
	r, _ := h.s.Trigger(h.ctx, "v", TriggerOptions{})
	h.settle()
	h.load(`
v:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "echo v2"}
    - {task_id: b, operator: BashOperator, bash_command: "echo v2", dependencies: [a]}
`)
	h.settle()
	if len(h.s.versions) != 2 {
		t.Fatalf("%d versions kept, want the current one and the running run's", len(h.s.versions))
	}
	h.ex.release(h.ex.runningKeys()[0], executor.Succeeded, 0)
	h.settle()
	if got := h.ex.started[1].Spec.(dags.BashSpec).Command; got != "echo v1" {
		t.Fatalf("b ran %q, want the version its run started with", got)
	}
	if r, _ = h.st.Run(h.ctx, "v", r.RunID); r.State != dags.RunSuccess {
		t.Fatalf("run %s", r.State)
	}
	h.load(strings.ReplaceAll(`
v:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks: [{task_id: a, operator: BashOperator, bash_command: "echo v3"}]
`, "\t", ""))
	h.settle()
	if len(h.s.versions) != 1 {
		t.Fatalf("%d versions kept after the run finished", len(h.s.versions))
	}
}

// A run keeps its version across a restart too: the new process reads the
// version back from the store, although its DAG folder says something else.
func TestRunKeepsItsVersionAcrossRestart(t *testing.T) {
	file := func(cmd string) string {
		return `
v:
  start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  timezone: Europe/Amsterdam
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "echo ` + cmd + `"}
    - {task_id: b, operator: BashOperator, bash_command: "echo ` + cmd + ` {{ ds }}", dependencies: [a]}
`
	}
	h := newHarness(t, file("v1"), utc("2024-03-05T12:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.TaskID == "a" {
			return "", 0
		}
		return executor.Succeeded, 0
	})
	r, _ := h.s.Trigger(h.ctx, "v", TriggerOptions{})
	h.settle()
	// The file changes while the server is down; a new process starts.
	h.load(file("v2"))
	h.s = New(h.st, h.ex, h.bag, Options{Clock: h.clock, LogDir: t.TempDir()})
	if err := h.s.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.ex.release(h.ex.runningKeys()[0], executor.Succeeded, 0)
	h.settle()
	var bs []string
	for _, tr := range h.ex.started {
		if tr.Key.TaskID == "b" {
			bs = append(bs, tr.Key.RunID+": "+tr.Spec.(dags.BashSpec).Command)
		}
	}
	if len(bs) == 0 || bs[0] != r.RunID+": echo v1 2024-03-05" {
		t.Fatalf("b ran %q, want the version its run started with", bs)
	}
	if r, _ = h.st.Run(h.ctx, "v", r.RunID); r.State != dags.RunSuccess {
		t.Fatalf("run %s", r.State)
	}
	// A new run takes the current version.
	h.clock.Set(utc("2024-03-05T13:00:00Z"))
	r2, err := h.s.Trigger(h.ctx, "v", TriggerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := h.ex.started[len(h.ex.started)-1]; got.Key.RunID != r2.RunID || got.Spec.(dags.BashSpec).Command != "echo v2" {
		t.Fatalf("new run ran %s %q", got.Key.RunID, got.Spec.(dags.BashSpec).Command)
	}
}

// When a run ends, a queued run of the same DAG waiting for the
// max_active_runs slot starts on the very next step: the step that ends
// the run asks for another one now, instead of sleeping until the next due
// time (up to a minute with nothing due).
func TestQueuedRunStartsWhenARunEnds(t *testing.T) {
	h := newHarness(t, `
one_at_a_time:
  start_date: 2024-01-01
  schedule: null
  max_active_runs: 1
  is_paused_upon_creation: false
  tasks: [{task_id: t, operator: BashOperator, bash_command: "true"}]
`, utc("2024-05-05T10:00:00Z"), succeed)
	var ids []string
	for _, day := range []string{"2024-05-01T00:00:00Z", "2024-05-02T00:00:00Z"} {
		logical := utc(day)
		r, err := h.s.Trigger(h.ctx, "one_at_a_time", TriggerOptions{LogicalDate: &logical})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.RunID)
	}
	state := func(id string) dags.RunState {
		r, err := h.st.Run(h.ctx, "one_at_a_time", id)
		if err != nil {
			t.Fatal(err)
		}
		return r.State
	}
	for i := 0; i < 100; i++ {
		next, err := h.s.Tick(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if state(ids[0]) == dags.RunSuccess && state(ids[1]) == dags.RunQueued {
			if next.IsZero() || next.After(h.clock.Now()) {
				t.Fatalf("the first run ended with the second queued, and the next step is at %v (now %v)", next, h.clock.Now())
			}
			h.settle()
			if got := state(ids[1]); got != dags.RunSuccess {
				t.Fatalf("second run %s", got)
			}
			return
		}
	}
	t.Fatalf("runs: %s, %s", state(ids[0]), state(ids[1]))
}

// The outbox gets one alert per event, with the change it is about: a
// retry, the final failure, the run's failure; a run cleared and failing
// again is a new run event; a mark is recorded as a mark.
func TestAlertsRecorded(t *testing.T) {
	h := newHarness(t, `
al:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "x", retries: 1, retry_delay: 0}
    - {task_id: b, operator: BashOperator, bash_command: "y", dependencies: [a]}
`, utc("2024-01-01T00:00:00Z"), func(k executor.TryKey) (executor.State, int) { return executor.Failed, 3 })
	r, _ := h.s.Trigger(h.ctx, "al", TriggerOptions{})
	h.settle()
	h.clock.Set(utc("2024-01-01T00:01:00Z"))
	h.settle()
	kinds := func() string {
		all, err := h.st.Alerts(h.ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			a := all[i]
			out = append(out, fmt.Sprintf("%s:%s:%d", a.Kind, a.TaskID, a.Try))
		}
		return strings.Join(out, " ")
	}
	if got := kinds(); got != "task_retry:a:1 task_failed:a:2 run_failed::0" {
		t.Fatalf("alerts: %s", got)
	}
	h.clock.Set(utc("2024-01-01T00:02:00Z"))
	if _, err := h.s.Clear(h.ctx, "al", r.RunID, []string{"a"}, ClearOptions{}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := kinds(); got != "task_retry:a:1 task_failed:a:2 run_failed::0 task_retry:a:3 task_failed:a:4 run_failed::0" {
		t.Fatalf("after clearing: %s", got)
	}
	if _, err := h.s.Mark(h.ctx, store.TIKey{DagID: "al", RunID: r.RunID, TaskID: "b", MapIndex: -1}, dags.StateFailed, "ann"); err != nil {
		t.Fatal(err)
	}
	if all, _ := h.st.Alerts(h.ctx, 1); all[0].Kind != AlertTaskMarkedFailed || all[0].Detail != "marked failed by ann" {
		t.Fatalf("mark: %+v", all[0])
	}
}

// A DAG file that stops loading is an alert, once per change of its
// errors; loading again is a recovery alert.
func TestImportErrorAlerts(t *testing.T) {
	good := "ok:\n  start_date: 2024-01-01\n  schedule: null\n  tasks: [{task_id: t, operator: EmptyOperator}]\n"
	h := newHarness(t, good, utc("2024-01-01T00:00:00Z"), succeed)
	h.settle()
	set := func(body string) {
		res := dags.Load(fstest.MapFS{"dags.yaml": {Data: []byte(body)}}, dags.Options{Now: h.clock.Now()})
		h.bag.mu.Lock()
		h.bag.res, h.bag.at = res, h.bag.at.Add(time.Second)
		h.bag.mu.Unlock()
		h.settle()
	}
	bad := strings.Replace(good, "schedule: null", "schedule: \"0 25 * * *\"", 1)
	set(bad)
	set(bad) // the same errors again: no new alert
	set(strings.Replace(bad, "0 25", "0 26", 1))
	set(good)
	all, _ := h.st.Alerts(h.ctx, 10)
	var got []string
	for i := len(all) - 1; i >= 0; i-- {
		got = append(got, all[i].Kind+":"+all[i].File)
	}
	if strings.Join(got, " ") != "import_error:dags.yaml import_error:dags.yaml import_fixed:dags.yaml" {
		t.Fatalf("alerts: %v", got)
	}
	if !strings.Contains(all[2].Detail, "dags.yaml:3") {
		t.Fatalf("detail: %q", all[2].Detail)
	}
}

// A step hands the executor no more tries than it has free slots, even
// with many ready: the others wait for a slot instead of failing.
func TestExecutorSlotsBoundAStep(t *testing.T) {
	h := newHarness(t, `
wide:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "x"}
    - {task_id: b, operator: BashOperator, bash_command: "x"}
    - {task_id: c, operator: BashOperator, bash_command: "x"}
    - {task_id: d, operator: BashOperator, bash_command: "x"}
    - {task_id: e, operator: BashOperator, bash_command: "x"}
`, utc("2024-01-01T00:00:00Z"), func(executor.TryKey) (executor.State, int) { return "", 0 })
	h.ex.slots = 2
	r, _ := h.s.Trigger(h.ctx, "wide", TriggerOptions{})
	h.settle()
	if n := h.ex.startedCount(); n != 2 {
		t.Fatalf("%d tries started with 2 slots", n)
	}
	for h.ex.startedCount() < 5 {
		keys := h.ex.runningKeys()
		if len(keys) == 0 {
			t.Fatalf("stuck: %s", h.states(r))
		}
		h.ex.release(keys[0], executor.Succeeded, 0)
		h.settle()
	}
	h.ex.mu.Lock()
	for k := range h.ex.running {
		h.ex.mu.Unlock()
		h.ex.release(k, executor.Succeeded, 0)
		h.ex.mu.Lock()
	}
	h.ex.mu.Unlock()
	h.settle()
	if got := h.states(r); got != "a=success b=success c=success d=success e=success" {
		t.Fatalf("states: %s", got)
	}
}

// A try has one outcome: when two come for it (a replica that took a try
// for orphaned closed it as gone and is about to move its task instance
// on, while its owner, alive after all, reports it succeeded), the one
// that closed the try decides; the other changes nothing, so the try row
// and the task instance always agree.
func TestASecondOutcomeForATryIsIgnored(t *testing.T) {
	h := newHarness(t, `
twice:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "x", retries: 1, retry_delay: 0}
`, utc("2024-01-01T00:00:00Z"), func(executor.TryKey) (executor.State, int) { return "", 0 })
	r, _ := h.s.Trigger(h.ctx, "twice", TriggerOptions{})
	h.settle()
	k := executor.TryKey{DagID: "twice", RunID: r.RunID, TaskID: "a", TryNumber: 1, MapIndex: -1}
	// The other replica has closed the try, not yet the task instance.
	if ok, err := h.st.FinishTry(h.ctx, store.TIKey{DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, MapIndex: -1}, 1, dags.StateFailed, h.clock.Now(), nil, "its process is gone"); !ok || err != nil {
		t.Fatalf("close the try: %v %v", ok, err)
	}
	h.ex.events <- executor.Event{Key: k, State: executor.Succeeded, At: h.clock.Now()}
	h.settle()
	ti := h.ti(r, "a")
	tries, _ := h.st.Tries(h.ctx, ti.Key())
	if len(tries) == 0 || tries[0].State != dags.StateFailed {
		t.Fatalf("try 1: %+v", tries)
	}
	if ti.State == dags.StateSuccess && ti.TryNumber == 1 {
		t.Fatalf("the second outcome decided the task instance: %+v (tries %+v)", ti, tries)
	}
}
