package builtin

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"updraft/dags"
	"updraft/executor"
)

// fakeRunsTable stands in for the scheduler: runs by id, with their states.
type fakeRunsTable struct {
	mu     sync.Mutex
	states map[string]string
	resets []string
}

func (f *fakeRunsTable) Trigger(_ context.Context, dagID, runID string, logical time.Time, _ map[string]any, _ string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if runID == "" {
		runID = "manual__" + logical.Format(time.RFC3339)
	}
	if _, ok := f.states[runID]; ok {
		return runID, fmt.Errorf("%w: %s", ErrRunExists, runID)
	}
	f.states[runID] = "queued"
	return runID, nil
}

func (f *fakeRunsTable) Reset(_ context.Context, _, runID, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets = append(f.resets, runID)
	f.states[runID] = "queued"
	return nil
}

func (f *fakeRunsTable) State(_ context.Context, _, runID string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.states[runID], nil
}

func (f *fakeRunsTable) set(runID, state string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states[runID] = state
}

func TestTriggerDagRunOperator(t *testing.T) {
	runs := &fakeRunsTable{states: map[string]string{"old": "success"}}
	ex := New(Options{Runs: runs})
	ctx := context.Background()
	spec := func(mod func(*dags.TriggerDagRunSpec)) dags.TriggerDagRunSpec {
		s := dags.TriggerDagRunSpec{DagID: "target", PokeInterval: 10 * time.Millisecond, AllowedStates: []string{"success"}, FailedStates: []string{"failed"}}
		mod(&s)
		return s
	}
	run := func(id string, s dags.TriggerDagRunSpec) executor.Event {
		t.Helper()
		tr := try(t, id, s)
		if err := ex.Start(ctx, tr); err != nil {
			t.Fatal(err)
		}
		return final(t, ex, tr.Key)
	}
	for _, c := range []struct {
		id    string
		spec  dags.TriggerDagRunSpec
		state executor.State
		why   string
	}{
		{"new", spec(func(s *dags.TriggerDagRunSpec) { s.RunID, s.Logical = "r1", "2024-05-01T00:00:00+00:00" }), executor.Succeeded, ""},
		{"exists", spec(func(s *dags.TriggerDagRunSpec) { s.RunID = "old" }), executor.Failed, "set reset_dag_run to clear it"},
		{"skip", spec(func(s *dags.TriggerDagRunSpec) { s.RunID, s.SkipIfExists = "old", true }), executor.Skipped, ""},
		{"baddate", spec(func(s *dags.TriggerDagRunSpec) { s.RunID, s.Logical = "r2", "yesterday" }), executor.Failed, `logical_date "yesterday" is not a date and time`},
	} {
		ev := run(c.id, c.spec)
		if ev.State != c.state || !strings.Contains(ev.Reason, c.why) {
			t.Errorf("%s: %+v", c.id, ev)
		}
		// The run it started is pushed as Airflow pushes it, whatever do_xcom_push says.
		if c.id == "new" && (string(ev.XCom["trigger_run_id"]) != `"r1"` || string(ev.XCom["trigger_logical_date_iso"]) != `"2024-05-01T00:00:00+00:00"` || ev.XCom["return_value"] != nil) {
			t.Errorf("XCom of the trigger: %+v", ev.XCom)
		}
	}
	// Waiting: the run is polled until it ends; a failed_states end fails.
	go func() {
		time.Sleep(50 * time.Millisecond)
		runs.set("old", "failed")
	}()
	if ev := run("wait", spec(func(s *dags.TriggerDagRunSpec) { s.RunID, s.Reset, s.Wait = "old", true, true })); ev.State != executor.Failed ||
		!strings.Contains(ev.Reason, "run old of target ended failed, one of failed_states") {
		t.Fatalf("wait: %+v", ev)
	}
	if len(runs.resets) != 1 || runs.resets[0] != "old" {
		t.Errorf("resets: %v", runs.resets)
	}
	// Without the scheduler's commands the task says so.
	bare := New(Options{})
	tr := try(t, "bare", spec(func(*dags.TriggerDagRunSpec) {}))
	bare.Start(ctx, tr)
	if ev := final(t, bare, tr.Key); ev.State != executor.Failed || !strings.Contains(ev.Reason, "cannot start runs of other DAGs") {
		t.Errorf("bare: %+v", ev)
	}
}
