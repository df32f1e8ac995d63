package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// ServerKey returns the named signing key, creating it (32 random bytes)
// the first time. Every replica gets the same key: the first to create it
// wins and the others read it.
func (s *Store) ServerKey(ctx context.Context, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	if _, err := s.exec(ctx, `INSERT INTO server_keys (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, hex.EncodeToString(fresh), ts(time.Now())); err != nil {
		return nil, err
	}
	var v string
	if err := s.queryRow(ctx, `SELECT value FROM server_keys WHERE name = ?`, name).Scan(&v); err != nil {
		return nil, err
	}
	key, err := hex.DecodeString(v)
	if err != nil || len(key) < 32 {
		return nil, fmt.Errorf("server key %s is damaged", name)
	}
	return key, nil
}

// PutTryResult records what a try reported about itself (JSON). A try
// reports once: a second report of the same try is refused.
func (s *Store) PutTryResult(ctx context.Context, k TIKey, try int, result []byte, at time.Time) error {
	res, err := s.exec(ctx, `INSERT INTO try_results (dag_id, run_id, task_id, map_index, try_number, result, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dag_id, run_id, task_id, map_index, try_number) DO NOTHING`,
		k.DagID, k.RunID, k.TaskID, k.MapIndex, try, string(result), ts(at))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("try %d of %s: %w", try, k, ErrReported)
	}
	return nil
}

// ErrReported means a try has already reported its result.
var ErrReported = errors.New("the try has already reported its result")

// TryResult returns what a try reported, and false when it reported
// nothing.
func (s *Store) TryResult(ctx context.Context, k TIKey, try int) ([]byte, bool, error) {
	var v string
	err := s.queryRow(ctx, `SELECT result FROM try_results WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? AND try_number = ?`,
		k.DagID, k.RunID, k.TaskID, k.MapIndex, try).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return []byte(v), true, nil
}
