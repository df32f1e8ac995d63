package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// LoginFailures returns how many logins failed for key since its window
// began, and when that was; no failures in a window that began after
// since (an older window has ended) give 0.
func (s *Store) LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error) {
	var n int
	var first string
	err := s.queryRow(ctx, `SELECT n, first_at FROM login_failures WHERE key = ? AND first_at > ?`, key, ts(since)).Scan(&n, &first)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, time.Time{}, nil
	}
	return n, parseTS(first), err
}

// AddLoginFailure counts one failed login for key: in the current window,
// or in a new one starting now when the last began at or before since.
func (s *Store) AddLoginFailure(ctx context.Context, key string, now, since time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO login_failures (key, n, first_at) VALUES (?, 1, ?)
		ON CONFLICT (key) DO UPDATE SET
			n = CASE WHEN login_failures.first_at > ? THEN login_failures.n + 1 ELSE 1 END,
			first_at = CASE WHEN login_failures.first_at > ? THEN login_failures.first_at ELSE excluded.first_at END`,
		key, ts(now), ts(since), ts(since))
	return err
}

// ClearLoginFailures forgets the failures of key (after a good login), and
// every window that began at or before since.
func (s *Store) ClearLoginFailures(ctx context.Context, key string, since time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM login_failures WHERE key = ? OR first_at <= ?`, key, ts(since))
	return err
}
