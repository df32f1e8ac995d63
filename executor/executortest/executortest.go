// Package executortest is the executor conformance suite: the local and
// the Kubernetes executors both pass it.
package executortest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"updraft/dags"
	"updraft/executor"
)

// Behavior is what a try should do; each executor's harness turns it into
// an operator spec (a shell command, a pod with test annotations).
type Behavior struct {
	ExitCode int
	Duration time.Duration // how long it runs before ending
	Forever  bool          // runs until killed
	Output   string        // printed before it ends (checked where Logs is set)
	// PushXCom makes the try a pod task with do_xcom_push that writes
	// XCom (JSON) to /airflow/xcom/return.json; "" writes no file.
	PushXCom bool
	XCom     string
}

// Harness describes an executor under test.
type Harness struct {
	// New makes an executor with the given slots, and a function that
	// stops it as a crash would (its tries go on without it). Two
	// executors made by one harness share their world as two scheduler
	// processes would: the second can adopt the first's tries.
	New func(t *testing.T, slots int) (ex executor.Executor, crash func())
	// Spec makes the spec of a try that behaves as b.
	Spec func(b Behavior) dags.OperatorSpec
	// Logs says whether the executor captures what a try prints.
	Logs bool
	// Within bounds how long one outcome may take.
	Within time.Duration
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	if h.Within == 0 {
		h.Within = 60 * time.Second
	}
	t.Run("Success", func(t *testing.T) {
		testOutcome(t, h, Behavior{ExitCode: 0, Output: "hello"}, nil, executor.Succeeded, 0)
	})
	t.Run("Failure", func(t *testing.T) {
		testOutcome(t, h, Behavior{ExitCode: 3, Output: "before"}, nil, executor.Failed, 3)
	})
	t.Run("SkipExitCode", func(t *testing.T) {
		testOutcome(t, h, Behavior{ExitCode: 99}, []int{99}, executor.Skipped, 99)
	})
	t.Run("Empty", func(t *testing.T) { testEmpty(t, h) })
	t.Run("Kill", func(t *testing.T) { testKill(t, h) })
	t.Run("Timeout", func(t *testing.T) { testTimeout(t, h) })
	t.Run("Full", func(t *testing.T) { testFull(t, h) })
	t.Run("AdoptRunning", func(t *testing.T) { testAdoptRunning(t, h) })
	t.Run("AdoptFinished", func(t *testing.T) { testAdoptFinished(t, h) })
	t.Run("AdoptGone", func(t *testing.T) { testAdoptGone(t, h) })
	t.Run("XCom", func(t *testing.T) { testXCom(t, h) })
	t.Run("AdoptXCom", func(t *testing.T) { testAdoptXCom(t, h) })
}

