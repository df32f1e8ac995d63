package local

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/executortest"
)

func harness() executortest.Harness {
	return executortest.Harness{
		New: func(t *testing.T, slots int) (executor.Executor, func()) {
			return New(slots, slog.New(slog.DiscardHandler)), func() {}
		},
		Spec: func(b executortest.Behavior) dags.OperatorSpec {
			if b.Forever {
				return dags.BashSpec{Command: "echo started; sleep 300 & wait"}
			}
			return dags.BashSpec{Command: fmt.Sprintf("echo %s; echo err >&2; sleep %g; exit %d", b.Output, b.Duration.Seconds(), b.ExitCode)}
		},
		Logs: true,
	}
}

func TestConformance(t *testing.T) { executortest.Run(t, harness()) }

// A KubernetesPodOperator task runs its cmds and arguments on the host with
// its env_vars; the log says the image is ignored.
func TestPodCommandLocally(t *testing.T) {
	ex := New(1, slog.New(slog.DiscardHandler))
	spec := dags.PodSpec{Image: "busybox", Cmds: []string{"sh", "-c"}, Arguments: []string{`echo "db=$DB"`},
		EnvVars: []corev1.EnvVar{{Name: "DB", Value: "RAW"}}}
	try := executortest.NewTry(t, spec)
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	if ev := executortest.Final(t, ex, try.Key, 30*time.Second); ev.State != executor.Succeeded {
		t.Fatalf("event = %+v", ev)
	}
	log := readFile(try.LogPath)
	if !strings.Contains(log, "db=RAW") || !strings.Contains(log, "image busybox is ignored") {
		t.Fatalf("log:\n%s", log)
	}
	if err := ex.Start(context.Background(), executortest.NewTry(t, dags.PodSpec{Image: "x"})); err == nil {
		t.Fatal("a pod task without cmds started locally")
	}
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}
