// Package storetest is the store conformance suite: every database dialect
// must pass it. A dialect's test calls Run with a function that opens a
// fresh, migrated store.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"updraft/dags"
	"updraft/store"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Run runs every conformance test against stores made by open.
func Run(t *testing.T, open func(t *testing.T) *store.Store) {
	tests := map[string]func(*testing.T, *store.Store){
		"DAGs":              testDAGs,
		"Runs":              testRuns,
		"RunStateCAS":       testRunStateCAS,
		"TaskInstanceCAS":   testTaskInstanceCAS,
		"Tries":             testTries,
		"ConcurrentCAS":     testConcurrentCAS,
		"VariablesAudit":    testVariablesAudit,
		"ImportErrorsPools": testImportErrorsPools,
		"UsersSessions":     testUsersSessions,
		"Alerts":            testAlerts,
		"Clean":             testClean,
		"Replicas":          testReplicas,
		"LogCopies":         testLogCopies,
		"LoginFailures":     testLoginFailures,
		"XCom":              testXCom,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { fn(t, open(t)) })
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testDAGs(t *testing.T, s *store.Store) {
	ctx := context.Background()
	must(t, s.Migrate(ctx)) // idempotent
	must(t, s.SyncDAGs(ctx, t0, []store.DAGRecord{
		{ID: "a", File: "a.yaml", Version: "v1", Source: "{}", PausedUponCreation: true},
		{ID: "b", File: "b.yaml", Version: "v1", Source: "{}"},
	}, true))
	a, err := s.DAG(ctx, "a")
	must(t, err)
	if !a.Paused || !a.Active || a.Version != "v1" || a.File != "a.yaml" {
		t.Fatalf("a = %+v", a)
	}
	must(t, s.SetPaused(ctx, "a", false))
	// A new version keeps the paused flag; a DAG missing from the load becomes inactive.
	must(t, s.SyncDAGs(ctx, t0.Add(time.Minute), []store.DAGRecord{{ID: "a", File: "a.yaml", Version: "v2", Source: "{}", PausedUponCreation: true}}, true))
	a, _ = s.DAG(ctx, "a")
	b, _ := s.DAG(ctx, "b")
	if a.Paused || a.Version != "v2" || b.Active {
		t.Fatalf("after sync: a = %+v, b = %+v", a, b)
	}
	if _, err := s.DAG(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing DAG: %v", err)
	}
	if err := s.SetPaused(ctx, "nope", true); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("pause missing DAG: %v", err)
	}
	// Every version stays readable, by DAG and version.
	if src, err := s.DAGVersionSource(ctx, "a", "v1"); err != nil || src != "{}" {
		t.Fatalf("version v1 of a: %q, %v", src, err)
	}
	if _, err := s.DAGVersionSource(ctx, "a", "v9"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}
	all, err := s.DAGs(ctx)
	must(t, err)
	if len(all) != 2 || all[0].ID != "a" {
		t.Fatalf("DAGs = %+v", all)
	}
}

func newRun(dag string, day int, runType string) store.Run {
	logical := t0.AddDate(0, 0, day)
	return store.Run{DagID: dag, RunID: dags.RunID(runType, logical), RunType: runType, LogicalDate: logical,
		Interval: dags.DataInterval{Start: logical, End: logical.AddDate(0, 0, 1)}, State: dags.RunQueued,
		QueuedAt: logical, DAGVersion: "v1", Conf: map[string]any{"n": float64(day)}}
}

func tis(r store.Run, ids ...string) []store.TaskInstance {
	var out []store.TaskInstance
	for _, id := range ids {
		out = append(out, store.TaskInstance{DagID: r.DagID, RunID: r.RunID, TaskID: id, MapIndex: -1, State: dags.StateNone,
			MaxTries: 1, Operator: "BashOperator", Pool: "default_pool", PoolSlots: 1, PriorityWeight: 1})
	}
	return out
}

