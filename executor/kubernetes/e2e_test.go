package kubernetes

import (
	"context"
	"os"
	"path/filepath"
	"testing"
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
	if errs := res.Problems().Errors(); len(errs) > 0 || len(res.DAGs) != 9 {
		t.Fatalf("examples: %d DAGs, %v", len(res.DAGs), errs)
	}
	// The monitoring examples post to Mattermost (in-process, and
	// python_monitoring runs Python callables); the
	// command's tests run them, here on pods too (cmd/updraft).
	var onPods []*dags.DAG
	for _, d := range res.DAGs {
		if d.ID != "monitoring" && d.ID != "event_table_monitoring" && d.ID != "python_monitoring" {
			onPods = append(onPods, d)
		}
	}
	res = &dags.Result{DAGs: onPods}
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
			for _, r := range runs {
				t.Logf("run %s of %s: %s, queued %s, started %v, ended %v", r.RunID, r.DagID, r.State, r.QueuedAt.Format(time.TimeOnly), r.StartDate, r.EndDate)
				if r.State != dags.RunSuccess {
					tis, _ := st.TaskInstances(ctx, r.DagID, r.RunID)
					t.Errorf("run %s of %s is %s: %+v", r.RunID, r.DagID, r.State, tis)
				}
			}
			t.Fatalf("%d of %d runs finished", finished, len(runs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-done
	tries, _ := st.Tries(context.Background(), store.TIKey{DagID: "dbt_nightly", RunID: "manual__2024-03-01T00:00:00+00:00", TaskID: "dbt-cloud-final", MapIndex: -1})
	if len(tries) != 1 || tries[0].Executor != "kubernetes" || tries[0].Handle == "" || tries[0].State != dags.StateSuccess {
		t.Fatalf("tries = %+v", tries)
	}
}
