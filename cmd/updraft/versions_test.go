package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `updraft dags versions` and `dags diff` read the versions a server
// stored: a change to the file shows as a diff; moving it does not.
func TestDagsVersionsAndDiff(t *testing.T) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	file := filepath.Join(dagDir, "v.yaml")
	writeFile(t, file, "v:\n  start_date: 2024-01-01\n  schedule: \"@daily\"\n  tasks: [{task_id: a, operator: BashOperator, bash_command: \"echo 1\"}]\n")
	db := "sqlite:" + filepath.Join(dir, "u.db")
	p, _ := startInProcessCtx(t, map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": db, "UPDRAFT_DAGS_INTERVAL": "100ms"})
	versions := func() string {
		_, out, _ := run(t, nil, "dags", "versions", "v", "--db", db)
		return out
	}
	waitFor(t, "the first version", 10*time.Second, func() bool { return strings.Count(versions(), "\n") == 2 })
	if code, out, _ := run(t, nil, "dags", "diff", "v", "--db", db); code != 0 || !strings.Contains(out, "one version so far") {
		t.Fatalf("diff of one version: %d %s", code, out)
	}
	writeFile(t, file, "v:\n  start_date: 2024-01-01\n  schedule: \"@hourly\"\n  tasks: [{task_id: a, operator: BashOperator, bash_command: \"echo 2\"}]\n")
	waitFor(t, "the second version", 10*time.Second, func() bool { return strings.Count(versions(), "\n") == 3 })
	p.stop()
	code, out, errOut := run(t, nil, "dags", "diff", "v", "--db", db)
	if code != 0 || !strings.Contains(out, `-  "schedule": "@daily",`) || !strings.Contains(out, `+  "schedule": "@hourly",`) ||
		!strings.Contains(out, `+          "bash_command": "echo 2",`) || !strings.Contains(out, "--- v version 1") {
		t.Fatalf("diff: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := run(t, nil, "dags", "diff", "v", "2", "2", "--db", db); code != 0 || !strings.Contains(out, "define the same DAG") {
		t.Errorf("a version against itself: %d %s", code, out)
	}
	if code, _, errOut := run(t, nil, "dags", "diff", "v", "1", "7", "--db", db); code != 1 || !strings.Contains(errOut, "no version 7") {
		t.Errorf("an unknown version: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "dags", "versions", "nope", "--db", db); code != 1 || !strings.Contains(errOut, "no stored version") {
		t.Errorf("an unknown DAG: %d %s", code, errOut)
	}
}
