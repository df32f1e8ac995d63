package gitsync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"updraft/gitsync/gittest"
)

// dagFiles returns n DAG-sized files, the n-th carrying version v.
func dagFiles(n, v int) map[string]*string {
	out := make(map[string]*string, n)
	for i := 0; i < n; i++ {
		out[fmt.Sprintf("dags/team%02d/dag_%04d.yaml", i%20, i)] = gittest.S(fmt.Sprintf(
			"dag_%04d:\n  schedule: '@daily'\n  start_date: 2026-01-01\n  tasks:\n    extract: {operator: airflow.operators.bash.BashOperator, bash_command: 'echo %d'}\n", i, v))
	}
	return out
}

// BenchmarkSync1000Files measures one sync of a changed revision of a
// repository holding 1,000 DAG files: head check, shallow fetch, export,
// publish (ns/op per sync).
func BenchmarkSync1000Files(b *testing.B) {
	sy, next := benchRepo(b, 1000)
	if _, err := sy.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		next(i)
	}
}

// benchRepo serves a repository of n DAG files and returns a Syncer on it
// and a step that commits change i (untimed) and syncs it (timed).
func benchRepo(b *testing.B, n int) (*Syncer, func(i int)) {
	r := gittest.NewRepo(b)
	r.Commit(dagFiles(n, 0), "v0")
	d := gittest.StartDaemon(b, r.Base)
	sy := newSyncer(b, Options{URL: d.URL(), Path: "dags"})
	return sy, func(i int) {
		b.StopTimer()
		r.Commit(map[string]*string{"dags/team00/dag_0000.yaml": gittest.S(fmt.Sprintf("# version %d\n", i))}, "change")
		b.StartTimer()
		if changed, err := sy.Sync(context.Background()); err != nil || !changed {
			b.Fatal(changed, err)
		}
	}
}

// BenchmarkRSSAfterSyncs runs b.N syncs, each of a new commit (run it
// with -benchtime 1000x), and reports the process's resident memory and
// the disk the sync root holds at the end: both stay flat because each
// change is a fresh shallow clone into memory and old revisions are
// removed.
func BenchmarkRSSAfterSyncs(b *testing.B) {
	sy, next := benchRepo(b, 100)
	rss := func() float64 {
		runtime.GC()
		data, _ := os.ReadFile("/proc/self/status")
		for _, line := range strings.Split(string(data), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
		return 0
	}
	var first float64
	for i := 0; i < b.N; i++ {
		next(i)
		if i == 9 {
			first = rss()
		}
	}
	var disk int64
	filepath.Walk(sy.opts.Root, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			disk += fi.Size()
		}
		return nil
	})
	b.ReportMetric(first, "rss-after-10-MB")
	b.ReportMetric(rss(), "rss-at-end-MB")
	b.ReportMetric(float64(disk)/1024, "root-KiB")
}