// xcomTry is a try that pushes b's XCom.
func xcomTry(t *testing.T, h Harness, b Behavior) executor.Try {
	b.PushXCom = true
	try := NewTry(t, h.Spec(b))
	try.XComPush = true
	return try
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// A pod task's return.json is its XCom; one that is missing or not JSON
// fails the try and says why.
func testXCom(t *testing.T, h Harness) {
	ex, _ := h.New(t, 1)
	run := func(b Behavior) executor.Event {
		try := xcomTry(t, h, b)
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		return Final(t, ex, try.Key, h.Within)
	}
	if ev := run(Behavior{XCom: `{"new_tables": ["events_v2", "pages"]}`}); ev.State != executor.Succeeded || !sameJSON(ev.XCom[dags.ReturnValueKey], []byte(`{"new_tables": ["events_v2", "pages"]}`)) {
		t.Errorf("XCom: %+v %s", ev, ev.XCom[dags.ReturnValueKey])
	}
	if ev := run(Behavior{}); ev.State != executor.Failed || !strings.Contains(ev.Reason, "return.json") || ev.XCom != nil {
		t.Errorf("no return.json: %+v", ev)
	}
	if ev := run(Behavior{XCom: `{"new_tables": [`}); ev.State != executor.Failed || !strings.Contains(ev.Reason, "not JSON") {
		t.Errorf("return.json that is not JSON: %+v", ev)
	}
}

// A try that ended while no executor watched still hands over its XCom.
func testAdoptXCom(t *testing.T, h Harness) {
	try := xcomTry(t, h, Behavior{XCom: `[1, 2, 3]`, Duration: time.Second, Output: "started"})
	if ev := endUnwatched(t, h, try); ev.State != executor.Succeeded || !sameJSON(ev.XCom[dags.ReturnValueKey], []byte(`[1,2,3]`)) {
		t.Fatalf("adopted: %+v %s", ev, ev.XCom[dags.ReturnValueKey])
	}
}

var seq atomic.Int64

// NewTry returns a try with a fresh identity and its own log file.
func NewTry(t *testing.T, spec dags.OperatorSpec) executor.Try {
	n := int(seq.Add(1))
	task := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	return executor.Try{
		Key:     executor.TryKey{DagID: "conformance", RunID: fmt.Sprintf("manual__2024-01-01T00:00:%02d+00:00", n%60), TaskID: task, TryNumber: n, MapIndex: -1},
		Spec:    spec,
		LogPath: filepath.Join(t.TempDir(), "try.log"),
	}
}

// Final waits for the try's final event, skipping Running.
func Final(t *testing.T, ex executor.Executor, k executor.TryKey, within time.Duration) executor.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev := <-ex.Events():
			if ev.Key != k {
				t.Fatalf("event for another try: %+v", ev)
			}
			if ev.State != executor.Running {
				return ev
			}
		case <-deadline:
			t.Fatalf("no final event for %s within %v", k, within)
		}
	}
}

