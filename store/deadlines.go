package store

import (
	"context"
	"time"
)

// AlertDeadlineMissed is a run that missed its DAG deadline, or a task its
// sla.
const AlertDeadlineMissed = "deadline_missed"

// Miss is a missed deadline: of a run (TaskID "") or of one task (its sla).
type Miss struct {
	DagID, RunID, TaskID string
	Kind                 string // "deadline:N" (the DAG's Nth deadline) or "sla"
	Deadline             time.Time
	DetectedAt           time.Time
	What                 string // the deadline in words
	Alerted              bool   // a message was sent (not for runs created after it)
}

// Late is how late the miss was when it was seen.
func (m Miss) Late() time.Duration { return m.DetectedAt.Sub(m.Deadline) }

// RecordMiss records a miss once, with its alert (nil: none) in the same
// transaction; it says whether the miss is new.
func (s *Store) RecordMiss(ctx context.Context, m Miss, alert *Alert) (bool, error) {
	var added bool
	err := s.InTx(ctx, func(tx *Store) error {
		res, err := tx.exec(ctx, `INSERT INTO deadline_misses (dag_id, run_id, task_id, kind, deadline, detected_at, what, alerted)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			m.DagID, m.RunID, m.TaskID, m.Kind, ts(m.Deadline), ts(m.DetectedAt), m.What, boolInt(m.Alerted))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		added = true
		if alert != nil {
			return tx.AddAlert(ctx, *alert)
		}
		return nil
	})
	return added, err
}

// MissFilter selects misses; zero fields do not filter.
type MissFilter struct {
	DagID, RunID  string
	Limit, Offset int
}

// Misses returns the misses f selects, newest first, with how many it
// selects in all.
func (s *Store) Misses(ctx context.Context, f MissFilter) ([]Miss, int, error) {
	w := &where{}
	if f.DagID != "" {
		w.add(`dag_id = ?`, f.DagID)
	}
	if f.RunID != "" {
		w.add(`run_id = ?`, f.RunID)
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM deadline_misses`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT dag_id, run_id, task_id, kind, deadline, detected_at, what, alerted FROM deadline_misses`+
		w.String()+` ORDER BY detected_at DESC, dag_id, run_id, task_id`+limitOffset(f.Limit, f.Offset), w.args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Miss
	for rows.Next() {
		var m Miss
		var dl, at string
		if err := rows.Scan(&m.DagID, &m.RunID, &m.TaskID, &m.Kind, &dl, &at, &m.What, &m.Alerted); err != nil {
			return nil, 0, err
		}
		m.Deadline, m.DetectedAt = parseTS(dl), parseTS(at)
		out = append(out, m)
	}
	return out, total, rows.Err()
}
