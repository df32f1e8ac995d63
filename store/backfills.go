package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"updraft/dags"
)

// Reprocess behaviours of a backfill (Airflow 3's ReprocessBehavior): which
// logical dates that already have a run are run again.
const (
	ReprocessNone      = "none"      // a date with a run is left alone
	ReprocessFailed    = "failed"    // a failed run is run again
	ReprocessCompleted = "completed" // a failed or successful run is run again
)

// Backfill is a DAG's runs over a range of past logical dates, made
// together and started by the scheduler under the backfill's own limit.
type Backfill struct {
	ID            int64
	DagID         string
	From, To      time.Time
	RunBackwards  bool
	Conf          map[string]any
	Reprocess     string
	MaxActiveRuns int
	Paused        bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CompletedAt   *time.Time
	CreatedBy     string
}

// BackfillDate is one logical date a backfill considered: the run it
// made or took over, or why it left the date alone (Exception).
type BackfillDate struct {
	Ordinal     int
	LogicalDate time.Time
	RunID       string
	Exception   string
	// With CreateBackfill: the run to make (with its task instances), or
	// Take: an existing run (already queued again) that joins the backfill.
	Run  *Run
	TIs  []TaskInstance
	Take bool
}

// What says what the backfill does with the date, in a few words.
func (d BackfillDate) What() string {
	switch {
	case d.Take:
		return "run again"
	case d.Exception != "":
		return "left alone: " + d.Exception
	}
	return "new run"
}

const backfillCols = `id, dag_id, from_date, to_date, run_backwards, dag_run_conf, reprocess_behavior, max_active_runs,
	is_paused, created_at, updated_at, completed_at, created_by`

func scanBackfill(sc interface{ Scan(...any) error }) (Backfill, error) {
	var b Backfill
	var from, to, conf, created, updated string
	var completed sql.NullString
	err := sc.Scan(&b.ID, &b.DagID, &from, &to, &b.RunBackwards, &conf, &b.Reprocess, &b.MaxActiveRuns, &b.Paused,
		&created, &updated, &completed, &b.CreatedBy)
	if err != nil {
		return b, err
	}
	b.From, b.To, b.CreatedAt, b.UpdatedAt, b.CompletedAt = parseTS(from), parseTS(to), parseTS(created), parseTS(updated), parseTSPtr(completed)
	if err := json.Unmarshal([]byte(conf), &b.Conf); err != nil {
		return b, fmt.Errorf("backfill %d conf: %w", b.ID, err)
	}
	return b, nil
}

// ErrBackfillActive is a second backfill of a DAG while one runs.
var ErrBackfillActive = fmt.Errorf("the DAG has a backfill that has not completed: %w", ErrConflict)

