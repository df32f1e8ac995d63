package store

import (
	"context"
	"time"
)

// AuditEntry is one manual action (trigger, clear, mark, pause...).
type AuditEntry struct {
	ID                   int64
	At                   time.Time
	Actor, Action        string
	DagID, RunID, TaskID string
	Detail               string
}

// Audit records a manual action.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	_, err := s.exec(ctx, `INSERT INTO audit_log (at, actor, action, dag_id, run_id, task_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		ts(e.At), e.Actor, e.Action, e.DagID, e.RunID, e.TaskID, s.mask.Mask(e.Detail))
	return err
}

// LastAuditID returns the id of the newest audit entry (0 when none).
// Every manual action is audited, so a change means another process
// triggered, cleared, marked or paused something.
func (s *Store) LastAuditID(ctx context.Context) (int64, error) {
	var id int64
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(id), 0) FROM audit_log`).Scan(&id)
	return id, err
}

// AuditLog returns the newest entries first.
func (s *Store) AuditLog(ctx context.Context, limit int) ([]AuditEntry, error) {
	rows, err := s.query(ctx, `SELECT id, at, actor, action, dag_id, run_id, task_id, detail FROM audit_log ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.DagID, &e.RunID, &e.TaskID, &e.Detail); err != nil {
			return nil, err
		}
		e.At = parseTS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// AuditFilter selects audit entries (Airflow's event log).
type AuditFilter struct {
	ID                                  int64 // one entry; 0: any
	DagID, TaskID, RunID, Actor, Action string
	// Actions and ExcludedActions keep or drop entries by action.
	Actions, ExcludedActions []string
	// Patterns are SQL LIKE patterns matched anywhere, ignoring case.
	DagIDPattern, TaskIDPattern, RunIDPattern, ActorPattern, ActionPattern string
	// After and Before bound the entry's time, inclusive.
	After, Before *time.Time
	// OrderBy is one of AuditOrderColumns, "-" in front for descending;
	// "" is the newest first.
	OrderBy       string
	Limit, Offset int
}

// AuditOrderColumns are the fields audit entries can be ordered by (the
// event log's API names).
var AuditOrderColumns = map[string]string{
	"id": "id", "event_log_id": "id", "when": "at", "dttm": "at", "event": "action", "owner": "actor",
	"dag_id": "dag_id", "task_id": "task_id", "run_id": "run_id",
}

// FindAudit returns the entries f selects, with how many it selects in all.
func (s *Store) FindAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, int, error) {
	w := &where{}
	for col, v := range map[string]string{"dag_id": f.DagID, "task_id": f.TaskID, "run_id": f.RunID, "actor": f.Actor, "action": f.Action} {
		if v != "" {
			w.add(col+` = ?`, v)
		}
	}
	if f.ID != 0 {
		w.add(`id = ?`, f.ID)
	}
	w.in(`action`, f.Actions)
	if len(f.ExcludedActions) > 0 {
		ex := &where{}
		ex.in(`action`, f.ExcludedActions)
		w.add(`NOT (`+ex.conds[0]+`)`, ex.args...)
	}
	w.like(`dag_id`, f.DagIDPattern)
	w.like(`task_id`, f.TaskIDPattern)
	w.like(`run_id`, f.RunIDPattern)
	w.like(`actor`, f.ActorPattern)
	w.like(`action`, f.ActionPattern)
	w.between(`at`, f.After, f.Before)
	order := ` ORDER BY id DESC`
	if f.OrderBy != "" {
		var err error
		if order, err = orderBy(f.OrderBy, AuditOrderColumns, "id"); err != nil {
			return nil, 0, err
		}
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM audit_log`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT id, at, actor, action, dag_id, run_id, task_id, detail FROM audit_log`+
		w.String()+order+limitOffset(f.Limit, f.Offset), w.args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var e AuditEntry
		var at string
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.DagID, &e.RunID, &e.TaskID, &e.Detail); err != nil {
			return nil, 0, err
		}
		e.At = parseTS(at)
		out = append(out, e)
	}
	return out, total, rows.Err()
}
