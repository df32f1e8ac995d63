package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"

	"updraft/dags"
	"updraft/notify/mattermosttest"
	"updraft/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixedBag struct{ res *dags.Result }

func (b fixedBag) Current() (*dags.Result, time.Time) { return b.res, time.Now() }

const alertDAGs = `
etl:
  start_date: 2024-01-01
  schedule: null
  on_failure_callback:
    callback: airflow.providers.slack.notifications.slack.send_slack_notification
    channel: "#bizops"
    text: ":rotating_light: {{ dag.dag_id }} is broken"
  tasks:
    - {task_id: extract, operator: BashOperator, bash_command: "x"}
    - {task_id: load, operator: BashOperator, bash_command: "y"}
    - {task_id: report, operator: BashOperator, bash_command: "z", on_retry_callback: {callback: airflow.providers.slack.notifications.slack.send_slack_notification, channel: "#etl-retries"}}
plain:
  start_date: 2024-01-01
  schedule: null
  tasks: [{task_id: t, operator: BashOperator, bash_command: "x"}]
`

type fixture struct {
	ctx context.Context
	st  *store.Store
	mm  *mattermosttest.Server
	n   *Notifier
	now time.Time
}

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	res := dags.Load(fstest.MapFS{"etl.yaml": {Data: []byte(alertDAGs)}}, dags.Options{})
	if len(res.DAGs) != 2 {
		t.Fatalf("fixture: %v", res.Problems())
	}
	f := &fixture{ctx: ctx, st: st, mm: mattermosttest.Start(t), now: time.Now()}
	o.Store, o.Bag, o.WebhookURL = st, fixedBag{res}, func() (string, error) { return f.mm.URL(), nil }
	o.PublicURL, o.Channel, o.Log = "https://updraft.example.com", "alerts", slog.New(slog.DiscardHandler)
	o.RetryBase = 5 * time.Millisecond
	o.GroupWindow = 50 * time.Millisecond
	o.Client = &http.Client{Timeout: 200 * time.Millisecond}
	f.n = New(o)
	return f
}

// run records a run with failed task instances and their tries (with logs).
func (f *fixture) failRun(t *testing.T, dagID, runID string, tasks ...string) {
	t.Helper()
	logical := time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(len(runID)) * time.Hour)
	r := store.Run{DagID: dagID, RunID: runID, RunType: "manual", LogicalDate: logical, Interval: dags.DataInterval{Start: logical, End: logical},
		State: dags.RunFailed, QueuedAt: logical}
	var tis []store.TaskInstance
	for _, task := range tasks {
		tis = append(tis, store.TaskInstance{DagID: dagID, RunID: runID, TaskID: task, MapIndex: -1, State: dags.StateFailed, TryNumber: 1, MaxTries: 0,
			Operator: "BashOperator", Pool: "default_pool", PoolSlots: 1, PriorityWeight: 1})
	}
	if err := f.st.CreateRun(f.ctx, r, tis); err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		k := store.TIKey{DagID: dagID, RunID: runID, TaskID: task, MapIndex: -1}
		logPath := filepath.Join(t.TempDir(), task+".log")
		var lines []string
		for i := 1; i <= 30; i++ {
			lines = append(lines, fmt.Sprintf("%s line %d", task, i))
		}
		lines = append(lines, "password is hunter2-secret")
		os.WriteFile(logPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		code := 1
		if err := f.st.StartTry(f.ctx, store.Try{TIKey: k, TryNumber: 1, StartDate: f.now.Add(-time.Minute), Executor: "local", LogPath: logPath}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.st.FinishTry(f.ctx, k, 1, dags.StateFailed, f.now, &code, "exit code 1"); err != nil {
			t.Fatal(err)
		}
		f.add(t, store.Alert{Key: "tf:" + dagID + runID + task, Kind: store.AlertTaskFailed, DagID: dagID, RunID: runID, TaskID: task, Try: 1, Detail: "exit code 1"})
	}
}

func (f *fixture) add(t *testing.T, a store.Alert) {
	t.Helper()
	if a.CreatedAt.IsZero() {
		a.CreatedAt = time.Now()
	}
	if err := f.st.AddAlert(f.ctx, a); err != nil {
		t.Fatal(err)
	}
}

// drain steps the notifier until the outbox has nothing pending.
func (f *fixture) drain(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := f.n.Step(f.ctx); err != nil {
			t.Fatal(err)
		}
		counts, _ := f.st.CountAlerts(f.ctx)
		if counts[store.AlertPending] == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	all, _ := f.st.Alerts(f.ctx, 100)
	t.Fatalf("alerts still pending after %v: %+v", within, all)
}

