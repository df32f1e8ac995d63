package local

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"

	"updraft/dags"
	"updraft/executor"
)

// BenchmarkTry times one try of `true`, start to final event, one after
// the other: the executor's own cost per step of a chain.
func BenchmarkTry(b *testing.B) {
	ex := New(1, slog.New(slog.DiscardHandler))
	dir := b.TempDir()
	i := 0
	for b.Loop() {
		i++
		try := executor.Try{Key: executor.TryKey{DagID: "bench", RunID: "r", TaskID: fmt.Sprintf("t%d", i), TryNumber: 1, MapIndex: -1},
			Spec: dags.BashSpec{Command: "true"}, LogPath: filepath.Join(dir, fmt.Sprintf("t%d", i), "attempt=1.log")}
		if err := ex.Start(context.Background(), try); err != nil {
			b.Fatal(err)
		}
		for ev := range ex.Events() {
			if ev.State != executor.Running {
				if ev.State != executor.Succeeded {
					b.Fatalf("%+v", ev)
				}
				break
			}
		}
	}
}
