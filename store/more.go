package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"updraft/dags"
)

// Variable is an Airflow Variable. Secret variables are never shown by the
// UI, API or CLI listings; templates still read them.
type Variable struct {
	Key, Value, Description string
	Secret                  bool
	UpdatedAt               time.Time
}

// SetVariable creates or replaces a variable.
func (s *Store) SetVariable(ctx context.Context, v Variable) error {
	_, err := s.exec(ctx, `INSERT INTO variables (key, value, description, is_secret, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, description = excluded.description,
		is_secret = excluded.is_secret, updated_at = excluded.updated_at`, v.Key, v.Value, v.Description, boolInt(v.Secret), ts(v.UpdatedAt))
	return err
}

// Variable returns one variable, or ErrNotFound.
func (s *Store) Variable(ctx context.Context, key string) (Variable, error) {
	v := Variable{Key: key}
	var at string
	err := s.queryRow(ctx, `SELECT value, description, is_secret, updated_at FROM variables WHERE key = ?`, key).
		Scan(&v.Value, &v.Description, &v.Secret, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("variable %q: %w", key, ErrNotFound)
	}
	v.UpdatedAt = parseTS(at)
	return v, err
}

// Variables returns every variable, by key.
func (s *Store) Variables(ctx context.Context) ([]Variable, error) {
	rows, err := s.query(ctx, `SELECT key, value, description, is_secret, updated_at FROM variables ORDER BY key`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Variable
	for rows.Next() {
		var v Variable
		var at string
		if err := rows.Scan(&v.Key, &v.Value, &v.Description, &v.Secret, &at); err != nil {
			return nil, err
		}
		v.UpdatedAt = parseTS(at)
		out = append(out, v)
	}
	return out, rows.Err()
}

// VariableValues returns key -> value for templates.
func (s *Store) VariableValues(ctx context.Context) (map[string]string, error) {
	out, _, err := s.TemplateVariables(ctx)
	return out, err
}

// TemplateVariables returns key -> value for templates, and the values
// that are secret (see SecretValues) to mask wherever they end up.
func (s *Store) TemplateVariables(ctx context.Context) (map[string]string, []string, error) {
	vs, err := s.Variables(ctx)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[string]string, len(vs))
	var secret []string
	for _, v := range vs {
		out[v.Key] = v.Value
		if v.Secret || dags.SensitiveName(v.Key) {
			secret = append(secret, v.Value)
		}
	}
	return out, secret, nil
}

// DeleteVariable deletes a variable; ErrNotFound if there was none.
func (s *Store) DeleteVariable(ctx context.Context, key string) error {
	res, err := s.exec(ctx, `DELETE FROM variables WHERE key = ?`, key)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("variable %q: %w", key, ErrNotFound)
	}
	return nil
}

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

// Pool is a named set of slots limiting concurrent task instances.
type Pool struct {
	Name        string
	Slots       int
	Description string
}

// Pools returns every pool, by name.
func (s *Store) Pools(ctx context.Context) ([]Pool, error) {
	rows, err := s.query(ctx, `SELECT name, slots, description FROM pools ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Pool
	for rows.Next() {
		var p Pool
		if err := rows.Scan(&p.Name, &p.Slots, &p.Description); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// SetPool creates or resizes a pool.
func (s *Store) SetPool(ctx context.Context, p Pool) error {
	_, err := s.exec(ctx, `INSERT INTO pools (name, slots, description) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET slots = excluded.slots, description = excluded.description`, p.Name, p.Slots, p.Description)
	return err
}

// DeletePool removes a pool; ErrNotFound if there is none.
func (s *Store) DeletePool(ctx context.Context, name string) error {
	res, err := s.exec(ctx, `DELETE FROM pools WHERE name = ?`, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("pool %q: %w", name, ErrNotFound)
	}
	return nil
}

// PoolUse is what a pool's task instances hold now.
type PoolUse struct {
	Running, Queued int // slots
}

// PoolUsage returns the slots held by queued and running task instances,
// by pool.
func (s *Store) PoolUsage(ctx context.Context) (map[string]PoolUse, error) {
	rows, err := s.query(ctx, `SELECT pool, state, SUM(pool_slots) FROM task_instances WHERE state IN ('queued', 'running') GROUP BY pool, state`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]PoolUse{}
	for rows.Next() {
		var pool, state string
		var n int
		if err := rows.Scan(&pool, &state, &n); err != nil {
			return nil, err
		}
		u := out[pool]
		if state == "running" {
			u.Running += n
		} else {
			u.Queued += n
		}
		out[pool] = u
	}
	return out, rows.Err()
}

// SecretValues are the values no page, API response, log view or alert may
// show: those of secret variables (marked secret, or named like a secret
// by Airflow's rule), longest first, for dags.Mask.
func (s *Store) SecretValues(ctx context.Context) ([]string, error) {
	vars, err := s.Variables(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, v := range vars {
		if (v.Secret || dags.SensitiveName(v.Key)) && len(v.Value) >= 4 {
			out = append(out, v.Value)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// StateCounts returns how many runs and task instances are in each state
// (a task instance without a state counts as "none").
func (s *Store) StateCounts(ctx context.Context) (runs, tis map[string]int, err error) {
	if runs, err = s.countBy(ctx, `SELECT state, COUNT(*) FROM dag_runs GROUP BY state`); err != nil {
		return nil, nil, err
	}
	if tis, err = s.countBy(ctx, `SELECT state, COUNT(*) FROM task_instances GROUP BY state`); err != nil {
		return nil, nil, err
	}
	if n, ok := tis[""]; ok {
		tis["none"] += n
		delete(tis, "")
	}
	return runs, tis, nil
}
