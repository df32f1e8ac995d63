package ops

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// WaitingFor says in words what keeps a task instance that has not
// started from running (Airflow's "dependencies blocking task from getting
// scheduled"): the run, the DAG's pause, its upstream tasks under the
// trigger rule, depends_on_past, a retry's delay, its pool and the DAG's
// limits. It reads the store as it is now; the scheduler decides.
func (s *Service) WaitingFor(ctx context.Context, ti store.TaskInstance) ([]string, error) {
	switch ti.State {
	case dags.StateNone, dags.StateScheduled, dags.StateUpForRetry, dags.StateQueued:
	default:
		return nil, nil
	}
	if ti.State == dags.StateQueued {
		return []string{"handed to the executor, which has not started it yet (its slots may all be busy)"}, nil
	}
	var out []string
	run, err := s.Store.Run(ctx, ti.DagID, ti.RunID)
	if err != nil {
		return nil, err
	}
	d, _ := s.CurrentDAG(ti.DagID)
	if row, err := s.Store.DAG(ctx, ti.DagID); err == nil && row.Paused {
		out = append(out, "the DAG is paused: nothing of it starts until it is unpaused")
	}
	if run.State == dags.RunQueued {
		limit := ""
		if d != nil {
			limit = fmt.Sprintf(" (max_active_runs %d)", d.MaxActiveRuns)
		}
		out = append(out, "the run is queued: the DAG already has as many runs running as it may"+limit)
	}
	if ti.State == dags.StateUpForRetry && ti.NextTryAt != nil {
		if wait := ti.NextTryAt.Sub(s.Now()); wait > 0 {
			out = append(out, fmt.Sprintf("its retry delay: the next try may start at %s (in %s)",
				ti.NextTryAt.UTC().Format("15:04:05 MST"), wait.Round(time.Second)))
		}
	}
	var t *dags.Task
	if d != nil {
		t = d.Task(ti.TaskID)
	}
	if t != nil {
		tis, err := s.Store.TaskInstances(ctx, ti.DagID, ti.RunID)
		if err != nil {
			return nil, err
		}
		if why := upstreamWait(t, tis); why != "" {
			out = append(out, why)
		}
		if t.DependsOnPast {
			why, err := s.pastWait(ctx, t, run)
			if err != nil {
				return nil, err
			}
			if why != "" {
				out = append(out, why)
			}
		}
		why, err := s.limitsWait(ctx, d, t, ti)
		if err != nil {
			return nil, err
		}
		out = append(out, why...)
	}
	return out, nil
}

// upstreamWait names the upstream tasks the trigger rule still waits for.
func upstreamWait(t *dags.Task, tis []store.TaskInstance) string {
	if len(t.Upstream) == 0 {
		return ""
	}
	state := map[string]dags.TaskState{}
	for _, x := range tis {
		state[x.TaskID] = x.State
	}
	var c dags.UpstreamCounts
	var pending []string
	for _, u := range t.Upstream {
		st := state[u]
		c.Add(st)
		if !st.Finished() {
			if st == "" {
				st = "none"
			}
			pending = append(pending, fmt.Sprintf("%s (%s)", u, st))
		}
	}
	if t.TriggerRule.Evaluate(c) != dags.Wait || len(pending) == 0 {
		return ""
	}
	sort.Strings(pending)
	return fmt.Sprintf("upstream tasks, by trigger rule %s: %s", t.TriggerRule, strings.Join(pending, ", "))
}

// pastWait explains depends_on_past: the same task in the previous run
// must have succeeded or been skipped.
func (s *Service) pastWait(ctx context.Context, t *dags.Task, run store.Run) (string, error) {
	before := run.LogicalDate.Add(-time.Nanosecond)
	runs, err := s.Store.Runs(ctx, store.RunFilter{DagID: run.DagID, LogicalLTE: &before, Limit: 1}) // newest first
	if err != nil {
		return "", err
	}
	if len(runs) == 0 {
		return "", nil
	}
	prev := runs[0]
	pti, err := s.Store.TaskInstance(ctx, store.TIKey{DagID: run.DagID, RunID: prev.RunID, TaskID: t.ID, MapIndex: -1})
	if err != nil {
		return "", nil // the task is new: nothing to wait for
	}
	if pti.State == dags.StateSuccess || pti.State == dags.StateSkipped {
		return "", nil
	}
	st := string(pti.State)
	if st == "" {
		st = "none"
	}
	return fmt.Sprintf("depends_on_past: %s in the previous run (%s) is %s", t.ID, prev.RunID, st), nil
}

