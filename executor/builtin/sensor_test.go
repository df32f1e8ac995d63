package builtin

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"updraft/dags"
	"updraft/executor"
)

// fakeRuns stands in for the store: what the other DAG's runs are, changed
// by the test while a sensor pokes.
type fakeRuns struct {
	mu     sync.Mutex
	exists bool
	runID  string
	state  string
	tasks  map[string]string
}

func (f *fakeRuns) lookup(_ context.Context, dagID string, logical time.Time, taskIDs []string) (ExternalState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tasks := map[string]string{}
	for k, v := range f.tasks {
		tasks[k] = v
	}
	return ExternalState{DAGExists: f.exists, RunID: f.runID, RunState: f.state, Tasks: tasks}, nil
}

func (f *fakeRuns) set(fn func(*fakeRuns)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func sensorSpec(mod func(*dags.ExternalTaskSpec)) dags.ExternalTaskSpec {
	s := dags.ExternalTaskSpec{ExternalDagID: "producer", ExternalTaskIDs: []string{"load"}, AllowedStates: []string{"success"},
		Sensor:      dags.SensorSettings{PokeInterval: 20 * time.Millisecond, Timeout: time.Minute, Mode: "poke"},
		LogicalDate: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	if mod != nil {
		mod(&s)
	}
	return s
}

func TestExternalTaskSensor(t *testing.T) {
	runs := &fakeRuns{exists: true}
	ex := New(Options{External: runs.lookup, Slots: 1})
	ctx := context.Background()
	start := func(id string, spec dags.ExternalTaskSpec) executor.Try {
		t.Helper()
		tr := try(t, id, spec)
		if err := ex.Start(ctx, tr); err != nil {
			t.Fatal(err)
		}
		return tr
	}
	// It waits through "no run yet" and "running", and succeeds on success.
	tr := start("wait", sensorSpec(nil))
	if ex.Free() != 1 {
		t.Errorf("a sensor took a slot: %d free", ex.Free())
	}
	time.Sleep(60 * time.Millisecond)
	runs.set(func(f *fakeRuns) {
		f.runID, f.state, f.tasks = "scheduled__2024-01-01", "running", map[string]string{"load": "running"}
	})
	time.Sleep(60 * time.Millisecond)
	runs.set(func(f *fakeRuns) { f.tasks["load"] = "success" })
	if ev := final(t, ex, tr.Key); ev.State != executor.Succeeded {
		t.Fatalf("wait: %+v", ev)
	}
	log, _ := os.ReadFile(tr.LogPath)
	for _, want := range []string{"waiting for producer.load at logical date 2024-01-01T00:00:00Z to be success", "has no run at", "load in run scheduled__2024-01-01: running", ": success"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// failed_states fail the try (retries may follow); skipped_states skip it.
	runs.set(func(f *fakeRuns) { f.tasks["load"] = "failed" })
	tr = start("failed", sensorSpec(func(s *dags.ExternalTaskSpec) { s.FailedStates = []string{"failed"} }))
	if ev := final(t, ex, tr.Key); ev.State != executor.Failed || ev.Final || !strings.Contains(ev.Reason, "producer.load in run scheduled__2024-01-01 is failed, one of failed_states") {
		t.Fatalf("failed_states: %+v", ev)
	}
	tr = start("skipped", sensorSpec(func(s *dags.ExternalTaskSpec) { s.SkippedStates = []string{"failed"} }))
	if ev := final(t, ex, tr.Key); ev.State != executor.Skipped {
		t.Fatalf("skipped_states: %+v", ev)
	}
	// A timeout is final; with soft_fail the try is skipped instead.
	tr = start("timeout", sensorSpec(func(s *dags.ExternalTaskSpec) { s.Sensor.Timeout = 100 * time.Millisecond }))
	if ev := final(t, ex, tr.Key); ev.State != executor.Failed || !ev.Final || !strings.Contains(ev.Reason, "sensor timeout: the condition did not hold within 100ms") {
		t.Fatalf("timeout: %+v", ev)
	}
	tr = start("soft", sensorSpec(func(s *dags.ExternalTaskSpec) {
		s.Sensor.Timeout, s.Sensor.SoftFail = 100*time.Millisecond, true
	}))
	if ev := final(t, ex, tr.Key); ev.State != executor.Skipped {
		t.Fatalf("soft_fail: %+v", ev)
	}
	// The whole run's state when no task is named; check_existence.
	runs.set(func(f *fakeRuns) { f.state = "success" })
	tr = start("run", sensorSpec(func(s *dags.ExternalTaskSpec) { s.ExternalTaskIDs = nil }))
	if ev := final(t, ex, tr.Key); ev.State != executor.Succeeded {
		t.Fatalf("run state: %+v", ev)
	}
	runs.set(func(f *fakeRuns) { f.exists = false })
	tr = start("exists", sensorSpec(func(s *dags.ExternalTaskSpec) { s.CheckExistence = true }))
	if ev := final(t, ex, tr.Key); ev.State != executor.Failed || !strings.Contains(ev.Reason, "does not exist (check_existence)") {
		t.Fatalf("check_existence: %+v", ev)
	}
	// A kill (a clear, execution_timeout) ends the wait at once.
	runs.set(func(f *fakeRuns) { f.exists, f.runID = true, "" })
	tr = start("killed", sensorSpec(nil))
	time.Sleep(30 * time.Millisecond)
	ex.Kill(ctx, tr.Key, "killed: cleared")
	if ev := final(t, ex, tr.Key); ev.State != executor.Failed || ev.Final || ev.Reason != "killed: cleared" {
		t.Fatalf("kill: %+v", ev)
	}
}

func TestSensorBackoff(t *testing.T) {
	s := dags.SensorSettings{PokeInterval: time.Minute, ExponentialBackoff: true, MaxWait: 5 * time.Minute}
	var got []time.Duration
	for n := 1; n <= 5; n++ {
		got = append(got, s.NextPoke(n, time.Hour))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 5 * time.Minute, 5 * time.Minute}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
	if d := s.NextPoke(1, 10*time.Second); d != 10*time.Second {
		t.Errorf("past the timeout: %v", d)
	}
}
