package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `updraft backfill` from a shell: a dry run changes nothing, a backfill
// makes its runs in the database (for the server's scheduler to run), is
// listed, paused and cancelled; bad input says what is wrong.
func TestBackfillCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "dags"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "dags", "d.yaml"), `
nightly:
  start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  tasks: [{task_id: t, operator: EmptyOperator}]
`)
	db := "sqlite:" + filepath.Join(dir, "u.db")
	common := []string{"--dags", filepath.Join(dir, "dags"), "--db", db}
	bf := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, nil, append(append([]string{"backfill"}, args...), common...)...)
	}
	code, out, errOut := bf("create", "nightly", "--from", "2024-02-01", "--to", "2024-02-03", "--dry-run")
	if code != 0 || strings.Count(out, "new run") != 3 || !strings.Contains(out, "2024-02-03T00:00:00Z  backfill__2024-02-03T00:00:00+00:00") ||
		!strings.Contains(out, "nothing created") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := bf("list"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("a dry run left a backfill: %s", out)
	}
	code, out, errOut = bf("create", "nightly", "--from", "2024-02-01", "--to", "2024-02-03", "--max-active-runs", "2",
		"--conf", `{"full": true}`, "--run-backwards")
	if code != 0 || !strings.Contains(out, "created backfill 1 of nightly: 3 dates, 2 runs at once") {
		t.Fatalf("create: %d\n%s%s", code, out, errOut)
	}
	if got := query(t, dir, `SELECT COUNT(*) FROM dag_runs WHERE backfill_id = 1 AND state = 'queued' AND conf LIKE '%full%'`); got != "3" {
		t.Fatalf("queued runs of the backfill: %s", got)
	}
	if code, _, errOut := bf("create", "nightly", "--from", "2024-02-01", "--to", "2024-02-03"); code != 1 || !strings.Contains(errOut, "has not completed") {
		t.Errorf("a second backfill: %d %s", code, errOut)
	}
	if code, out, _ := bf("pause", "1"); code != 0 || !strings.Contains(out, "backfill 1 of nightly: paused") {
		t.Errorf("pause: %d %s", code, out)
	}
	if code, out, _ := bf("list", "nightly"); code != 0 || !strings.Contains(out, "paused") || !strings.Contains(out, "2024-02-01T00:00:00Z") {
		t.Errorf("list: %s", out)
	}
	if code, out, _ := bf("cancel", "1"); code != 0 || !strings.Contains(out, "cancelled") {
		t.Errorf("cancel: %d %s", code, out)
	}
	if got := query(t, dir, `SELECT COUNT(*) FROM dag_runs WHERE backfill_id = 1 AND state = 'failed'`); got != "3" {
		t.Errorf("runs failed by the cancel: %s", got)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create", "nightly", "--from", "2024-02-01"}, 2, "usage"},
		{[]string{"create", "nightly", "--from", "February", "--to", "2024-02-03"}, 2, "invalid date"},
		{[]string{"create", "nightly", "--from", "2024-02-03", "--to", "2024-02-01"}, 1, "before"},
		{[]string{"create", "nightly", "--from", time.Now().AddDate(1, 0, 0).Format("2006-01-02"), "--to", time.Now().AddDate(1, 0, 1).Format("2006-01-02")}, 1, "future"},
		{[]string{"create", "nope", "--from", "2024-02-01", "--to", "2024-02-03"}, 1, "nope"},
		{[]string{"pause", "x"}, 2, "a number"},
		{[]string{"unpause", "1"}, 1, "completed"},
	} {
		if code, _, errOut := bf(tc.args...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %s", tc.args, code, errOut)
		}
	}
}
