package kubernetes

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/executortest"
	"updraft/scheduler"
	"updraft/store"
)

// BenchmarkPodCreation starts 200 tries at once and measures how fast their
// pods are created against the local control plane (client QPS 200).
func BenchmarkPodCreation(b *testing.B) {
	t := &testing.T{}
	for b.Loop() {
		b.StopTimer()
		ex, stop := newExecutor(t, 1000)
		var tries []executor.Try
		for i := 0; i < 200; i++ {
			spec := podSpec(executortest.Behavior{Forever: true})
			tries = append(tries, executor.Try{Key: executor.TryKey{DagID: "bench", RunID: fmt.Sprintf("r%d", time.Now().UnixNano()), TaskID: fmt.Sprintf("t%d", i), TryNumber: 1, MapIndex: -1},
				Spec: spec, LogPath: filepath.Join(b.TempDir(), "try.log")})
		}
		b.StartTimer()
		start := time.Now()
		for _, try := range tries {
			if err := ex.Start(context.Background(), try); err != nil {
				b.Fatal(err)
			}
		}
		for n := 0; n < len(tries); {
			if ev := nextEvent(b, ex); ev.State == executor.Running {
				n++
			} else {
				b.Fatalf("a try ended before every pod was created: %+v", ev)
			}
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(len(tries))/elapsed.Seconds(), "pods/s")
		for _, try := range tries {
			ex.Kill(context.Background(), try.Key, "benchmark over")
		}
		for n := 0; n < len(tries); n++ {
			nextEvent(b, ex)
		}
		stop()
		b.StartTimer()
	}
}

// stamped forwards an executor's events, remembering when each arrived.
type stamped struct {
	*Executor
	mu     sync.Mutex
	out    chan executor.Event
	finish map[string]time.Time // task id -> final event
	start  map[string]time.Time // task id -> pod created (Running)
}

func (s *stamped) Events() <-chan executor.Event { return s.out }

func (s *stamped) relay(ctx context.Context) {
	for {
		select {
		case ev := <-s.Executor.Events():
			now := time.Now()
			s.mu.Lock()
			if ev.State == executor.Running {
				s.start[ev.Key.TaskID] = now
			} else {
				s.finish[ev.Key.TaskID] = now
			}
			s.mu.Unlock()
			s.out <- ev
		case <-ctx.Done():
			return
		}
	}
}

// BenchmarkPodHandoff measures, through the real scheduler, the delay from
// a pod's success (seen by the executor's informer) to its downstream
// pod's creation, over a chain of 30 pods.
func BenchmarkPodHandoff(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("chain:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  tasks:\n")
	for i := 0; i < 30; i++ {
		fmt.Fprintf(&sb, "    - {task_id: t%02d, operator: KubernetesPodOperator, image: busybox, cmds: [\"true\"], annotations: {updraft.test/duration: 100ms}", i)
		if i > 0 {
			fmt.Fprintf(&sb, ", dependencies: [t%02d]", i-1)
		}
		sb.WriteString("}\n")
	}
	res := dags.Load(fstest.MapFS{"c.yaml": {Data: []byte(sb.String())}}, dags.Options{})
	for b.Loop() {
		b.StopTimer()
		ctx, cancel := context.WithCancel(context.Background())
		st, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "u.db"))
		if err != nil {
			b.Fatal(err)
		}
		st.Migrate(ctx)
		ex, finish := runThrough(b, ctx, st, res, "chain", scheduler.Options{})
		cancel()
		finish()
		st.Close()
		var gaps []time.Duration
		ex.mu.Lock()
		for i := 1; i < 30; i++ {
			gaps = append(gaps, ex.start[fmt.Sprintf("t%02d", i)].Sub(ex.finish[fmt.Sprintf("t%02d", i-1)]))
		}
		ex.mu.Unlock()
		sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
		b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(gaps[len(gaps)-1].Microseconds())/1000, "max-ms")
		b.ReportMetric(float64(gaps[len(gaps)*99/100].Microseconds())/1000, "p99-ms")
		b.StartTimer()
	}
}

