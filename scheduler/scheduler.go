package scheduler

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
	"updraft/store/trylog"
)

// Bag is the source of DAGs: the latest load of the DAG folder.
type Bag interface {
	Current() (*dags.Result, time.Time)
}

// Clock tells the time; tests inject one they move by hand.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// WallClock is the real clock.
var WallClock Clock = wallClock{}

// Options configure a scheduler.
type Options struct {
	Parallelism  int           // task instances queued or running at once (Airflow's [core] parallelism, 32)
	PollInterval time.Duration // how often commands from other processes are looked for (1 s)
	ExecutorName string        // recorded with each try ("local", "kubernetes")
	ManualOnly   bool          // create no scheduled runs (updraft dags test runs one run only)
	// SweepInterval is how often the executor cleans up after ended tries
	// (DefaultSweepInterval when 0; never, beyond the one at start, when
	// negative).
	SweepInterval time.Duration
	// ObserveStep and ObserveTry, when set, are told each scheduling
	// step's time and each finished try's outcome and duration (metrics).
	ObserveStep func(time.Duration)
	ObserveTry  func(state string, d time.Duration)
	// Shared says other servers (replicas) use the same database: steps
	// then take the database's scheduling lock and read everything afresh,
	// every running run is looked at each second, and the tries of a
	// replica that stopped beating are taken over. ReplicaID names this
	// server (its tries' owner); ReplicaTimeout is how long a silent
	// replica is still thought alive (30 s).
	Shared         bool
	ReplicaID      string
	ReplicaTimeout time.Duration
	LogDir         string // where try logs are written
	// LogCopies, when set, copies the logs of this server's tries into the
	// store, so that every replica can show them (package trylog).
	LogCopies *trylog.Copier
	// Mask masks secret values in what tries and the scheduler write to
	// logs; the scheduler teaches it every secret variable a template
	// reads before the rendered fields are stored or run.
	Mask *dags.Masker
	// XComMaxBytes bounds what one try may push as XCom
	// (DefaultXComMaxBytes when 0); a try over it fails.
	XComMaxBytes int
	Clock        Clock
	Log          *slog.Logger
}

// Scheduler is the scheduling engine. Run drives it; the command methods
// (Trigger, Clear, Mark, SetPaused) may be called from other goroutines.
type Scheduler struct {
	// decided holds, by run, the deadlines and slas already settled (met,
	// or missed and recorded): they are not looked at again.
	decided map[string]map[string]bool
	st      *store.Store
	exec    executor.Executor
	bag     Bag
	opts    Options
	log     *slog.Logger
	clock   Clock
	wake    chan struct{}

	mu       sync.Mutex           // guards everything below (but synced) and serialises steps with commands
	versions map[string]*dags.DAG // dag id + "@" + hash -> that version

	// Runs are looked at only when something happened to them: an event,
	// a command, a due time (retry, timeout), or work held back by limits.
	// allDirty looks at every running run once (at start, after a DAG
	// folder change or a command from another process).
	dirty    map[string]bool      // run key -> needs a look
	runDue   map[string]time.Time // run key -> when it next needs a look
	allDirty bool
	runEnded bool // a run ended (or a mapped task expanded) in this step: step again at once
	hostname string
	cache    tiCache

	beat atomic.Int64 // unix nanos of the loop's last sign of life

	lastBeat, lastTakeover time.Time // replica duties (Shared)

	early []executor.Event // ends received while sleeping, for the next Tick

	// synced is the last folder load recorded in the store: its time and
	// the current version of each DAG. Written by syncBag under mu, read
	// with or without it (Trigger's fast path).
	synced atomic.Pointer[dagSnapshot]
	// pendingDirty holds runs marked by commands that did not take mu;
	// the next step takes them over.
	pendMu       sync.Mutex
	pendingDirty []string
}

type dagSnapshot struct {
	loadedAt time.Time
	current  map[string]*dags.DAG
}

// markDirtyUnlocked marks a run for the next step without mu.
func (s *Scheduler) markDirtyUnlocked(dagID, runID string) {
	s.pendMu.Lock()
	s.pendingDirty = append(s.pendingDirty, runKey(dagID, runID))
	s.pendMu.Unlock()
}

// takePendingDirty moves the runs marked without mu into dirty. mu is held.
func (s *Scheduler) takePendingDirty() {
	s.pendMu.Lock()
	for _, k := range s.pendingDirty {
		s.dirty[k] = true
	}
	s.pendingDirty = s.pendingDirty[:0]
	s.pendMu.Unlock()
}

// Heartbeat returns when the scheduling loop last showed it is alive (zero
// before it started). The loop beats after every step and at every poll
// (each second), so a heartbeat older than a few seconds means it is stuck.
func (s *Scheduler) Heartbeat() time.Time {
	n := s.beat.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func runKey(dagID, runID string) string { return dagID + "\x00" + runID }

func (s *Scheduler) markDirty(dagID, runID string) { s.dirty[runKey(dagID, runID)] = true }

// New returns a scheduler. Call Run, or Tick in tests.
func New(st *store.Store, ex executor.Executor, bag Bag, opts Options) *Scheduler {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 32
	}
	if opts.Clock == nil {
		opts.Clock = WallClock
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.LogDir == "" {
		opts.LogDir = "logs"
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.ExecutorName == "" {
		opts.ExecutorName = "local"
	}
	if opts.Shared && opts.ReplicaID == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		opts.ReplicaID = hostname() + "-" + hex.EncodeToString(b)
	}
	s := &Scheduler{st: st, exec: ex, bag: bag, opts: opts, log: opts.Log, clock: opts.Clock,
		wake: make(chan struct{}, 1), versions: map[string]*dags.DAG{},
		dirty: map[string]bool{}, runDue: map[string]time.Time{}, decided: map[string]map[string]bool{}, allDirty: true, hostname: hostname(), cache: tiCache{}}
	s.synced.Store(&dagSnapshot{current: map[string]*dags.DAG{}})
	return s
}

// Notify wakes the loop (the DAG folder changed, a command was given).
func (s *Scheduler) Notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// DefaultSweepInterval is how often the executor is asked to clean up
// after ended tries (see Options.SweepInterval).
const DefaultSweepInterval = 5 * time.Minute

// maxSleep bounds how long the loop sleeps with nothing due, so a clock
// jump (suspend, NTP) is noticed.
const maxSleep = time.Minute

// Run recovers what a previous process left running, then schedules until
// ctx ends: it handles executor events as they come and otherwise sleeps
// until the next due time (a run's interval end, a retry, a timeout).
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Recover(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("recover: %w", err)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	lastAudit, _ := s.st.LastAuditID(ctx)
	lastSweep := time.Now()
	for {
		if every := s.opts.SweepInterval; every >= 0 && time.Since(lastSweep) >= cmp.Or(every, DefaultSweepInterval) {
			s.sweep(ctx)
			lastSweep = time.Now()
		}
		stepStart := time.Now()
		next, err := s.Tick(ctx)
		s.beat.Store(time.Now().UnixNano())
		if s.opts.ObserveStep != nil {
			s.opts.ObserveStep(time.Since(stepStart))
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("scheduling step failed", "err", err)
			next = s.clock.Now().Add(time.Second)
		}
		wait := maxSleep
		if !next.IsZero() {
			wait = min(time.Until(next), maxSleep)
		}
		timer.Reset(max(wait, 0))
		if !s.sleep(ctx, timer, poll.C, &lastAudit) {
			return nil
		}
	}
}

// sleep waits until there is something to do: an executor event (handled
// here), a wake-up, the next due time, or a command from another process.
// It returns false when ctx ends.
func (s *Scheduler) sleep(ctx context.Context, timer *time.Timer, poll <-chan time.Time, lastAudit *int64) bool {
	defer func() {
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return false
		case ev := <-s.exec.Events():
			if ev.State == executor.Running {
				// A try began: recorded, but nothing new to schedule.
				s.handleEvent(ctx, ev)
				continue
			}
			// An end: recorded in the next step's transaction.
			s.early = append(s.early, ev)
			return true
		case <-s.wake:
			return true
		case <-timer.C:
			return true
		case <-poll:
			s.beat.Store(time.Now().UnixNano())
			if s.opts.Shared {
				s.replicaDuties(ctx)
				return true // other replicas move runs on: look every second
			}
			// Commands given by other processes (the CLI) are seen through
			// the audit log; without a new entry there is nothing to do.
			if id, err := s.st.LastAuditID(ctx); err == nil && id != *lastAudit {
				*lastAudit = id
				s.mu.Lock()
				s.allDirty = true
				s.mu.Unlock()
				return true
			}
		}
	}
}

