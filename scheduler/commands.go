package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// ErrInvalid marks a command refused for its arguments (HTTP 400).
var ErrInvalid = errors.New("invalid request")

// TriggerOptions describe a manual run. Zero values take Airflow's
// defaults: the logical date is now, the run id manual__<logical date>.
type TriggerOptions struct {
	RunID       string
	LogicalDate *time.Time
	Conf        map[string]any
	Note        string
	Actor       string
}

// Trigger creates a manual run. A run with the same id or logical date
// fails with store.ErrConflict; an unknown DAG with store.ErrNotFound.
func (s *Scheduler) Trigger(ctx context.Context, dagID string, o TriggerOptions) (store.Run, error) {
	// The DAG as the scheduler last synced it: the run is written without
	// the scheduler's lock (a step holding it may take a while); the next
	// step takes it on.
	d, err := s.currentDAG(ctx, dagID)
	if err != nil {
		return store.Run{}, err
	}
	return s.trigger(ctx, d, o)
}

// trigger creates a manual run of d and marks it for the next step.
func (s *Scheduler) trigger(ctx context.Context, d *dags.DAG, o TriggerOptions) (store.Run, error) {
	dagID := d.ID
	now := s.clock.Now()
	logical := now
	if o.LogicalDate != nil {
		logical = o.LogicalDate.UTC()
	}
	runID := o.RunID
	if runID == "" {
		runID = dags.RunID(dags.RunTypeManual, logical)
	} else if !dags.ValidRunID(runID) {
		return store.Run{}, fmt.Errorf("run id %q must match ^[A-Za-z0-9_.~:+-]+$: %w", runID, ErrInvalid)
	}
	r := store.Run{DagID: dagID, RunID: runID, RunType: dags.RunTypeManual, LogicalDate: logical,
		Interval: d.Schedule.InferManual(logical), Conf: o.Conf, State: dags.RunQueued, QueuedAt: now,
		DAGVersion: d.Hash, GitRevision: d.Revision, ExternalTrigger: true, Note: o.Note}
	// The run and its audit entry in one write: one wait for the writer.
	err := s.st.InTx(ctx, func(tx *store.Store) error {
		if err := tx.CreateRun(ctx, r, newTaskInstances(d, r)); err != nil {
			return err
		}
		s.auditIn(ctx, tx, o.Actor, "trigger", dagID, runID, "", fmt.Sprintf("logical_date=%s", logical.Format(time.RFC3339)))
		return nil
	})
	if err != nil {
		return store.Run{}, err
	}
	s.markDirtyUnlocked(dagID, runID)
	s.Notify()
	return s.st.Run(ctx, dagID, runID)
}

// SetPaused pauses or unpauses a DAG.
func (s *Scheduler) SetPaused(ctx context.Context, dagID string, paused bool, actor string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.syncBag(ctx, s.st, s.clock.Now()); err != nil {
		return err
	}
	if err := s.st.SetPaused(ctx, dagID, paused); err != nil {
		return err
	}
	action := "unpause"
	if paused {
		action = "pause"
	}
	s.allDirty = true
	s.audit(ctx, actor, action, dagID, "", "", "")
	s.Notify()
	return nil
}

// ClearOptions select what Clear re-runs besides the named tasks.
type ClearOptions struct {
	Upstream, Downstream bool // add every upstream / downstream task
	OnlyFailed           bool // only failed and upstream_failed task instances
	OnlyRunning          bool // only running task instances
	// MapIndexes, when set, clears only those instances of the named
	// (mapped) tasks. A mapped task cleared whole expands again.
	MapIndexes []int
	DryRun     bool // report what would be cleared, change nothing
	Actor      string
}

