package store

import (
	"context"
	"time"
)

// Beat records that a server (replica) is alive, registering it the first
// time.
func (s *Store) Beat(ctx context.Context, id, host string, at time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO replicas (id, host, started_at, beat_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at`, id, host, ts(at), ts(at))
	return err
}

// Replica is a server sharing the database.
type Replica struct {
	ID, Host          string
	StartedAt, BeatAt time.Time
}

// Replicas returns the servers that beat since the given time, by id.
func (s *Store) Replicas(ctx context.Context, since time.Time) ([]Replica, error) {
	rows, err := s.query(ctx, `SELECT id, host, started_at, beat_at FROM replicas WHERE beat_at >= ? ORDER BY id`, ts(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Replica
	for rows.Next() {
		var r Replica
		var started, beat string
		if err := rows.Scan(&r.ID, &r.Host, &started, &beat); err != nil {
			return nil, err
		}
		r.StartedAt, r.BeatAt = parseTS(started), parseTS(beat)
		out = append(out, r)
	}
	return out, rows.Err()
}

// ClaimOrphanTries takes over the unfinished tries of servers that have
// not beaten since deadBefore (or of no known server), for me. Each try is
// claimed with a compare-and-swap on its owner, so of several servers
// claiming at once exactly one gets it. It returns the tries claimed.
func (s *Store) ClaimOrphanTries(ctx context.Context, me string, deadBefore time.Time) ([]Try, error) {
	open, err := s.UnfinishedTries(ctx)
	if err != nil {
		return nil, err
	}
	live, err := s.Replicas(ctx, deadBefore)
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{me: true}
	for _, r := range live {
		alive[r.ID] = true
	}
	var out []Try
	for _, t := range open {
		if alive[t.Owner] {
			continue
		}
		res, err := s.exec(ctx, `UPDATE task_tries SET owner = ? WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? AND try_number = ?
			AND owner = ? AND end_date IS NULL`, me, t.DagID, t.RunID, t.TaskID, t.MapIndex, t.TryNumber, t.Owner)
		if err != nil {
			return out, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			t.Owner = me
			out = append(out, t)
		}
	}
	return out, nil
}

// LockScheduling serialises scheduling steps of servers sharing the
// database: inside a transaction, it waits until no other server's step
// holds the lock, which the transaction's end releases. SQLite
// transactions are serial already, so there it does nothing.
func (s *Store) LockScheduling(ctx context.Context) error {
	if s.dialect != postgresDialect {
		return nil
	}
	_, err := s.exec(ctx, `SELECT pg_advisory_xact_lock(7261737)`)
	return err
}

// OneAtATime runs fn unless another server sharing the database is running
// its own fn under the same key (then it returns at once without running
// it): for work only one replica may do at a time, such as sending alerts.
// SQLite has one server, so there fn just runs.
func (s *Store) OneAtATime(ctx context.Context, key int64, fn func() error) error {
	if s.dialect != postgresDialect {
		return fn()
	}
	return s.InTx(ctx, func(tx *Store) error {
		var got bool
		if err := tx.queryRow(ctx, `SELECT pg_try_advisory_xact_lock(?)`, key).Scan(&got); err != nil {
			return err
		}
		if !got {
			return nil
		}
		return fn()
	})
}