// Tick handles every pending executor event, then does all scheduling work
// due now, and returns when it is next due (zero: nothing is). Tests drive
// the scheduler with it and an injected clock.
func (s *Scheduler) Tick(ctx context.Context) (time.Time, error) {
	batch := s.early
	s.early = nil
drain:
	for len(batch) < maxEventsPerStep {
		select {
		case ev := <-s.exec.Events():
			batch = append(batch, ev)
		default:
			break drain
		}
	}
	next, starts, err := s.lockedStep(ctx, batch)
	// Tries are recorded (committed) before any starts, and started
	// outside the lock so that commands (API writes) never wait for
	// processes or pods to be created. A crash in between leaves tries
	// without a process or pod: Recover starts them again. A step that
	// failed hands over the tries it committed before the failure.
	for _, p := range starts {
		s.start(ctx, p)
	}
	return next, err
}

// maxEventsPerStep bounds the executor events one step records; a longer
// backlog takes several steps. (Smaller batches cost throughput: at 50, a
// third of it. A write that queues behind a step is let in instead at the
// step's Yields: after each event, each run looked at, each try recorded.)
const maxEventsPerStep = 1000

// lockedStep applies events and takes one scheduling step, under the lock.
func (s *Scheduler) lockedStep(ctx context.Context, batch []executor.Event) (time.Time, []pendingStart, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	var starts, committed []pendingStart // committed: tries a failed step recorded before a Yield
	stepWith := func(events []executor.Event) error {
		return s.st.InTx(ctx, func(tx *store.Store) error {
			if err := s.applyEvents(ctx, tx, events); err != nil {
				return err
			}
			var err error
			next, starts, err = s.step(ctx, tx)
			if err != nil {
				committed, starts = append(committed, starts...), nil
			}
			return err
		})
	}
	// The events and the step they lead to commit together; if that fails
	// the events are recorded on their own (one by one if need be) and the
	// step is taken again.
	s.copiesFinish(ctx, batch)
	err := stepWith(batch)
	if err != nil && len(batch) > 0 {
		s.cache.reset()
		s.handleEvents(ctx, batch)
		err = stepWith(nil)
	}
	if err != nil {
		s.allDirty = true // the transaction was rolled back: look at everything again
		s.cache.reset()
	}
	return next, append(committed, starts...), err
}

func (s *Scheduler) step(ctx context.Context, st *store.Store) (time.Time, []pendingStart, error) {
	now := s.clock.Now()
	var next time.Time // zero: nothing due
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if s.opts.Shared {
		// One replica's step at a time, on what the others committed.
		if err := st.LockScheduling(ctx); err != nil {
			return next, nil, err
		}
		s.allDirty = true
	}
	s.takePendingDirty()
	if err := s.syncBag(ctx, st, now); err != nil {
		return next, nil, err
	}
	if s.allDirty {
		s.cache.reset() // something may have changed behind our back
	}
	rows, err := st.DAGs(ctx)
	if err != nil {
		return next, nil, err
	}
	paused := map[string]bool{}
	for _, r := range rows {
		paused[r.ID] = r.Paused || !r.Active
	}
	active, err := st.Runs(ctx, store.RunFilter{States: []dags.RunState{dags.RunQueued, dags.RunRunning}})
	if err != nil {
		return next, nil, err
	}
	byDAG := map[string][]store.Run{}
	for _, r := range active {
		byDAG[r.DagID] = append(byDAG[r.DagID], r)
	}
	// Backfills that have not completed: their runs start under their own
	// limit, in their order, apart from the DAG's max_active_runs.
	open, _, err := st.Backfills(ctx, store.BackfillFilter{Active: ptr(true)})
	if err != nil {
		return next, nil, err
	}
	backfills := map[int64]store.Backfill{}
	for _, b := range open {
		backfills[b.ID] = b
	}
	// Deadlines and slas of the open runs: misses are recorded, and the
	// step wakes at the next one.
	if due, err := s.checkDeadlines(ctx, st, active, now); err != nil {
		return next, nil, err
	} else if !due.IsZero() {
		soon(due)
	}
	// Create the scheduled runs that are due.
	current := s.synced.Load().current
	ids := sortedIDs(current)
	for _, id := range ids {
		d := current[id]
		if paused[id] || !d.Schedule.Periodic() && d.Schedule.Summary() != "@once" {
			continue
		}
		created, due, err := s.createDueRuns(ctx, st, d, countOutside(byDAG[id], backfills), now)
		if err != nil {
			return next, nil, err
		}
		byDAG[id] = append(byDAG[id], created...)
		if !due.IsZero() {
			soon(due)
		}
	}
	// Start queued runs under max_active_runs, oldest first.
	var running []store.Run
	for _, id := range sortedKeys(byDAG) {
		runs := byDAG[id]
		sortForStart(runs, backfills)
		d := s.dagFor(id, "")
		// Runs at once: the DAG's own (key 0) and each backfill's.
		nRunning := map[int64]int{}
		group := func(r store.Run) int64 {
			if _, ok := backfills[r.BackfillID]; ok {
				return r.BackfillID
			}
			return 0
		}
		for _, r := range runs {
			if r.State == dags.RunRunning {
				nRunning[group(r)]++
			}
		}
		for _, r := range runs {
			g := group(r)
			limit := 0
			if d != nil {
				limit = d.MaxActiveRuns
			}
			if b, ok := backfills[g]; ok {
				limit = b.MaxActiveRuns
				if b.Paused {
					limit = 0
				}
			}
			if r.State == dags.RunQueued && !paused[id] && d != nil && nRunning[g] < limit {
				if ok, err := st.SetRunState(ctx, id, r.RunID, dags.RunQueued, dags.RunRunning, now); err != nil {
					return next, nil, err
				} else if ok {
					r.State, r.StartDate = dags.RunRunning, &now
					nRunning[g]++
					s.markDirty(id, r.RunID)
				}
			}
			if r.State != dags.RunRunning || paused[id] {
				continue
			}
			key := runKey(id, r.RunID)
			if due, ok := s.runDue[key]; s.allDirty || s.dirty[key] || ok && !due.After(now) {
				running = append(running, r)
			} else if ok {
				soon(due)
			}
		}
	}
	s.allDirty = false
	if len(backfills) > 0 {
		if _, err := st.CompleteBackfills(ctx, now); err != nil {
			return next, nil, err
		}
	}
	// Decide task instances of running runs, then dispatch what is ready.
	var ready []readyTI
	for _, r := range running {
		key := runKey(r.DagID, r.RunID)
		delete(s.dirty, key)
		rr, due, err := s.processRun(ctx, st, r, now)
		if err != nil {
			s.dirty[key] = true
			return next, nil, err
		}
		ready = append(ready, rr...)
		if due.IsZero() {
			delete(s.runDue, key)
		} else {
			s.runDue[key] = due
			soon(due)
		}
		// A run's decisions stand on their own (a crash here leaves
		// scheduled task instances, which the next look dispatches).
		if _, err := st.Yield(ctx); err != nil {
			s.dirty[key] = true
			return next, nil, err
		}
	}
	// A run that ended may free a max_active_runs slot a queued run is
	// waiting for, and a mapped task that expanded has instances to start:
	// look again at once rather than at the next due time.
	if s.runEnded {
		s.runEnded = false
		soon(now)
	}
	var starts []pendingStart
	if len(ready) > 0 {
		held, started, err := s.dispatch(ctx, st, ready, now)
		if err != nil {
			return next, started, err // started: the tries committed before the failure
		}
		starts = started
		// Work held back by a limit is looked at again after the next event.
		for _, rt := range held {
			s.markDirty(rt.run.DagID, rt.run.RunID)
		}
	}
	return next, starts, nil
}

