package dags

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"
)

func TestFolderReloadsOnChange(t *testing.T) {
	defer goleak.VerifyNone(t)
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", "a:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n")
	f := NewFolder(os.DirFS(dir), time.Hour, slog.New(slog.DiscardHandler))
	if _, at := f.Current(); !at.IsZero() {
		t.Fatal("loaded before the first refresh")
	}
	if !f.Refresh() {
		t.Fatal("first refresh did not load")
	}
	if f.Refresh() {
		t.Fatal("reloaded without a change")
	}
	write("b.yaml", "b:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n")
	if !f.Refresh() {
		t.Fatal("new file not noticed")
	}
	if res, _ := f.Current(); len(res.DAGs) != 2 {
		t.Fatalf("DAGs = %v", res.DAGs)
	}
	write("b.yaml", "b: [broken\n")
	f.Refresh()
	res, _ := f.Current()
	if len(res.DAGs) != 2 || len(res.Problems().Errors()) != 1 || res.Files[1].Kept[0] != "b" {
		t.Fatalf("after a broken edit (b's last good version keeps serving): %v %v", res.DAGs, res.Problems())
	}
	if err := os.Remove(filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	f.Refresh()
	if res, _ := f.Current(); len(res.DAGs) != 1 || len(res.Problems()) != 0 {
		t.Fatalf("after removal: %v %v", res.DAGs, res.Problems())
	}
}

// Run stops when its context ends and leaves no goroutine behind.
func TestFolderRunStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	f := NewFolder(os.DirFS("examples"), time.Millisecond, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	for i := 0; i < 1000; i++ {
		if _, at := f.Current(); !at.IsZero() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res, _ := f.Current(); len(res.DAGs) != 9 {
		t.Fatalf("DAGs = %d", len(res.DAGs))
	}
}

// A file that breaks keeps its last good DAGs serving (and its import
// error showing) across several bad revisions until it is fixed; a file
// that is deleted takes its DAGs away. The revision is recorded.
func TestFolderKeepsLastGoodDAGsOfABrokenFile(t *testing.T) {
	good := "a:\n  schedule: '@daily'\n  start_date: 2026-01-01\n  tasks:\n    t: {operator: airflow.operators.bash.BashOperator, bash_command: 'echo 1'}\n"
	other := strings.ReplaceAll(good, "a:", "b:")
	revs := []fstest.MapFS{
		{"a.yaml": {Data: []byte(good)}, "b.yaml": {Data: []byte(other)}},
		{"a.yaml": {Data: []byte("a:\n  schedule: '@daily'\n  tasks: [oops\n")}, "b.yaml": {Data: []byte(other)}},
		{"a.yaml": {Data: []byte(strings.ReplaceAll(good, "@daily", "not a cron"))}, "b.yaml": {Data: []byte(other)}},
		{"a.yaml": {Data: []byte(strings.ReplaceAll(good, "echo 1", "echo 2"))}, "b.yaml": {Data: []byte(other)}},
		{"a.yaml": {Data: []byte(strings.ReplaceAll(good, "echo 1", "echo 2"))}},
	}
	i := 0
	f := NewSourceFolder(func() (fs.FS, string, error) { return revs[i], fmt.Sprintf("rev%d", i), nil },
		time.Hour, slog.New(slog.DiscardHandler))
	check := func(wantDAGs string, wantErrs int, command string) {
		t.Helper()
		if !f.Refresh() {
			t.Fatalf("revision %d not loaded", i)
		}
		res, _ := f.Current()
		var ids []string
		for _, d := range res.DAGs {
			ids = append(ids, d.ID)
		}
		errs := res.Problems().Errors()
		if strings.Join(ids, ",") != wantDAGs || len(errs) != wantErrs || res.Revision != fmt.Sprintf("rev%d", i) {
			t.Fatalf("revision %d: DAGs %v, errors %v, revision %q", i, ids, errs, res.Revision)
		}
		if a := res.DAG("a"); command != "" && (a == nil || a.Tasks[0].Spec.(BashSpec).Command != command) {
			t.Fatalf("revision %d: DAG a is %+v", i, a)
		}
	}
	check("a,b", 0, "echo 1")
	i = 1 // malformed YAML: a keeps serving from revision 0
	check("a,b", 1, "echo 1")
	i = 2 // still broken, differently: still revision 0's a
	check("a,b", 1, "echo 1")
	i = 3 // fixed: the new version, the error cleared
	check("a,b", 0, "echo 2")
	i = 4 // b.yaml deleted: b is gone
	check("a", 0, "echo 2")
}
