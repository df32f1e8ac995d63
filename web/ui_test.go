package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
)

const hostileDAG = `
hostile:
  description: "<script>alert('dag')</script>"
  doc_md: "<img src=x onerror=alert('doc')>"
  tags: ["<b>tag</b>"]
  start_date: 2024-01-01
  schedule: "0 3 * * *"
  params: {note: "<i>param</i>", limit: 5, dry: true}
  tasks:
    - {task_id: extract, operator: BashOperator, bash_command: "echo '<script>x</script>'"}
    - {task_id: load, operator: BashOperator, bash_command: "echo load", dependencies: [extract]}
`

// folderEnv serves DAG files from a real dags.Folder (so the source pages
// work) over an in-memory tree.
func folderEnv(t testing.TB, files map[string]string, tweak ...func(*Options)) (*env, *dags.Folder) {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	folder := dags.NewFolder(fsys, time.Hour, slog.New(slog.DiscardHandler))
	folder.Refresh()
	return newEnv(t, folder, tweak...), folder
}

// Every page renders, and strings from DAG files, run confs, notes, logs,
// rendered fields and variables are shown escaped, never executed.
func TestPagesRenderHostileStringsInert(t *testing.T) {
	e, _ := folderEnv(t, map[string]string{"hostile.yaml": hostileDAG,
		"broken.yaml": "broken:\n  description: \"<script>alert('broken')</script>\"\n  tasks: [{task_id: x, operator: \"<img src=x onerror=alert(1)>\"}]\n"},
		func(o *Options) {
			o.Connections = staticConnections{{ID: "<script>alert('conn')</script>", Type: "http", Masked: "<img src=x onerror=alert('uri')>", Source: "env"}}
		})
	// Pools and users written straight to the store, past the checks the
	// forms and the API make.
	if err := e.st.SetPool(e.ctx, store.Pool{Name: "<script>alert('pool')</script>", Slots: 1, Description: "<img src=x onerror=alert('pooldesc')>"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateUser(e.ctx, store.User{Username: "<script>alert('user')</script>", FirstName: "<img src=x onerror=alert('first')>", Role: "Viewer", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	status, body := e.call("POST", "/api/v1/dags/hostile/dagRuns", `{"dag_run_id": "r1", "conf": {"x": "<script>alert('conf')</script>"}, "note": "<img src=x onerror=alert('note')>"}`, "op")
	if status != 200 {
		t.Fatalf("trigger: %d %s", status, body)
	}
	// A try with a hostile log and rendered fields.
	k := store.TIKey{DagID: "hostile", RunID: "r1", TaskID: "extract", MapIndex: -1}
	logPath := filepath.Join(t.TempDir(), "x.log")
	os.WriteFile(logPath, []byte("<script>alert('log')</script>\n"), 0o644)
	rendered, _ := json.Marshal(map[string]string{"bash_command": "echo '<script>x</script>'"})
	if err := e.st.StartTry(e.ctx, store.Try{TIKey: k, TryNumber: 1, StartDate: time.Now(), Executor: "local", Handle: "123", LogPath: logPath, Rendered: string(rendered)}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.PushXComs(e.ctx, k, 1, time.Now(), map[string]json.RawMessage{"<script>alert('key')</script>": json.RawMessage(`"<script>alert('xcom')</script>"`)}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetVariable(e.ctx, store.Variable{Key: "v", Value: "<script>alert('var')</script>", Description: "<b>d</b>", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	pages := []string{"/", "/?tag=%3Cb%3Etag%3C%2Fb%3E", "/?q=%3Cscript%3E", "/dags/hostile", "/dags/hostile?tab=grid&run=r1&task=extract",
		"/dags/hostile?tab=graph", "/dags/hostile?tab=runs", "/dags/hostile?tab=source", "/dags/hostile?tab=details",
		"/dags/hostile/runs/r1", "/dags/hostile/runs/r1/tasks/extract", "/files/" + fileToken("broken.yaml"), "/audit", "/variables", "/alerts",
		"/pools", "/users", "/connections"}
	for _, path := range pages {
		status, body := e.call("GET", path, "", "admin")
		if status != 200 {
			t.Errorf("GET %s: %d\n%s", path, status, body)
			continue
		}
		for _, raw := range []string{"<script>alert", "<img src=x", "<b>tag</b>", "<i>param</i>", "<b>d</b>"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s contains unescaped %q", path, raw)
			}
		}
	}
	for path, want := range map[string]string{
		"/":                                    "&lt;script&gt;alert(&#39;dag&#39;)&lt;/script&gt;",
		"/dags/hostile/runs/r1":                "&lt;script&gt;alert(&#39;conf&#39;)&lt;/script&gt;",
		"/dags/hostile?tab=details":            "&lt;img src=x onerror=alert(&#39;doc&#39;)&gt;",
		"/dags/hostile/runs/r1/tasks/extract":  "echo &#39;&lt;script&gt;x&lt;/script&gt;&#39;",
		"/dags/hostile/runs/r1/tasks/extract?": "&lt;script&gt;alert(&#39;xcom&#39;)&lt;/script&gt;",
		"/files/" + fileToken("broken.yaml"):   "&lt;img src=x onerror=alert(1)&gt;",
		"/dags/hostile?tab=source":             "&lt;script&gt;alert(&#39;dag&#39;)&lt;/script&gt;",
		"/variables":                           "&lt;script&gt;alert(&#39;var&#39;)&lt;/script&gt;",
		"/pools":                               "&lt;script&gt;alert(&#39;pool&#39;)&lt;/script&gt;",
		"/users":                               "&lt;img src=x onerror=alert(&#39;first&#39;)&gt;",
		"/connections":                         "&lt;script&gt;alert(&#39;conn&#39;)&lt;/script&gt;",
		"/dags/hostile?tab=grid&run=r1&task=extract": `id="ti-panel"`,
		"/dags/hostile?tab=graph":                    `<svg class="graph"`,
	} {
		if _, body := e.call("GET", path, "", "admin"); !strings.Contains(body, want) {
			t.Errorf("GET %s lacks %q", path, want)
		}
	}
	// The log download is plain text that browsers will not sniff into HTML.
	req, _ := http.NewRequest("GET", e.srv.URL+"/dags/hostile/runs/r1/tasks/extract/logs/1", nil)
	req.SetBasicAuth("viewer", "viewer-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("log download headers: %v", resp.Header)
	}
	// Unknown things are 404 pages, not errors.
	for _, path := range []string{"/dags/nope", "/dags/hostile/runs/nope", "/dags/hostile/runs/r1/tasks/nope", "/files/bm9wZQ"} {
		if status, _ := e.call("GET", path, "", "viewer"); status != 404 {
			t.Errorf("GET %s: %d", path, status)
		}
	}
}

// The buttons: trigger with params, pause, mark, clear with its preview,
// variables; each redirects back with a message and is audited.
func TestPageForms(t *testing.T) {
	e, _ := folderEnv(t, map[string]string{"hostile.yaml": hostileDAG})
	b, _ := e.login("admin", "admin-password")
	form := func(path string, values map[string]string) (int, string) {
		t.Helper()
		var parts []string
		values["csrf_token"] = b.csrf
		for k, v := range values {
			parts = append(parts, k+"="+urlEncode(v))
		}
		req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(strings.Join(parts, "&")))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if loc == "" {
			return resp.StatusCode, ""
		}
		// The page redirected to shows what happened, once.
		_, page := b.do("GET", loc, "", false)
		return resp.StatusCode, loc + " " + flashText(page)
	}
	status, loc := form("/dags/hostile/trigger", map[string]string{"params_form": "1", "param.note": "from form", "param.limit": "7",
		"conf": `{"extra": 1, "limit": 1}`, "run_id": "ui_run"})
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, "/dags/hostile/runs/ui_run Triggered ui_run") {
		t.Fatalf("trigger: %d %s", status, loc)
	}
	run, _ := e.st.Run(e.ctx, "hostile", "ui_run")
	if run.Conf["note"] != "from form" || run.Conf["limit"] != int64(7) || run.Conf["dry"] != false || run.Conf["extra"] != int64(1) {
		t.Fatalf("conf from the form: %#v", run.Conf)
	}
	if _, loc = form("/dags/hostile/trigger", map[string]string{"conf": `[1,2]`}); !strings.Contains(loc, " Error: ") {
		t.Fatalf("a conf that is not an object: %s", loc)
	}
	if status, _ := form("/dags/hostile/pause", map[string]string{"paused": "false"}); status != http.StatusSeeOther {
		t.Fatal("pause")
	}
	if d, _ := e.st.DAG(e.ctx, "hostile"); d.Paused {
		t.Fatal("still paused")
	}
	// Mark extract failed: load becomes upstream_failed once the scheduler looks.
	if _, loc = form("/dags/hostile/runs/ui_run/tasks/extract/mark", map[string]string{"state": "failed"}); !strings.Contains(loc, "Marked 1") {
		t.Fatalf("mark: %s", loc)
	}
	// Clearing without confirm previews; with it, clears.
	req, _ := http.NewRequest("POST", e.srv.URL+"/dags/hostile/runs/ui_run/tasks/extract/clear",
		strings.NewReader("csrf_token="+urlEncode(b.csrf)+"&downstream=true"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := resp.Body.Read(buf)
		page.Write(buf[:n])
		if err != nil {
			break
		}
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(page.String(), `id="clear-preview"`) || !strings.Contains(page.String(), "<li>extract</li>") {
		t.Fatalf("preview: %d", resp.StatusCode)
	}
	if ti, _ := e.st.TaskInstance(e.ctx, store.TIKey{DagID: "hostile", RunID: "ui_run", TaskID: "extract", MapIndex: -1}); ti.State != dags.StateFailed {
		t.Fatalf("the preview changed the state: %s", ti.State)
	}
	if _, loc = form("/dags/hostile/runs/ui_run/tasks/extract/clear", map[string]string{"confirm": "true", "downstream": "true"}); !strings.Contains(loc, "Cleared 1") {
		t.Fatalf("clear: %s", loc)
	}
	if _, loc = form("/dags/hostile/runs/ui_run/mark", map[string]string{"state": "success"}); !strings.Contains(loc, "Run marked success") {
		t.Fatalf("mark run: %s", loc)
	}
	if _, loc = form("/variables", map[string]string{"key": "api_token", "value": "tok-123456"}); !strings.Contains(loc, "Saved") {
		t.Fatalf("variable: %s", loc)
	}
	if v, _ := e.st.Variable(e.ctx, "api_token"); !v.Secret || v.Value != "tok-123456" {
		t.Fatalf("variable stored: %+v", v)
	}
	// Editing a secret with the value left empty keeps it.
	form("/variables", map[string]string{"key": "api_token", "value": "", "description": "new"})
	if v, _ := e.st.Variable(e.ctx, "api_token"); v.Value != "tok-123456" || v.Description != "new" {
		t.Fatalf("edited secret: %+v", v)
	}
	if _, body := b.do("GET", "/variables", "", false); strings.Contains(body, "tok-123456") {
		t.Fatal("a secret variable's value is on the page")
	}
	if _, loc = form("/variables/api_token/delete", map[string]string{}); !strings.Contains(loc, "Deleted") {
		t.Fatalf("delete: %s", loc)
	}
	// Without the token, forms are refused.
	req, _ = http.NewRequest("POST", e.srv.URL+"/dags/hostile/pause", strings.NewReader("paused=true"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := b.client.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("form without token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	log, _ := e.st.AuditLog(e.ctx, 50)
	actions := map[string]bool{}
	for _, entry := range log {
		if entry.Actor == "admin" {
			actions[entry.Action] = true
		}
	}
	for _, a := range []string{"trigger", "unpause", "mark_failed", "clear", "set_run_success", "variable_create", "variable_edit", "variable_delete"} {
		if !actions[a] {
			t.Errorf("no %s by admin in the audit log: %v", a, actions)
		}
	}
	_ = scheduler.TriggerOptions{}
}

func urlEncode(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "+", "=", "%3D", "#", "%23", "{", "%7B", "}", "%7D", `"`, "%22").Replace(s)
}

// A Kubernetes try shows its pod, namespace, node and why it failed.
func TestTaskInstancePageShowsThePod(t *testing.T) {
	e, _ := folderEnv(t, map[string]string{"hostile.yaml": hostileDAG})
	if status, body := e.call("POST", "/api/v1/dags/hostile/dagRuns", `{"dag_run_id": "r"}`, "op"); status != 200 {
		t.Fatalf("trigger: %d %s", status, body)
	}
	logPath := filepath.Join(t.TempDir(), "pod.log")
	os.WriteFile(logPath, []byte("updraft: try 1 of hostile.extract (run r): creating pod data/hostile-extract-1a2b\n"+
		"updraft: pod data/hostile-extract-1a2b scheduled on node kwok-node-0\n"), 0o644)
	k := store.TIKey{DagID: "hostile", RunID: "r", TaskID: "extract", MapIndex: -1}
	if err := e.st.StartTry(e.ctx, store.Try{TIKey: k, TryNumber: 1, StartDate: time.Now(), Executor: "kubernetes", Handle: "data/hostile-extract-1a2b", LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	code := 137
	if _, err := e.st.FinishTry(e.ctx, k, 1, dags.StateFailed, time.Now(), &code, "OOMKilled: the container exceeded its memory limit"); err != nil {
		t.Fatal(err)
	}
	_, body := e.call("GET", "/dags/hostile/runs/r/tasks/extract", "", "viewer")
	for _, want := range []string{`<code id="pod-name">hostile-extract-1a2b</code>`, "in namespace <code>data</code>", `<code id="pod-node">kwok-node-0</code>`,
		"OOMKilled: the container exceeded its memory limit", "<td>137</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("task instance page lacks %q", want)
		}
	}
}

// Airflow's old links (in past alerts and bookmarks) still lead somewhere.
func TestLegacyAirflowLinks(t *testing.T) {
	e, _ := folderEnv(t, map[string]string{"hostile.yaml": hostileDAG})
	if status, body := e.call("POST", "/api/v1/dags/hostile/dagRuns", `{"dag_run_id": "r", "logical_date": "2024-05-01T03:00:00+00:00"}`, "op"); status != 200 {
		t.Fatalf("trigger: %d %s", status, body)
	}
	for path, want := range map[string]string{
		"/tree?dag_id=hostile": "/dags/hostile",
		"/dags/hostile/grid":   "/dags/hostile",
		"/task?dag_id=hostile&task_id=extract&execution_date=2024-05-01T03%3A00%3A00%2B00%3A00": "/dags/hostile/runs/r/tasks/extract",
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		req.SetBasicAuth("viewer", "viewer-password")
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d -> %s, want %s", path, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
	if status, _ := e.call("GET", "/task?dag_id=hostile&task_id=extract&execution_date=2020-01-01T00:00:00Z", "", "viewer"); status != 404 {
		t.Errorf("no run at that date: %d", status)
	}
}

// /metrics is Prometheus' format from client_golang: state gauges read at
// scrape time, latency histograms by route (never by raw path), and the
// histograms other components feed.
func TestMetrics(t *testing.T) {
	m := NewMetrics()
	e, _ := folderEnv(t, map[string]string{"hostile.yaml": hostileDAG}, func(o *Options) { o.Metrics = m })
	if status, body := e.call("POST", "/api/v1/dags/hostile/dagRuns", `{"dag_run_id": "r1"}`, "op"); status != 200 {
		t.Fatalf("trigger: %d %s", status, body)
	}
	e.call("GET", "/dags/hostile/runs/r1", "", "viewer")
	m.ObserveStep(3 * time.Millisecond)
	m.ObserveTry("success", 2*time.Second)
	m.ObservePodStart(1500 * time.Millisecond)
	status, body := e.call("GET", "/metrics", "", "")
	if status != 200 {
		t.Fatalf("metrics: %d", status)
	}
	for _, want := range []string{
		"updraft_dags 1\n", `updraft_dag_runs{state="queued"} 1`, `updraft_task_instances{state="none"} 2`, "updraft_queue_depth 0",
		`updraft_http_request_duration_seconds_count{code="200",method="GET",route="/dags/{dag_id}/runs/{run_id}"} 1`,
		`updraft_http_request_duration_seconds_count{code="200",method="POST",route="/api/v1/dags/{dag_id}/dagRuns"} 1`,
		"updraft_scheduler_loop_duration_seconds_count 1", `updraft_task_try_duration_seconds_count{state="success"} 1`,
		"updraft_pod_start_latency_seconds_count 1", "updraft_alerts_pending 0", "go_goroutines ", "process_resident_memory_bytes ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `route="/dags/hostile/runs/r1"`) {
		t.Error("a raw path became a label")
	}
}

// staticConnections is a fixed list of connections for pages to show.
type staticConnections []ConnectionInfo

func (c staticConnections) List() ([]ConnectionInfo, error) { return c, nil }
func (c staticConnections) Test(context.Context, string) (string, error) {
	return "", errors.New("not tested here")
}

// flashText is the flash message a page shows, "" if none.
func flashText(page string) string {
	_, rest, ok := strings.Cut(page, `id="flash">`)
	if !ok {
		return ""
	}
	msg, _, _ := strings.Cut(rest, "<")
	return html.UnescapeString(msg)
}

// A flash message is the server's: shown once after the action, never
// taken from the URL, and a cookie the server did not sign for this
// session (forged, or another user's) shows nothing.
func TestFlashComesOnlyFromTheServer(t *testing.T) {
	e, _ := folderEnv(t, map[string]string{"hostile.yaml": hostileDAG})
	b, _ := e.login("admin", "admin-password")
	if _, page := b.do("GET", "/?flash=Your+session+expired%2C+log+in+at+evil.example", "", false); flashText(page) != "" || strings.Contains(page, "Your session expired") {
		t.Fatalf("a flash from the URL is shown: %q", flashText(page))
	}
	req, _ := http.NewRequest("POST", e.srv.URL+"/variables", strings.NewReader("key=k1&value=v&csrf_token="+urlEncode(b.csrf)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var signed *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == flashCookie {
			signed = c
		}
	}
	if signed == nil || !signed.HttpOnly || signed.MaxAge <= 0 {
		t.Fatalf("flash cookie: %+v", signed)
	}
	if _, page := b.do("GET", "/variables", "", false); flashText(page) != "Saved k1." {
		t.Fatalf("flash after saving: %q", flashText(page))
	}
	if _, page := b.do("GET", "/variables", "", false); flashText(page) != "" {
		t.Fatalf("the flash is shown twice: %q", flashText(page))
	}
	// The same cookie in another user's session, and a forged one.
	other, _ := e.login("viewer", "viewer-password")
	forged := base64.RawURLEncoding.EncodeToString([]byte("Log in again at evil.example")) + "." + strings.Split(signed.Value, ".")[1]
	for name, value := range map[string]string{"another session's": signed.Value, "forged": forged} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/", nil)
		req.AddCookie(&http.Cookie{Name: flashCookie, Value: value})
		for _, c := range other.client.Jar.Cookies(req.URL) {
			req.AddCookie(c)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || flashText(string(page)) != "" {
			t.Fatalf("a %s flash cookie: %d %q", name, resp.StatusCode, flashText(string(page)))
		}
	}
}

// A trigger form with conf that is not JSON comes back open, as typed,
// saying where the mistake is.
func TestTriggerFormKeepsWhatWasTyped(t *testing.T) {
	e := secEnv(t)
	b, _ := e.login("user", "user-password")
	form := url.Values{"csrf_token": {b.csrf}, "return": {"/dags/sec?tab=runs"}, "conf": {"{\n  \"table\": orders\n}"}, "run_id": {"mine"}}
	resp, err := b.client.PostForm(e.srv.URL+"/dags/sec/trigger", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != 303 || !strings.HasPrefix(loc, "/dags/sec?") {
		t.Fatalf("after a bad conf: %d %s", resp.StatusCode, loc)
	}
	_, page := b.do("GET", loc, "", false)
	for _, want := range []string{`id="trigger-box" open`, "&#34;table&#34;: orders", `value="mine"`, "conf is not valid JSON", "line 2, column 12", `class="active" id="tab-runs"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if runs, _ := e.st.Runs(e.ctx, store.RunFilter{DagID: "sec"}); len(runs) != 0 {
		t.Errorf("a run was triggered: %v", runs)
	}
}

// A page the role may not see is a page (with the navigation) saying
// which role it needs; the API keeps its JSON.
func TestForbiddenPageIsAPage(t *testing.T) {
	e := secEnv(t)
	status, body := e.call("GET", "/variables", "", "viewer")
	if status != 403 || !strings.Contains(body, "<nav") || !strings.Contains(body, "it needs Admin") || strings.HasPrefix(strings.TrimSpace(body), "{") {
		t.Errorf("page: %d %s", status, body)
	}
	if status, body := e.call("GET", "/api/v1/variables", "", "viewer"); status != 403 || !strings.HasPrefix(body, "{") {
		t.Errorf("api: %d %s", status, body)
	}
}

// Long lists say how long they are and page: the audit log and the
// alerts, with filters that the pages' links keep.
func TestAuditAndAlertsPage(t *testing.T) {
	e := secEnv(t)
	for i := 0; i < 230; i++ {
		action := "trigger"
		if i%10 == 0 {
			action = "clear"
		}
		if err := e.st.Audit(e.ctx, store.AuditEntry{At: time.Now(), Actor: "ann", Action: action, DagID: "sec", Detail: fmt.Sprint("n=", i)}); err != nil {
			t.Fatal(err)
		}
		if err := e.st.AddAlert(e.ctx, store.Alert{Key: fmt.Sprint("k", i), Kind: store.AlertRunFailed, DagID: "sec", RunID: fmt.Sprint("r", i), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	_, page := e.call("GET", "/audit", "", "viewer")
	page = html.UnescapeString(page)
	if !strings.Contains(page, "1–100 of 230") || !strings.Contains(page, `href="/audit?offset=100" rel="next"`) || !strings.Contains(page, "n=229") {
		t.Fatalf("audit page 1:\n%s", page)
	}
	_, page = e.call("GET", "/audit?offset=200", "", "viewer")
	if page = html.UnescapeString(page); !strings.Contains(page, "201–230 of 230") || strings.Contains(page, `rel="next"`) || !strings.Contains(page, "n=0<") {
		t.Fatalf("audit page 3:\n%s", page)
	}
	_, page = e.call("GET", "/audit?action=clear", "", "viewer")
	if page = html.UnescapeString(page); !strings.Contains(page, "1–23 of 23") || strings.Contains(page, "trigger<") {
		t.Errorf("audit filtered:\n%s", page)
	}
	_, page = e.call("GET", "/alerts?state=pending&offset=100", "", "viewer")
	if page = html.UnescapeString(page); !strings.Contains(page, "101–200 of 230") || !strings.Contains(page, "offset=200&state=pending") || !strings.Contains(page, "offset=0&state=pending") {
		t.Errorf("alerts page 2:\n%s", page)
	}
}

// A task that fails in runs that still succeed (an all_done clean-up
// decides them) shows on the DAG list, with how often.
func TestDAGListShowsFailedTasks(t *testing.T) {
	e := yamlEnv(t, `
cleanup_hides:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: transform, operator: BashOperator, bash_command: "exit 1"}
    - {task_id: cleanup, operator: EmptyOperator, trigger_rule: all_done, dependencies: [transform]}
`)
	for _, id := range []string{"r1", "r2"} {
		if _, err := e.sched.Trigger(e.ctx, "cleanup_hides", scheduler.TriggerOptions{RunID: id}); err != nil {
			t.Fatal(err)
		}
	}
	e.runUntil("cleanup_hides", "r1", dags.RunSuccess)
	e.runUntil("cleanup_hides", "r2", dags.RunSuccess)
	_, page := e.call("GET", "/", "", "viewer")
	if !strings.Contains(page, "✗ transform</a> <span class=\"muted\">2/2</span>") || strings.Contains(page, "✗ cleanup") {
		t.Fatalf("the DAG list does not show the failing task:\n%s", page)
	}
}

// A task that never ran says why: which upstream tasks ended how, and the
// trigger rule that decided.
func TestTaskThatNeverRanSaysWhy(t *testing.T) {
	e := yamlEnv(t, `
why_not:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: extract, operator: BashOperator, bash_command: "exit 1"}
    - {task_id: load, operator: EmptyOperator, dependencies: [extract]}
`)
	if _, err := e.sched.Trigger(e.ctx, "why_not", scheduler.TriggerOptions{RunID: "r1"}); err != nil {
		t.Fatal(err)
	}
	e.runUntil("why_not", "r1", dags.RunFailed)
	_, page := e.call("GET", "/dags/why_not/runs/r1/tasks/load", "", "viewer")
	if !strings.Contains(page, "No try: it could not run (upstream_failed): upstream extract failed, and its trigger rule all_success decided it.") {
		t.Fatalf("the page does not say why:\n%s", page)
	}
}

// The DAG list filters (active or paused, the latest run's state, an
// owner, several tags) and sorts, and a list that matches nothing says so.
func TestDAGListFilters(t *testing.T) {
	e := yamlEnv(t, `
alpha:
  default_args: {owner: finance}
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tags: [nightly]
  tasks: [{task_id: t, operator: BashOperator, bash_command: "exit 1"}]
beta:
  default_args: {owner: data}
  start_date: 2024-01-01
  schedule: null
  tags: [hourly]
  tasks: [{task_id: t, operator: EmptyOperator}]
gamma:
  default_args: {owner: data}
  start_date: 2024-01-01
  schedule: null
  tags: [adhoc]
  tasks: [{task_id: t, operator: EmptyOperator}]
`)
	if _, err := e.sched.Trigger(e.ctx, "alpha", scheduler.TriggerOptions{RunID: "r1"}); err != nil {
		t.Fatal(err)
	}
	e.runUntil("alpha", "r1", dags.RunFailed)
	shown := func(query string) string {
		t.Helper()
		_, page := e.call("GET", "/?"+query, "", "user")
		var ids []string
		for _, id := range []string{"alpha", "beta", "gamma"} {
			if strings.Contains(page, `id="dag-`+id+`"`) {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 && !strings.Contains(page, "No DAG matches these filters") {
			t.Errorf("%s: an empty list without a word", query)
		}
		return strings.Join(ids, ",")
	}
	for query, want := range map[string]string{
		"":                        "alpha,beta,gamma",
		"status=paused":           "beta,gamma",
		"status=active":           "alpha",
		"last=failed":             "alpha",
		"owner=data":              "beta,gamma",
		"tag=hourly&tag=adhoc":    "beta,gamma",
		"owner=finance&tag=adhoc": "",
	} {
		if got := shown(query); got != want {
			t.Errorf("/?%s shows %q, want %q", query, got, want)
		}
	}
	_, page := e.call("GET", "/?sort=-dag_id", "", "viewer")
	if g, a := strings.Index(page, `id="dag-gamma"`), strings.Index(page, `id="dag-alpha"`); g < 0 || a < 0 || g > a {
		t.Errorf("sort=-dag_id does not put gamma first")
	}
	if !strings.Contains(page, "<td>finance</td>") || !strings.Contains(page, `href="/dags/alpha/runs/r1"`) || strings.Contains(page, `href="/dags/alpha?trigger=1"`) {
		t.Errorf("the owner and latest run columns are missing")
	}
	// A User may trigger with config from the list: the DAG page's form, open.
	if _, page := e.call("GET", "/", "", "user"); !strings.Contains(page, `href="/dags/alpha?trigger=1"`) {
		t.Errorf("no trigger-with-config link for a User")
	}
	if _, page := e.call("GET", "/dags/alpha?trigger=1", "", "user"); !strings.Contains(page, `id="trigger-box" open`) {
		t.Errorf("the trigger form is not open")
	}
}
