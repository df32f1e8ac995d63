package scheduler

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
)

// fakeClock is moved by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// scripted is an in-process executor whose tries end as a script says:
// outcome returns the final state and exit code of a try, or "" to keep it
// running until released or killed.
type scripted struct {
	mu      sync.Mutex
	clock   *fakeClock
	events  chan executor.Event
	outcome func(k executor.TryKey) (executor.State, int)
	running map[executor.TryKey]bool
	started []executor.Try
	killed  map[executor.TryKey]string
	slots   int
	// unborn makes Start accept tries without creating anything (as the
	// Kubernetes executor does before the pod exists): no event follows.
	unborn bool
	// push, when set, gives the XCom a succeeding try pushes. Branch
	// operators decide as the in-process executor has them decide.
	push func(t executor.Try) map[string]json.RawMessage
}

func newScripted(clock *fakeClock, slots int, outcome func(executor.TryKey) (executor.State, int)) *scripted {
	return &scripted{clock: clock, events: make(chan executor.Event, 1<<16), outcome: outcome,
		running: map[executor.TryKey]bool{}, killed: map[executor.TryKey]string{}, slots: slots}
}

func (x *scripted) Events() <-chan executor.Event { return x.events }

func (x *scripted) Free() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.slots - len(x.running)
}

func (x *scripted) Start(_ context.Context, t executor.Try) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.running) >= x.slots {
		return executor.ErrFull // as the real executors do
	}
	x.started = append(x.started, t)
	if x.unborn {
		return nil
	}
	x.events <- executor.Event{Key: t.Key, State: executor.Running, Handle: "scripted:" + t.Key.String(), At: x.clock.Now()}
	state, code := x.outcome(t.Key)
	if state == "" {
		x.running[t.Key] = true
		return nil
	}
	ev := executor.Event{Key: t.Key, State: state, ExitCode: &code, Reason: reasonFor(state, code), At: x.clock.Now()}
	if state == executor.Succeeded {
		if d, ok := t.Spec.(dags.Decider); ok {
			var v any
			ev.Branch, v, _ = d.Decide()
			if b, err := json.Marshal(v); err == nil && t.XComPush && v != nil {
				ev.XCom = executor.ReturnValue(b)
			}
		}
		if x.push != nil && t.XComPush {
			if xs := x.push(t); xs != nil {
				ev.XCom = xs
			}
		}
	}
	x.events <- ev
	return nil
}

func reasonFor(state executor.State, code int) string {
	if state == executor.Failed {
		return "exit code " + strconv.Itoa(code)
	}
	return ""
}

func (x *scripted) release(k executor.TryKey, state executor.State, code int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.running, k)
	x.events <- executor.Event{Key: k, State: state, ExitCode: &code, Reason: reasonFor(state, code), At: x.clock.Now()}
}

func (x *scripted) Kill(_ context.Context, k executor.TryKey, reason string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.running[k] {
		delete(x.running, k)
		x.killed[k] = reason
		x.events <- executor.Event{Key: k, State: executor.Failed, Reason: reason, At: x.clock.Now()}
	}
	return nil
}

func (x *scripted) Adopt(_ context.Context, t executor.Try) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.running[t.Key] {
		return nil
	}
	return executor.ErrGone
}

func (x *scripted) startedCount() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.started)
}

func (x *scripted) runningKeys() []executor.TryKey {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []executor.TryKey
	for k := range x.running {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

type staticBag struct {
	mu  sync.Mutex
	res *dags.Result
	at  time.Time
}

func (b *staticBag) Current() (*dags.Result, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.res, b.at
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	st    *store.Store
	clock *fakeClock
	ex    *scripted
	bag   *staticBag
	s     *Scheduler
}

// harnessDB, when set, gives each harness a database of its own instead of
// a SQLite file (TestScenariosOnPostgres sets it).
var harnessDB func(t *testing.T) string

// succeed is the default script: every try succeeds.
func succeed(executor.TryKey) (executor.State, int) { return executor.Succeeded, 0 }

func newHarness(t *testing.T, yaml string, now time.Time, outcome func(executor.TryKey) (executor.State, int)) *harness {
	t.Helper()
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "u.db")
	if harnessDB != nil {
		dsn = harnessDB(t)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, st: st, clock: &fakeClock{t: now}, bag: &staticBag{}}
	h.ex = newScripted(h.clock, 1000, outcome)
	h.load(yaml)
	h.s = New(st, h.ex, h.bag, Options{Clock: h.clock, LogDir: t.TempDir()})
	return h
}

func mapFS(name, content string) fstest.MapFS {
	return fstest.MapFS{name: {Data: []byte(content)}}
}

// load replaces the DAG folder with one file.
func (h *harness) load(yaml string) {
	h.t.Helper()
	res := dags.Load(fstest.MapFS{"dags.yaml": {Data: []byte(yaml)}}, dags.Options{Now: h.clock.Now()})
	if ps := res.Problems().Errors(); len(ps) > 0 {
		h.t.Fatalf("DAG file: %v", ps)
	}
	h.bag.mu.Lock()
	h.bag.res, h.bag.at = res, h.bag.at.Add(time.Second)
	h.bag.mu.Unlock()
}

// settle ticks until nothing more happens at the current time.
func (h *harness) settle() time.Time {
	h.t.Helper()
	var next time.Time
	for i := 0; i < 10_000; i++ {
		before := h.ex.startedCount()
		var err error
		if next, err = h.s.Tick(h.ctx); err != nil {
			h.t.Fatal(err)
		}
		if len(h.ex.events) == 0 && h.ex.startedCount() == before {
			if next, err = h.s.Tick(h.ctx); err != nil { // one more to settle run states
				h.t.Fatal(err)
			}
			if len(h.ex.events) == 0 && h.ex.startedCount() == before {
				return next
			}
		}
	}
	h.t.Fatal("scheduler never settled")
	return next
}

// at moves the clock and settles.
func (h *harness) at(t time.Time) time.Time {
	h.clock.Set(t)
	return h.settle()
}

func (h *harness) unpause(id string) {
	h.t.Helper()
	if err := h.s.SetPaused(h.ctx, id, false, "test"); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) runs(dagID string) []store.Run {
	h.t.Helper()
	runs, err := h.st.Runs(h.ctx, store.RunFilter{DagID: dagID})
	if err != nil {
		h.t.Fatal(err)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].LogicalDate.Before(runs[j].LogicalDate) })
	return runs
}

// states renders a run's task instance states as "a=success b=failed".
func (h *harness) states(r store.Run) string {
	h.t.Helper()
	tis, err := h.st.TaskInstances(h.ctx, r.DagID, r.RunID)
	if err != nil {
		h.t.Fatal(err)
	}
	var parts []string
	for _, ti := range tis {
		parts = append(parts, ti.TaskID+"="+string(ti.State))
	}
	return strings.Join(parts, " ")
}

func (h *harness) ti(r store.Run, task string) store.TaskInstance {
	h.t.Helper()
	ti, err := h.st.TaskInstance(h.ctx, store.TIKey{DagID: r.DagID, RunID: r.RunID, TaskID: task, MapIndex: -1})
	if err != nil {
		h.t.Fatal(err)
	}
	return ti
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}
