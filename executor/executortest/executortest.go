// Package executortest is the executor conformance suite: the local and
// the Kubernetes executors both pass it.
package executortest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"updraft/dags"
	"updraft/executor"
)

// Factory makes an executor with the given number of slots. Two executors
// made by one factory share their state as two scheduler processes on the
// same host (or cluster) would: the second can adopt the first's tries.
type Factory func(t *testing.T, slots int) executor.Executor

// Run runs the conformance suite.
func Run(t *testing.T, newExec Factory) {
	t.Run("Success", func(t *testing.T) {
		testOutcome(t, newExec, "echo hello; echo err >&2", nil, executor.Succeeded, 0, "hello")
	})
	t.Run("Failure", func(t *testing.T) {
		testOutcome(t, newExec, "echo before; exit 3", nil, executor.Failed, 3, "exit code 3")
	})
	t.Run("SkipExitCode", func(t *testing.T) {
		testOutcome(t, newExec, "exit 99", []int{99}, executor.Skipped, 99, "skip_on_exit_code")
	})
	t.Run("Empty", testEmpty(newExec))
	t.Run("PodCommand", testPodCommand(newExec))
	t.Run("Kill", testKill(newExec))
	t.Run("Timeout", testTimeout(newExec))
	t.Run("Full", testFull(newExec))
	t.Run("AdoptRunning", testAdoptRunning(newExec))
	t.Run("AdoptFinished", testAdoptFinished(newExec))
	t.Run("AdoptGone", testAdoptGone(newExec))
}

var seq int

func newTry(t *testing.T, spec dags.OperatorSpec) executor.Try {
	seq++
	return executor.Try{
		Key:     executor.TryKey{DagID: "dag", RunID: "manual__x", TaskID: t.Name(), TryNumber: seq},
		Spec:    spec,
		LogPath: filepath.Join(t.TempDir(), "try.log"),
	}
}

func bash(cmd string) dags.BashSpec { return dags.BashSpec{Command: cmd} }

// final waits for the try's final event, checking it comes after at most
// one Running event for the same try.
func final(t *testing.T, ex executor.Executor, k executor.TryKey, within time.Duration) executor.Event {
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

func readLog(t *testing.T, path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

func testOutcome(t *testing.T, newExec Factory, cmd string, skip []int, want executor.State, code int, text string) {
	ex := newExec(t, 2)
	try := newTry(t, bash(cmd))
	try.SkipOn = skip
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	ev := final(t, ex, try.Key, 30*time.Second)
	if ev.State != want || ev.ExitCode == nil || *ev.ExitCode != code {
		t.Fatalf("event = %+v, want %s with exit code %d", ev, want, code)
	}
	if !strings.Contains(ev.Reason+readLog(t, try.LogPath), text) {
		t.Fatalf("neither reason %q nor log mention %q:\n%s", ev.Reason, text, readLog(t, try.LogPath))
	}
	if want == executor.Succeeded && !strings.Contains(readLog(t, try.LogPath), "err") {
		t.Fatalf("stderr missing from the log:\n%s", readLog(t, try.LogPath))
	}
}

func testEmpty(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		ex := newExec(t, 1)
		try := newTry(t, dags.EmptySpec{})
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		if ev := final(t, ex, try.Key, 10*time.Second); ev.State != executor.Succeeded {
			t.Fatalf("event = %+v", ev)
		}
	}
}

func testPodCommand(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		ex := newExec(t, 1)
		spec := dags.PodSpec{Image: "busybox", Cmds: []string{"sh", "-c"}, Arguments: []string{`echo "db=$DB"`},
			EnvVars: []corev1.EnvVar{{Name: "DB", Value: "RAW"}}}
		try := newTry(t, spec)
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		if ev := final(t, ex, try.Key, 60*time.Second); ev.State != executor.Succeeded {
			t.Fatalf("event = %+v\n%s", ev, readLog(t, try.LogPath))
		}
		if log := readLog(t, try.LogPath); !strings.Contains(log, "db=RAW") {
			t.Fatalf("log:\n%s", log)
		}
	}
}

func testKill(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		ex := newExec(t, 1)
		try := newTry(t, bash("echo started; sleep 300 & wait"))
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, try.LogPath, "started")
		if err := ex.Kill(context.Background(), try.Key, "killed: marked failed"); err != nil {
			t.Fatal(err)
		}
		ev := final(t, ex, try.Key, 30*time.Second)
		if ev.State != executor.Failed || ev.Reason != "killed: marked failed" {
			t.Fatalf("event = %+v", ev)
		}
		if err := ex.Kill(context.Background(), try.Key, "again"); err != nil {
			t.Fatalf("killing a finished try: %v", err)
		}
	}
}

func testTimeout(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		ex := newExec(t, 1)
		try := newTry(t, bash("sleep 300"))
		try.Timeout = 300 * time.Millisecond
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		ev := final(t, ex, try.Key, 30*time.Second)
		if ev.State != executor.Failed || !strings.Contains(ev.Reason, "execution_timeout") {
			t.Fatalf("event = %+v", ev)
		}
	}
}

func testFull(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		ex := newExec(t, 1)
		a, b := newTry(t, bash("sleep 1")), newTry(t, bash("true"))
		if err := ex.Start(context.Background(), a); err != nil {
			t.Fatal(err)
		}
		if ex.Free() != 0 {
			t.Fatalf("free = %d with one slot in use", ex.Free())
		}
		if err := ex.Start(context.Background(), b); !errors.Is(err, executor.ErrFull) {
			t.Fatalf("second start: %v", err)
		}
		final(t, ex, a.Key, 30*time.Second)
		if ex.Free() != 1 {
			t.Fatalf("free = %d after the try ended", ex.Free())
		}
	}
}

func waitForLog(t *testing.T, path, text string) {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if strings.Contains(readLog(t, path), text) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("log never said %q:\n%s", text, readLog(t, path))
}

// A try started by one executor is adopted by another (a restarted
// scheduler) and its real exit code still arrives.
func testAdoptRunning(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		first := newExec(t, 1)
		try := newTry(t, bash("echo started; sleep 1; echo done; exit 4"))
		if err := first.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, try.LogPath, "started")
		second := newExec(t, 1)
		if err := second.Adopt(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		ev := final(t, second, try.Key, 30*time.Second)
		if ev.State != executor.Failed || ev.ExitCode == nil || *ev.ExitCode != 4 {
			t.Fatalf("adopted event = %+v", ev)
		}
		final(t, first, try.Key, 30*time.Second) // the first executor's own wait ends too
		if log := readLog(t, try.LogPath); !strings.Contains(log, "done") {
			t.Fatalf("log:\n%s", log)
		}
	}
}

func testAdoptFinished(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		first := newExec(t, 1)
		try := newTry(t, bash("exit 0"))
		if err := first.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		final(t, first, try.Key, 30*time.Second)
		second := newExec(t, 1)
		if err := second.Adopt(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		if ev := final(t, second, try.Key, 30*time.Second); ev.State != executor.Succeeded {
			t.Fatalf("event = %+v", ev)
		}
	}
}

func testAdoptGone(newExec Factory) func(*testing.T) {
	return func(t *testing.T) {
		ex := newExec(t, 1)
		try := newTry(t, bash("true")) // never started
		if err := ex.Adopt(context.Background(), try); !errors.Is(err, executor.ErrGone) {
			t.Fatalf("adopting a try that never ran: %v", err)
		}
	}
}