// BenchmarkPodFanOut200 runs, through the real scheduler with log
// streaming on, a fan-out of 200 pods that end within about a second of
// each other, and a task downstream of all of them. It reports the delay
// from each pod's end (when an independent watch of the API server saw
// it) to the executor reporting it, and from the last end to the
// downstream pod's creation.
func BenchmarkPodFanOut200(b *testing.B) {
	const shards = 200
	var sb strings.Builder
	sb.WriteString("fan:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  max_active_tasks: 500\n  tasks:\n")
	for i := 0; i < shards; i++ {
		fmt.Fprintf(&sb, "    - {task_id: s%03d, operator: KubernetesPodOperator, image: busybox, cmds: [\"true\"], annotations: {updraft.test/duration: 4s}}\n", i)
	}
	sb.WriteString("    - {task_id: join, operator: KubernetesPodOperator, image: busybox, cmds: [\"true\"], annotations: {updraft.test/duration: 100ms}, dependencies: [")
	for i := 0; i < shards; i++ {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "s%03d", i)
	}
	sb.WriteString("]}\n")
	res := dags.Load(fstest.MapFS{"f.yaml": {Data: []byte(sb.String())}}, dags.Options{})
	if len(res.DAGs) != 1 {
		b.Fatalf("fixture: %v", res.Problems())
	}
	var reportP50, reportP99, reportMax, joinDelay, endSpread []float64
	for b.Loop() {
		b.StopTimer()
		ctx, cancel := context.WithCancel(context.Background())
		st, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "u.db"))
		if err != nil {
			b.Fatal(err)
		}
		st.Migrate(ctx)
		if err := st.SetPool(ctx, store.Pool{Name: "default_pool", Slots: 1000}); err != nil {
			b.Fatal(err)
		}
		// The independent witness of each pod's end.
		ended := map[string]time.Time{}
		var endedMu sync.Mutex
		// An informer of its own (it resumes its watch if the API server
		// closes it).
		factory := informers.NewSharedInformerFactoryWithOptions(kube.Client, 0, informers.WithNamespace("default"),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LabelManagedBy + "=" + ManagedBy }))
		witness := factory.Core().V1().Pods().Informer()
		witness.AddEventHandler(cache.ResourceEventHandlerFuncs{UpdateFunc: func(_, obj any) {
			pod, ok := obj.(*corev1.Pod)
			if !ok || pod.Status.Phase != corev1.PodSucceeded {
				return
			}
			now := time.Now()
			endedMu.Lock()
			if _, seen := ended[pod.Annotations[AnnotationTask]]; !seen {
				ended[pod.Annotations[AnnotationTask]] = now
			}
			endedMu.Unlock()
		}})
		factory.Start(ctx.Done())
		cache.WaitForCacheSync(ctx.Done(), witness.HasSynced)
		ex, finish := runThrough(b, ctx, st, res, "fan", scheduler.Options{Parallelism: 1000})
		cancel()
		finish()
		factory.Shutdown()
		st.Close()
		var delays []time.Duration
		var first, last time.Time
		endedMu.Lock()
		ex.mu.Lock()
		for i := 0; i < shards; i++ {
			task := fmt.Sprintf("s%03d", i)
			end, seen := ended[task]
			if !seen {
				b.Fatalf("the witness never saw %s end (it saw %d ends)", task, len(ended))
			}
			if first.IsZero() || end.Before(first) {
				first = end
			}
			if end.After(last) {
				last = end
			}
			delays = append(delays, ex.finish[task].Sub(end))
		}
		join := ex.start["join"].Sub(last)
		ex.mu.Unlock()
		endedMu.Unlock()
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		reportP50 = append(reportP50, ms(delays[len(delays)/2]))
		reportP99 = append(reportP99, ms(delays[len(delays)*99/100]))
		reportMax = append(reportMax, ms(delays[len(delays)-1]))
		joinDelay = append(joinDelay, ms(join))
		endSpread = append(endSpread, ms(last.Sub(first)))
		b.StartTimer()
	}
	mean := func(v []float64) float64 {
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		return sum / float64(len(v))
	}
	b.ReportMetric(mean(reportP50), "report-p50-ms")
	b.ReportMetric(mean(reportP99), "report-p99-ms")
	b.ReportMetric(mean(reportMax), "report-max-ms")
	b.ReportMetric(mean(joinDelay), "last-end-to-join-ms")
	b.ReportMetric(mean(endSpread), "end-spread-ms")
}

// runThrough runs one run of dagID to success through the real scheduler
// and a stamped executor, timing only the run; finish stops them (after
// ctx is cancelled).
func runThrough(b *testing.B, ctx context.Context, st *store.Store, res *dags.Result, dagID string, opts scheduler.Options) (*stamped, func()) {
	b.Helper()
	inner, stop := newExecutor(&testing.T{}, 1000)
	ex := &stamped{Executor: inner, out: make(chan executor.Event, 4096), finish: map[string]time.Time{}, start: map[string]time.Time{}}
	go ex.relay(ctx)
	opts.LogDir, opts.ExecutorName = b.TempDir(), "kubernetes"
	s := scheduler.New(st, ex, bag{res, time.Now()}, opts)
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b.StartTimer()
	r, err := s.Trigger(ctx, dagID, scheduler.TriggerOptions{})
	if err != nil {
		b.Fatal(err)
	}
	awaitRun(b, st, r)
	b.StopTimer()
	return ex, func() { <-done; stop() }
}

// nextEvent is the executor's next event; a minute without one fails.
func nextEvent(b *testing.B, ex *Executor) executor.Event {
	b.Helper()
	select {
	case ev := <-ex.Events():
		return ev
	case <-time.After(time.Minute):
		b.Fatal("no executor event for a minute")
	}
	return executor.Event{}
}

// awaitRun waits for a run to succeed (5 minutes at most).
func awaitRun(b *testing.B, st *store.Store, r store.Run) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if time.Now().After(deadline) {
			b.Fatalf("run %s did not end in 5 minutes", r.RunID)
		}
		got, _ := st.Run(context.Background(), r.DagID, r.RunID)
		if got.State == dags.RunSuccess {
			return
		}
		if got.State == dags.RunFailed {
			b.Fatalf("run %s failed", r.RunID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
