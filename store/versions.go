package store

import (
	"context"
	"fmt"
	"time"
)

// DAGVersion is one stored version of a DAG: the content hash its file
// had, numbered from 1 in the order they appeared.
type DAGVersion struct {
	DagID, Version, File, GitRevision string
	Number                            int
	CreatedAt                         time.Time
}

// DAGVersions returns a DAG's versions, oldest (number 1) first.
func (s *Store) DAGVersions(ctx context.Context, dagID string) ([]DAGVersion, error) {
	rows, err := s.query(ctx, `SELECT dag_id, version, fileloc, git_revision, created_at FROM dag_versions WHERE dag_id = ? ORDER BY created_at, version`, dagID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []DAGVersion
	for rows.Next() {
		var v DAGVersion
		var at string
		if err := rows.Scan(&v.DagID, &v.Version, &v.File, &v.GitRevision, &at); err != nil {
			return nil, err
		}
		v.CreatedAt, v.Number = parseTS(at), len(out)+1
		out = append(out, v)
	}
	return out, rows.Err()
}

// RunStateCounts returns how many runs each DAG has in each state.
func (s *Store) RunStateCounts(ctx context.Context) (map[string]map[string]int, error) {
	rows, err := s.query(ctx, `SELECT dag_id, state, COUNT(*) FROM dag_runs GROUP BY dag_id, state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]map[string]int{}
	for rows.Next() {
		var dag, state string
		var n int
		if err := rows.Scan(&dag, &state, &n); err != nil {
			return nil, err
		}
		if out[dag] == nil {
			out[dag] = map[string]int{}
		}
		out[dag][state] = n
	}
	return out, rows.Err()
}

// SetRunNote replaces a run's note; an unknown run is ErrNotFound.
func (s *Store) SetRunNote(ctx context.Context, dagID, runID, note string) error {
	res, err := s.exec(ctx, `UPDATE dag_runs SET note = ? WHERE dag_id = ? AND run_id = ?`, note, dagID, runID)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("dag %q run %q: %w", dagID, runID, ErrNotFound)
	}
	return nil
}

// LastRuns returns each DAG's latest run (by logical date), in one query.
func (s *Store) LastRuns(ctx context.Context) (map[string]Run, error) {
	rows, err := s.query(ctx, `SELECT `+runCols+` FROM dag_runs r WHERE logical_date = (SELECT MAX(logical_date) FROM dag_runs WHERE dag_id = r.dag_id)`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Run{}
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out[r.DagID] = r
	}
	return out, rows.Err()
}