// Clear resets task instances of a run so they run again with a new try,
// as Airflow's clear: finished ones go back to none with their retries
// renewed, running ones are killed and restart, and the run is queued
// again. It returns the task instances cleared (or, dry, to be cleared).
func (s *Scheduler) Clear(ctx context.Context, dagID, runID string, taskIDs []string, o ClearOptions) ([]store.TaskInstance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.st.Run(ctx, dagID, runID)
	if err != nil {
		return nil, err
	}
	d := s.dagFor(dagID, r.DAGVersion)
	if d == nil {
		return nil, fmt.Errorf("dag %q: %w", dagID, store.ErrNotFound)
	}
	tis, err := s.st.TaskInstances(ctx, dagID, runID)
	if err != nil {
		return nil, err
	}
	selected, err := expand(d, taskIDs, o.Upstream, o.Downstream)
	if err != nil {
		return nil, err
	}
	named := map[string]bool{}
	for _, id := range taskIDs {
		named[id] = true
	}
	var out []store.TaskInstance
	for _, ti := range tis {
		if !selected[ti.TaskID] || (o.OnlyFailed && ti.State != dags.StateFailed && ti.State != dags.StateUpstreamFailed) ||
			(o.OnlyRunning && ti.State != dags.StateRunning) {
			continue
		}
		if o.MapIndexes != nil && named[ti.TaskID] && !slices.Contains(o.MapIndexes, ti.MapIndex) {
			continue
		}
		if ti.State == dags.StateNone || ti.State == dags.StateRestarting {
			continue
		}
		out = append(out, ti)
	}
	if o.DryRun {
		return out, nil
	}
	now := s.clock.Now()
	// A mapped task cleared whole (every instance, none filtered out)
	// goes back to its placeholder and expands again: what it maps over
	// may have changed.
	whole := map[string]bool{}
	if !o.OnlyFailed && !o.OnlyRunning {
		for _, ti := range out {
			if t := d.Task(ti.TaskID); t != nil && t.Mapped() && ti.MapIndex >= 0 && (o.MapIndexes == nil || !named[ti.TaskID]) {
				whole[ti.TaskID] = true
			}
		}
	}
	for id := range whole {
		var first *store.TaskInstance
		tries := 0
		for i, ti := range tis {
			if ti.TaskID != id {
				continue
			}
			if first == nil {
				first = &tis[i]
			}
			tries = max(tries, ti.TryNumber)
			if ti.State == dags.StateRunning || ti.State == dags.StateQueued {
				_ = s.exec.Kill(ctx, tryKey(ti), "killed: the task instance was cleared")
			}
		}
		ph := *first
		// Try numbers go on from the highest an instance reached, so the
		// new instances' tries never reuse an earlier try's number.
		ph.TryNumber, ph.MaxTries, ph.QueuedAt, ph.StartDate, ph.EndDate, ph.NextTryAt = tries, tries+d.Task(id).Retries, nil, nil, nil, nil
		if err := s.st.ClearXComs(ctx, ph.Key(), true); err != nil {
			return nil, err
		}
		if err := s.st.CollapseTaskInstances(ctx, ph); err != nil {
			return nil, err
		}
	}
	for _, ti := range out {
		if whole[ti.TaskID] {
			continue
		}
		upd := ti
		retries := 0
		if t := d.Task(ti.TaskID); t != nil {
			retries = t.Retries
		}
		switch ti.State {
		case dags.StateRunning:
			upd.State = dags.StateRestarting
		default:
			upd.State, upd.EndDate, upd.NextTryAt = dags.StateNone, nil, nil
		}
		upd.MaxTries = ti.TryNumber + retries // Airflow renews the retries of a cleared task instance
		if ok, err := s.st.UpdateTaskInstance(ctx, upd, ti.State); err != nil || !ok {
			if err != nil {
				return nil, err
			}
			continue
		}
		if err := s.st.ClearXComs(ctx, ti.Key(), false); err != nil {
			return nil, err
		}
		if ti.State == dags.StateRunning || ti.State == dags.StateQueued {
			_ = s.exec.Kill(ctx, tryKey(ti), "killed: the task instance was cleared")
		}
	}
	if len(out) > 0 && r.State.Finished() {
		if _, err := s.st.SetRunState(ctx, dagID, runID, r.State, dags.RunQueued, now); err != nil {
			return nil, err
		}
	}
	ids := make([]string, len(out))
	for i, ti := range out {
		ids[i] = ti.TaskID
	}
	s.markDirty(dagID, runID)
	s.cache.drop(dagID, runID)
	s.audit(ctx, o.Actor, "clear", dagID, runID, strings.Join(ids, ","), fmt.Sprintf("upstream=%v downstream=%v only_failed=%v", o.Upstream, o.Downstream, o.OnlyFailed))
	s.Notify()
	return out, nil
}

// expand returns the named tasks plus, on request, everything upstream or
// downstream of them.
func expand(d *dags.DAG, taskIDs []string, upstream, downstream bool) (map[string]bool, error) {
	out := map[string]bool{}
	var walk func(id string, next func(string) []string)
	walk = func(id string, next func(string) []string) {
		for _, n := range next(id) {
			if !out[n] {
				out[n] = true
				walk(n, next)
			}
		}
	}
	for _, id := range taskIDs {
		if d.Task(id) == nil {
			return nil, fmt.Errorf("dag %q has no task %q: %w", d.ID, id, ErrInvalid)
		}
		out[id] = true
	}
	for _, id := range taskIDs {
		if upstream {
			walk(id, func(x string) []string { return d.Task(x).Upstream })
		}
		if downstream {
			walk(id, d.Downstream)
		}
	}
	return out, nil
}