// Running waits for the try's Running event.
func Running(t *testing.T, ex executor.Executor, k executor.TryKey, within time.Duration) executor.Event {
	t.Helper()
	select {
	case ev := <-ex.Events():
		if ev.Key != k || ev.State != executor.Running {
			t.Fatalf("want Running for %s, got %+v", k, ev)
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no Running event for %s within %v", k, within)
	}
	return executor.Event{}
}

func readLog(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func testOutcome(t *testing.T, h Harness, b Behavior, skip []int, want executor.State, code int) {
	ex, _ := h.New(t, 2)
	try := NewTry(t, h.Spec(b))
	try.SkipOn = skip
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	ev := Final(t, ex, try.Key, h.Within)
	if ev.State != want || ev.ExitCode == nil || *ev.ExitCode != code {
		t.Fatalf("event = %+v, want %s with exit code %d", ev, want, code)
	}
	if want != executor.Succeeded && !strings.Contains(ev.Reason, fmt.Sprint(code)) {
		t.Fatalf("reason %q does not give the exit code %d", ev.Reason, code)
	}
	if h.Logs && b.Output != "" && !strings.Contains(readLog(try.LogPath), b.Output) {
		t.Fatalf("output %q missing from the log:\n%s", b.Output, readLog(try.LogPath))
	}
	if log := readLog(try.LogPath); !strings.Contains(log, "try ended: "+string(want)) {
		t.Fatalf("the log does not record the outcome:\n%s", log)
	}
}

func testEmpty(t *testing.T, h Harness) {
	ex, _ := h.New(t, 1)
	try := NewTry(t, dags.EmptySpec{})
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	if ev := Final(t, ex, try.Key, h.Within); ev.State != executor.Succeeded {
		t.Fatalf("event = %+v", ev)
	}
}

func testKill(t *testing.T, h Harness) {
	ex, _ := h.New(t, 1)
	try := NewTry(t, h.Spec(Behavior{Forever: true}))
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	Running(t, ex, try.Key, h.Within)
	if err := ex.Kill(context.Background(), try.Key, "killed: marked failed"); err != nil {
		t.Fatal(err)
	}
	ev := Final(t, ex, try.Key, h.Within)
	if ev.State != executor.Failed || ev.Reason != "killed: marked failed" {
		t.Fatalf("event = %+v", ev)
	}
	if err := ex.Kill(context.Background(), try.Key, "again"); err != nil {
		t.Fatalf("killing a finished try: %v", err)
	}
}

func testTimeout(t *testing.T, h Harness) {
	ex, _ := h.New(t, 1)
	try := NewTry(t, h.Spec(Behavior{Forever: true}))
	try.Timeout = 2 * time.Second
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	ev := Final(t, ex, try.Key, h.Within)
	if ev.State != executor.Failed || !strings.Contains(ev.Reason, "execution_timeout") {
		t.Fatalf("event = %+v", ev)
	}
}

func testFull(t *testing.T, h Harness) {
	ex, _ := h.New(t, 1)
	a, b := NewTry(t, h.Spec(Behavior{Duration: time.Second})), NewTry(t, h.Spec(Behavior{}))
	if err := ex.Start(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if ex.Free() != 0 {
		t.Fatalf("free = %d with one slot in use", ex.Free())
	}
	if err := ex.Start(context.Background(), b); !errors.Is(err, executor.ErrFull) {
		t.Fatalf("second start: %v", err)
	}
	Final(t, ex, a.Key, h.Within)
	if ex.Free() != 1 {
		t.Fatalf("free = %d after the try ended", ex.Free())
	}
}

// started waits until a try has really begun (its output shows, where the
// executor captures output).
func started(t *testing.T, h Harness, ex executor.Executor, try executor.Try) {
	t.Helper()
	Running(t, ex, try.Key, h.Within)
	if !h.Logs {
		return
	}
	for i := 0; i < 3000; i++ {
		if strings.Contains(readLog(try.LogPath), "started") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("the try never printed 'started':\n%s", readLog(try.LogPath))
}

// A try started by one executor, which then crashes, is adopted by another
// (a restarted scheduler) and its real exit code still arrives.
func testAdoptRunning(t *testing.T, h Harness) {
	first, crash := h.New(t, 1)
	try := NewTry(t, h.Spec(Behavior{ExitCode: 4, Duration: 3 * time.Second, Output: "started"}))
	if err := first.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	started(t, h, first, try)
	crash()
	second, _ := h.New(t, 1)
	if err := second.Adopt(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	ev := Final(t, second, try.Key, h.Within)
	if ev.State != executor.Failed || ev.ExitCode == nil || *ev.ExitCode != 4 {
		t.Fatalf("adopted event = %+v", ev)
	}
}

// A try that ended while no executor watched is adopted with its outcome.
func testAdoptFinished(t *testing.T, h Harness) {
	try := NewTry(t, h.Spec(Behavior{ExitCode: 0, Duration: time.Second, Output: "started"}))
	if ev := endUnwatched(t, h, try); ev.State != executor.Succeeded {
		t.Fatalf("event = %+v", ev)
	}
}

// endUnwatched starts a try, crashes its executor, lets the try end
// while no executor watches, and returns what a second one adopting it
// reports.
func endUnwatched(t *testing.T, h Harness, try executor.Try) executor.Event {
	t.Helper()
	first, crash := h.New(t, 1)
	if err := first.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	started(t, h, first, try)
	crash()
	time.Sleep(3 * time.Second) // it ends unobserved
	second, _ := h.New(t, 1)
	if err := second.Adopt(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	return Final(t, second, try.Key, h.Within)
}

func testAdoptGone(t *testing.T, h Harness) {
	ex, _ := h.New(t, 1)
	try := NewTry(t, h.Spec(Behavior{})) // never started
	if err := ex.Adopt(context.Background(), try); !errors.Is(err, executor.ErrGone) {
		t.Fatalf("adopting a try that never ran: %v", err)
	}
}
