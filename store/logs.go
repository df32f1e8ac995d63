package store

import (
	"context"
	"fmt"
)

// Try logs are files the executors write on the replica running the try.
// With several replicas the store also keeps a copy, appended chunk by
// chunk at byte offsets, so any replica can serve any log (package trylog
// decides when).

// AppendLog stores data as a try's log bytes from offset on. A chunk
// already stored at that offset is kept, so a repeated append is harmless.
func (s *Store) AppendLog(ctx context.Context, k TIKey, try int, offset int64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	_, err := s.exec(ctx, `INSERT INTO log_chunks (dag_id, run_id, task_id, map_index, try_number, start_at, end_at, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dag_id, run_id, task_id, map_index, try_number, start_at) DO NOTHING`,
		k.DagID, k.RunID, k.TaskID, k.MapIndex, try, offset, offset+int64(len(data)), data)
	return err
}

// LogSize is how many bytes of a try's log the store holds.
func (s *Store) LogSize(ctx context.Context, k TIKey, try int) (int64, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT COALESCE(MAX(end_at), 0) FROM log_chunks WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? AND try_number = ?`,
		k.DagID, k.RunID, k.TaskID, k.MapIndex, try).Scan(&n)
	return n, err
}

// ReadLog returns up to n bytes of a try's stored log from offset on,
// stopping early at a gap, and the size of what is stored.
func (s *Store) ReadLog(ctx context.Context, k TIKey, try int, offset, n int64) ([]byte, int64, error) {
	size, err := s.LogSize(ctx, k, try)
	if err != nil || offset >= size || n <= 0 {
		return nil, size, err
	}
	end := min(size, offset+n)
	rows, err := s.query(ctx, `SELECT start_at, data FROM log_chunks WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? AND try_number = ?
		AND end_at > ? AND start_at < ? ORDER BY start_at`, k.DagID, k.RunID, k.TaskID, k.MapIndex, try, offset, end)
	if err != nil {
		return nil, size, err
	}
	defer rows.Close()
	out := make([]byte, 0, end-offset)
	at := offset // the next byte wanted
	for rows.Next() {
		var start int64
		var data []byte
		if err := rows.Scan(&start, &data); err != nil {
			return nil, size, err
		}
		if start > at {
			break // a gap: what follows is not contiguous
		}
		from, to := at-start, min(int64(len(data)), end-start)
		if from < to {
			out = append(out, data[from:to]...)
			at = start + to
		}
	}
	if err := rows.Err(); err != nil {
		return nil, size, fmt.Errorf("read log chunks: %w", err)
	}
	return out, size, nil
}

// DeleteLog removes the stored copy of a try's log, before it is written
// again from its start.
func (s *Store) DeleteLog(ctx context.Context, k TIKey, try int) error {
	_, err := s.exec(ctx, `DELETE FROM log_chunks WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = ? AND try_number = ?`,
		k.DagID, k.RunID, k.TaskID, k.MapIndex, try)
	return err
}
