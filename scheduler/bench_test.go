package scheduler

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
	"updraft/store/pgtest"
)

func chainDAG(id string, n int, extra string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  max_active_runs: 1000\n  max_active_tasks: 1000\n%s  tasks:\n", id, extra)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - {task_id: t%d, operator: BashOperator, bash_command: \"echo {{ ds }}\"", i)
		if i > 0 {
			fmt.Fprintf(&b, ", dependencies: [t%d]", i-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// BenchmarkThroughputPostgres is BenchmarkThroughput on a throwaway
// PostgreSQL (one replica).
func BenchmarkThroughputPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	n := 0
	benchDB = func() string { n++; return pg.CreateDB(b, fmt.Sprintf("bench%d", n)) }
	defer func() { benchDB = nil }()
	BenchmarkThroughput(b)
}

// BenchmarkThroughput schedules and completes 1,000 runs of a 10-task
// chain with an in-process executor that finishes every try at once, on
// SQLite: the scheduler's own cost per task instance.
func BenchmarkThroughput(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		t := &testing.T{}
		h := newHarnessB(b, chainDAG("chain", 10, ""))
		h.s.opts.Parallelism = 1000
		for i := 0; i < 1000; i++ {
			logical := utc("2024-01-01T00:00:00Z").Add(time.Duration(i) * time.Minute)
			if _, err := h.s.Trigger(h.ctx, "chain", TriggerOptions{LogicalDate: &logical}); err != nil {
				b.Fatal(err)
			}
		}
		_ = t
		b.StartTimer()
		start := time.Now()
		for i := 0; ; i++ {
			if _, err := h.s.Tick(h.ctx); err != nil {
				b.Fatal(err)
			}
			if len(h.ex.events) == 0 {
				done, _ := h.st.Runs(h.ctx, store.RunFilter{DagID: "chain", States: []dags.RunState{dags.RunSuccess}})
				if len(done) == 1000 {
					break
				}
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		if n := h.ex.startedCount(); n != 10_000 {
			b.Fatalf("%d tries for 10,000 task instances", n)
		}
		b.ReportMetric(10_000/elapsed.Seconds(), "task-instances/s")
		b.StartTimer()
	}
}

// benchDB, when set, gives each benchmark harness a database instead of a
// SQLite file (BenchmarkThroughputPostgres sets it).
var benchDB func() string

// newHarnessB is newHarness for benchmarks.
func newHarnessB(b *testing.B, yaml string) *harness {
	t := &testing.T{}
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(b.TempDir(), "u.db")
	if benchDB != nil {
		dsn = benchDB()
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, st: st, clock: &fakeClock{t: utc("2024-06-01T00:00:00Z")}, bag: &staticBag{}}
	h.ex = newScripted(h.clock, 1_000_000, succeed)
	res := dags.Load(mapFS("dags.yaml", yaml), dags.Options{Now: h.clock.Now()})
	if ps := res.Problems().Errors(); len(ps) > 0 {
		b.Fatal(ps)
	}
	h.bag.res, h.bag.at = res, time.Now()
	h.s = New(st, h.ex, h.bag, Options{Clock: h.clock, LogDir: b.TempDir()})
	return h
}

// timedExec finishes every try at once and records when each started,
// for the latency benchmark.
type timedExec struct {
	mu      sync.Mutex
	events  chan executor.Event
	started map[executor.TryKey]time.Time
	ended   map[executor.TryKey]time.Time
}

func (x *timedExec) Start(_ context.Context, t executor.Try) error {
	now := time.Now()
	x.mu.Lock()
	x.started[t.Key] = now
	x.ended[t.Key] = time.Now()
	x.mu.Unlock()
	x.events <- executor.Event{Key: t.Key, State: executor.Running, At: now}
	x.events <- executor.Event{Key: t.Key, State: executor.Succeeded, At: time.Now()}
	return nil
}
func (x *timedExec) Kill(context.Context, executor.TryKey, string) error { return nil }
func (x *timedExec) Adopt(context.Context, executor.Try) error           { return executor.ErrGone }
func (x *timedExec) Events() <-chan executor.Event                       { return x.events }
func (x *timedExec) Free() int                                           { return 1 << 20 }

// BenchmarkHandoffLatency measures, with the real scheduling loop, the delay
// from a task finishing to its downstream task starting (p50 and p99 over
// a 200-task chain).
func BenchmarkHandoffLatency(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		h := newHarnessB(b, chainDAG("chain", 200, ""))
		ex := &timedExec{events: make(chan executor.Event, 1024), started: map[executor.TryKey]time.Time{}, ended: map[executor.TryKey]time.Time{}}
		s := New(h.st, ex, h.bag, Options{LogDir: b.TempDir()})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		b.StartTimer()
		go func() { done <- s.Run(ctx) }()
		r, err := s.Trigger(ctx, "chain", TriggerOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			got, _ := h.st.Run(context.Background(), "chain", r.RunID)
			if got.State == dags.RunSuccess {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.StopTimer()
		cancel()
		<-done
		var gaps []time.Duration
		for i := 1; i < 200; i++ {
			prev := executor.TryKey{DagID: "chain", RunID: r.RunID, TaskID: fmt.Sprintf("t%d", i-1), TryNumber: 1, MapIndex: -1}
			cur := executor.TryKey{DagID: "chain", RunID: r.RunID, TaskID: fmt.Sprintf("t%d", i), TryNumber: 1, MapIndex: -1}
			gaps = append(gaps, ex.started[cur].Sub(ex.ended[prev]))
		}
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(gaps[len(gaps)*99/100].Microseconds())/1000, "p99-ms")
		b.StartTimer()
	}
}

// BenchmarkReplicasPostgres runs the engine on PostgreSQL with one and with
// three schedulers sharing the database, each with its own connection pool
// and an executor that ends every try at once: 300 manual runs of a
// 10-task chain, driven by the real scheduling loops.
func BenchmarkReplicasPostgres(b *testing.B) {
	pg := pgtest.Start(b)
	n := 0
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				n++
				dsn := pg.CreateDB(b, fmt.Sprintf("rep%d", n))
				ctx, cancel := context.WithCancel(context.Background())
				res := dags.Load(mapFS("dags.yaml", chainDAG("chain", 10, "")), dags.Options{Now: time.Now()})
				bag := &staticBag{res: res, at: time.Now()}
				var scheds []*Scheduler
				var stores []*store.Store
				for i := 0; i < replicas; i++ {
					st, err := store.Open(ctx, dsn)
					if err != nil {
						b.Fatal(err)
					}
					if err := st.Migrate(ctx); err != nil {
						b.Fatal(err)
					}
					stores = append(stores, st)
					ex := &timedExec{events: make(chan executor.Event, 1<<16), started: map[executor.TryKey]time.Time{}, ended: map[executor.TryKey]time.Time{}}
					scheds = append(scheds, New(st, ex, bag, Options{LogDir: b.TempDir(), Parallelism: 1000, Shared: true,
						ReplicaID: fmt.Sprintf("r%d", i)}))
				}
				for i := 0; i < 300; i++ {
					logical := utc("2024-01-01T00:00:00Z").Add(time.Duration(i) * time.Minute)
					if _, err := scheds[0].Trigger(ctx, "chain", TriggerOptions{LogicalDate: &logical}); err != nil {
						b.Fatal(err)
					}
				}
				done := make(chan error, replicas)
				b.StartTimer()
				start := time.Now()
				for _, s := range scheds {
					go func() { done <- s.Run(ctx) }()
				}
				for {
					finished, _ := stores[0].CountRuns(ctx, store.RunFilter{DagID: "chain", States: []dags.RunState{dags.RunSuccess}})
					if finished == 300 {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				elapsed := time.Since(start)
				b.StopTimer()
				cancel()
				for range scheds {
					<-done
				}
				for _, st := range stores {
					st.Close()
				}
				b.ReportMetric(3000/elapsed.Seconds(), "task-instances/s")
				b.StartTimer()
			}
		})
	}
}