// limitsWait checks the pool and the DAG's and task's concurrency limits.
func (s *Service) limitsWait(ctx context.Context, d *dags.DAG, t *dags.Task, ti store.TaskInstance) ([]string, error) {
	var out []string
	pools, err := s.Store.Pools(ctx)
	if err != nil {
		return nil, err
	}
	use, err := s.Store.PoolUsage(ctx)
	if err != nil {
		return nil, err
	}
	found := false
	for _, p := range pools {
		if p.Name != ti.Pool {
			continue
		}
		found = true
		held := use[p.Name].Running + use[p.Name].Queued
		if held+ti.PoolSlots > p.Slots {
			out = append(out, fmt.Sprintf("pool %s: %d of its %d slots are taken and this task needs %d", p.Name, held, p.Slots, ti.PoolSlots))
		}
	}
	if !found {
		out = append(out, fmt.Sprintf("pool %s does not exist: create it on the Pools page", ti.Pool))
	}
	busy, err := s.Store.TaskInstancesInState(ctx, dags.StateQueued, dags.StateRunning)
	if err != nil {
		return nil, err
	}
	perDAG, perTask := 0, 0
	for _, b := range busy {
		if b.DagID == ti.DagID {
			perDAG++
			if b.TaskID == ti.TaskID {
				perTask++
			}
		}
	}
	if perDAG >= d.MaxActiveTasks {
		out = append(out, fmt.Sprintf("the DAG's max_active_tasks: %d of its tasks are running or queued", perDAG))
	}
	if t.MaxActiveTisPerDag > 0 && perTask >= t.MaxActiveTisPerDag {
		out = append(out, fmt.Sprintf("max_active_tis_per_dag: %d instances of this task are running or queued", perTask))
	}
	return out, nil
}

// WhyNot says why a task instance that ended without running did not run
// (upstream_failed, skipped or removed with no try): what its upstream
// tasks ended as, and its trigger rule. "" for anything else.
func (s *Service) WhyNot(ctx context.Context, ti store.TaskInstance) (string, error) {
	if ti.TryNumber > 0 {
		return "", nil
	}
	switch ti.State {
	case dags.StateUpstreamFailed, dags.StateSkipped:
	case dags.StateRemoved:
		return "the task is no longer in the DAG version this run follows", nil
	default:
		return "", nil
	}
	d, _ := s.CurrentDAG(ti.DagID)
	if d == nil || d.Task(ti.TaskID) == nil {
		return "", nil
	}
	t := d.Task(ti.TaskID)
	tis, err := s.Store.TaskInstances(ctx, ti.DagID, ti.RunID)
	if err != nil {
		return "", err
	}
	states := map[string][]string{}
	for _, u := range tis {
		if slices.Contains(t.Upstream, u.TaskID) {
			states[string(u.State)] = append(states[string(u.State)], u.TaskID)
		}
	}
	var parts []string
	for _, st := range []string{"failed", "upstream_failed", "skipped", "success", "removed"} {
		if ids := states[st]; len(ids) > 0 {
			slices.Sort(ids)
			ids = slices.Compact(ids)
			parts = append(parts, strings.Join(ids, ", ")+" "+st)
		}
	}
	what := "it was skipped"
	if ti.State == dags.StateUpstreamFailed {
		what = "it could not run (upstream_failed)"
	}
	if len(parts) == 0 {
		return what + ", by the branch or short-circuit that decided it", nil
	}
	return fmt.Sprintf("%s: upstream %s, and its trigger rule %s decided it", what, strings.Join(parts, "; "), t.TriggerRule), nil
}
