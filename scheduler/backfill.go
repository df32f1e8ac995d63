package scheduler

import (
	"context"
	"fmt"
	"slices"
	"time"

	"updraft/dags"
	"updraft/store"
)

// BackfillOptions describe a backfill (Airflow 3's BackfillPostBody).
type BackfillOptions struct {
	DagID string
	// From and To bound the logical dates, inclusive.
	From, To     time.Time
	RunBackwards bool           // newest dates first
	Conf         map[string]any // every run's dag_run.conf
	// Reprocess is store.ReprocessNone (the default), ReprocessFailed or
	// ReprocessCompleted.
	Reprocess string
	// MaxActiveRuns limits the backfill's runs at once (default 10, as
	// Airflow), apart from the DAG's own max_active_runs.
	MaxActiveRuns int
	DryRun        bool
	Actor         string
}

// DefaultBackfillRuns is a backfill's max_active_runs when none is given.
const DefaultBackfillRuns = 10

// MaxBackfillDates is the most logical dates one backfill may cover.
const MaxBackfillDates = 10000

// Why a backfill leaves a date alone (Airflow's exception reasons).
const (
	BackfillInFlight      = "in flight"      // the date's run is queued or running
	BackfillAlreadyExists = "already exists" // the date has a run the reprocess behaviour keeps
)

// Backfill creates a backfill: a run for every logical date of the DAG's
// schedule in [From, To] whose interval has ended, or, for a date that has
// a run, what the reprocess behaviour says (run it again, or leave it).
// Runs in flight are never touched. Dry, it returns the dates and what
// would happen to each, changing nothing.
func (s *Scheduler) Backfill(ctx context.Context, o BackfillOptions) (store.Backfill, []store.BackfillDate, error) {
	d, err := s.currentDAG(ctx, o.DagID)
	if err != nil {
		return store.Backfill{}, nil, err
	}
	if o.Reprocess == "" {
		o.Reprocess = store.ReprocessNone
	}
	if o.MaxActiveRuns == 0 {
		o.MaxActiveRuns = DefaultBackfillRuns
	}
	now := s.clock.Now()
	o.From, o.To = o.From.UTC(), o.To.UTC()
	switch {
	case !d.Schedule.Periodic():
		return store.Backfill{}, nil, fmt.Errorf("dag %q has no time-based schedule (%s): a backfill follows one: %w", d.ID, d.Schedule.Summary(), ErrInvalid)
	case o.To.Before(o.From):
		return store.Backfill{}, nil, fmt.Errorf("to_date %s is before from_date %s: %w", o.To.Format(time.RFC3339), o.From.Format(time.RFC3339), ErrInvalid)
	case o.From.After(now):
		return store.Backfill{}, nil, fmt.Errorf("from_date %s is in the future: a backfill runs past dates: %w", o.From.Format(time.RFC3339), ErrInvalid)
	case o.MaxActiveRuns < 1:
		return store.Backfill{}, nil, fmt.Errorf("max_active_runs must be at least 1, not %d: %w", o.MaxActiveRuns, ErrInvalid)
	case !slices.Contains([]string{store.ReprocessNone, store.ReprocessFailed, store.ReprocessCompleted}, o.Reprocess):
		return store.Backfill{}, nil, fmt.Errorf("reprocess_behavior %q: use none, failed or completed: %w", o.Reprocess, ErrInvalid)
	}
	// The runs whose logical date is in range and whose interval has ended
	// (an interval starting at To ends after it: look a year past To).
	bound := o.To.AddDate(1, 0, 1)
	if bound.After(now) {
		bound = now
	}
	var infos []dags.DagRunInfo
	for _, info := range dags.RunsBetween(d, o.From.Add(-time.Nanosecond), bound, MaxBackfillDates+1) {
		if !info.Interval.Start.Before(o.From) && !info.Interval.Start.After(o.To) {
			infos = append(infos, info)
		}
	}
	if len(infos) > MaxBackfillDates {
		return store.Backfill{}, nil, fmt.Errorf("%s to %s is more than %d runs of %s: backfill a shorter range: %w",
			o.From.Format(time.RFC3339), o.To.Format(time.RFC3339), MaxBackfillDates, d.ID, ErrInvalid)
	}
	if o.RunBackwards {
		slices.Reverse(infos)
	}
	existing, err := s.st.Runs(ctx, store.RunFilter{DagID: d.ID, LogicalGTE: &o.From, LogicalLTE: &o.To})
	if err != nil {
		return store.Backfill{}, nil, err
	}
	byDate := map[int64]store.Run{}
	for _, r := range existing {
		byDate[r.LogicalDate.UnixMicro()] = r
	}
	dates := make([]store.BackfillDate, 0, len(infos))
	for i, info := range infos {
		bd := store.BackfillDate{Ordinal: i, LogicalDate: info.Interval.Start}
		r, ok := byDate[info.Interval.Start.UnixMicro()]
		switch {
		case ok && !r.State.Finished():
			bd.RunID, bd.Exception = r.RunID, BackfillInFlight
		case ok && (o.Reprocess == store.ReprocessCompleted || o.Reprocess == store.ReprocessFailed && r.State == dags.RunFailed):
			bd.RunID, bd.Take = r.RunID, true
		case ok:
			bd.RunID, bd.Exception = r.RunID, BackfillAlreadyExists
		default:
			run := store.Run{DagID: d.ID, RunID: dags.RunID(dags.RunTypeBackfill, info.Interval.Start), RunType: dags.RunTypeBackfill,
				LogicalDate: info.Interval.Start, Interval: info.Interval, Conf: o.Conf, State: dags.RunQueued, QueuedAt: now,
				DAGVersion: d.Hash, GitRevision: d.Revision}
			bd.RunID, bd.Run, bd.TIs = run.RunID, &run, newTaskInstances(d, run)
		}
		dates = append(dates, bd)
	}
	b := store.Backfill{DagID: d.ID, From: o.From, To: o.To, RunBackwards: o.RunBackwards, Conf: o.Conf, Reprocess: o.Reprocess,
		MaxActiveRuns: o.MaxActiveRuns, CreatedAt: now, UpdatedAt: now, CreatedBy: actorName(o.Actor)}
	if o.DryRun {
		return b, dates, nil
	}
	if active, _, err := s.st.Backfills(ctx, store.BackfillFilter{DagID: d.ID, Active: ptr(true)}); err != nil {
		return b, nil, err
	} else if len(active) > 0 {
		return b, nil, fmt.Errorf("dag %q: backfill %d has not completed: %w", d.ID, active[0].ID, store.ErrBackfillActive)
	}
	// The runs to run again are cleared first (whole, as Airflow's
	// reprocessing), then join the backfill with the new ones.
	tasks := make([]string, len(d.Tasks))
	for i, t := range d.Tasks {
		tasks[i] = t.ID
	}
	for _, bd := range dates {
		if bd.Take {
			if _, err := s.Clear(ctx, d.ID, bd.RunID, tasks, ClearOptions{Actor: o.Actor}); err != nil {
				return b, nil, fmt.Errorf("run %s again: %w", bd.RunID, err)
			}
		}
	}
	if b, err = s.st.CreateBackfill(ctx, b, dates); err != nil {
		return b, nil, err
	}
	s.audit(ctx, o.Actor, "backfill_create", d.ID, "", "", fmt.Sprintf("backfill=%d from=%s to=%s reprocess=%s runs=%d",
		b.ID, o.From.Format(time.RFC3339), o.To.Format(time.RFC3339), o.Reprocess, len(dates)))
	s.mu.Lock()
	s.allDirty = true
	s.mu.Unlock()
	s.Notify()
	return b, dates, nil
}

