package scheduler

import (
	"sync/atomic"
	"testing"
	"time"

	"updraft/executor"
	"updraft/store"
)

const deadlineDAGs = `
late:
  start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  is_paused_upon_creation: false
  deadline: {reference: dagrun_logical_date, interval: 26h}
  tasks:
    - {task_id: slow, operator: BashOperator, bash_command: "sleep 1", sla: 3600}
old:
  start_date: 2024-01-01
  schedule: "@daily"
  max_active_runs: 16
  is_paused_upon_creation: false
  deadline: {reference: dagrun_logical_date, interval: 26h}
  tasks:
    - {task_id: t, operator: BashOperator, bash_command: "true", sla: 60}
`

func deadlineAlerts(t *testing.T, h *harness, dagID string) []store.Alert {
	t.Helper()
	all, err := h.st.Alerts(h.ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []store.Alert
	for _, a := range all {
		if a.Kind == store.AlertDeadlineMissed && a.DagID == dagID {
			out = append(out, a)
		}
	}
	return out
}

// A task past its sla and a run past its deadline are recorded once each,
// with one alert each, at the time they fall due (the step wakes for
// them), also across a restart; a run that ends in time records nothing;
// catch-up runs created after their deadlines record their misses
// without alerts.
func TestDeadlinesAndSLAsAreMissedOnce(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	h := newHarness(t, deadlineDAGs, utc("2024-01-11T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		if k.DagID == "late" && hold.Load() {
			return "", 0
		}
		return executor.Succeeded, 0
	})
	next := h.settle()
	misses := func(dagID string) []store.Miss {
		ms, _, err := h.st.Misses(h.ctx, store.MissFilter{DagID: dagID})
		if err != nil {
			t.Fatal(err)
		}
		return ms
	}
	if n := len(misses("late")); n != 0 {
		t.Fatalf("%d misses before any deadline", n)
	}
	if !next.Equal(utc("2024-01-11T01:00:00Z")) {
		t.Errorf("next wake %v, want the sla (01:00)", next)
	}
	// The catch-up runs of "old" (01-01 to 01-09) were created after
	// their deadlines: recorded, not alerted. Its latest (01-10) ended in time.
	old := misses("old")
	if len(old) != 18 || len(deadlineAlerts(t, h, "old")) != 0 {
		t.Fatalf("old: %d misses, %d alerts; want 18 silent (9 runs x deadline and sla)", len(old), len(deadlineAlerts(t, h, "old")))
	}
	for _, m := range old {
		if m.Alerted || m.RunID == "scheduled__2024-01-10T00:00:00+00:00" {
			t.Errorf("old miss: %+v", m)
		}
	}

	h.at(utc("2024-01-11T01:30:00Z"))
	ms := misses("late")
	if len(ms) != 1 || ms[0].TaskID != "slow" || ms[0].Kind != "sla" || !ms[0].Alerted || ms[0].Late() != 30*time.Minute {
		t.Fatalf("after the sla: %+v", ms)
	}
	h.at(utc("2024-01-11T02:30:00Z"))
	if ms = misses("late"); len(ms) != 2 || ms[0].TaskID != "" || ms[0].What != "logical date + 26h0m0s" {
		t.Fatalf("after the deadline: %+v", ms)
	}
	// A restart looks again and records nothing twice.
	h.s = New(h.st, h.ex, h.bag, Options{Clock: h.clock, LogDir: t.TempDir()})
	if err := h.s.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.at(utc("2024-01-11T03:00:00Z"))
	hold.Store(false)
	for _, k := range h.ex.runningKeys() {
		h.ex.release(k, executor.Succeeded, 0)
	}
	h.settle()
	alerts := deadlineAlerts(t, h, "late")
	if len(misses("late")) != 2 || len(alerts) != 2 {
		t.Fatalf("after a restart and the end: %d misses, %d alerts", len(misses("late")), len(alerts))
	}
	for _, a := range alerts {
		if a.TaskID == "" && (a.Try != 1 || a.Detail != "logical date + 26h0m0s (2024-01-11 02:00 UTC), 30m0s late") {
			t.Errorf("run alert: %+v", a)
		}
	}
	// The next day's run ends in time: nothing.
	h.at(utc("2024-01-12T00:00:00Z"))
	if n := len(misses("late")); n != 2 {
		t.Errorf("a run in time recorded a miss: %d", n)
	}
}
