package trylog

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"updraft/store"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// note writes a line of updraft's own as the scheduler does: into the
// file, then to the copier.
func note(c *Copier, k Key, path, line string) {
	text := "[2026-01-01T00:00:00Z] " + line + "\n"
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		f.WriteString(text)
		f.Close()
	}
	c.Noted(context.Background(), k, text)
}

// readAll reads a try's log the way the web server does.
func readAll(t *testing.T, st *store.Store, try store.Try) string {
	t.Helper()
	l, err := Open(context.Background(), st, try)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	data, err := l.Read(context.Background(), 0, l.Size)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestCopiesFollowTheFile(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	c := NewCopier(st, slog.New(slog.DiscardHandler))
	k := Key{store.TIKey{DagID: "d", RunID: "r", TaskID: "x", MapIndex: -1}, 1}
	path := filepath.Join(t.TempDir(), "a", "attempt=1.log")
	// elsewhere is the same try seen from a replica without the file.
	elsewhere := store.Try{TIKey: k.TIKey, TryNumber: 1, LogPath: filepath.Join(t.TempDir(), "missing.log")}

	c.WatchNew(k, path)
	c.copyAll(ctx) // nothing written yet: nothing copied, no error
	os.MkdirAll(filepath.Dir(path), 0o755)
	appendTo(t, path, "one\n")
	c.copyAll(ctx)
	if got := readAll(t, st, elsewhere); got != "one\n" {
		t.Fatalf("after the first copy: %q", got)
	}
	// A log larger than a chunk is copied whole, in order.
	big := strings.Repeat("0123456789abcdef", chunkSize/16*2+5)
	appendTo(t, path, big)
	note(c, k, path, "updraft: a note while watched")
	c.Finish(ctx, k)
	file, _ := os.ReadFile(path)
	if got := readAll(t, st, elsewhere); got != string(file) || !strings.HasSuffix(got, "a note while watched\n") {
		t.Fatalf("after finish: %d bytes, the file has %d", len(got), len(file))
	}
	// Once finished, a late Watch (an adoption racing the end) does nothing.
	c.Watch(ctx, k, path, true)
	if n, _ := st.LogSize(ctx, k.TIKey, 1); n != int64(len(file)) {
		t.Fatalf("a late watch changed the copy: %d bytes", n)
	}

	// The replica with the file reads it; a stale shorter file loses to the copy.
	here := store.Try{TIKey: k.TIKey, TryNumber: 1, LogPath: path}
	if got := readAll(t, st, here); got != string(file) {
		t.Fatal("the local file was not read")
	}
	stale := filepath.Join(t.TempDir(), "stale.log")
	appendTo(t, stale, "one\n")
	if got := readAll(t, st, store.Try{TIKey: k.TIKey, TryNumber: 1, LogPath: stale}); got != string(file) {
		t.Fatalf("a stale file was preferred to the copy: %q", got[:min(len(got), 20)])
	}
}

// An adopting executor that reads a pod's log again from its start
// replaces the copy; one that goes on appending extends it.
func TestAdoptedLogs(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	logger := slog.New(slog.DiscardHandler)
	k := Key{store.TIKey{DagID: "d", RunID: "r", TaskID: "pod", MapIndex: -1}, 1}
	first, second := filepath.Join(t.TempDir(), "a.log"), filepath.Join(t.TempDir(), "b.log")

	// Replica a runs the try and dies after copying what it wrote.
	a := NewCopier(st, logger)
	a.Watch(ctx, k, first, false)
	appendTo(t, first, "updraft: starting\npod line 1\n")
	a.copyAll(ctx)

	// Replica b adopts it and writes the pod's whole log again.
	b := NewCopier(st, logger)
	appendTo(t, second, "updraft: adopted\n")
	b.Watch(ctx, k, second, true)
	appendTo(t, second, "pod line 1\npod line 2\n")
	b.Finish(ctx, k)
	if got := readAll(t, st, store.Try{TIKey: k.TIKey, TryNumber: 1}); got != "updraft: adopted\npod line 1\npod line 2\n" {
		t.Fatalf("replaced copy: %q", got)
	}

	// A local process adopted by a restarted server goes on in the same file.
	k2 := Key{store.TIKey{DagID: "d", RunID: "r", TaskID: "proc", MapIndex: -1}, 1}
	same := filepath.Join(t.TempDir(), "p.log")
	c1 := NewCopier(st, logger)
	c1.Watch(ctx, k2, same, false)
	appendTo(t, same, "before the restart\n")
	c1.copyAll(ctx)
	appendTo(t, same, "while nobody copied\n")
	c2 := NewCopier(st, logger)
	c2.Watch(ctx, k2, same, false)
	appendTo(t, same, "after the restart\n")
	c2.Finish(ctx, k2)
	if got := readAll(t, st, store.Try{TIKey: k2.TIKey, TryNumber: 1}); got != "before the restart\nwhile nobody copied\nafter the restart\n" {
		t.Fatalf("extended copy: %q", got)
	}

	// A file started over while watched (truncated) replaces the copy too.
	k3 := Key{store.TIKey{DagID: "d", RunID: "r", TaskID: "trunc", MapIndex: -1}, 1}
	tr := filepath.Join(t.TempDir(), "t.log")
	c3 := NewCopier(st, logger)
	c3.Watch(ctx, k3, tr, false)
	appendTo(t, tr, "a long first version of the log\n")
	c3.copyAll(ctx)
	os.WriteFile(tr, []byte("v2\n"), 0o644)
	c3.Finish(ctx, k3)
	if got := readAll(t, st, store.Try{TIKey: k3.TIKey, TryNumber: 1}); got != "v2\n" {
		t.Fatalf("after truncation: %q", got)
	}
}

// A note about a try nobody watches (its process is gone, found by
// another replica) lands at the end of the copy as well as of the file.
func TestNoteOnAnUnwatchedTry(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	k := Key{store.TIKey{DagID: "d", RunID: "r", TaskID: "x", MapIndex: -1}, 2}
	if err := st.AppendLog(ctx, k.TIKey, 2, 0, []byte("what the dead replica copied\n")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "x", "attempt=2.log")
	os.MkdirAll(filepath.Dir(path), 0o755)
	note(NewCopier(st, slog.New(slog.DiscardHandler)), k, path, "updraft: the process is gone")
	got := readAll(t, st, store.Try{TIKey: k.TIKey, TryNumber: 2})
	if !strings.HasPrefix(got, "what the dead replica copied\n[") || !strings.HasSuffix(got, "] updraft: the process is gone\n") {
		t.Fatalf("copy: %q", got)
	}
	if file, _ := os.ReadFile(path); !strings.HasSuffix(string(file), "updraft: the process is gone\n") {
		t.Fatalf("file: %q", file)
	}
	// Without a copier (one server, SQLite) the note goes to the file only.
	var none *Copier
	note(none, k, path, "second note")
	none.Watch(ctx, k, path, false)
	none.Finish(ctx, k)
	if n, _ := st.LogSize(ctx, k.TIKey, 2); n != int64(len(got)) {
		t.Fatalf("a nil copier wrote to the store")
	}
}
