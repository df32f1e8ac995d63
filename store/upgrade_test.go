package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"updraft/dags"
	"updraft/store/pgtest"
)

// A database made before dynamic task mapping (migration 8) is upgraded
// with everything in it: task instances, tries and log copies keep their
// rows and become unmapped (map index -1), and read back as before.
func TestUpgradeKeepsHistoryUnmapped(t *testing.T) {
	dbs := map[string]func(t *testing.T) string{
		"SQLite":     func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "old.db") },
		"PostgreSQL": func(t *testing.T) string { return pgtest.Start(t).CreateDB(t, "old") },
	}
	for name, dsn := range dbs {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, dsn(t))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.migrate(ctx, 8); err != nil {
				t.Fatal(err)
			}
			// Rows as a server of the previous release wrote them.
			at := ts(time.Date(2024, 1, 1, 3, 0, 0, 0, time.UTC))
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`INSERT INTO dag_runs (dag_id, run_id, run_type, logical_date, data_interval_start, data_interval_end, conf, state, queued_at, dag_version, external_trigger, note, git_revision)
					VALUES ('d', 'r', 'manual', ?, ?, ?, '{}', 'success', ?, 'v', 1, '', '')`, []any{at, at, at, at}},
				{`INSERT INTO task_instances (dag_id, run_id, task_id, state, try_number, max_tries, operator, pool, pool_slots, priority_weight)
					VALUES ('d', 'r', 't', 'success', 1, 0, 'BashOperator', 'default_pool', 1, 1)`, nil},
				{`INSERT INTO task_tries (dag_id, run_id, task_id, try_number, state, start_date, end_date, executor, log_path, owner)
					VALUES ('d', 'r', 't', 1, 'success', ?, ?, 'local', '/logs/t.log', 'old')`, []any{at, at}},
				{`INSERT INTO log_chunks (dag_id, run_id, task_id, try_number, start_at, end_at, data) VALUES ('d', 'r', 't', 1, 0, 5, ?)`, []any{[]byte("hello")}},
			} {
				if _, err := s.exec(ctx, q.sql, q.args...); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Migrate(ctx); err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			k := Unmapped("d", "r", "t")
			ti, err := s.TaskInstance(ctx, k)
			if err != nil || ti.State != dags.StateSuccess || ti.MapIndex != -1 || ti.TryNumber != 1 {
				t.Fatalf("task instance after the upgrade: %+v %v", ti, err)
			}
			tries, err := s.Tries(ctx, k)
			if err != nil || len(tries) != 1 || tries[0].LogPath != "/logs/t.log" || tries[0].MapIndex != -1 {
				t.Fatalf("tries after the upgrade: %+v %v", tries, err)
			}
			if b, _, err := s.ReadLog(ctx, k, 1, 0, 100); err != nil || string(b) != "hello" {
				t.Fatalf("log copy after the upgrade: %q %v", b, err)
			}
			// And the new columns work on the old rows.
			if err := s.StartTry(ctx, Try{TIKey: TIKey{DagID: "d", RunID: "r", TaskID: "t", MapIndex: 0}, TryNumber: 1, StartDate: time.Now(), Executor: "local"}); err != nil {
				t.Fatalf("a mapped try beside an upgraded one: %v", err)
			}
		})
	}
}
