package scheduler

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
)

const backfillDAG = `
daily:
  start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  max_active_runs: 1
  is_paused_upon_creation: false
  tasks:
    - {task_id: extract, operator: BashOperator, bash_command: "echo {{ ds }}"}
`

// backfillHarness has a daily DAG at 2024-01-11 whose latest run
// (2024-01-10) succeeded, a manual run on 01-03 whose first try failed and
// one on 01-04 that succeeded. Backfill tries stay running while hold is
// set.
func backfillHarness(t *testing.T, hold *atomic.Bool) *harness {
	h := newHarness(t, backfillDAG, utc("2024-01-11T00:00:00Z"), func(k executor.TryKey) (executor.State, int) {
		switch {
		case strings.HasPrefix(k.RunID, "backfill__") && hold.Load():
			return "", 0
		case k.RunID == "manual_0103" && k.TryNumber == 1:
			return executor.Failed, 1
		}
		return executor.Succeeded, 0
	})
	h.settle()
	for _, day := range []string{"03", "04"} {
		logical := utc("2024-01-" + day + "T00:00:00Z")
		if _, err := h.s.Trigger(h.ctx, "daily", TriggerOptions{RunID: "manual_01" + day, LogicalDate: &logical, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		h.settle()
	}
	return h
}

func runningBackfillRuns(h *harness) []string {
	var out []string
	for _, r := range h.runs("daily") {
		if r.BackfillID != 0 && r.State == dags.RunRunning {
			out = append(out, r.LogicalDate.Format("01-02"))
		}
	}
	return out
}

// A backfill makes the missing runs, reprocesses the failed one, leaves
// the successful ones, runs newest first two at a time beside the DAG's
// own max_active_runs, pauses, and completes; no date gets a second run.
func TestBackfillRunsTheRangeUnderItsOwnLimit(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	h := backfillHarness(t, &hold)
	o := BackfillOptions{DagID: "daily", From: utc("2024-01-01T00:00:00Z"), To: utc("2024-01-10T00:00:00Z"),
		RunBackwards: true, Reprocess: store.ReprocessFailed, MaxActiveRuns: 2, Conf: map[string]any{"full": true}, DryRun: true, Actor: "ann"}
	_, dates, err := h.s.Backfill(h.ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for _, d := range dates {
		what := "new"
		switch {
		case d.Take:
			what = "again"
		case d.Exception != "":
			what = d.Exception
		}
		plan = append(plan, d.LogicalDate.Format("02")+":"+what)
	}
	want := "10:already exists 09:new 08:new 07:new 06:new 05:new 04:already exists 03:again 02:new 01:new"
	if strings.Join(plan, " ") != want {
		t.Fatalf("dry run:\n got %s\nwant %s", strings.Join(plan, " "), want)
	}
	if bs, _, _ := h.st.Backfills(h.ctx, store.BackfillFilter{}); len(bs) != 0 {
		t.Fatalf("a dry run recorded %d backfills", len(bs))
	}

	o.DryRun = false
	b, _, err := h.s.Backfill(h.ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := strings.Join(runningBackfillRuns(h), " "); got != "01-08 01-09" {
		t.Fatalf("running backfill runs: %q, want the newest two", got)
	}
	// The DAG's own runs are not held up by the backfill's.
	manual := utc("2024-01-20T00:00:00Z")
	if _, err := h.s.Trigger(h.ctx, "daily", TriggerOptions{RunID: "beside", LogicalDate: &manual}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if r, _ := h.st.Run(h.ctx, "daily", "beside"); r.State != dags.RunSuccess {
		t.Fatalf("a manual run beside the backfill: %s", r.State)
	}
	// One backfill of a DAG at a time.
	if _, _, err := h.s.Backfill(h.ctx, o); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a second backfill: %v", err)
	}
	// Paused, the running ones end and no other starts.
	if _, err := h.s.ChangeBackfill(h.ctx, b.ID, BackfillPause, "ann"); err != nil {
		t.Fatal(err)
	}
	for _, k := range h.ex.runningKeys() {
		h.ex.release(k, executor.Succeeded, 0)
	}
	h.settle()
	if got := runningBackfillRuns(h); len(got) != 0 {
		t.Fatalf("a paused backfill started %v", got)
	}
	hold.Store(false)
	if _, err := h.s.ChangeBackfill(h.ctx, b.ID, BackfillUnpause, "ann"); err != nil {
		t.Fatal(err)
	}
	h.settle()
	runs := h.runs("daily")
	if len(runs) != 11 { // ten days and the manual run beside
		t.Fatalf("%d runs, want 11 (no date twice)", len(runs))
	}
	for _, r := range runs {
		if r.State != dags.RunSuccess {
			t.Errorf("run %s: %s", r.RunID, r.State)
		}
		day := r.LogicalDate.Format("02")
		inBackfill := day != "10" && day != "04" && day != "20"
		if (r.BackfillID == b.ID) != inBackfill {
			t.Errorf("run %s: backfill %d", r.RunID, r.BackfillID)
		}
		if r.RunType == dags.RunTypeBackfill && r.Conf["full"] != true {
			t.Errorf("run %s conf %v", r.RunID, r.Conf)
		}
	}
	if ti := h.ti(runs[2], "extract"); runs[2].RunID != "manual_0103" || ti.TryNumber != 2 {
		t.Errorf("the failed run was not run again: %s try %d", runs[2].RunID, ti.TryNumber)
	}
	done, err := h.st.Backfill(h.ctx, b.ID)
	if err != nil || done.CompletedAt == nil {
		t.Fatalf("backfill not completed: %+v %v", done, err)
	}
	if _, err := h.s.ChangeBackfill(h.ctx, b.ID, BackfillPause, "ann"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("pausing a completed backfill: %v", err)
	}
}

// Cancelled, a backfill's runs that have not started fail, the running
// one goes on, and the backfill completes.
func TestBackfillCancel(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	h := backfillHarness(t, &hold)
	b, _, err := h.s.Backfill(h.ctx, BackfillOptions{DagID: "daily", From: utc("2024-01-05T00:00:00Z"), To: utc("2024-01-08T00:00:00Z"), MaxActiveRuns: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := strings.Join(runningBackfillRuns(h), " "); got != "01-05" {
		t.Fatalf("running: %q, want the oldest", got)
	}
	if b, err = h.s.ChangeBackfill(h.ctx, b.ID, BackfillCancel, "ann"); err != nil || b.CompletedAt == nil {
		t.Fatalf("cancel: %+v %v", b, err)
	}
	for _, k := range h.ex.runningKeys() {
		h.ex.release(k, executor.Succeeded, 0)
	}
	h.settle()
	states := map[string]string{}
	for _, r := range h.runs("daily") {
		if r.BackfillID == b.ID {
			states[r.LogicalDate.Format("02")] = string(r.State)
			if r.State == dags.RunFailed && !strings.Contains(r.Note, "cancelled") {
				t.Errorf("run %s note %q", r.RunID, r.Note)
			}
		}
	}
	if len(states) != 4 || states["05"] != "success" || states["06"] != "failed" || states["08"] != "failed" {
		t.Fatalf("after the cancel: %v", states)
	}
}

// What a backfill refuses, and says why.
func TestBackfillRefuses(t *testing.T) {
	var hold atomic.Bool
	h := backfillHarness(t, &hold)
	for _, tc := range []struct {
		o    BackfillOptions
		want string
	}{
		{BackfillOptions{DagID: "daily", From: utc("2024-01-05T00:00:00Z"), To: utc("2024-01-01T00:00:00Z")}, "before"},
		{BackfillOptions{DagID: "daily", From: utc("2030-01-01T00:00:00Z"), To: utc("2030-01-02T00:00:00Z")}, "future"},
		{BackfillOptions{DagID: "daily", From: utc("2024-01-01T00:00:00Z"), To: utc("2024-01-02T00:00:00Z"), Reprocess: "all"}, "reprocess_behavior"},
		{BackfillOptions{DagID: "daily", From: utc("2024-01-01T00:00:00Z"), To: utc("2024-01-02T00:00:00Z"), MaxActiveRuns: -1}, "max_active_runs"},
		{BackfillOptions{DagID: "nope", From: utc("2024-01-01T00:00:00Z"), To: utc("2024-01-02T00:00:00Z")}, "nope"},
	} {
		if _, _, err := h.s.Backfill(h.ctx, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// A backfill is in the database: a scheduler started after a crash goes on
// with it, under its limit, and creates none of its runs again.
func TestBackfillSurvivesARestart(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	h := backfillHarness(t, &hold)
	b, _, err := h.s.Backfill(h.ctx, BackfillOptions{DagID: "daily", From: utc("2024-01-05T00:00:00Z"), To: utc("2024-01-09T00:00:00Z"), MaxActiveRuns: 2})
	if err != nil {
		t.Fatal(err)
	}
	h.settle()
	// The process dies; its running tries survive it (as pods and detached
	// processes do) and a new scheduler adopts them.
	h.s = New(h.st, h.ex, h.bag, Options{Clock: h.clock, LogDir: t.TempDir()})
	if err := h.s.Recover(h.ctx); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := strings.Join(runningBackfillRuns(h), " "); got != "01-05 01-06" {
		t.Fatalf("after the restart: running %q", got)
	}
	hold.Store(false)
	for _, k := range h.ex.runningKeys() {
		h.ex.release(k, executor.Succeeded, 0)
	}
	h.settle()
	n := 0
	for _, r := range h.runs("daily") {
		if r.BackfillID == b.ID {
			n++
			if r.State != dags.RunSuccess {
				t.Errorf("run %s: %s", r.RunID, r.State)
			}
		}
	}
	if done, _ := h.st.Backfill(h.ctx, b.ID); n != 5 || done.CompletedAt == nil {
		t.Fatalf("%d backfill runs (want 5), completed %v", n, done.CompletedAt)
	}
}
