package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
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