func testRuns(t *testing.T, s *store.Store) {
	ctx := context.Background()
	r1, r2, m := newRun("d", 0, "scheduled"), newRun("d", 1, "scheduled"), newRun("d", 5, "manual")
	r2.GitRevision = "9c7a0f62d7c89e26dda67bcaafadc49ef8c6fccb"
	must(t, s.CreateRun(ctx, r1, tis(r1, "x", "y")))
	must(t, s.CreateRun(ctx, r2, tis(r2, "x", "y")))
	must(t, s.CreateRun(ctx, m, nil))
	dup := newRun("d", 0, "manual") // same logical date, other run id
	if err := s.CreateRun(ctx, dup, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same logical date: %v", err)
	}
	same := newRun("d", 9, "manual")
	same.RunID = r2.RunID
	if err := s.CreateRun(ctx, same, nil); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("same run id: %v", err)
	}
	got, err := s.Run(ctx, "d", r2.RunID)
	must(t, err)
	if !got.LogicalDate.Equal(r2.LogicalDate) || got.Conf["n"] != int64(1) || got.State != dags.RunQueued || !got.Interval.End.Equal(r2.Interval.End) ||
		got.DAGVersion != "v1" || got.GitRevision != r2.GitRevision {
		t.Fatalf("run = %+v", got)
	}
	runs, err := s.Runs(ctx, store.RunFilter{DagID: "d"})
	must(t, err)
	if len(runs) != 3 || runs[0].RunID != m.RunID {
		t.Fatalf("runs newest first: %+v", runs)
	}
	last, err := s.LastScheduledRun(ctx, "d")
	must(t, err)
	if last == nil || last.RunID != r2.RunID {
		t.Fatalf("last scheduled = %+v (manual runs do not count)", last)
	}
	if last, _ := s.LastScheduledRun(ctx, "other"); last != nil {
		t.Fatalf("no runs: %+v", last)
	}
	got2, err := s.TaskInstances(ctx, "d", r1.RunID)
	must(t, err)
	if len(got2) != 2 || got2[0].TaskID != "x" || got2[0].State != dags.StateNone {
		t.Fatalf("task instances = %+v", got2)
	}
	if _, err := s.Run(ctx, "d", "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing run: %v", err)
	}
	// Filters, order, paging and counts, as the REST API asks for them.
	other := newRun("e", 2, "scheduled")
	must(t, s.CreateRun(ctx, other, tis(other, "x")))
	day1, day2 := t0.AddDate(0, 0, 1), t0.AddDate(0, 0, 2)
	f := store.RunFilter{DagIDs: []string{"d", "e"}, LogicalGTE: &day1, OrderBy: "logical_date", Limit: 2}
	page, err := s.Runs(ctx, f)
	must(t, err)
	if n, _ := s.CountRuns(ctx, f); n != 3 || len(page) != 2 || page[0].RunID != r2.RunID || page[1].RunID != other.RunID {
		t.Fatalf("page 1 of %d: %+v", n, page)
	}
	f.Offset = 2
	if page, _ = s.Runs(ctx, f); len(page) != 1 || page[0].RunID != m.RunID {
		t.Fatalf("page 2: %+v", page)
	}
	if page, _ = s.Runs(ctx, store.RunFilter{LogicalLTE: &day2, OrderBy: "-dag_run_id", Offset: 1}); len(page) != 2 || page[0].RunID != r2.RunID {
		t.Fatalf("open limit with offset: %+v", page)
	}
	if _, err := s.Runs(ctx, store.RunFilter{OrderBy: "conf; DROP TABLE dag_runs"}); !errors.Is(err, store.ErrInvalidFilter) {
		t.Fatalf("order by an unknown field: %v", err)
	}
	recent, err := s.RecentRuns(ctx, []string{"d", "e"}, 2)
	must(t, err)
	if len(recent["d"]) != 2 || recent["d"][0].RunID != m.RunID || recent["d"][1].RunID != r2.RunID || len(recent["e"]) != 1 {
		t.Fatalf("recent runs: %+v", recent)
	}
	lasts, err := s.LastScheduledRuns(ctx, []string{"d", "e", "none"})
	must(t, err)
	if lasts["d"].RunID != r2.RunID || lasts["e"].RunID != other.RunID || len(lasts) != 2 {
		t.Fatalf("last scheduled runs: %+v", lasts)
	}
	runStates, tiStates, err := s.StateCounts(ctx)
	must(t, err)
	if runStates["queued"] != 4 || tiStates["none"] != 5 {
		t.Fatalf("state counts: %v %v", runStates, tiStates)
	}
	grid, err := s.TaskInstancesOfRuns(ctx, "d", []string{r1.RunID, r2.RunID})
	must(t, err)
	if len(grid) != 4 || grid[0].RunID != r1.RunID {
		t.Fatalf("task instances of runs: %+v", grid)
	}
	found, total, err := s.FindTaskInstances(ctx, store.TIFilter{TaskIDs: []string{"x"}, LogicalGTE: &day1, Limit: 1})
	must(t, err)
	if total != 2 || len(found) != 1 || found[0].RunID != r2.RunID {
		t.Fatalf("task instances %d: %+v", total, found)
	}
	if found, total, _ = s.FindTaskInstances(ctx, store.TIFilter{DagIDs: []string{"d"}, RunID: r1.RunID, States: []dags.TaskState{dags.StateNone}, Pools: []string{"default_pool"}}); total != 2 || len(found) != 2 {
		t.Fatalf("task instances of r1: %d %+v", total, found)
	}
}

