package store

import (
	"context"
	"strings"
	"time"

	"updraft/dags"
)

// ReplaceImportErrors sets the import errors of the given files: a file
// with errors gets one row listing them (its id and timestamp stay while
// its errors stay the same), a file without errors is cleared.
func (s *Store) ReplaceImportErrors(ctx context.Context, at time.Time, revision string, files map[string]dags.Problems) error {
	return s.InTx(ctx, func(tx *Store) error {
		for file, probs := range files {
			var lines []string
			for _, p := range probs.Errors() {
				lines = append(lines, p.String())
			}
			if len(lines) == 0 {
				if _, err := tx.exec(ctx, `DELETE FROM import_errors WHERE filename = ?`, file); err != nil {
					return err
				}
				continue
			}
			trace := strings.Join(lines, "\n")
			if _, err := tx.exec(ctx, `INSERT INTO import_errors (filename, stack_trace, revision, timestamp) VALUES (?, ?, ?, ?)
				ON CONFLICT (filename) DO UPDATE SET stack_trace = excluded.stack_trace, revision = excluded.revision,
					timestamp = excluded.timestamp WHERE import_errors.stack_trace <> excluded.stack_trace`,
				file, trace, revision, ts(at)); err != nil {
				return err
			}
		}
		return nil
	})
}

// ImportError is the set of problems that kept a DAG file (or some of its
// DAGs) from loading, as Airflow's import_error row.
type ImportError struct {
	ID         int64
	File       string
	StackTrace string // one "file:line:col: message" per line
	Revision   string // the git commit the errors were seen in
	Timestamp  time.Time
}

// ImportErrors returns every file's import errors, by id.
func (s *Store) ImportErrors(ctx context.Context) ([]ImportError, error) {
	rows, err := s.query(ctx, `SELECT id, filename, stack_trace, revision, timestamp FROM import_errors ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ImportError
	for rows.Next() {
		var e ImportError
		var at string
		if err := rows.Scan(&e.ID, &e.File, &e.StackTrace, &e.Revision, &at); err != nil {
			return nil, err
		}
		e.Timestamp = parseTS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
