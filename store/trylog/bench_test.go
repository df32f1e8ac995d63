package trylog

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"updraft/store"
	"updraft/store/pgtest"
)

// benchCopy copies a 10 MiB log written in 1 KiB lines into the store as
// a running try's log grows (one copy per 100 lines), then reads it back
// whole from the copy, as a replica without the file does.
func benchCopy(b *testing.B, st *store.Store) {
	ctx := context.Background()
	line := strings.Repeat("x", 1023) + "\n"
	const lines = 10 * 1024
	b.SetBytes(int64(len(line) * lines))
	for i := 0; b.Loop(); i++ {
		c := NewCopier(st, slog.New(slog.DiscardHandler))
		k := Key{store.TIKey{DagID: "bench", RunID: "r", TaskID: "t", MapIndex: -1}, i + 1}
		path := filepath.Join(b.TempDir(), "try.log")
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		c.Watch(ctx, k, path, false)
		for n := 0; n < lines; n++ {
			f.WriteString(line)
			if n%100 == 99 {
				c.copyAll(ctx)
			}
		}
		f.Close()
		c.Finish(ctx, k)
		l, err := Open(ctx, st, store.Try{TIKey: k.TIKey, TryNumber: k.Try})
		if err != nil {
			b.Fatal(err)
		}
		data, err := l.Read(ctx, 0, l.Size)
		if err != nil || len(data) != len(line)*lines {
			b.Fatalf("read back %d bytes: %v", len(data), err)
		}
	}
}

func BenchmarkCopySQLite(b *testing.B) {
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "u.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchCopy(b, st)
}

func BenchmarkCopyPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	st, err := store.Open(context.Background(), pg.CreateDB(b, "logs"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	benchCopy(b, st)
}
