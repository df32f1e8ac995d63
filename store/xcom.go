package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// XCom is one value a task instance pushed: JSON text under a key
// ("return_value" for what the operator returns).
type XCom struct {
	TIKey
	MapIndex  int
	Key       string
	TryNumber int
	Value     json.RawMessage
	CreatedAt time.Time
	// LogicalDate is the run's logical date (filled by reads).
	LogicalDate time.Time
}

// PushXComs replaces what earlier tries of the task instance pushed with
// xs (all of one task instance and try). Values must be valid JSON.
func (s *Store) PushXComs(ctx context.Context, k TIKey, try int, at time.Time, xs map[string]json.RawMessage) error {
	if err := s.ClearXComs(ctx, k, false); err != nil {
		return err
	}
	for key, v := range xs {
		if !json.Valid(v) {
			return fmt.Errorf("xcom %s of %s: the value is not JSON", key, k)
		}
		if _, err := s.exec(ctx, `INSERT INTO xcom (dag_id, run_id, task_id, map_index, xcom_key, try_number, value, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, k.DagID, k.RunID, k.TaskID, k.MapIndex, key, try, string(v), ts(at)); err != nil {
			return err
		}
	}
	return nil
}

// ClearXComs removes a task instance's XComs (with every, those of
// every map index of its task). Removing none is not an error.
func (s *Store) ClearXComs(ctx context.Context, k TIKey, every bool) error {
	q := `DELETE FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ?`
	args := []any{k.DagID, k.RunID, k.TaskID}
	if !every {
		q += ` AND map_index = ?`
		args = append(args, k.MapIndex)
	}
	_, err := s.exec(ctx, q, args...)
	return err
}

// XComFilter selects XComs; empty fields match everything.
type XComFilter struct {
	DagID, RunID string
	TaskIDs      []string
	Key          string // "" matches every key
	MapIndex     *int
	// Before, with IncludePrior, also matches earlier runs of the DAG
	// (logical date at or before it), newest first.
	IncludePrior  bool
	Before        time.Time
	Limit, Offset int
}

// XComs returns the XComs matching f (every DAG's when DagID is ""): of
// the run (or, with IncludePrior, of the runs up to it), newest run first,
// then by task id, map index and key.
func (s *Store) XComs(ctx context.Context, f XComFilter) ([]XCom, error) {
	q := `SELECT x.dag_id, x.run_id, x.task_id, x.map_index, x.xcom_key, x.try_number, x.value, x.created_at, r.logical_date
		FROM xcom x JOIN dag_runs r ON r.dag_id = x.dag_id AND r.run_id = x.run_id WHERE 1 = 1`
	var args []any
	if f.DagID != "" {
		q += ` AND x.dag_id = ?`
		args = append(args, f.DagID)
	}
	if f.IncludePrior {
		q += ` AND r.logical_date <= ?`
		args = append(args, ts(f.Before))
	} else if f.RunID != "" {
		q += ` AND x.run_id = ?`
		args = append(args, f.RunID)
	}
	if len(f.TaskIDs) > 0 {
		q += ` AND x.task_id IN (?` + strings.Repeat(", ?", len(f.TaskIDs)-1) + `)`
		for _, id := range f.TaskIDs {
			args = append(args, id)
		}
	}
	if f.Key != "" {
		q += ` AND x.xcom_key = ?`
		args = append(args, f.Key)
	}
	if f.MapIndex != nil {
		q += ` AND x.map_index = ?`
		args = append(args, *f.MapIndex)
	}
	q += ` ORDER BY r.logical_date DESC, x.task_id, x.map_index, x.xcom_key`
	if f.Limit > 0 {
		q += fmt.Sprintf(` LIMIT %d OFFSET %d`, f.Limit, max(f.Offset, 0))
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []XCom
	for rows.Next() {
		var x XCom
		var value, created, logical string
		if err := rows.Scan(&x.DagID, &x.RunID, &x.TaskID, &x.MapIndex, &x.Key, &x.TryNumber, &value, &created, &logical); err != nil {
			return nil, err
		}
		x.Value = json.RawMessage(value)
		x.CreatedAt = parseTS(created)
		x.LogicalDate = parseTS(logical)
		out = append(out, x)
	}
	return out, rows.Err()
}