func testRunStateCAS(t *testing.T, s *store.Store) {
	ctx := context.Background()
	r := newRun("d", 0, "scheduled")
	must(t, s.CreateRun(ctx, r, nil))
	if ok, _ := s.SetRunState(ctx, "d", r.RunID, dags.RunRunning, dags.RunSuccess, t0); ok {
		t.Fatal("changed a run from a state it was not in")
	}
	ok, err := s.SetRunState(ctx, "d", r.RunID, dags.RunQueued, dags.RunRunning, t0.Add(time.Hour))
	must(t, err)
	if !ok {
		t.Fatal("queued -> running refused")
	}
	ok, _ = s.SetRunState(ctx, "d", r.RunID, dags.RunRunning, dags.RunFailed, t0.Add(2*time.Hour))
	got, _ := s.Run(ctx, "d", r.RunID)
	if !ok || got.State != dags.RunFailed || !got.StartDate.Equal(t0.Add(time.Hour)) || !got.EndDate.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("run = %+v", got)
	}
	// Re-running keeps the first start date and clears the end.
	s.SetRunState(ctx, "d", r.RunID, dags.RunFailed, dags.RunQueued, t0.Add(3*time.Hour))
	s.SetRunState(ctx, "d", r.RunID, dags.RunQueued, dags.RunRunning, t0.Add(4*time.Hour))
	got, _ = s.Run(ctx, "d", r.RunID)
	if got.EndDate != nil || !got.StartDate.Equal(t0.Add(time.Hour)) {
		t.Fatalf("re-run = %+v", got)
	}
	failed, _ := s.Runs(ctx, store.RunFilter{States: []dags.RunState{dags.RunRunning}})
	if len(failed) != 1 {
		t.Fatalf("filter by state: %d", len(failed))
	}
}

func testTaskInstanceCAS(t *testing.T, s *store.Store) {
	ctx := context.Background()
	r := newRun("d", 0, "scheduled")
	must(t, s.CreateRun(ctx, r, tis(r, "x")))
	ti := tis(r, "x")[0]
	ti.State = dags.StateScheduled
	ok, err := s.UpdateTaskInstance(ctx, ti, dags.StateNone)
	if err != nil || !ok {
		t.Fatalf("none -> scheduled: %v %v", ok, err)
	}
	if ok, _ := s.UpdateTaskInstance(ctx, ti, dags.StateNone); ok {
		t.Fatal("compare-and-swap from a stale state succeeded")
	}
	ti.State = dags.StateRunning
	if _, err := s.UpdateTaskInstance(ctx, ti, dags.StateScheduled); err == nil {
		t.Fatal("scheduled -> running allowed: the transition table says queued comes first")
	}
	ti.State, ti.TryNumber = dags.StateQueued, 1
	now := t0.Add(time.Minute)
	ti.QueuedAt = &now
	if ok, err := s.UpdateTaskInstance(ctx, ti, dags.StateScheduled); !ok || err != nil {
		t.Fatalf("scheduled -> queued: %v %v", ok, err)
	}
	got, err := s.TaskInstance(ctx, ti.Key())
	must(t, err)
	if got.State != dags.StateQueued || got.TryNumber != 1 || !got.QueuedAt.Equal(now) {
		t.Fatalf("ti = %+v", got)
	}
	queued, _ := s.TaskInstancesInState(ctx, dags.StateQueued, dags.StateRunning)
	if len(queued) != 1 {
		t.Fatalf("in state: %d", len(queued))
	}
}

func testTries(t *testing.T, s *store.Store) {
	ctx := context.Background()
	k := store.TIKey{DagID: "d", RunID: "r", TaskID: "x", MapIndex: -1}
	try := store.Try{TIKey: k, TryNumber: 1, State: dags.StateRunning, StartDate: t0, Executor: "local", LogPath: "/tmp/x.log"}
	must(t, s.StartTry(ctx, try))
	if err := s.StartTry(ctx, try); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a try started twice: %v", err)
	}
	must(t, s.SetTryHandle(ctx, k, 1, "pid:42"))
	open, _ := s.UnfinishedTries(ctx)
	if len(open) != 1 || open[0].Handle != "pid:42" {
		t.Fatalf("unfinished = %+v", open)
	}
	code := 3
	ok, err := s.FinishTry(ctx, k, 1, dags.StateFailed, t0.Add(time.Minute), &code, "exit code 3")
	if err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	if ok, _ := s.FinishTry(ctx, k, 1, dags.StateSuccess, t0.Add(time.Hour), nil, ""); ok {
		t.Fatal("a finished try was finished again")
	}
	tries, _ := s.Tries(ctx, k)
	if len(tries) != 1 || *tries[0].ExitCode != 3 || tries[0].State != dags.StateFailed || tries[0].Reason != "exit code 3" {
		t.Fatalf("tries = %+v", tries)
	}
	if open, _ := s.UnfinishedTries(ctx); len(open) != 0 {
		t.Fatalf("still unfinished: %+v", open)
	}
}

