package web

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"updraft/store"
)

// The backfills tab: a preview lists the dates and what happens to each,
// starting it makes the runs, the list shows progress, pause and cancel
// work, a bad form keeps what was typed, and a Viewer sees no form.
func TestBackfillTab(t *testing.T) {
	e := yamlEnv(t, `
nightly:
  start_date: 2024-01-01
  schedule: "0 3 * * *"
  catchup: false
  tasks: [{task_id: t, operator: EmptyOperator}]
`)
	b, status := e.login("user", "user-password")
	if status != 303 {
		t.Fatalf("login: %d", status)
	}
	form := url.Values{"from": {"2024-02-01"}, "to": {"2024-02-03"}, "reprocess": {"none"}, "max_active_runs": {"2"}, "conf": {`{"full": true}`}}
	status, page := b.do("GET", "/dags/nightly?tab=backfills&preview=1&"+form.Encode(), "", false)
	if status != 200 || strings.Count(page, "new run") != 3 || !strings.Contains(page, "2024-02-03 03:00 UTC") ||
		!strings.Contains(page, "Start the backfill: 3 runs") {
		t.Fatalf("preview: %d\n%s", status, page)
	}
	if bs, _, _ := e.st.Backfills(e.ctx, store.BackfillFilter{}); len(bs) != 0 {
		t.Fatal("a preview made a backfill")
	}
	status, _ = b.do("POST", "/dags/nightly/backfills", form.Encode(), true, "Content-Type", "application/x-www-form-urlencoded")
	if status != 303 {
		t.Fatalf("start: %d", status)
	}
	bs, _, _ := e.st.Backfills(e.ctx, store.BackfillFilter{DagID: "nightly"})
	if len(bs) != 1 || bs[0].MaxActiveRuns != 2 || bs[0].Conf["full"] != true || !bs[0].To.Equal(time.Date(2024, 2, 3, 23, 59, 59, 0, time.UTC)) {
		t.Fatalf("backfills: %+v", bs)
	}
	_, page = b.do("GET", "/dags/nightly?tab=backfills", "", false)
	if !strings.Contains(page, "3 queued") || !strings.Contains(page, "Backfill 1 started: 3 dates, 2 runs at once.") {
		t.Fatalf("the list after the start:\n%s", page)
	}
	// A paused DAG's backfill waits, and the tab says so.
	if !strings.Contains(page, "paused: its backfills wait") {
		t.Errorf("no word of the pause:\n%s", page)
	}
	if err := e.sched.SetPaused(e.ctx, "nightly", false, "user"); err != nil {
		t.Fatal(err)
	}
	// The scheduler runs them.
	for i := 0; i < 20; i++ {
		if _, err := e.sched.Tick(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	_, page = b.do("GET", "/dags/nightly?tab=backfills", "", false)
	if !strings.Contains(page, "3 success") || !strings.Contains(page, "completed") {
		t.Fatalf("the list once the runs ended:\n%s", page)
	}
	// A second one, paused, then cancelled.
	form.Set("from", "2024-03-01")
	form.Set("to", "2024-03-02")
	b.do("POST", "/dags/nightly/backfills", form.Encode(), true, "Content-Type", "application/x-www-form-urlencoded")
	b.do("POST", "/dags/nightly/backfills/2/pause", "", true, "Content-Type", "application/x-www-form-urlencoded")
	if got, _ := e.st.Backfill(e.ctx, 2); !got.Paused {
		t.Errorf("backfill 2 not paused")
	}
	b.do("POST", "/dags/nightly/backfills/2/cancel", "", true, "Content-Type", "application/x-www-form-urlencoded")
	if got, _ := e.st.Backfill(e.ctx, 2); got.CompletedAt == nil {
		t.Errorf("backfill 2 not cancelled")
	}
	if _, page = b.do("GET", "/dags/nightly?tab=backfills", "", false); !strings.Contains(page, "2 failed") {
		t.Errorf("the cancelled backfill's runs:\n%s", page)
	}
	// A form that cannot start comes back with what was typed, and why.
	bad := url.Values{"from": {"2024-05-10"}, "to": {"2024-05-01"}, "reprocess": {"failed"}, "max_active_runs": {"3"}, "conf": {`{"x": 1}`}}
	status, page = b.do("GET", "/dags/nightly?tab=backfills&preview=1&"+bad.Encode(), "", false)
	if status != 200 || !strings.Contains(page, "is before from_date") || !strings.Contains(page, `value="2024-05-10"`) ||
		!strings.Contains(page, `value="failed" selected`) || strings.Contains(page, "backfill-start") {
		t.Errorf("a reversed range:\n%s", page)
	}
	// A Viewer sees the list, not the form.
	v, _ := e.login("viewer", "viewer-password")
	if _, page = v.do("GET", "/dags/nightly?tab=backfills&preview=1&"+form.Encode(), "", false); strings.Contains(page, "backfill-form") || !strings.Contains(page, "backfill-list") {
		t.Errorf("a Viewer's tab:\n%s", page)
	}
}

// Small things of the pages: the favicon, and buttons that delete or
// trigger at one click ask first.
func TestFaviconAndConfirmations(t *testing.T) {
	e := secEnv(t)
	status, _ := e.call("GET", "/favicon.ico", "", "")
	if status != 301 {
		t.Errorf("favicon.ico: %d", status)
	}
	if status, body := e.call("GET", "/static/favicon.svg", "", ""); status != 200 || !strings.Contains(body, "<svg") {
		t.Errorf("favicon.svg: %d", status)
	}
	if err := e.st.SetVariable(e.ctx, store.Variable{Key: "v", Value: "1", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/":          `data-confirm="Trigger sec now, with its default params?"`,
		"/variables": `data-confirm="Delete the variable v?`,
		"/users":     `data-confirm="Delete the user viewer?`,
	} {
		if _, body := e.call("GET", path, "", "admin"); !strings.Contains(body, want) {
			t.Errorf("%s lacks %s", path, want)
		}
	}
}
