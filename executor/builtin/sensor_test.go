package builtin

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/store/pgtest"
)

// fakeRuns stands in for the store: what the other DAG's runs are, changed
// by the test while a sensor pokes.
type fakeRuns struct {
	mu     sync.Mutex
	exists bool
	runID  string
	state  string
	tasks  map[string]string
	pokes  int
}

func (f *fakeRuns) lookup(_ context.Context, dagID string, logical time.Time, taskIDs []string) (ExternalState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pokes++
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

// waitPokes returns once the sensors have looked twice more: the last
// change has been seen.
func (f *fakeRuns) waitPokes(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	want := f.pokes + 2
	f.mu.Unlock()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		f.mu.Lock()
		n := f.pokes
		f.mu.Unlock()
		if n >= want {
			return
		}
	}
	t.Fatal("the sensor stopped poking")
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
	runs.waitPokes(t)
	runs.set(func(f *fakeRuns) {
		f.runID, f.state, f.tasks = "scheduled__2024-01-01", "running", map[string]string{"load": "running"}
	})
	runs.waitPokes(t)
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
	runs.waitPokes(t)
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

func TestHttpSensor(t *testing.T) {
	var mu sync.Mutex
	answers := []struct {
		status int
		body   string
	}{{404, ""}, {200, `{"ready": false}`}, {200, `{"ready": true}`}}
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/broken" {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		a := answers[min(calls, len(answers)-1)]
		calls++
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	defer srv.Close()
	env := map[string]string{"UPDRAFT_CONN_API": srv.URL}
	ex := New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }}})
	settings := dags.SensorSettings{PokeInterval: 10 * time.Millisecond, Timeout: time.Minute, Mode: "poke"}
	ctx := context.Background()
	tr := try(t, "ready", dags.HttpSensorSpec{Request: dags.HttpSpec{ConnID: "api", Endpoint: "/exports/ready", Method: "GET", CheckRegex: `"ready":\s*true`},
		NotYetStatus: []int{404}, Sensor: settings})
	if err := ex.Start(ctx, tr); err != nil {
		t.Fatal(err)
	}
	if ev := final(t, ex, tr.Key); ev.State != executor.Succeeded {
		t.Fatalf("ready: %+v", ev)
	}
	log, _ := os.ReadFile(tr.LogPath)
	if !strings.Contains(string(log), "poke 1: HTTP 404, not yet") || !strings.Contains(string(log), "poke 2: response check: the body does not match") {
		t.Errorf("log:\n%s", log)
	}
	mu.Lock()
	if calls != 3 {
		t.Errorf("%d requests, want 3", calls)
	}
	mu.Unlock()
	// An error status outside the allowlist fails the try (retries apply).
	tr = try(t, "broken", dags.HttpSensorSpec{Request: dags.HttpSpec{ConnID: "api", Endpoint: "/broken", Method: "GET"}, NotYetStatus: []int{404}, Sensor: settings})
	ex.Start(ctx, tr)
	if ev := final(t, ex, tr.Key); ev.State != executor.Failed || ev.Final || ev.Reason != "HTTP 500 Internal Server Error" {
		t.Fatalf("broken: %+v", ev)
	}
}

// The SQL sensor against a real PostgreSQL: it waits for a row count to
// become non-zero, and fail_on_empty fails a query without rows.
func TestSqlSensorOnPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "sensing")
	env := map[string]string{"UPDRAFT_CONN_WH": strings.Replace(dsn, "postgres://", "postgresql://", 1)}
	ex := New(Options{Connections: Connections{Getenv: func(k string) string { return env[k] }}})
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE loads (day date, n numeric)`); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	settings := dags.SensorSettings{PokeInterval: 20 * time.Millisecond, Timeout: time.Minute, Mode: "poke"}
	tr := try(t, "rows", dags.SqlSensorSpec{Query: dags.SQLSpec{ConnID: "wh", SQL: []string{"SELECT COALESCE(sum(n), 0) FROM loads WHERE day = %(day)s::date"},
		NamedParameters: map[string]any{"day": "2024-05-01"}}, Sensor: settings})
	if err := ex.Start(ctx, tr); err != nil {
		t.Fatal(err)
	}
	// Each change goes in once the sensor has seen the state before it.
	logSays := func(text string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if log, _ := os.ReadFile(tr.LogPath); strings.Count(string(log), text) >= 1 {
				return
			}
		}
		t.Fatalf("the log never said %q", text)
	}
	logSays("first cell 0: false")
	if _, err := db.Exec(`INSERT INTO loads VALUES ('2024-04-30', 5), ('2024-05-01', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO loads VALUES ('2024-05-01', 2)`); err != nil {
		t.Fatal(err)
	}
	if ev := final(t, ex, tr.Key); ev.State != executor.Succeeded {
		t.Fatalf("rows: %+v", ev)
	}
	log, _ := os.ReadFile(tr.LogPath)
	if !strings.Contains(string(log), "first cell 0: false") || !strings.Contains(string(log), "first cell 2: true") {
		t.Errorf("log:\n%s", log)
	}
	tr = try(t, "empty", dags.SqlSensorSpec{Query: dags.SQLSpec{ConnID: "wh", SQL: []string{"SELECT n FROM loads WHERE day = '1999-01-01'"}}, FailOnEmpty: true, Sensor: settings})
	ex.Start(ctx, tr)
	if ev := final(t, ex, tr.Key); ev.State != executor.Failed || !strings.Contains(ev.Reason, "no row (fail_on_empty)") {
		t.Fatalf("fail_on_empty: %+v", ev)
	}
}

func TestTruthy(t *testing.T) {
	for v, want := range map[any]bool{nil: false, false: false, true: true, int64(0): false, int64(3): true, 0.0: false, 0.5: true,
		"": false, "0": false, "0.00": false, "12": true, "yes": true} {
		if got := truthy(v); got != want {
			t.Errorf("truthy(%#v) = %v", v, got)
		}
	}
	if truthy([]byte("0")) || !truthy([]byte("x")) {
		t.Error("bytes")
	}
}
