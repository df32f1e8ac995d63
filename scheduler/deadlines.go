package scheduler

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// Deadlines are checked by the step over the open runs it reads anyway:
// no timer per run. A deadline not yet due only moves the step's next
// wake-up; a task sla needs the run's task instances once it is due, and
// what is settled (met, or missed and recorded) is not looked at again.
//
// A miss is recorded once (the store's key) and sent to Mattermost, except
// for a run created after its deadline had passed (catch-up and backfill
// runs of old dates): such misses are recorded, silently, so the channel
// is not flooded with what everyone knows.

// checkDeadlines records what the open runs have missed by now and
// returns when the next deadline falls due.
func (s *Scheduler) checkDeadlines(ctx context.Context, st *store.Store, runs []store.Run, now time.Time) (time.Time, error) {
	var next time.Time
	for _, r := range runs {
		d := s.dagFor(r.DagID, r.DAGVersion)
		if d == nil || len(d.Deadlines) == 0 && !hasSLA(d) {
			continue
		}
		due, err := s.checkRun(ctx, st, d, r, now)
		if err != nil {
			return next, err
		}
		if !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	return next, nil
}

func hasSLA(d *dags.DAG) bool {
	for _, t := range d.Tasks {
		if t.SLA > 0 {
			return true
		}
	}
	return false
}

// checkRun settles r's deadlines and slas that are due by now (the run's
// end, when it has ended), and returns when the next one falls due.
func (s *Scheduler) checkRun(ctx context.Context, st *store.Store, d *dags.DAG, r store.Run, now time.Time) (time.Time, error) {
	key := runKey(r.DagID, r.RunID)
	settled := s.decided[key]
	if settled == nil {
		settled = map[string]bool{}
		s.decided[key] = settled
	}
	var next time.Time
	wake := func(at time.Time) {
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	finished := r.State.Finished()
	end := now
	if finished && r.EndDate != nil {
		end = *r.EndDate
	}
	for i, dl := range d.Deadlines {
		kind := "deadline:" + strconv.Itoa(i)
		if settled[kind] {
			continue
		}
		at, ok := dl.For(r.LogicalDate, r.QueuedAt, r.StartDate)
		switch {
		case !ok && !finished:
			continue // its reference is not known yet (a run not started)
		case !ok || !end.After(at):
			if finished {
				settled[kind] = true // met
			} else {
				wake(at)
			}
			continue
		}
		m := store.Miss{DagID: r.DagID, RunID: r.RunID, Kind: kind, Deadline: at, DetectedAt: end, What: dl.Describe()}
		if err := s.recordMiss(ctx, st, r, m, i+1); err != nil {
			return next, err
		}
		settled[kind] = true
	}
	if r.RunType != dags.RunTypeScheduled {
		return next, nil // slas hold for scheduled runs, as in Airflow 2
	}
	var tis []store.TaskInstance
	for _, t := range d.Tasks {
		kind := "sla:" + t.ID
		if t.SLA <= 0 || settled[kind] {
			continue
		}
		at := r.Interval.End.Add(t.SLA)
		if !finished && now.Before(at) {
			wake(at)
			continue
		}
		if tis == nil {
			var err error
			if tis, err = st.TaskInstances(ctx, r.DagID, r.RunID); err != nil {
				return next, err
			}
		}
		done, doneAt := taskDone(tis, t.ID)
		detected := now
		switch {
		case done && !doneAt.After(at):
			settled[kind] = true // met
			continue
		case done:
			detected = doneAt
		case finished:
			detected = end
		}
		if !detected.After(at) {
			settled[kind] = true
			continue
		}
		m := store.Miss{DagID: r.DagID, RunID: r.RunID, TaskID: t.ID, Kind: "sla", Deadline: at, DetectedAt: detected,
			What: "sla " + t.SLA.String() + " after the data interval ended"}
		if err := s.recordMiss(ctx, st, r, m, 0); err != nil {
			return next, err
		}
		settled[kind] = true
	}
	return next, nil
}

// taskDone says whether every instance of a task succeeded (or was
// skipped), and when the last of them ended.
func taskDone(tis []store.TaskInstance, taskID string) (bool, time.Time) {
	var last time.Time
	n := 0
	for _, ti := range tis {
		if ti.TaskID != taskID {
			continue
		}
		n++
		if ti.State != dags.StateSuccess && ti.State != dags.StateSkipped {
			return false, time.Time{}
		}
		if ti.EndDate != nil && ti.EndDate.After(last) {
			last = *ti.EndDate
		}
	}
	return n > 0, last
}

// recordMiss records a miss and, unless the run was created after the
// deadline had passed, its alert; deadline is the DAG deadline's number
// from 1 (0 for a task sla), which the alert carries as its Try so the
// notifier finds the deadline's channel.
func (s *Scheduler) recordMiss(ctx context.Context, st *store.Store, r store.Run, m store.Miss, deadline int) error {
	m.Alerted = !r.QueuedAt.After(m.Deadline)
	var alert *store.Alert
	if m.Alerted {
		late := m.Late().Round(time.Second)
		detail := fmt.Sprintf("%s (%s), %s late", m.What, m.Deadline.UTC().Format("2006-01-02 15:04 MST"), late)
		a := store.Alert{Key: strings.Join([]string{store.AlertDeadlineMissed, m.DagID, m.RunID, m.TaskID, m.Kind}, "\x1f"),
			Kind: store.AlertDeadlineMissed, DagID: m.DagID, RunID: m.RunID, TaskID: m.TaskID, Try: deadline, Detail: detail,
			CreatedAt: m.DetectedAt}
		alert = &a
	}
	added, err := st.RecordMiss(ctx, m, alert)
	if err == nil && added {
		s.log.Warn("deadline missed", "dag_id", m.DagID, "run_id", m.RunID, "task_id", m.TaskID, "deadline", m.What,
			"late", m.Late().Round(time.Second), "alerted", m.Alerted)
	}
	return err
}
