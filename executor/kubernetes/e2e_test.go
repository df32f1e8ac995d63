package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
)

type bag struct {
	res *dags.Result
	at  time.Time
}

func (b bag) Current() (*dags.Result, time.Time) { return b.res, b.at }

// Every example DAG runs to success with each task in its own pod, driven
// by the real scheduler.
func TestExamplesRunOnPods(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := dags.Load(os.DirFS("../../dags/examples"), dags.Options{})
	if errs := res.Problems().Errors(); len(errs) > 0 || len(res.DAGs) != 6 {
		t.Fatalf("examples: %d DAGs, %v", len(res.DAGs), errs)
	}
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ex, _ := newExecutor(t, 100)
	s := scheduler.New(st, ex, bag{res, time.Now()}, scheduler.Options{LogDir: t.TempDir(), ExecutorName: "kubernetes"})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for _, d := range res.DAGs {
		logical := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
		if _, err := s.Trigger(ctx, d.ID, scheduler.TriggerOptions{LogicalDate: &logical, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		runs, err := st.Runs(ctx, store.RunFilter{})
		if err != nil {
			t.Fatal(err)
		}
		finished := 0
		for _, r := range runs {
			if r.State == dags.RunFailed {
				tis, _ := st.TaskInstances(ctx, r.DagID, r.RunID)
				t.Fatalf("run %s of %s failed: %+v", r.RunID, r.DagID, tis)
			}
			if r.State == dags.RunSuccess {
				finished++
			}
		}
		if finished == len(runs) && len(runs) >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d runs finished", finished, len(runs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-done
	tries, _ := st.Tries(context.Background(), store.TIKey{DagID: "dbt_nightly", RunID: "manual__2024-03-01T00:00:00+00:00", TaskID: "dbt-cloud-final"})
	if len(tries) != 1 || tries[0].Executor != "kubernetes" || tries[0].Handle == "" || tries[0].State != dags.StateSuccess {
		t.Fatalf("tries = %+v", tries)
	}
}

// The API server stops for 30 s in the middle of a run and starts again:
// nothing is lost, the run completes. (Runs last: it restarts the shared
// control plane's API server.)
func TestZZAPIServerOutage(t *testing.T) {
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
		ti, _ := st.TaskInstance(ctx, store.TIKey{DagID: "outage", RunID: r.RunID, TaskID: "a"})
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