// Mark sets a task instance's state to success, failed or skipped by
// hand. A running try is killed. As in Airflow, marking sends no failure
// alert.
func (s *Scheduler) Mark(ctx context.Context, k store.TIKey, state dags.TaskState, actor string) (store.TaskInstance, error) {
	if err := checkMarkState(state); err != nil {
		return store.TaskInstance{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ti, err := s.st.TaskInstance(ctx, k)
	if err != nil {
		return ti, err
	}
	upd, err := s.markLocked(ctx, ti, state)
	if err != nil || upd.State == ti.State {
		return upd, err
	}
	s.afterMark(ctx, k.DagID, k.RunID)
	s.audit(ctx, actor, "mark_"+string(state), k.DagID, k.RunID, k.TaskID, "from "+string(ti.State))
	if state == dags.StateFailed {
		s.alertMarked(ctx, taskAlert(AlertTaskMarkedFailed, k, ti.TryNumber, "marked failed by "+actorName(actor), s.clock.Now()))
	}
	return upd, nil
}

func checkMarkState(state dags.TaskState) error {
	if state != dags.StateSuccess && state != dags.StateFailed && state != dags.StateSkipped {
		return fmt.Errorf("a task instance can be marked success, failed or skipped, not %q: %w", state, ErrInvalid)
	}
	return nil
}

// markLocked changes one task instance's state; the caller holds s.mu.
func (s *Scheduler) markLocked(ctx context.Context, ti store.TaskInstance, state dags.TaskState) (store.TaskInstance, error) {
	if ti.State == state {
		return ti, nil
	}
	if !dags.CanTransition(ti.State, state) {
		return ti, fmt.Errorf("task instance %s is %s: %w", ti.Key(), ti.State, ErrInvalid)
	}
	now := s.clock.Now()
	upd := ti
	upd.State, upd.EndDate = state, &now
	ok, err := s.st.UpdateTaskInstance(ctx, upd, ti.State)
	if err != nil {
		return ti, err
	}
	if !ok {
		return ti, fmt.Errorf("task instance %s changed meanwhile; try again: %w", ti.Key(), store.ErrConflict)
	}
	if ti.State == dags.StateRunning || ti.State == dags.StateQueued {
		_ = s.exec.Kill(ctx, tryKey(ti), "killed: marked "+string(state))
	}
	return upd, nil
}

// afterMark re-evaluates a run whose task instances were marked: a finished
// run can change its outcome.
func (s *Scheduler) afterMark(ctx context.Context, dagID, runID string) {
	if r, err := s.st.Run(ctx, dagID, runID); err == nil && r.State.Finished() {
		if _, err := s.st.SetRunState(ctx, dagID, runID, r.State, dags.RunRunning, s.clock.Now()); err != nil {
			s.log.Error("re-open run after marking", "dag_id", dagID, "run_id", runID, "err", err)
		}
	}
	s.markDirty(dagID, runID)
	s.cache.drop(dagID, runID)
	s.Notify()
}

// MarkOptions select what MarkTasks changes besides the named tasks.
type MarkOptions struct {
	Upstream, Downstream bool
	DryRun               bool
	Actor                string
}

// MarkTasks marks the named tasks of a run (and, on request, their
// upstream or downstream tasks) success, failed or skipped, as Airflow's
// "mark success/failed" with relatives. Task instances already in that
// state are left alone. It returns the task instances changed (or, dry,
// to be changed).
func (s *Scheduler) MarkTasks(ctx context.Context, dagID, runID string, taskIDs []string, state dags.TaskState, o MarkOptions) ([]store.TaskInstance, error) {
	if err := checkMarkState(state); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.st.Run(ctx, dagID, runID)
	if err != nil {
		return nil, err
	}
	d := s.dagFor(dagID, r.DAGVersion)
	if d == nil {
		return nil, fmt.Errorf("dag %q: %w", dagID, store.ErrNotFound)
	}
	selected, err := expand(d, taskIDs, o.Upstream, o.Downstream)
	if err != nil {
		return nil, err
	}
	tis, err := s.st.TaskInstances(ctx, dagID, runID)
	if err != nil {
		return nil, err
	}
	var out []store.TaskInstance
	for _, ti := range tis {
		if !selected[ti.TaskID] || ti.State == state || !dags.CanTransition(ti.State, state) {
			continue
		}
		if o.DryRun {
			out = append(out, ti)
			continue
		}
		upd, err := s.markLocked(ctx, ti, state)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return out, err
		}
		out = append(out, upd)
	}
	if o.DryRun || len(out) == 0 {
		return out, nil
	}
	ids := make([]string, len(out))
	for i, ti := range out {
		ids[i] = ti.TaskID
	}
	s.afterMark(ctx, dagID, runID)
	s.audit(ctx, o.Actor, "mark_"+string(state), dagID, runID, strings.Join(ids, ","), fmt.Sprintf("upstream=%v downstream=%v", o.Upstream, o.Downstream))
	if state == dags.StateFailed {
		for _, ti := range out {
			s.alertMarked(ctx, taskAlert(AlertTaskMarkedFailed, ti.Key(), ti.TryNumber, "marked failed by "+actorName(o.Actor), s.clock.Now()))
		}
	}
	return out, nil
}

// SetRunState sets a run's state by hand, as Airflow's "mark run as":
// success marks every unfinished task instance success; failed fails the
// running and queued ones and skips the rest not yet finished; queued only
// queues the run again. Running tries are killed.
func (s *Scheduler) SetRunState(ctx context.Context, dagID, runID string, state dags.RunState, actor string) (store.Run, error) {
	if state != dags.RunSuccess && state != dags.RunFailed && state != dags.RunQueued {
		return store.Run{}, fmt.Errorf("a run can be set to success, failed or queued, not %q: %w", state, ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.st.Run(ctx, dagID, runID)
	if err != nil {
		return r, err
	}
	if state != dags.RunQueued {
		tis, err := s.st.TaskInstances(ctx, dagID, runID)
		if err != nil {
			return r, err
		}
		for _, ti := range tis {
			if ti.State.Finished() {
				continue
			}
			to := dags.StateSuccess
			if state == dags.RunFailed {
				to = dags.StateSkipped
				if ti.State == dags.StateRunning || ti.State == dags.StateQueued {
					to = dags.StateFailed
				}
			}
			if !dags.CanTransition(ti.State, to) {
				to = dags.StateFailed // e.g. restarting cannot be skipped
			}
			if _, err := s.markLocked(ctx, ti, to); err != nil && !errors.Is(err, store.ErrConflict) {
				return r, err
			}
		}
	}
	if r.State != state {
		if _, err := s.st.SetRunState(ctx, dagID, runID, r.State, state, s.clock.Now()); err != nil {
			return r, err
		}
	}
	s.markDirty(dagID, runID)
	s.cache.drop(dagID, runID)
	s.audit(ctx, actor, "set_run_"+string(state), dagID, runID, "", "from "+string(r.State))
	if state == dags.RunFailed && r.State != dags.RunFailed {
		s.alertMarked(ctx, runAlert(AlertRunMarkedFailed, dagID, runID, "marked failed by "+actorName(actor), s.clock.Now()))
	}
	s.Notify()
	return s.st.Run(ctx, dagID, runID)
}

// alertMarked records a manual change for the notifier (which sends it only
// when configured to: Airflow sends no alert for a mark).
func (s *Scheduler) alertMarked(ctx context.Context, a store.Alert) {
	if err := s.st.AddAlert(ctx, a); err != nil {
		s.log.Error("alert not recorded", "kind", a.Kind, "dag_id", a.DagID, "err", err)
	}
}

func actorName(actor string) string {
	if actor == "" {
		return "anonymous"
	}
	return actor
}

func (s *Scheduler) audit(ctx context.Context, actor, action, dagID, runID, taskID, detail string) {
	s.auditIn(ctx, s.st, actor, action, dagID, runID, taskID, detail)
}

// auditIn writes an audit entry through st (a transaction's store).
func (s *Scheduler) auditIn(ctx context.Context, st *store.Store, actor, action, dagID, runID, taskID, detail string) {
	if actor == "" {
		actor = "anonymous"
	}
	if err := st.Audit(ctx, store.AuditEntry{At: s.clock.Now(), Actor: actor, Action: action, DagID: dagID,
		RunID: runID, TaskID: taskID, Detail: detail}); err != nil {
		s.log.Error("audit log write failed", "action", action, "dag_id", dagID, "err", err)
	}
}

// DAG returns the current version of a loaded DAG, or nil.
func (s *Scheduler) DAG(id string) *dags.DAG {
	return s.synced.Load().current[id]
}

// DAGIDs returns the ids of the loaded DAGs.
func (s *Scheduler) DAGIDs() []string {
	return sortedIDs(s.synced.Load().current)
}