// The webhook answers 200, 400, 429, 500, and takes a post but answers
// too late, in turn, over and over: every event arrives once, plus at most
// one copy marked as resent where a send's outcome could not be known; one
// run's failures arrive together.
func TestEveryEventOnceThroughAFlakyWebhook(t *testing.T) {
	f := newFixture(t, Options{})
	if err := f.st.SetVariable(f.ctx, store.Variable{Key: "db_password", Value: "hunter2-secret", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var script []mattermosttest.Answer
	for i := 0; i < 6; i++ {
		script = append(script, "ok", "400", "429", "500", "slow")
	}
	f.mm.Script(script...)
	for i := 0; i < 8; i++ {
		f.add(t, store.Alert{Key: fmt.Sprintf("ie:%d", i), Kind: store.AlertImportError, File: fmt.Sprintf("file_%d.yaml", i),
			Detail: fmt.Sprintf("file_%d.yaml:3:5: bad cron", i)})
	}
	f.failRun(t, "etl", "r1", "extract", "load")
	f.add(t, store.Alert{Key: "rf:r1", Kind: store.AlertRunFailed, DagID: "etl", RunID: "r1"})
	f.failRun(t, "plain", "r22", "t")
	f.drain(t, 30*time.Second)

	posts := f.mm.Posts()
	plain, marked := map[string]int{}, map[string]int{}
	for _, p := range posts {
		if strings.Contains(p.Raw, "hunter2") {
			t.Fatalf("a secret in a message: %s", p.Raw)
		}
		seen := plain
		if strings.Contains(p.Text, "_(resent: the first attempt ") {
			seen = marked // a possible repeat, and said so
		}
		for i := 0; i < 8; i++ {
			if strings.Contains(p.Text, fmt.Sprintf("**file_%d.yaml**", i)) {
				seen[fmt.Sprintf("file_%d", i)]++
			}
		}
		if strings.Contains(p.Text, "etl is broken") {
			seen["etl run"]++
		}
		if strings.Contains(p.Text, "Task **t** failed") {
			seen["plain t"]++
		}
	}
	if len(plain) != 10 {
		t.Fatalf("events seen %v (marked copies %v, attempts %d)", plain, marked, f.mm.Attempts())
	}
	for k, n := range plain {
		if n != 1 || marked[k] > 1 {
			t.Errorf("%s delivered %d times, %d more marked as resent", k, n, marked[k])
		}
	}
	if len(marked) == 0 {
		t.Error("no send timed out: the script did not test a late answer")
	}
	if t.Failed() {
		for _, p := range posts {
			t.Logf("post %q", p.Text)
		}
	}
	if f.mm.Attempts() < 20 {
		t.Errorf("only %d attempts: the script was not exercised", f.mm.Attempts())
	}
	all, _ := f.st.Alerts(f.ctx, 100)
	for _, a := range all {
		if a.State != store.AlertSent || a.SentAt == nil {
			t.Errorf("alert %s: %s", a.Key, a.State)
		}
	}
}

// The message: Airflow's three-line shape, the DAG file's channel and text,
// one box per failed task with its reason and log tail, links to the UI.
func TestFailureMessage(t *testing.T) {
	f := newFixture(t, Options{})
	f.failRun(t, "etl", "r1", "extract", "load")
	f.add(t, store.Alert{Key: "rf", Kind: store.AlertRunFailed, DagID: "etl", RunID: "r1"})
	f.failRun(t, "plain", "r22", "t")
	f.drain(t, 10*time.Second)
	posts := f.mm.Posts()
	if len(posts) != 2 {
		t.Fatalf("%d posts", len(posts))
	}
	etl, plain := posts[0], posts[1]
	if !strings.HasPrefix(etl.Text, ":rotating_light: etl is broken\n**Dag**: [etl](https://updraft.example.com/dags/etl)\n**Run**: [r1](https://updraft.example.com/dags/etl/runs/r1)") ||
		etl.Channel != "bizops" || etl.Username != "updraft" || len(etl.Attachments) != 2 {
		t.Fatalf("etl message: %+v", etl)
	}
	box := etl.Attachments[0]
	if box["title"] != "extract · try 1" || box["color"] != colorFailed || box["title_link"] != "https://updraft.example.com/dags/etl/runs/r1/tasks/extract" ||
		!strings.Contains(box["text"].(string), "extract line 30") || strings.Contains(box["text"].(string), "extract line 10\n") {
		t.Fatalf("task box: %+v", box)
	}
	fields, _ := json.Marshal(box["fields"])
	if !strings.Contains(string(fields), `"Reason","value":"exit code 1"`) || !strings.Contains(string(fields), `"Try","value":"1 of 1"`) {
		t.Fatalf("fields: %s", fields)
	}
	want := ":red_circle: Task **t** failed: exit code 1\n**Dag**: [plain](https://updraft.example.com/dags/plain)\n**Task**: [t](https://updraft.example.com/dags/plain/runs/r22/tasks/t)"
	if plain.Text != want || plain.Channel != "alerts" {
		t.Fatalf("plain message:\n%s\nwant\n%s", plain.Text, want)
	}
}

// Optional events go only where asked for: retries by flag or by the
// task's on_retry_callback; marks only with "marked"; no webhook, nothing.
func TestOptionalEvents(t *testing.T) {
	f := newFixture(t, Options{})
	f.failRun(t, "etl", "r1", "report")
	f.add(t, store.Alert{Key: "retry-report", Kind: store.AlertTaskRetry, DagID: "etl", RunID: "r1", TaskID: "report", Try: 1, Detail: "exit code 1"})
	f.add(t, store.Alert{Key: "retry-plain", Kind: store.AlertTaskRetry, DagID: "plain", RunID: "x", TaskID: "t", Try: 1})
	f.add(t, store.Alert{Key: "mark", Kind: store.AlertTaskMarkedFailed, DagID: "plain", RunID: "x", TaskID: "t", Detail: "marked failed by ann"})
	f.add(t, store.Alert{Key: "ok", Kind: store.AlertRunSuccess, DagID: "plain", RunID: "x"})
	f.add(t, store.Alert{Key: "fixed", Kind: store.AlertImportFixed, File: "a.yaml"})
	f.drain(t, 10*time.Second)
	var texts []string
	for _, p := range f.mm.Posts() {
		texts = append(texts, p.Channel+": "+strings.SplitN(p.Text, "\n", 2)[0])
	}
	// The retry with a callback, and the grouped failure of r1.
	if len(texts) != 2 || !strings.Contains(strings.Join(texts, "|"), "etl-retries: :warning: Task **report**") {
		t.Fatalf("posts: %q", texts)
	}
	counts, _ := f.st.CountAlerts(f.ctx)
	if counts[store.AlertSkipped] != 4 {
		t.Fatalf("counts: %v", counts)
	}
	g := newFixture(t, Options{Send: map[string]bool{"marked": true, "success": true, "recovery": true, "retry": true}})
	g.add(t, store.Alert{Key: "mark", Kind: store.AlertTaskMarkedFailed, DagID: "plain", RunID: "x", TaskID: "t", Detail: "marked failed by ann"})
	g.add(t, store.Alert{Key: "fixed", Kind: store.AlertImportFixed, File: "a.yaml"})
	g.add(t, store.Alert{Key: "retry-plain", Kind: store.AlertTaskRetry, DagID: "plain", RunID: "x", TaskID: "t", Try: 1})
	g.drain(t, 10*time.Second)
	if n := len(g.mm.Posts()); n != 3 {
		t.Fatalf("with every option: %d posts", n)
	}
	h := newFixture(t, Options{})
	h.n.o.WebhookURL = nil
	h.add(t, store.Alert{Key: "ie", Kind: store.AlertImportError, File: "a.yaml"})
	h.drain(t, 5*time.Second)
	if counts, _ := h.st.CountAlerts(h.ctx); counts[store.AlertSkipped] != 1 || h.mm.Attempts() != 0 {
		t.Fatalf("without a webhook: %v", counts)
	}
}

// An event older than MaxAge is given up, visibly, with the last error.
func TestGivesUpAfterMaxAge(t *testing.T) {
	f := newFixture(t, Options{MaxAge: time.Hour})
	f.mm.Stop()
	f.add(t, store.Alert{Key: "old", Kind: store.AlertImportError, File: "a.yaml", CreatedAt: time.Now().Add(-2 * time.Hour)})
	f.drain(t, 5*time.Second)
	all, _ := f.st.Alerts(f.ctx, 1)
	if all[0].State != store.AlertFailed || !strings.Contains(all[0].LastError, "dial tcp") || strings.Contains(all[0].LastError, f.mm.HookID) {
		t.Fatalf("alert: %+v", all[0])
	}
}

// A missed deadline is one message with the run's link and how late, to
// where the DAG's alerts go (its failure callback's channel), else the
// server's; a task's missed sla names the task.
func TestDeadlineMissMessage(t *testing.T) {
	f := newFixture(t, Options{})
	f.add(t, store.Alert{Key: "dm1", Kind: store.AlertDeadlineMissed, DagID: "etl", RunID: "r1", Try: 1,
		Detail: "logical date + 8h0m0s (2024-05-01 08:00 UTC), 2h0m0s late"})
	f.add(t, store.Alert{Key: "dm2", Kind: store.AlertDeadlineMissed, DagID: "plain", RunID: "r2", TaskID: "t",
		Detail: "sla 1h0m0s after the data interval ended (2024-05-01 01:00 UTC), 5m0s late"})
	f.drain(t, 10*time.Second)
	posts := f.mm.Posts()
	if len(posts) != 2 {
		t.Fatalf("%d posts", len(posts))
	}
	byChannel := map[string]string{}
	for _, p := range posts {
		byChannel[p.Channel] = p.Text
	}
	if got := byChannel["bizops"]; got != ":alarm_clock: Run [r1](https://updraft.example.com/dags/etl/runs/r1) of [etl](https://updraft.example.com/dags/etl) missed its deadline: logical date + 8h0m0s (2024-05-01 08:00 UTC), 2h0m0s late" {
		t.Errorf("run miss to bizops: %q", got)
	}
	if got := byChannel["alerts"]; !strings.HasPrefix(got, ":alarm_clock: Task **t** in run [r2](https://updraft.example.com/dags/plain/runs/r2) of [plain]") || !strings.Contains(got, "missed its SLA: sla 1h0m0s") {
		t.Errorf("task miss to the server's channel: %q", got)
	}
}