// syncBag records a new DAG folder load in the store.
func (s *Scheduler) syncBag(ctx context.Context, st *store.Store, now time.Time) error {
	res, at := s.bag.Current()
	if at.Equal(s.synced.Load().loadedAt) || at.IsZero() {
		return nil
	}
	var recs []store.DAGRecord
	current := map[string]*dags.DAG{}
	for _, d := range res.DAGs {
		src, err := dags.EncodeVersion(d)
		if err != nil {
			return err
		}
		recs = append(recs, store.DAGRecord{ID: d.ID, File: d.File, Version: d.Hash, Source: string(src), GitRevision: d.Revision, PausedUponCreation: d.IsPausedUponCreation})
		current[d.ID] = d
		s.versions[d.ID+"@"+d.Hash] = d
	}
	if err := st.SyncDAGs(ctx, now, recs, true); err != nil {
		return err
	}
	files := map[string]dags.Problems{}
	for _, f := range res.Files {
		files[f.Path] = f.Problems
	}
	prev, err := st.ImportErrors(ctx)
	if err != nil {
		return err
	}
	before := map[string]string{}
	for _, e := range prev {
		before[e.File] = e.StackTrace
	}
	// A file gone from the folder has no errors any more.
	for file := range before {
		if _, ok := files[file]; !ok {
			files[file] = nil
		}
	}
	if err := st.InTx(ctx, func(tx *store.Store) error {
		if err := tx.ReplaceImportErrors(ctx, now, res.Revision, files); err != nil {
			return err
		}
		for _, a := range importAlerts(before, files, res.Revision, now) {
			if err := tx.AddAlert(ctx, a); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	// Keep the versions unfinished runs were created with, and drop the
	// rest: a DAG with a relative start date gets a new version every day.
	active, err := st.Runs(ctx, store.RunFilter{States: []dags.RunState{dags.RunQueued, dags.RunRunning}})
	if err != nil {
		return err
	}
	keep := map[string]bool{}
	for _, r := range active {
		key := r.DagID + "@" + r.DAGVersion
		keep[key] = true
		if s.versions[key] == nil && r.DAGVersion != "" {
			s.restoreVersion(ctx, st, r.DagID, r.DAGVersion)
		}
	}
	for key, d := range s.versions {
		if !keep[key] && current[d.ID] != d {
			delete(s.versions, key)
		}
	}
	s.synced.Store(&dagSnapshot{loadedAt: at, current: current})
	s.allDirty = true
	return nil
}

// restoreVersion reads a DAG version an unfinished run was created with
// back from the store: after a restart the file may say something else
// already. A version that cannot be read leaves the run on the current one,
// with a warning.
func (s *Scheduler) restoreVersion(ctx context.Context, st *store.Store, id, version string) {
	src, err := st.DAGVersionSource(ctx, id, version)
	if err == nil {
		var d *dags.DAG
		if d, err = dags.DecodeVersion([]byte(src)); err == nil {
			s.versions[id+"@"+version] = d
			return
		}
	}
	s.log.Warn("dag version of an unfinished run not readable; it continues on the current version", "dag_id", id, "version", version, "err", err)
}

// dagFor returns the DAG version a run was created with, falling back to
// the current version (a version seen only by an earlier process).
func (s *Scheduler) dagFor(id, version string) *dags.DAG {
	if d := s.versions[id+"@"+version]; d != nil && version != "" {
		return d
	}
	return s.synced.Load().current[id]
}

// createDueRuns creates every scheduled run that is due, up to the DAG's
// max_active_runs, and returns them with the time the next one is due.
func (s *Scheduler) createDueRuns(ctx context.Context, st *store.Store, d *dags.DAG, active int, now time.Time) ([]store.Run, time.Time, error) {
	if s.opts.ManualOnly {
		return nil, time.Time{}, nil
	}
	last, err := st.LastScheduledRun(ctx, d.ID)
	if err != nil {
		return nil, time.Time{}, err
	}
	var lastIv *dags.DataInterval
	if last != nil {
		lastIv = &last.Interval
	}
	var created []store.Run
	for active < d.MaxActiveRuns {
		info, ok := dags.NextRun(d, lastIv, now)
		if !ok {
			return created, time.Time{}, nil
		}
		if info.RunAfter.After(now) {
			return created, info.RunAfter, nil
		}
		r := store.Run{DagID: d.ID, RunID: dags.RunID(dags.RunTypeScheduled, info.Interval.Start), RunType: dags.RunTypeScheduled,
			LogicalDate: info.Interval.Start, Interval: info.Interval, State: dags.RunQueued, QueuedAt: now, DAGVersion: d.Hash, GitRevision: d.Revision}
		err := st.CreateRun(ctx, r, newTaskInstances(d, r))
		switch {
		case errors.Is(err, store.ErrConflict):
			// A manual run already has this logical date: skip the interval.
			s.log.Warn("scheduled run skipped: a run with its logical date exists", "dag_id", d.ID, "logical_date", r.LogicalDate)
		case err != nil:
			return created, time.Time{}, err
		default:
			created = append(created, r)
			active++
			s.log.Info("run created", "dag_id", d.ID, "run_id", r.RunID)
		}
		iv := info.Interval
		lastIv = &iv
	}
	return created, time.Time{}, nil
}

// countOutside counts the runs that are not a backfill's: the ones the
// DAG's max_active_runs limits.
func countOutside(runs []store.Run, backfills map[int64]store.Backfill) int {
	n := 0
	for _, r := range runs {
		if _, ok := backfills[r.BackfillID]; !ok {
			n++
		}
	}
	return n
}

// sortForStart orders a DAG's queued and running runs as they start: the
// DAG's own oldest first, then each backfill's in its order (newest first
// when it runs backwards).
func sortForStart(runs []store.Run, backfills map[int64]store.Backfill) {
	group := func(r store.Run) int64 {
		if _, ok := backfills[r.BackfillID]; ok {
			return r.BackfillID
		}
		return 0
	}
	sort.Slice(runs, func(i, j int) bool {
		a, b := runs[i], runs[j]
		if ga, gb := group(a), group(b); ga != gb {
			return ga < gb
		}
		if backfills[group(a)].RunBackwards {
			return a.LogicalDate.After(b.LogicalDate)
		}
		return a.LogicalDate.Before(b.LogicalDate)
	})
}

func newTaskInstances(d *dags.DAG, r store.Run) []store.TaskInstance {
	weights := priorityWeights(d)
	tis := make([]store.TaskInstance, 0, len(d.Tasks))
	for _, t := range d.Tasks {
		tis = append(tis, store.TaskInstance{DagID: d.ID, RunID: r.RunID, TaskID: t.ID, MapIndex: -1, State: dags.StateNone,
			MaxTries: t.Retries, Operator: t.Operator, Pool: t.Pool, PoolSlots: t.PoolSlots, PriorityWeight: weights[t.ID]})
	}
	return tis
}

// priorityWeights computes each task's effective priority by its weight
// rule: its own weight plus every downstream (or upstream) task's.
func priorityWeights(d *dags.DAG) map[string]int {
	down := map[string][]string{}
	for _, t := range d.Tasks {
		for _, u := range t.Upstream {
			down[u] = append(down[u], t.ID)
		}
	}
	reach := func(start string, next func(string) []string) map[string]bool {
		seen := map[string]bool{}
		stack := []string{start}
		for len(stack) > 0 {
			x := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, y := range next(x) {
				if !seen[y] {
					seen[y] = true
					stack = append(stack, y)
				}
			}
		}
		return seen
	}
	out := map[string]int{}
	for _, t := range d.Tasks {
		w := t.PriorityWeight
		var others map[string]bool
		switch t.WeightRule {
		case "upstream":
			others = reach(t.ID, func(id string) []string { return d.Task(id).Upstream })
		case "absolute":
		default:
			others = reach(t.ID, func(id string) []string { return down[id] })
		}
		for id := range others {
			w += d.Task(id).PriorityWeight
		}
		out[t.ID] = w
	}
	return out
}

type readyTI struct {
	ti  store.TaskInstance
	run store.Run
	dag *dags.DAG
}

// processRun moves one running run's task instances forward and settles
// the run when nothing is left to do. It returns the task instances ready
// to dispatch and when the run next needs attention.
func (s *Scheduler) processRun(ctx context.Context, st *store.Store, r store.Run, now time.Time) ([]readyTI, time.Time, error) {
	d := s.dagFor(r.DagID, r.DAGVersion)
	if d == nil {
		return nil, time.Time{}, nil // the DAG is gone; its runs wait for it
	}
	var due time.Time
	soon := func(t time.Time) {
		if due.IsZero() || t.Before(due) {
			due = t
		}
	}
	byID, cached := s.cache.get(r.DagID, r.RunID)
	if !cached {
		tis, err := st.TaskInstances(ctx, r.DagID, r.RunID)
		if err != nil {
			return nil, due, err
		}
		byID = make(map[tiID]*store.TaskInstance, len(tis))
		for i := range tis {
			byID[idOf(tis[i])] = &tis[i]
		}
		s.cache.put(r.DagID, r.RunID, byID)
	}
	byTask := groupByTask(byID)
	set := func(ti *store.TaskInstance, to dags.TaskState, edit func(*store.TaskInstance)) error {
		upd := *ti
		upd.State = to
		if edit != nil {
			edit(&upd)
		}
		ok, err := st.UpdateTaskInstance(ctx, upd, ti.State)
		if err != nil {
			return err
		}
		if ok {
			*ti = upd
		} else {
			s.cache.drop(r.DagID, r.RunID) // changed behind our back
		}
		return nil
	}
	// dagrun_timeout: the run fails and its unfinished task instances are skipped.
	if d.DagrunTimeout > 0 && r.StartDate != nil {
		deadline := r.StartDate.Add(d.DagrunTimeout)
		if !now.Before(deadline) {
			var tis []store.TaskInstance
			for _, ti := range byID {
				tis = append(tis, *ti)
			}
			s.cache.drop(r.DagID, r.RunID)
			return nil, time.Time{}, s.timeOutRun(ctx, st, r, tis, now)
		}
		soon(deadline)
	}
	// Task instances whose task left the DAG are removed.
	for _, ti := range byID {
		if d.Task(ti.TaskID) == nil && ti.State != dags.StateRemoved && dags.CanTransition(ti.State, dags.StateRemoved) {
			if err := set(ti, dags.StateRemoved, nil); err != nil {
				return nil, due, err
			}
		}
	}
	var prev map[string]store.TaskInstance
	var ready []readyTI
	waitingOnPast, expanded := false, false
	for _, t := range d.Tasks {
		for _, ti := range byTask[t.ID] {
			switch ti.State {
			case dags.StateUpForRetry:
				if ti.NextTryAt == nil || !ti.NextTryAt.After(now) {
					if err := set(ti, dags.StateScheduled, nil); err != nil {
						return nil, due, err
					}
				} else {
					soon(*ti.NextTryAt)
				}
			case dags.StateNone:
				if t.Mapped() && ti.MapIndex < 0 {
					// Not expanded yet: it expands (or settles) once what
					// it maps over is known.
					done, err := s.expandTask(ctx, st, d, t, r, ti, byTask, now)
					if err != nil {
						return nil, due, err
					}
					expanded = expanded || done
					continue
				}
				dec := t.TriggerRule.Evaluate(upstreamCounts(d, t, ti, byTask))
				switch {
				case dec.Settle != "":
					end := now
					if err := set(ti, dec.Settle, func(x *store.TaskInstance) { x.EndDate = &end }); err != nil {
						return nil, due, err
					}
				case dec.Run:
					if t.DependsOnPast {
						if prev == nil {
							var err error
							if prev, err = s.previousRunTIs(ctx, st, r); err != nil {
								return nil, due, err
							}
						}
						switch pastAllows(d, t, prev) {
						case pastWait:
							waitingOnPast = true
							continue
						case pastBlocked:
							continue
						}
					}
					if err := set(ti, dags.StateScheduled, nil); err != nil {
						return nil, due, err
					}
				}
			}
			if ti.State == dags.StateScheduled {
				ready = append(ready, readyTI{ti: *ti, run: r, dag: d})
			}
		}
	}
	if expanded {
		// New task instances: look at the run again with them, at once.
		s.cache.drop(r.DagID, r.RunID)
		s.markDirty(r.DagID, r.RunID)
		s.runEnded = true
		return ready, due, nil
	}
	// The run is over when every task instance is finished.
	states := map[string]dags.TaskState{}
	progressing := false
	for _, t := range d.Tasks {
		insts := byTask[t.ID]
		if len(insts) == 0 {
			states[t.ID] = dags.StateRemoved
			continue
		}
		states[t.ID] = aggregateState(insts)
		for _, ti := range insts {
			if ti.State != dags.StateNone && !ti.State.Finished() {
				progressing = true
			}
		}
	}
	if final, ok := dags.RunStateFromLeaves(d, states); ok {
		return nil, time.Time{}, s.finishRun(ctx, st, r, final, now, "")
	}
	if waitingOnPast {
		// Its trigger is another run's change: look again at every step.
		s.markDirty(r.DagID, r.RunID)
	}
	if !progressing && !waitingOnPast && len(ready) == 0 {
		// Only waiting task instances remain and none can ever start
		// (depends_on_past on a failed run): the run is deadlocked.
		return nil, time.Time{}, s.finishRun(ctx, st, r, dags.RunFailed, now, "all_tasks_deadlocked")
	}
	return ready, due, nil
}

func (s *Scheduler) finishRun(ctx context.Context, st *store.Store, r store.Run, state dags.RunState, now time.Time, reason string) error {
	s.cache.drop(r.DagID, r.RunID)
	ok, err := st.SetRunState(ctx, r.DagID, r.RunID, dags.RunRunning, state, now)
	if err == nil && ok {
		s.log.Info("run finished", "dag_id", r.DagID, "run_id", r.RunID, "state", state, "reason", reason)
		s.runEnded = true
		kind := AlertRunSuccess
		if state == dags.RunFailed {
			kind = AlertRunFailed
		}
		err = st.AddAlert(ctx, runAlert(kind, r.DagID, r.RunID, reason, now))
		if err == nil {
			// A run that ends late has missed its deadlines too.
			r.State, r.EndDate = state, &now
			if d := s.dagFor(r.DagID, r.DAGVersion); d != nil {
				_, err = s.checkRun(ctx, st, d, r, now)
			}
			delete(s.decided, runKey(r.DagID, r.RunID))
		}
	}
	return err
}

// timeOutRun fails a run past its dagrun_timeout: unfinished task
// instances are skipped and running tries killed.
func (s *Scheduler) timeOutRun(ctx context.Context, st *store.Store, r store.Run, tis []store.TaskInstance, now time.Time) error {
	for _, ti := range tis {
		if ti.State.Finished() {
			continue
		}
		if ti.State == dags.StateRunning || ti.State == dags.StateQueued {
			_ = s.exec.Kill(ctx, tryKey(ti), "dagrun_timeout exceeded")
		}
		upd := ti
		upd.State, upd.EndDate = dags.StateSkipped, &now
		if dags.CanTransition(ti.State, dags.StateSkipped) {
			if _, err := st.UpdateTaskInstance(ctx, upd, ti.State); err != nil {
				return err
			}
		}
	}
	return s.finishRun(ctx, st, r, dags.RunFailed, now, "timed_out")
}

// previousRunTIs returns the task instances of the run before r (by
// logical date), or an empty map when r is the first.
func (s *Scheduler) previousRunTIs(ctx context.Context, st *store.Store, r store.Run) (map[string]store.TaskInstance, error) {
	runs, err := st.Runs(ctx, store.RunFilter{DagID: r.DagID})
	if err != nil {
		return nil, err
	}
	out := map[string]store.TaskInstance{}
	for _, p := range runs { // newest first
		if p.LogicalDate.Before(r.LogicalDate) {
			tis, err := st.TaskInstances(ctx, p.DagID, p.RunID)
			if err != nil {
				return nil, err
			}
			for _, ti := range tis {
				out[ti.TaskID] = ti
			}
			break
		}
	}
	return out, nil
}

type pastVerdict int

const (
	pastOK      pastVerdict = iota
	pastWait                // the previous run's task has not finished yet
	pastBlocked             // it finished without success: this run cannot go on
)

// pastAllows is depends_on_past: the same task in the previous run ended
// success or skipped (the first run is exempt); with wait_for_downstream
// its direct downstream tasks did too.
func pastAllows(d *dags.DAG, t *dags.Task, prev map[string]store.TaskInstance) pastVerdict {
	check := func(id string) pastVerdict {
		p, found := prev[id]
		switch {
		case !found || p.State == dags.StateSuccess || p.State == dags.StateSkipped:
			return pastOK
		case p.State.Finished():
			return pastBlocked
		}
		return pastWait
	}
	ids := []string{t.ID}
	if t.WaitForDownstream {
		ids = append(ids, d.Downstream(t.ID)...)
	}
	verdict := pastOK
	for _, id := range ids {
		verdict = max(verdict, check(id))
	}
	return verdict
}

func tryKey(ti store.TaskInstance) executor.TryKey {
	return executor.TryKey{DagID: ti.DagID, RunID: ti.RunID, TaskID: ti.TaskID, TryNumber: ti.TryNumber, MapIndex: ti.MapIndex}
}

// tiKeyOf is the task instance a try belongs to.
func tiKeyOf(k executor.TryKey) store.TIKey {
	return store.TIKey{DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, MapIndex: k.MapIndex}
}

// LogPath is where a try's log is written.
func (s *Scheduler) LogPath(k executor.TryKey) string {
	clean := func(p string) string { return strings.NewReplacer("/", "_", "..", "_").Replace(p) }
	dir := filepath.Join(s.opts.LogDir, "dag_id="+clean(k.DagID), "run_id="+clean(k.RunID), "task_id="+clean(k.TaskID))
	if k.MapIndex >= 0 {
		dir = filepath.Join(dir, fmt.Sprintf("map_index=%d", k.MapIndex)) // as Airflow's log folders
	}
	return filepath.Join(dir, fmt.Sprintf("attempt=%d.log", k.TryNumber))
}

// dispatch starts ready task instances, highest priority first, within
// parallelism, each DAG's max_active_tasks, per-task limits, pools and the
// executor's free slots.
func (s *Scheduler) dispatch(ctx context.Context, st *store.Store, ready []readyTI, now time.Time) (held []readyTI, starts []pendingStart, err error) {
	busy, err := st.TaskInstancesInState(ctx, dags.StateQueued, dags.StateRunning)
	if err != nil {
		return nil, nil, err
	}
	perDAG, perTask, perPool := map[string]int{}, map[string]int{}, map[string]int{}
	for _, ti := range busy {
		perDAG[ti.DagID]++
		perTask[ti.DagID+"."+ti.TaskID]++
		perPool[ti.Pool] += ti.PoolSlots
	}
	pools, err := st.Pools(ctx)
	if err != nil {
		return nil, nil, err
	}
	poolSlots := map[string]int{}
	for _, p := range pools {
		poolSlots[p.Name] = p.Slots
	}
	sort.SliceStable(ready, func(i, j int) bool {
		a, b := ready[i], ready[j]
		if a.ti.PriorityWeight != b.ti.PriorityWeight {
			return a.ti.PriorityWeight > b.ti.PriorityWeight
		}
		return a.run.LogicalDate.Before(b.run.LogicalDate)
	})
	var vars map[string]string
	total := len(busy)
	// The executor's free slots change only when the tries start, after
	// the commit: count what this step hands it.
	used := map[string]int{}
	committed := 0 // starts committed by a Yield
	for i, rt := range ready {
		t := rt.dag.Task(rt.ti.TaskID)
		if total >= s.opts.Parallelism {
			return append(held, ready[i:]...), starts, nil
		}
		class, free := s.freeSlots(t.Spec)
		if free-used[class] <= 0 {
			held = append(held, rt)
			continue
		}
		slots, known := poolSlots[rt.ti.Pool]
		switch {
		case perDAG[rt.ti.DagID] >= rt.dag.MaxActiveTasks,
			t.MaxActiveTisPerDag > 0 && perTask[rt.ti.DagID+"."+t.ID] >= t.MaxActiveTisPerDag,
			!known || perPool[rt.ti.Pool]+rt.ti.PoolSlots > slots:
			held = append(held, rt)
			continue
		}
		if vars == nil {
			var secret []string
			if vars, secret, err = st.TemplateVariables(ctx); err != nil {
				return nil, nil, err
			}
			s.opts.Mask.Add(secret...)
		}
		p, ok, err := s.recordTry(ctx, st, rt, t, vars, now)
		if err != nil {
			return nil, starts[:committed], err
		}
		if ok {
			starts = append(starts, p)
			used[class]++
			total++
			perDAG[rt.ti.DagID]++
			perTask[rt.ti.DagID+"."+t.ID]++
			perPool[rt.ti.Pool] += rt.ti.PoolSlots
		}
		// A recorded try stands on its own; once committed it is started
		// whatever becomes of the rest of the step.
		yielded, err := st.Yield(ctx)
		if yielded {
			committed = len(starts)
		}
		if err != nil {
			return nil, starts[:committed], err
		}
	}
	return held, starts, nil
}

// routedExecutor is an executor made of several (builtin.Router): its free
// slots depend on the task.
type routedExecutor interface {
	SlotClass(spec dags.OperatorSpec) string
	FreeSlots(class string) int
}

// freeSlots returns which slots a task would take and how many are free.
func (s *Scheduler) freeSlots(spec dags.OperatorSpec) (string, int) {
	if r, ok := s.exec.(routedExecutor); ok {
		class := r.SlotClass(spec)
		return class, r.FreeSlots(class)
	}
	return "", s.exec.Free()
}

// pendingStart is a try recorded in the store, to hand to the executor
// once the transaction that recorded it has committed.
type pendingStart struct {
	try       executor.Try
	renderErr error
}

// recordTry renders a task and records its next try (task instance
// queued, try row written). The executor starts it after the commit.
func (s *Scheduler) recordTry(ctx context.Context, st *store.Store, rt readyTI, t *dags.Task, vars map[string]string, now time.Time) (pendingStart, bool, error) {
	ti := rt.ti
	queued := ti
	queued.State, queued.TryNumber, queued.QueuedAt, queued.EndDate = dags.StateQueued, ti.TryNumber+1, &now, nil
	ok, err := st.UpdateTaskInstance(ctx, queued, dags.StateScheduled)
	if err != nil || !ok {
		s.cache.drop(ti.DagID, ti.RunID)
		return pendingStart{}, false, err
	}
	s.cache.update(queued)
	key := tryKey(queued)
	p := pendingStart{try: executor.Try{Key: key, SkipOn: t.SkipOnExitCode(), Timeout: t.ExecutionTimeout, LogPath: s.LogPath(key), Mask: s.opts.Mask,
		XComPush: t.PushesXCom(), Revision: rt.run.GitRevision}}
	// A new try starts without what an earlier one pushed, as in Airflow.
	// A first try has nothing to clear (a clear removes the XCom with the
	// tries it resets), so the hot path of first tries skips the delete.
	if queued.TryNumber > 1 {
		if err := st.ClearXComs(ctx, queued.Key(), false); err != nil {
			return pendingStart{}, false, err
		}
	}
	rc := s.runContext(ctx, st, rt.dag, rt.run, queued.MapIndex, key.TryNumber, now)
	p.try.ContextEnv = contextEnv(key, t.Owner, rt.run.LogicalDate)
	var spec dags.OperatorSpec
	var renderErr error
	if rc.MapInput, renderErr = instanceInput(ctx, st, queued); renderErr == nil {
		spec, renderErr = dags.Render(t, rc, vars)
	}
	if label, err := dags.RenderLabel(t, rc, vars); err == nil && label != "" && renderErr == nil {
		labelled := queued
		labelled.Label = label
		if ok, err := st.UpdateTaskInstance(ctx, labelled, dags.StateQueued); err != nil {
			return pendingStart{}, false, err
		} else if ok {
			s.cache.update(labelled)
		}
	}
	p.try.Spec, p.renderErr = spec, renderErr
	rendered, _ := json.Marshal(spec)
	if err := st.StartTry(ctx, store.Try{TIKey: queued.Key(), TryNumber: key.TryNumber, State: dags.StateRunning, Owner: s.opts.ReplicaID,
		StartDate: now, Executor: s.opts.ExecutorName, LogPath: p.try.LogPath, Hostname: s.hostname, Rendered: s.opts.Mask.Mask(string(rendered))}); err != nil {
		return pendingStart{}, false, err
	}
	return p, true, nil
}

// start hands a recorded try to the executor; a try that cannot start
// (template error, nothing to run) fails with the reason.
func (s *Scheduler) start(ctx context.Context, p pendingStart) {
	k := p.try.Key
	s.opts.LogCopies.WatchNew(logKey(k), p.try.LogPath)
	err := p.renderErr
	if err == nil {
		err = s.exec.Start(ctx, p.try)
	}
	if err == nil {
		return
	}
	s.log.Warn("try could not start", "dag_id", k.DagID, "run_id", k.RunID, "task_id", k.TaskID, "try_number", k.TryNumber, "err", err)
	s.note(ctx, k, p.try.LogPath, "updraft: the try could not start: "+err.Error())
	s.opts.LogCopies.Finish(ctx, logKey(k))
	ev := executor.Event{Key: k, State: executor.Failed, Reason: err.Error(), At: s.clock.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.InTx(ctx, func(tx *store.Store) error { return s.finishTry(ctx, tx, ev) }); err != nil {
		s.log.Error("try failure not recorded", "try", k.String(), "err", err)
	}
	s.markDirty(k.DagID, k.RunID)
	s.Notify() // what follows the failed try is decided at the next step, now
}

// note writes a line of updraft's own into a try's log, and into its
// copy in the store when copies are kept.
func (s *Scheduler) note(ctx context.Context, k executor.TryKey, path, line string) {
	text := executor.AppendLogLine(s.opts.Mask, path, s.clock.Now(), line)
	s.opts.LogCopies.Noted(ctx, logKey(k), text)
}

func logKey(k executor.TryKey) trylog.Key {
	return trylog.Key{TIKey: tiKeyOf(k), Try: k.TryNumber}
}

func hostname() string {
	h, _ := os.Hostname()
	return h
}

// handleEvent applies one executor event to the store.
func (s *Scheduler) handleEvent(ctx context.Context, ev executor.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handleEvents(ctx, []executor.Event{ev})
}

// copiesFinish copies the whole log of every ended try into the store
// before its end is recorded (when copies are kept).
func (s *Scheduler) copiesFinish(ctx context.Context, evs []executor.Event) {
	for _, ev := range evs {
		if ev.State != executor.Running {
			s.opts.LogCopies.Finish(ctx, logKey(ev.Key))
		}
	}
}

// applyEvents records executor events in the transaction st. s.mu is held.
func (s *Scheduler) applyEvents(ctx context.Context, st *store.Store, evs []executor.Event) error {
	for _, ev := range evs {
		s.markDirty(ev.Key.DagID, ev.Key.RunID)
		var err error
		if ev.State == executor.Running {
			err = s.tryRunning(ctx, st, ev)
		} else {
			err = s.finishTry(ctx, st, ev)
		}
		if err != nil {
			return fmt.Errorf("try %s %s: %w", ev.Key, ev.State, err)
		}
		// Each event is recorded whole: a write waiting behind a long
		// batch (an API trigger) may go first.
		if _, err := st.Yield(ctx); err != nil {
			return err
		}
	}
	return nil
}

// handleEvents applies executor events in one transaction. s.mu is held.
func (s *Scheduler) handleEvents(ctx context.Context, evs []executor.Event) {
	s.copiesFinish(ctx, evs)
	err := s.st.InTx(ctx, func(tx *store.Store) error { return s.applyEvents(ctx, tx, evs) })
	if err != nil {
		s.cache.reset() // the batch was rolled back
		// Recorded one by one instead, so one bad event does not lose the others.
		for _, ev := range evs {
			err := s.st.InTx(ctx, func(tx *store.Store) error {
				if ev.State == executor.Running {
					return s.tryRunning(ctx, tx, ev)
				}
				return s.finishTry(ctx, tx, ev)
			})
			if err != nil {
				s.log.Error("executor event not recorded", "try", ev.Key.String(), "state", ev.State, "err", err)
			}
		}
	}
}

func (s *Scheduler) tryRunning(ctx context.Context, st *store.Store, ev executor.Event) error {
	k := tiKeyOf(ev.Key)
	if ev.Handle != "" {
		if err := st.SetTryHandle(ctx, k, ev.Key.TryNumber, ev.Handle); err != nil {
			return err
		}
	}
	ok, err := st.MarkRunning(ctx, k, ev.Key.TryNumber, ev.At)
	if err != nil || !ok {
		s.cache.drop(k.DagID, k.RunID)
		return err
	}
	if m, cached := s.cache.get(k.DagID, k.RunID); cached {
		if ti := m[tiID{k.TaskID, k.MapIndex}]; ti != nil && ti.State == dags.StateQueued && ti.TryNumber == ev.Key.TryNumber {
			at := ev.At
			ti.State, ti.StartDate = dags.StateRunning, &at
		} else {
			s.cache.drop(k.DagID, k.RunID)
		}
	}
	return nil
}

// finishTry records a try's end and moves its task instance on: success,
// skipped, up_for_retry (tries left, after the retry delay) or failed. A
// task instance that was cleared or marked meanwhile keeps its new state.
func (s *Scheduler) finishTry(ctx context.Context, st *store.Store, ev executor.Event) error {
	k := tiKeyOf(ev.Key)
	var d *dags.DAG // the run's DAG version, read when a branch needs it
	if ev.State == executor.Succeeded && ev.Branch != nil {
		if r, err := st.Run(ctx, k.DagID, k.RunID); err == nil {
			d = s.dagFor(k.DagID, r.DAGVersion)
		}
	}
	if why := s.checkResult(d, ev); why != "" {
		// The try did its work but its result cannot be used: it fails
		// (and is retried) with the reason.
		ev.State, ev.Reason, ev.XCom, ev.Branch = executor.Failed, why, nil, nil
		s.note(ctx, ev.Key, s.LogPath(ev.Key), "updraft: the try failed: "+why)
	}
	state := dags.TaskState(ev.State)
	ended, err := st.FinishTry(ctx, k, ev.Key.TryNumber, state, ev.At, ev.ExitCode, ev.Reason)
	if err != nil {
		return err
	}
	if !ended {
		// The try had ended already: whoever ended it (this replica, or
		// one that adopted it) decided its task instance; a second
		// outcome for the same try must not decide it again.
		s.log.Debug("end of a try that had ended already", "try", ev.Key.String(), "state", ev.State)
		return nil
	}
	ti, err := st.TaskInstance(ctx, k)
	if err != nil {
		return err
	}
	if ti.TryNumber != ev.Key.TryNumber {
		return nil // an older try; the task instance has moved on
	}
	from := ti.State
	at := ev.At
	if state == dags.StateSuccess && (from == dags.StateQueued || from == dags.StateRunning) {
		if len(ev.XCom) > 0 {
			if err := st.PushXComs(ctx, k, ev.Key.TryNumber, at, ev.XCom); err != nil {
				return err
			}
		}
		if err := s.applyBranch(ctx, st, d, k, ev.Branch, at); err != nil {
			return err
		}
	}
	switch from {
	case dags.StateRestarting: // cleared while running: start over
		ti.State, ti.EndDate = dags.StateNone, nil
	case dags.StateQueued, dags.StateRunning:
		ti.EndDate = &at
		switch {
		case state == dags.StateFailed && ti.TryNumber <= ti.MaxTries && !ev.Final:
			var d *dags.DAG
			var logical time.Time
			if r, err := st.Run(ctx, k.DagID, k.RunID); err == nil {
				d, logical = s.dagFor(k.DagID, r.DAGVersion), r.LogicalDate
			}
			delay := dags.DefaultRetryDelay
			if d != nil && d.Task(k.TaskID) != nil {
				delay = dags.RetryDelay(d.Task(k.TaskID), k.DagID, logical, ti.TryNumber)
			}
			nextTry := at.Add(delay)
			ti.State, ti.NextTryAt = dags.StateUpForRetry, &nextTry
		default:
			ti.State = state
		}
	default:
		return nil // marked or timed out meanwhile
	}
	if ok, err := st.UpdateTaskInstance(ctx, ti, from); err != nil || !ok {
		s.cache.drop(k.DagID, k.RunID)
		if err != nil {
			return err
		}
	} else {
		s.cache.update(ti)
		switch ti.State {
		case dags.StateFailed:
			err = st.AddAlert(ctx, taskAlert(AlertTaskFailed, k, ev.Key.TryNumber, ev.Reason, at))
		case dags.StateUpForRetry:
			err = st.AddAlert(ctx, taskAlert(AlertTaskRetry, k, ev.Key.TryNumber, ev.Reason, at))
		}
		if err != nil {
			return err
		}
	}
	if s.opts.ObserveTry != nil && ti.StartDate != nil {
		s.opts.ObserveTry(string(state), at.Sub(*ti.StartDate))
	}
	s.log.Info("try finished", "dag_id", k.DagID, "run_id", k.RunID, "task_id", k.TaskID, "try_number", ev.Key.TryNumber,
		"state", ti.State, "reason", ev.Reason)
	return nil
}

// Recover continues after a previous process stopped: running tries are
// adopted from the executor, tries that are gone fail (and are retried if
// they have tries left), and task instances queued without a recorded try
// are scheduled again with the same try number.
func (s *Scheduler) Recover(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if err := s.syncBag(ctx, s.st, now); err != nil {
		return err
	}
	var tries []store.Try
	var err error
	if s.opts.Shared {
		// Only the tries of replicas that stopped beating: the others'
		// are theirs.
		if err := s.st.Beat(ctx, s.opts.ReplicaID, s.hostname, time.Now()); err != nil {
			return err
		}
		// Tries this replica id owned before a restart are ours to adopt.
		open, err := s.st.UnfinishedTries(ctx)
		if err != nil {
			return err
		}
		for _, t := range open {
			if t.Owner == s.opts.ReplicaID {
				tries = append(tries, t)
			}
		}
		orphans, err := s.st.ClaimOrphanTries(ctx, s.opts.ReplicaID, time.Now().Add(-s.replicaTimeout()))
		if err != nil {
			return err
		}
		tries = append(tries, orphans...)
	} else {
		tries, err = s.st.UnfinishedTries(ctx)
	}
	if err != nil {
		return err
	}
	if err := s.adopt(ctx, tries, now); err != nil {
		return err
	}
	// Executors that leave things behind (pods) clean what no live try
	// needs: now, and every SweepInterval from then on (Run).
	s.sweep(ctx)
	queued, err := s.st.TaskInstancesInState(ctx, dags.StateQueued)
	if err != nil {
		return err
	}
	for _, ti := range queued {
		ts, err := s.st.Tries(ctx, ti.Key())
		if err != nil {
			return err
		}
		if len(ts) == 0 || ts[len(ts)-1].TryNumber < ti.TryNumber {
			back := ti
			back.State, back.TryNumber = dags.StateScheduled, ti.TryNumber-1
			if _, err := s.st.UpdateTaskInstance(ctx, back, dags.StateQueued); err != nil {
				return err
			}
		}
	}
	return nil
}

// sweep asks the executor to remove what no live try needs (pods of
// tries that ended, or that no try knows).
func (s *Scheduler) sweep(ctx context.Context) {
	sw, ok := s.exec.(executor.Sweeper)
	if !ok {
		return
	}
	open, err := s.st.UnfinishedTries(ctx)
	if err != nil {
		s.log.Warn("sweeping: reading the unfinished tries failed", "err", err)
		return
	}
	live := map[executor.TryKey]bool{}
	for _, t := range open {
		live[executor.TryKey{DagID: t.DagID, RunID: t.RunID, TaskID: t.TaskID, TryNumber: t.TryNumber, MapIndex: t.MapIndex}] = true
	}
	if n, err := sw.Sweep(ctx, func(k executor.TryKey) bool { return live[k] }); err != nil {
		s.log.Warn("sweeping what ended tries left behind failed", "err", err)
	} else if n > 0 {
		s.log.Info("swept what ended tries left behind", "count", n)
	}
}

// adopt re-attaches to tries started by another process (an earlier run
// of this server, or a replica that died): running ones report to this
// executor from now on, gone ones fail with a reason (and are retried if
// they may be).
func (s *Scheduler) adopt(ctx context.Context, tries []store.Try, now time.Time) error {
	for _, t := range tries {
		key := executor.TryKey{DagID: t.DagID, RunID: t.RunID, TaskID: t.TaskID, TryNumber: t.TryNumber, MapIndex: t.MapIndex}
		try := executor.Try{Key: key, LogPath: t.LogPath, Started: t.StartDate, Mask: s.opts.Mask}
		if r, err := s.st.Run(ctx, t.DagID, t.RunID); err == nil {
			try.Revision = r.GitRevision
			if d := s.dagFor(t.DagID, r.DAGVersion); d != nil && d.Task(t.TaskID) != nil {
				task := d.Task(t.TaskID)
				try.SkipOn, try.Timeout, try.Spec = task.SkipOnExitCode(), task.ExecutionTimeout, task.Spec
				// The spec as it was rendered when the try started: every
				// setting of the task at the run's pinned version, not
				// rendered again (variables may have changed since).
				if spec, err := dags.DecodeSpec(task.Operator, []byte(t.Rendered)); err == nil && t.Rendered != "" && t.Rendered != "null" {
					try.Spec = spec
				}
				try.XComPush = task.PushesXCom()
				if p, ok := try.Spec.(dags.PodSpec); ok {
					try.XComPush = p.DoXComPush
				}
			}
		}
		err := s.exec.Adopt(ctx, try)
		switch {
		case err == nil:
			s.log.Info("adopted a try left running", "try", key.String(), "from", t.Owner)
			replays, _ := s.exec.(executor.LogReplayer)
			s.opts.LogCopies.Watch(ctx, logKey(key), t.LogPath, replays != nil && replays.ReplaysLog(try))
		case errors.Is(err, executor.ErrGone) && t.Handle == "":
			// Recorded, but the crash came before its process or pod
			// existed: it never ran, so it runs now, with the same number.
			forgot, err := s.st.ForgetUnstartedTry(ctx, t.TIKey, t.TryNumber)
			if err != nil {
				return err
			}
			if forgot {
				s.note(ctx, key, t.LogPath, "updraft: the scheduler stopped before this try had a process or pod; it starts again")
				s.log.Info("a try that never started is scheduled again", "try", key.String())
				s.cache.drop(t.DagID, t.RunID)
				s.markDirty(t.DagID, t.RunID)
				continue
			}
			fallthrough
		case errors.Is(err, executor.ErrGone):
			reason := "the scheduler stopped during this try and its process is gone"
			s.note(ctx, key, t.LogPath, "updraft: "+reason)
			ev := executor.Event{Key: key, State: executor.Failed, Reason: reason, At: now}
			if err := s.st.InTx(ctx, func(tx *store.Store) error { return s.finishTry(ctx, tx, ev) }); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return nil
}

func (s *Scheduler) replicaTimeout() time.Duration {
	if s.opts.ReplicaTimeout > 0 {
		return s.opts.ReplicaTimeout
	}
	return 30 * time.Second
}

// replicaDuties beats for this replica, and takes over the tries of
// replicas that stopped beating (every few seconds).
func (s *Scheduler) replicaDuties(ctx context.Context) {
	now := time.Now()
	// Beats come well within the timeout, so that a live replica is never
	// taken for dead between two of them.
	every := min(5*time.Second, s.replicaTimeout()/3)
	if now.Sub(s.lastBeat) >= every {
		if err := s.st.Beat(ctx, s.opts.ReplicaID, s.hostname, now); err != nil {
			s.log.Warn("replica heartbeat failed", "err", err)
		} else {
			s.lastBeat = now
		}
	}
	if now.Sub(s.lastTakeover) < every {
		return
	}
	s.lastTakeover = now
	s.mu.Lock()
	defer s.mu.Unlock()
	tries, err := s.st.ClaimOrphanTries(ctx, s.opts.ReplicaID, now.Add(-s.replicaTimeout()))
	if err != nil {
		s.log.Warn("taking over the tries of stopped replicas failed", "err", err)
		return
	}
	if len(tries) > 0 {
		s.log.Info("taking over the tries of a stopped replica", "tries", len(tries))
		if err := s.adopt(ctx, tries, s.clock.Now()); err != nil {
			s.log.Warn("adopting tries failed", "err", err)
		}
		s.allDirty = true
	}
}

func sortedIDs(m map[string]*dags.DAG) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// contextEnv is Airflow's AIRFLOW_CTX_* environment of a try (both the
// 2.x EXECUTION_DATE and the 3.x LOGICAL_DATE name).
func contextEnv(k executor.TryKey, owner string, logical time.Time) []string {
	env := []string{"AIRFLOW_CTX_DAG_OWNER=" + owner, "AIRFLOW_CTX_DAG_ID=" + k.DagID, "AIRFLOW_CTX_TASK_ID=" + k.TaskID}
	if !logical.IsZero() {
		date := logical.UTC().Format("2006-01-02T15:04:05+00:00")
		env = append(env, "AIRFLOW_CTX_LOGICAL_DATE="+date, "AIRFLOW_CTX_EXECUTION_DATE="+date)
	}
	return append(env, "AIRFLOW_CTX_TRY_NUMBER="+strconv.Itoa(k.TryNumber), "AIRFLOW_CTX_DAG_RUN_ID="+k.RunID)
}
