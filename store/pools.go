package store

import (
	"context"
	"fmt"
)

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