// CreateBackfill records a backfill, makes its new runs and takes over the
// runs it reprocesses, in one transaction: the scheduler sees all of it or
// none. A DAG has one backfill at a time (ErrBackfillActive).
func (s *Store) CreateBackfill(ctx context.Context, b Backfill, dates []BackfillDate) (Backfill, error) {
	conf := b.Conf
	if conf == nil {
		conf = map[string]any{}
	}
	confJSON, err := json.Marshal(conf)
	if err != nil {
		return b, fmt.Errorf("backfill conf: %w", err)
	}
	err = s.InTx(ctx, func(tx *Store) error {
		if _, err := tx.exec(ctx, `INSERT INTO backfills (dag_id, from_date, to_date, run_backwards, dag_run_conf, reprocess_behavior,
			max_active_runs, is_paused, created_at, updated_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.DagID, ts(b.From), ts(b.To), boolInt(b.RunBackwards), string(confJSON), b.Reprocess, b.MaxActiveRuns, boolInt(b.Paused),
			ts(b.CreatedAt), ts(b.CreatedAt), b.CreatedBy); err != nil {
			if isUnique(err) {
				return ErrBackfillActive
			}
			return err
		}
		if err := tx.queryRow(ctx, `SELECT id FROM backfills WHERE dag_id = ? AND completed_at IS NULL`, b.DagID).Scan(&b.ID); err != nil {
			return err
		}
		for _, d := range dates {
			switch {
			case d.Run != nil:
				r := *d.Run
				r.BackfillID = b.ID
				if err := tx.CreateRun(ctx, r, d.TIs); err != nil {
					return err
				}
				d.RunID = r.RunID
			case d.Take:
				if _, err := tx.exec(ctx, `UPDATE dag_runs SET backfill_id = ? WHERE dag_id = ? AND run_id = ?`, b.ID, b.DagID, d.RunID); err != nil {
					return err
				}
			}
			var runID any
			if d.RunID != "" {
				runID = d.RunID
			}
			if _, err := tx.exec(ctx, `INSERT INTO backfill_runs (backfill_id, sort_ordinal, logical_date, run_id, exception_reason)
				VALUES (?, ?, ?, ?, ?)`, b.ID, d.Ordinal, ts(d.LogicalDate), runID, d.Exception); err != nil {
				return err
			}
		}
		return nil
	})
	b.UpdatedAt = b.CreatedAt
	return b, err
}

// BackfillFilter selects backfills; zero fields do not filter.
type BackfillFilter struct {
	DagID         string
	Active        *bool // not completed (true) or completed (false)
	Limit, Offset int
}

// Backfills returns the backfills f selects, newest first, with how many
// it selects in all.
func (s *Store) Backfills(ctx context.Context, f BackfillFilter) ([]Backfill, int, error) {
	w := &where{}
	if f.DagID != "" {
		w.add(`dag_id = ?`, f.DagID)
	}
	if f.Active != nil {
		if *f.Active {
			w.add(`completed_at IS NULL`)
		} else {
			w.add(`completed_at IS NOT NULL`)
		}
	}
	var total int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM backfills`+w.String(), w.args...).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := s.query(ctx, `SELECT `+backfillCols+` FROM backfills`+w.String()+` ORDER BY id DESC`+limitOffset(f.Limit, f.Offset), w.args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var out []Backfill
	for rows.Next() {
		b, err := scanBackfill(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, b)
	}
	return out, total, rows.Err()
}

// Backfill returns one backfill, or ErrNotFound.
func (s *Store) Backfill(ctx context.Context, id int64) (Backfill, error) {
	b, err := scanBackfill(s.queryRow(ctx, `SELECT `+backfillCols+` FROM backfills WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return b, fmt.Errorf("backfill %d: %w", id, ErrNotFound)
	}
	return b, err
}

// BackfillDates returns what a backfill did with each of its dates, in
// its order.
func (s *Store) BackfillDates(ctx context.Context, id int64) ([]BackfillDate, error) {
	rows, err := s.query(ctx, `SELECT sort_ordinal, logical_date, COALESCE(run_id, ''), exception_reason FROM backfill_runs
		WHERE backfill_id = ? ORDER BY sort_ordinal`, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []BackfillDate
	for rows.Next() {
		var d BackfillDate
		var logical string
		if err := rows.Scan(&d.Ordinal, &logical, &d.RunID, &d.Exception); err != nil {
			return nil, err
		}
		d.LogicalDate = parseTS(logical)
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetBackfillPaused pauses or unpauses a backfill that has not completed;
// a completed one is ErrConflict.
func (s *Store) SetBackfillPaused(ctx context.Context, id int64, paused bool, now time.Time) (Backfill, error) {
	res, err := s.exec(ctx, `UPDATE backfills SET is_paused = ?, updated_at = ? WHERE id = ? AND completed_at IS NULL`,
		boolInt(paused), ts(now), id)
	if err != nil {
		return Backfill{}, err
	}
	return s.afterBackfillChange(ctx, res, id)
}

func (s *Store) afterBackfillChange(ctx context.Context, res sql.Result, id int64) (Backfill, error) {
	b, err := s.Backfill(ctx, id)
	if err != nil {
		return b, err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return b, fmt.Errorf("backfill %d has completed: %w", id, ErrConflict)
	}
	return b, nil
}

// CancelBackfill ends a backfill: its runs that have not started fail
// (with a note saying why), the running ones go on, and it completes.
func (s *Store) CancelBackfill(ctx context.Context, id int64, now time.Time) (Backfill, error) {
	var res sql.Result
	err := s.InTx(ctx, func(tx *Store) error {
		var err error
		res, err = tx.exec(ctx, `UPDATE backfills SET is_paused = 1, completed_at = ?, updated_at = ? WHERE id = ? AND completed_at IS NULL`,
			ts(now), ts(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		_, err = tx.exec(ctx, `UPDATE dag_runs SET state = ?, end_date = ?, note = ? WHERE backfill_id = ? AND state = ?`,
			string(dags.RunFailed), ts(now), fmt.Sprintf("backfill %d was cancelled before this run started", id), id, string(dags.RunQueued))
		return err
	})
	if err != nil {
		return Backfill{}, err
	}
	return s.afterBackfillChange(ctx, res, id)
}

// CompleteBackfills marks complete every backfill none of whose runs is
// queued or running any more, and returns how many it marked.
func (s *Store) CompleteBackfills(ctx context.Context, now time.Time) (int, error) {
	res, err := s.exec(ctx, `UPDATE backfills SET completed_at = ?, updated_at = ? WHERE completed_at IS NULL AND NOT EXISTS
		(SELECT 1 FROM dag_runs r WHERE r.backfill_id = backfills.id AND r.state IN (?, ?))`,
		ts(now), ts(now), string(dags.RunQueued), string(dags.RunRunning))
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// BackfillRunStates counts the runs of some backfills by state, by
// backfill, in one query.
func (s *Store) BackfillRunStates(ctx context.Context, ids []int64) (map[int64]map[string]int, error) {
	out := map[int64]map[string]int{}
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.query(ctx, `SELECT backfill_id, state, COUNT(*) FROM dag_runs WHERE backfill_id IN (`+
		strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")+`) GROUP BY backfill_id, state`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var st string
		var n int
		if err := rows.Scan(&id, &st, &n); err != nil {
			return nil, err
		}
		if out[id] == nil {
			out[id] = map[string]int{}
		}
		out[id][st] = n
	}
	return out, rows.Err()
}