// Many workers race to move the same task instance: exactly one wins.
func testConcurrentCAS(t *testing.T, s *store.Store) {
	ctx := context.Background()
	r := newRun("d", 0, "scheduled")
	must(t, s.CreateRun(ctx, r, tis(r, "x")))
	var wins atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ti := tis(r, "x")[0]
			ti.State = dags.StateScheduled
			ok, err := s.UpdateTaskInstance(ctx, ti, dags.StateNone)
			if err != nil {
				t.Error(err)
			}
			if ok {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d winners", wins.Load())
	}
}

func testVariablesAudit(t *testing.T, s *store.Store) {
	ctx := context.Background()
	must(t, s.SetVariable(ctx, store.Variable{Key: "tag", Value: "v1", UpdatedAt: t0}))
	must(t, s.SetVariable(ctx, store.Variable{Key: "token", Value: "s3cret", Secret: true, UpdatedAt: t0}))
	must(t, s.SetVariable(ctx, store.Variable{Key: "tag", Value: "v2", UpdatedAt: t0}))
	v, err := s.Variable(ctx, "tag")
	if err != nil || v.Value != "v2" {
		t.Fatalf("tag = %+v %v", v, err)
	}
	vals, _ := s.VariableValues(ctx)
	if len(vals) != 2 || vals["token"] != "s3cret" {
		t.Fatalf("values = %v", vals)
	}
	must(t, s.DeleteVariable(ctx, "tag"))
	if err := s.DeleteVariable(ctx, "tag"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	for i := 0; i < 3; i++ {
		must(t, s.Audit(ctx, store.AuditEntry{At: t0, Actor: "cli", Action: fmt.Sprintf("a%d", i), DagID: "d"}))
	}
	log, _ := s.AuditLog(ctx, 2)
	if len(log) != 2 || log[0].Action != "a2" {
		t.Fatalf("audit = %+v", log)
	}
}

func testImportErrorsPools(t *testing.T, s *store.Store) {
	ctx := context.Background()
	probs := dags.Problems{{File: "a.yaml", Line: 3, Col: 5, DAG: "a", Msg: "bad cron"}, {File: "a.yaml", Line: 4, Severity: dags.SeverityWarning, Msg: "w"}}
	must(t, s.ReplaceImportErrors(ctx, t0, "abc123", map[string]dags.Problems{"a.yaml": probs, "b.yaml": nil}))
	errs, _ := s.ImportErrors(ctx)
	if len(errs) != 1 || errs[0].File != "a.yaml" || errs[0].StackTrace != `a.yaml:3:5: dag "a": bad cron` || errs[0].Revision != "abc123" || errs[0].ID == 0 {
		t.Fatalf("import errors = %+v", errs)
	}
	// The same errors in a later load keep their id and first timestamp;
	// changed errors keep the id and take the new time and revision.
	must(t, s.ReplaceImportErrors(ctx, t0.Add(time.Minute), "abc124", map[string]dags.Problems{"a.yaml": probs}))
	if again, _ := s.ImportErrors(ctx); len(again) != 1 || again[0].ID != errs[0].ID || !again[0].Timestamp.Equal(t0) || again[0].Revision != "abc123" {
		t.Fatalf("unchanged errors rewritten: %+v", again)
	}
	probs[0].Msg = "worse cron"
	must(t, s.ReplaceImportErrors(ctx, t0.Add(2*time.Minute), "abc125", map[string]dags.Problems{"a.yaml": probs}))
	if again, _ := s.ImportErrors(ctx); len(again) != 1 || again[0].ID != errs[0].ID || !strings.Contains(again[0].StackTrace, "worse") || again[0].Revision != "abc125" {
		t.Fatalf("changed errors: %+v", again)
	}
	must(t, s.ReplaceImportErrors(ctx, t0, "def", map[string]dags.Problems{"a.yaml": nil}))
	if errs, _ := s.ImportErrors(ctx); len(errs) != 0 {
		t.Fatalf("not cleared: %+v", errs)
	}
	pools, _ := s.Pools(ctx)
	if len(pools) != 1 || pools[0].Name != "default_pool" || pools[0].Slots != 128 {
		t.Fatalf("pools = %+v", pools)
	}
	must(t, s.SetPool(ctx, store.Pool{Name: "snowflake", Slots: 2}))
	if pools, _ := s.Pools(ctx); len(pools) != 2 {
		t.Fatalf("pools = %+v", pools)
	}
	// Usage counts the slots of queued and running task instances.
	r := newRun("pooled", 1, "manual")
	all := tis(r, "q", "run", "done", "big")
	all[0].State, all[1].State, all[2].State, all[3].State = dags.StateQueued, dags.StateRunning, dags.StateSuccess, dags.StateRunning
	all[3].Pool, all[3].PoolSlots = "snowflake", 2
	must(t, s.CreateRun(ctx, r, all))
	use, err := s.PoolUsage(ctx)
	must(t, err)
	if use["default_pool"] != (store.PoolUse{Running: 1, Queued: 1}) || use["snowflake"] != (store.PoolUse{Running: 2}) {
		t.Fatalf("usage = %+v", use)
	}
	must(t, s.DeletePool(ctx, "snowflake"))
	if err := s.DeletePool(ctx, "snowflake"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a pool twice: %v", err)
	}
}

func testUsersSessions(t *testing.T, s *store.Store) {
	ctx := context.Background()
	must(t, s.CreateUser(ctx, store.User{Username: "ada", PasswordHash: "h1", Role: "Op", Email: "ada@example.com", CreatedAt: t0}))
	must(t, s.CreateUser(ctx, store.User{Username: "bob", PasswordHash: "h2", Role: "Viewer", CreatedAt: t0}))
	if err := s.CreateUser(ctx, store.User{Username: "ada", PasswordHash: "x", Role: "Admin", CreatedAt: t0}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	se := store.Session{TokenHash: "th1", Username: "ada", CSRFToken: "c1", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateSession(ctx, se))
	got, err := s.Session(ctx, "th1", t0.Add(time.Minute))
	must(t, err)
	if got.Username != "ada" || got.CSRFToken != "c1" {
		t.Fatalf("session = %+v", got)
	}
	if u, _ := s.User(ctx, "ada"); u.LastLogin == nil || !u.LastLogin.Equal(t0) || u.Email != "ada@example.com" {
		t.Fatalf("user after login = %+v", u)
	}
	if _, err := s.Session(ctx, "th1", t0.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: %v", err)
	}
	// A new role ends the user's sessions; a name change does not.
	must(t, s.UpdateUser(ctx, store.User{Username: "ada", PasswordHash: "h1", Role: "Op", FirstName: "Ada"}))
	if _, err := s.Session(ctx, "th1", t0); err != nil {
		t.Fatalf("session ended by a name change: %v", err)
	}
	must(t, s.UpdateUser(ctx, store.User{Username: "ada", PasswordHash: "h1", Role: "Viewer"}))
	if _, err := s.Session(ctx, "th1", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session survived a role change: %v", err)
	}
	must(t, s.CreateSession(ctx, store.Session{TokenHash: "th2", Username: "bob", CSRFToken: "c2", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	must(t, s.DeleteUser(ctx, "bob"))
	if _, err := s.Session(ctx, "th2", t0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("session of a deleted user: %v", err)
	}
	if err := s.DeleteUser(ctx, "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	must(t, s.CreateSession(ctx, store.Session{TokenHash: "th3", Username: "ada", CSRFToken: "c3", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	must(t, s.DeleteSession(ctx, "th3"))
	must(t, s.DeleteExpiredSessions(ctx, t0.Add(2*time.Hour)))
	users, err := s.Users(ctx)
	must(t, err)
	if len(users) != 1 || users[0].Username != "ada" || users[0].Role != "Viewer" {
		t.Fatalf("users = %+v", users)
	}
}

func testAlerts(t *testing.T, s *store.Store) {
	ctx := context.Background()
	a := store.Alert{Key: "task_failed:d:r:t:1", Kind: "task_failed", DagID: "d", RunID: "r", TaskID: "t", Try: 1, Detail: "exit code 1", CreatedAt: t0}
	must(t, s.AddAlert(ctx, a))
	must(t, s.AddAlert(ctx, a)) // the same event again: no second alert
	must(t, s.AddAlert(ctx, store.Alert{Key: "run_failed:d:r", Kind: "run_failed", DagID: "d", RunID: "r", CreatedAt: t0.Add(time.Second)}))
	due, err := s.DueAlerts(ctx, t0, 10)
	must(t, err)
	if len(due) != 1 || due[0].Key != a.Key || due[0].State != store.AlertPending || due[0].Detail != "exit code 1" {
		t.Fatalf("due at t0: %+v", due)
	}
	if next, _ := s.NextAlertDue(ctx); !next.Equal(t0) {
		t.Fatalf("next due %v", next)
	}
	// A failed attempt puts it off; a success records when it was sent.
	must(t, s.SetAlertState(ctx, []int64{due[0].ID}, store.AlertPending, t0, t0.Add(time.Minute), "HTTP 500"))
	if due, _ = s.DueAlerts(ctx, t0.Add(30*time.Second), 10); len(due) != 1 || due[0].Kind != "run_failed" {
		t.Fatalf("due after a failed attempt: %+v", due)
	}
	must(t, s.SetAlertState(ctx, []int64{due[0].ID}, store.AlertSent, t0.Add(31*time.Second), t0.Add(31*time.Second), ""))
	must(t, s.SetAlertState(ctx, []int64{due[0].ID}, store.AlertFailed, t0, t0, "late")) // no longer pending: unchanged
	all, err := s.Alerts(ctx, 10)
	must(t, err)
	if len(all) != 2 || all[0].State != store.AlertSent || all[0].SentAt == nil || all[0].LastError != "" || all[1].Attempts != 1 || all[1].LastError != "HTTP 500" {
		t.Fatalf("alerts: %+v", all)
	}
	counts, err := s.CountAlerts(ctx)
	must(t, err)
	if counts[store.AlertPending] != 1 || counts[store.AlertSent] != 1 {
		t.Fatalf("counts: %v", counts)
	}
}

func testClean(t *testing.T, s *store.Store) {
	ctx := context.Background()
	if applied, latest, err := s.SchemaVersion(ctx); err != nil || applied != latest || latest < 4 {
		t.Fatalf("schema version %d of %d: %v", applied, latest, err)
	}
	must(t, s.SyncDAGs(ctx, t0, []store.DAGRecord{{ID: "d", File: "d.yaml", Version: "v1", Source: "{}"}}, true))
	must(t, s.SyncDAGs(ctx, t0, []store.DAGRecord{{ID: "d", File: "d.yaml", Version: "v2", Source: "{}"}}, true))
	old, kept, running := newRun("d", 0, "scheduled"), newRun("d", 40, "scheduled"), newRun("d", 1, "manual")
	old.State, kept.State, running.State = dags.RunSuccess, dags.RunFailed, dags.RunRunning
	for _, r := range []store.Run{old, kept, running} {
		must(t, s.CreateRun(ctx, r, tis(r, "x")))
	}
	must(t, s.StartTry(ctx, store.Try{TIKey: store.TIKey{DagID: "d", RunID: old.RunID, TaskID: "x", MapIndex: -1}, TryNumber: 1, StartDate: t0, LogPath: "/logs/old.log"}))
	must(t, s.AppendLog(ctx, store.TIKey{DagID: "d", RunID: old.RunID, TaskID: "x", MapIndex: -1}, 1, 0, []byte("old log")))
	must(t, s.PushXComs(ctx, store.TIKey{DagID: "d", RunID: old.RunID, TaskID: "x", MapIndex: -1}, 1, t0, map[string]json.RawMessage{"return_value": json.RawMessage(`1`)}))
	must(t, s.PushXComs(ctx, store.TIKey{DagID: "d", RunID: kept.RunID, TaskID: "x", MapIndex: -1}, 1, t0, map[string]json.RawMessage{"return_value": json.RawMessage(`2`)}))
	must(t, s.Audit(ctx, store.AuditEntry{At: t0, Actor: "a", Action: "trigger"}))
	must(t, s.AddAlert(ctx, store.Alert{Key: "k", Kind: store.AlertRunFailed, CreatedAt: t0}))
	cut := t0.AddDate(0, 0, 30)
	rep, err := s.Clean(ctx, cut, true)
	must(t, err)
	if rep.Runs != 1 || rep.TaskInstances != 1 || rep.Tries != 1 || rep.XComs != 1 || rep.AuditEntries != 1 || rep.Alerts != 0 || len(rep.LogPaths) != 1 || rep.Versions != 0 {
		t.Fatalf("dry run: %+v", rep)
	}
	if runs, _ := s.Runs(ctx, store.RunFilter{DagID: "d"}); len(runs) != 3 {
		t.Fatal("the dry run removed runs")
	}
	rep, err = s.Clean(ctx, cut, false)
	must(t, err)
	runs, _ := s.Runs(ctx, store.RunFilter{DagID: "d"})
	if len(runs) != 2 || rep.Runs != 1 || rep.LogPaths[0] != "/logs/old.log" {
		t.Fatalf("after cleaning: %+v %+v", runs, rep)
	}
	if _, err := s.TaskInstance(ctx, store.TIKey{DagID: "d", RunID: old.RunID, TaskID: "x", MapIndex: -1}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("task instance of a cleaned run: %v", err)
	}
	if n, _ := s.LogSize(ctx, store.TIKey{DagID: "d", RunID: old.RunID, TaskID: "x", MapIndex: -1}, 1); n != 0 {
		t.Fatalf("the log copy of a cleaned try is still there: %d bytes", n)
	}
	if log, _ := s.AuditLog(ctx, 10); len(log) != 0 {
		t.Fatalf("audit: %+v", log)
	}
	if xs, _ := s.XComs(ctx, store.XComFilter{DagID: "d", IncludePrior: true, Before: t0.AddDate(1, 0, 0)}); len(xs) != 1 || xs[0].RunID != kept.RunID {
		t.Fatalf("XComs after cleaning: %+v", xs)
	}
	// Pending alerts and versions still in use stay.
	if counts, _ := s.CountAlerts(ctx); counts[store.AlertPending] != 1 {
		t.Fatalf("alerts: %v", counts)
	}
	if _, err := s.DAGVersionSource(ctx, "d", "v2"); err != nil {
		t.Fatalf("current version: %v", err)
	}
}

func testReplicas(t *testing.T, s *store.Store) {
	ctx := context.Background()
	must(t, s.Beat(ctx, "a", "host-a", t0))
	must(t, s.Beat(ctx, "b", "host-b", t0))
	must(t, s.Beat(ctx, "a", "host-a", t0.Add(time.Minute)))
	if live, _ := s.Replicas(ctx, t0.Add(30*time.Second)); len(live) != 1 || live[0].ID != "a" || !live[0].StartedAt.Equal(t0) {
		t.Fatalf("live replicas: %+v", live)
	}
	r := newRun("d", 0, "manual")
	must(t, s.CreateRun(ctx, r, tis(r, "x", "y", "z")))
	for task, owner := range map[string]string{"x": "a", "y": "b", "z": ""} {
		must(t, s.StartTry(ctx, store.Try{TIKey: store.TIKey{DagID: "d", RunID: r.RunID, TaskID: task, MapIndex: -1}, TryNumber: 1, StartDate: t0, Owner: owner}))
	}
	// c takes over b's try and the ownerless one; a is alive.
	got, err := s.ClaimOrphanTries(ctx, "c", t0.Add(30*time.Second))
	must(t, err)
	if len(got) != 2 || got[0].Owner != "c" {
		t.Fatalf("claimed: %+v", got)
	}
	// A second claimer finds nothing left: c is alive now.
	must(t, s.Beat(ctx, "c", "host-c", t0.Add(time.Minute)))
	if again, _ := s.ClaimOrphanTries(ctx, "d", t0.Add(30*time.Second)); len(again) != 0 {
		t.Fatalf("claimed twice: %+v", again)
	}
	open, _ := s.UnfinishedTries(ctx)
	owners := map[string]string{}
	for _, o := range open {
		owners[o.TaskID] = o.Owner
	}
	if owners["x"] != "a" || owners["y"] != "c" || owners["z"] != "c" {
		t.Fatalf("owners: %v", owners)
	}
	must(t, s.InTx(ctx, func(tx *store.Store) error { return tx.LockScheduling(ctx) }))
}

func testLogCopies(t *testing.T, s *store.Store) {
	ctx := context.Background()
	k := store.TIKey{DagID: "d", RunID: "r", TaskID: "x", MapIndex: -1}
	if data, size, err := s.ReadLog(ctx, k, 1, 0, 100); err != nil || size != 0 || len(data) != 0 {
		t.Fatalf("no log yet: %q %d %v", data, size, err)
	}
	// Bytes, not text: any byte survives, NUL and invalid UTF-8 included.
	parts := [][]byte{[]byte("line one\n"), {0, 0xff, 0xfe, '\n'}, []byte("line three\n")}
	var all []byte
	for _, p := range parts {
		must(t, s.AppendLog(ctx, k, 1, int64(len(all)), p))
		all = append(all, p...)
	}
	must(t, s.AppendLog(ctx, k, 1, 0, []byte("a repeat is ignored")))
	must(t, s.AppendLog(ctx, k, 2, 0, []byte("another try")))
	if n, err := s.LogSize(ctx, k, 1); err != nil || n != int64(len(all)) {
		t.Fatalf("size %d, want %d: %v", n, len(all), err)
	}
	for _, c := range []struct{ offset, n int64 }{{0, 1000}, {0, 3}, {5, 6}, {9, 4}, {12, 100}, {int64(len(all)), 10}} {
		data, size, err := s.ReadLog(ctx, k, 1, c.offset, c.n)
		want := all[min(c.offset, int64(len(all))):min(int64(len(all)), c.offset+c.n)]
		if err != nil || size != int64(len(all)) || string(data) != string(want) {
			t.Errorf("read %d+%d: %q (size %d, %v), want %q", c.offset, c.n, data, size, err, want)
		}
	}
	// A gap ends a read: what follows it is not the log's next bytes.
	must(t, s.AppendLog(ctx, k, 1, int64(len(all))+10, []byte("after a gap")))
	if data, _, _ := s.ReadLog(ctx, k, 1, 0, 1000); string(data) != string(all) {
		t.Errorf("read across a gap: %q", data)
	}
	must(t, s.DeleteLog(ctx, k, 1))
	if n, _ := s.LogSize(ctx, k, 1); n != 0 {
		t.Errorf("after delete: %d bytes", n)
	}
	if data, _, _ := s.ReadLog(ctx, k, 2, 0, 100); string(data) != "another try" {
		t.Errorf("another try's log: %q", data)
	}
}

func testLoginFailures(t *testing.T, s *store.Store) {
	ctx := context.Background()
	window := 5 * time.Minute
	count := func(key string, now time.Time) int {
		n, _, err := s.LoginFailures(ctx, key, now.Add(-window))
		must(t, err)
		return n
	}
	for i := 0; i < 3; i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		must(t, s.AddLoginFailure(ctx, "user:ann", now, now.Add(-window)))
	}
	must(t, s.AddLoginFailure(ctx, "ip:10.0.0.1", t0, t0.Add(-window)))
	if n, first, err := s.LoginFailures(ctx, "user:ann", t0.Add(3*time.Minute).Add(-window)); err != nil || n != 3 || !first.Equal(t0) {
		t.Fatalf("within the window: %d since %v, %v", n, first, err)
	}
	// The window ends five minutes after its first failure, and the next
	// failure starts a new one.
	later := t0.Add(window + time.Second)
	if n := count("user:ann", later); n != 0 {
		t.Fatalf("after the window: %d", n)
	}
	must(t, s.AddLoginFailure(ctx, "user:ann", later, later.Add(-window)))
	if n, first, _ := s.LoginFailures(ctx, "user:ann", later.Add(-window)); n != 1 || !first.Equal(later) {
		t.Fatalf("a new window: %d since %v", n, first)
	}
	// Clearing one key also drops every ended window.
	must(t, s.ClearLoginFailures(ctx, "user:ann", later.Add(-window)))
	if n := count("user:ann", later); n != 0 {
		t.Fatalf("after clearing: %d", n)
	}
	if n, _, _ := s.LoginFailures(ctx, "ip:10.0.0.1", t0.Add(-time.Hour)); n != 0 {
		t.Fatalf("an ended window was kept: %d", n)
	}
}

func testXCom(t *testing.T, s *store.Store) {
	ctx := context.Background()
	r1, r2 := newRun("d", 0, "scheduled"), newRun("d", 1, "scheduled")
	for _, r := range []store.Run{r1, r2} {
		must(t, s.CreateRun(ctx, r, tis(r, "a", "b")))
	}
	a1 := store.TIKey{DagID: "d", RunID: r1.RunID, TaskID: "a", MapIndex: -1}
	a2 := store.TIKey{DagID: "d", RunID: r2.RunID, TaskID: "a", MapIndex: -1}
	b2 := store.TIKey{DagID: "d", RunID: r2.RunID, TaskID: "b", MapIndex: -1}
	must(t, s.PushXComs(ctx, a1, 1, t0, map[string]json.RawMessage{"return_value": json.RawMessage(`"first"`)}))
	must(t, s.PushXComs(ctx, a2, 1, t0, map[string]json.RawMessage{"return_value": json.RawMessage(`{"n": 1}`), "extra": json.RawMessage(`[1, 2]`)}))
	// A second try replaces what the first pushed, keys included.
	must(t, s.PushXComs(ctx, a2, 2, t0, map[string]json.RawMessage{"return_value": json.RawMessage(`{"n": 2}`)}))
	for i := 0; i < 3; i++ {
		bi := b2
		bi.MapIndex = i
		must(t, s.PushXComs(ctx, bi, 1, t0, map[string]json.RawMessage{"return_value": json.RawMessage(fmt.Sprint(i * 10))}))
	}
	if err := s.PushXComs(ctx, b2, 1, t0, map[string]json.RawMessage{"return_value": json.RawMessage(`{not json`)}); err == nil {
		t.Fatal("a value that is not JSON was stored")
	}
	xs, err := s.XComs(ctx, store.XComFilter{DagID: "d", RunID: r2.RunID, TaskIDs: []string{"a"}})
	must(t, err)
	if len(xs) != 1 || string(xs[0].Value) != `{"n": 2}` || xs[0].TryNumber != 2 || xs[0].Key != "return_value" || !xs[0].LogicalDate.Equal(r2.LogicalDate) {
		t.Fatalf("after the second try: %+v", xs)
	}
	one := 1
	xs, _ = s.XComs(ctx, store.XComFilter{DagID: "d", RunID: r2.RunID, TaskIDs: []string{"b"}, MapIndex: &one})
	if len(xs) != 1 || string(xs[0].Value) != "10" {
		t.Fatalf("map index 1: %+v", xs)
	}
	// Prior runs, newest first.
	xs, _ = s.XComs(ctx, store.XComFilter{DagID: "d", TaskIDs: []string{"a"}, Key: "return_value", IncludePrior: true, Before: r2.LogicalDate})
	if len(xs) != 2 || xs[0].RunID != r2.RunID || xs[1].RunID != r1.RunID {
		t.Fatalf("with prior dates: %+v", xs)
	}
	xs, _ = s.XComs(ctx, store.XComFilter{DagID: "d", TaskIDs: []string{"a"}, IncludePrior: true, Before: r1.LogicalDate})
	if len(xs) != 1 || xs[0].RunID != r1.RunID {
		t.Fatalf("prior to the first run: %+v", xs)
	}
	must(t, s.ClearXComs(ctx, b2, true))
	if xs, _ := s.XComs(ctx, store.XComFilter{DagID: "d", RunID: r2.RunID}); len(xs) != 1 || xs[0].TaskID != "a" {
		t.Fatalf("after clearing b: %+v", xs)
	}
}
