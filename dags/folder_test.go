package dags

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
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
	if len(res.DAGs) != 1 || len(res.Problems().Errors()) != 1 {
		t.Fatalf("after a broken edit: %v %v", res.DAGs, res.Problems())
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
	if res, _ := f.Current(); len(res.DAGs) != 6 {
		t.Fatalf("DAGs = %d", len(res.DAGs))
	}
}
