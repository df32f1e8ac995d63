package kubernetes

import (
	"context"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
)

// This file's name sorts last, so its test runs after every other test of
// the package: it restarts the shared control plane's API server.

// The API server stops for 30 s in the middle of a run and starts again:
// nothing is lost, the run completes. (Runs last: it restarts the shared
// control plane's API server.)
func TestAPIServerOutage(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := `outage:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: KubernetesPodOperator, image: busybox, cmds: ["true"], annotations: {updraft.test/duration: 3s}}
    - {task_id: b, operator: KubernetesPodOperator, image: busybox, cmds: ["true"], dependencies: [a]}
    - {task_id: c, operator: KubernetesPodOperator, image: busybox, cmds: ["true"], dependencies: [b]}
`
	res := dags.Load(fstest.MapFS{"o.yaml": {Data: []byte(src)}}, dags.Options{})
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.Migrate(ctx)
	ex, _ := newExecutor(t, 10)
	s := scheduler.New(st, ex, bag{res, time.Now()}, scheduler.Options{LogDir: t.TempDir(), ExecutorName: "kubernetes"})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	r, err := s.Trigger(ctx, "outage", scheduler.TriggerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		ti, _ := st.TaskInstance(ctx, store.TIKey{DagID: "outage", RunID: r.RunID, TaskID: "a", MapIndex: -1})
		if ti.State == dags.StateRunning {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	kube.StopAPIServer()
	time.Sleep(30 * time.Second)
	if err := kube.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		got, _ := st.Run(ctx, "outage", r.RunID)
		if got.State == dags.RunSuccess {
			break
		}
		if got.State == dags.RunFailed || time.Now().After(deadline) {
			tis, _ := st.TaskInstances(ctx, "outage", r.RunID)
			t.Fatalf("run %s: %+v", got.State, tis)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-done
}