func ptr[T any](v T) *T { return &v }

// currentDAG returns the DAG as the latest load has it.
func (s *Scheduler) currentDAG(ctx context.Context, dagID string) (*dags.DAG, error) {
	snap := s.synced.Load()
	if _, at := s.bag.Current(); !at.Equal(snap.loadedAt) || snap.current[dagID] == nil {
		s.mu.Lock()
		err := s.syncBag(ctx, s.st, s.clock.Now())
		s.mu.Unlock()
		if err != nil {
			return nil, err
		}
		snap = s.synced.Load()
	}
	d := snap.current[dagID]
	if d == nil {
		return nil, fmt.Errorf("dag %q: %w", dagID, store.ErrNotFound)
	}
	return d, nil
}

// Backfill actions.
const (
	BackfillPause   = "pause"
	BackfillUnpause = "unpause"
	BackfillCancel  = "cancel"
)

// BackfillDone says what an action did, for messages.
var BackfillDone = map[string]string{BackfillPause: "paused", BackfillUnpause: "unpaused", BackfillCancel: "cancelled"}

// ChangeBackfill pauses, unpauses or cancels a backfill. Pausing stops
// its runs from starting (those running go on); cancelling also fails its
// runs that have not started, and completes it. A completed backfill
// cannot change (store.ErrConflict).
func (s *Scheduler) ChangeBackfill(ctx context.Context, id int64, action, actor string) (store.Backfill, error) {
	now := s.clock.Now()
	var b store.Backfill
	var err error
	switch action {
	case BackfillPause, BackfillUnpause:
		b, err = s.st.SetBackfillPaused(ctx, id, action == BackfillPause, now)
	case BackfillCancel:
		b, err = s.st.CancelBackfill(ctx, id, now)
	default:
		return b, fmt.Errorf("backfill action %q: use pause, unpause or cancel: %w", action, ErrInvalid)
	}
	if err != nil {
		return b, err
	}
	s.audit(ctx, actor, "backfill_"+action, b.DagID, "", "", fmt.Sprintf("backfill=%d", id))
	s.mu.Lock()
	s.allDirty = true
	s.mu.Unlock()
	s.Notify()
	return b, nil
}
