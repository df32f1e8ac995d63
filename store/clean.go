package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion returns the newest migration applied to the database and
// the newest this build knows.
func (s *Store) SchemaVersion(ctx context.Context) (applied, latest int, err error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return 0, 0, err
	}
	sort.Strings(names)
	if len(names) > 0 {
		base := strings.TrimPrefix(names[len(names)-1], "migrations/")
		latest, _ = strconv.Atoi(strings.SplitN(base, "_", 2)[0])
	}
	err = s.queryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&applied)
	if err != nil && strings.Contains(err.Error(), "schema_migrations") {
		return 0, latest, nil // not migrated at all
	}
	return applied, latest, err
}

// CleanReport says what Clean removed (or, dry, would remove).
type CleanReport struct {
	Runs, TaskInstances, Tries, XComs, AuditEntries, Alerts, Versions int
	// LogPaths are the try logs of the removed tries, for the caller to
	// delete (the store does not own the files).
	LogPaths []string
}

// Clean removes history older than before, as Airflow's `db clean`:
// finished runs (by logical date) with their task instances, tries and XComs,
// audit entries, delivered or abandoned alerts, expired sessions, and DAG
// versions no run and no DAG uses any more. Queued and running runs and
// pending alerts are never removed. It is one transaction.
func (s *Store) Clean(ctx context.Context, before time.Time, dryRun bool) (CleanReport, error) {
	var rep CleanReport
	err := s.InTx(ctx, func(tx *Store) error {
		cut := ts(before)
		old := `SELECT dag_id, run_id FROM dag_runs WHERE logical_date < ? AND state IN ('success', 'failed')`
		rows, err := tx.query(ctx, `SELECT t.log_path FROM task_tries t JOIN (`+old+`) r ON r.dag_id = t.dag_id AND r.run_id = t.run_id`, cut)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			if p != "" {
				rep.LogPaths = append(rep.LogPaths, p)
			}
		}
		rows.Close()
		count := func(q string, dst *int, args ...any) error { return tx.queryRow(ctx, q, args...).Scan(dst) }
		inOld := ` WHERE (dag_id, run_id) IN (` + old + `)`
		for _, c := range []struct {
			q   string
			dst *int
		}{
			{`SELECT COUNT(*) FROM task_tries` + inOld, &rep.Tries},
			{`SELECT COUNT(*) FROM xcom` + inOld, &rep.XComs},
			{`SELECT COUNT(*) FROM task_instances` + inOld, &rep.TaskInstances},
			{`SELECT COUNT(*) FROM dag_runs WHERE logical_date < ? AND state IN ('success', 'failed')`, &rep.Runs},
		} {
			if err := count(c.q, c.dst, cut); err != nil {
				return err
			}
		}
		if err := count(`SELECT COUNT(*) FROM audit_log WHERE at < ?`, &rep.AuditEntries, cut); err != nil {
			return err
		}
		if err := count(`SELECT COUNT(*) FROM alerts WHERE created_at < ? AND state <> 'pending'`, &rep.Alerts, cut); err != nil {
			return err
		}
		unused := ` FROM dag_versions v WHERE v.created_at < ?
			AND NOT EXISTS (SELECT 1 FROM dags d WHERE d.dag_id = v.dag_id AND d.current_version = v.version)
			AND NOT EXISTS (SELECT 1 FROM dag_runs r WHERE r.dag_id = v.dag_id AND r.dag_version = v.version
				AND NOT (r.logical_date < ? AND r.state IN ('success', 'failed')))`
		if err := count(`SELECT COUNT(*)`+unused, &rep.Versions, cut, cut); err != nil {
			return err
		}
		if dryRun {
			return nil
		}
		for _, q := range []string{
			`DELETE FROM log_chunks` + inOld,
			`DELETE FROM xcom` + inOld,
			`DELETE FROM try_results` + inOld,
			`DELETE FROM task_tries` + inOld,
			`DELETE FROM task_instances` + inOld,
			`DELETE FROM deadline_misses` + inOld,
		} {
			if _, err := tx.exec(ctx, q, cut); err != nil {
				return err
			}
		}
		// Versions before runs: the check looks at the runs being removed.
		if _, err := tx.exec(ctx, `DELETE FROM dag_versions WHERE (dag_id, version) IN (SELECT v.dag_id, v.version`+unused+`)`, cut, cut); err != nil {
			return err
		}
		for _, q := range []string{
			`DELETE FROM dag_runs WHERE logical_date < ? AND state IN ('success', 'failed')`,
			`DELETE FROM audit_log WHERE at < ?`,
			`DELETE FROM alerts WHERE created_at < ? AND state <> 'pending'`,
			`DELETE FROM sessions WHERE expires_at < ?`,
		} {
			if _, err := tx.exec(ctx, q, cut); err != nil {
				return err
			}
		}
		return nil
	})
	return rep, err
}

// DeleteRun removes one finished run with its task instances, tries, log
// copies, XComs and reported results, in one transaction, and returns the
// try logs' paths for the caller to delete. A queued or running run is
// store.ErrConflict (the scheduler is working on it); an unknown one
// ErrNotFound.
func (s *Store) DeleteRun(ctx context.Context, dagID, runID string) ([]string, error) {
	var paths []string
	err := s.InTx(ctx, func(tx *Store) error {
		var state string
		if err := tx.queryRow(ctx, `SELECT state FROM dag_runs WHERE dag_id = ? AND run_id = ?`, dagID, runID).Scan(&state); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("dag %q run %q: %w", dagID, runID, ErrNotFound)
			}
			return err
		}
		if state == "queued" || state == "running" {
			return fmt.Errorf("run %s of dag %s is %s; mark it success or failed first: %w", runID, dagID, state, ErrConflict)
		}
		rows, err := tx.query(ctx, `SELECT log_path FROM task_tries WHERE dag_id = ? AND run_id = ?`, dagID, runID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return err
			}
			if p != "" {
				paths = append(paths, p)
			}
		}
		rows.Close()
		for _, table := range []string{"log_chunks", "xcom", "try_results", "task_tries", "task_instances", "deadline_misses", "dag_runs"} {
			if _, err := tx.exec(ctx, `DELETE FROM `+table+` WHERE dag_id = ? AND run_id = ?`, dagID, runID); err != nil {
				return err
			}
		}
		return nil
	})
	return paths, err
}
