package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web/apiv2"
	"updraft/web/ops"

	"github.com/go-chi/chi/v5"
	"golang.org/x/crypto/bcrypt"
)

// secDAG is the DAG the security tests act on.
const secDAG = `
sec:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: a, operator: BashOperator, bash_command: "echo a"}
    - {task_id: b, operator: BashOperator, bash_command: "echo b", dependencies: [a]}
`

func secEnv(t *testing.T, tweak ...func(*Options)) *env {
	res := dags.Load(fstest.MapFS{"sec.yaml": {Data: []byte(secDAG)}}, dags.Options{})
	if len(res.DAGs) != 1 {
		t.Fatalf("fixture: %v", res.Problems())
	}
	return newEnv(t, fixedBag{res, time.Now()}, tweak...)
}

// Every state-changing route, for every role: anonymous callers get 401,
// roles without the permission 403, the others get through (whatever the
// handler then says).
func TestEveryStateChangingRouteForEveryRole(t *testing.T) {
	e := secEnv(t)
	e.web.WithGit(&countingSync{}, GitOptions{})
	run, err := e.sched.Trigger(e.ctx, "sec", scheduler.TriggerOptions{RunID: "r1", Actor: "setup"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetVariable(e.ctx, store.Variable{Key: "v", Value: "1", UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ti := "/api/v1/dags/sec/dagRuns/" + run.RunID + "/taskInstances/a"
	routes := []struct {
		method, path, body string
		need               perm
	}{
		{"PATCH", "/api/v1/dags/sec", `{"is_paused": true}`, permAct},
		{"PATCH", "/api/v1/dags?dag_id_pattern=sec", `{"is_paused": false}`, permAct},
		{"POST", "/api/v1/dags/sec/dagRuns", `{"conf": {}}`, permAct},
		{"PATCH", "/api/v1/dags/sec/dagRuns/r1", `{"state": "queued"}`, permAct},
		{"POST", "/api/v1/dags/sec/dagRuns/r1/clear", `{"dry_run": true}`, permAct},
		{"PATCH", ti, `{"new_state": "success", "dry_run": true}`, permAct},
		{"PATCH", ti + "/0", `{"new_state": "success", "dry_run": true}`, permAct},
		{"POST", "/api/v1/dags/sec/clearTaskInstances", `{"dry_run": true}`, permAct},
		{"POST", "/api/v1/dags/sec/updateTaskInstancesState", `{"dry_run": true, "task_id": "a", "dag_run_id": "r1", "new_state": "failed"}`, permAct},
		{"POST", "/api/v1/git/sync", ``, permAct},
		{"POST", "/api/v1/variables", `{"key": "w", "value": "2"}`, permAdmin},
		{"PATCH", "/api/v1/variables/v", `{"key": "v", "value": "3"}`, permAdmin},
		{"DELETE", "/api/v1/variables/w", ``, permAdmin},
		{"GET", "/api/v1/variables", ``, permAdmin},
		{"POST", "/api/v1/users", `{"username": "newcomer", "password": "long-enough-1", "roles": [{"name": "Viewer"}]}`, permAdmin},
		{"PATCH", "/api/v1/users/newcomer", `{"first_name": "New"}`, permAdmin},
		{"DELETE", "/api/v1/users/newcomer", ``, permAdmin},
		{"GET", "/api/v1/users", ``, permAdmin},
		{"GET", "/api/v1/roles", ``, permAdmin},
		// Reads sent as POST (Airflow's batch lists).
		{"POST", "/api/v1/dags/~/dagRuns/list", `{}`, permRead},
		{"POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", `{}`, permRead},
		{"POST", "/api/v1/pools", `{"name": "snowflake", "slots": 2}`, permOp},
		{"PATCH", "/api/v1/pools/snowflake", `{"slots": 3}`, permOp},
		{"DELETE", "/api/v1/pools/snowflake", ``, permOp},
		// The pages' forms.
		{"POST", "/dags/sec/pause", ``, permAct},
		{"POST", "/dags/sec/trigger", ``, permAct},
		{"POST", "/dags/sec/backfills", ``, permAct},
		{"POST", "/dags/sec/backfills/1/pause", ``, permAct},
		{"POST", "/dags/sec/runs/r1/clear", ``, permAct},
		{"POST", "/dags/sec/runs/r1/mark", ``, permAct},
		{"POST", "/dags/sec/runs/r1/tasks/a/clear", ``, permAct},
		{"POST", "/dags/sec/runs/r1/tasks/a/mark", ``, permAct},
		{"POST", "/variables", ``, permAdmin},
		{"POST", "/variables/w/delete", ``, permAdmin},
		{"GET", "/variables", ``, permAdmin},
		{"POST", "/pools", `name=etl&slots=2`, permOp},
		{"POST", "/pools/etl/delete", ``, permOp},
		{"POST", "/connections/nope/test", ``, permOp},
		{"GET", "/connections", ``, permOp},
		{"GET", "/api/v1/connections", ``, permOp},
		{"POST", "/users", ``, permAdmin},
		{"POST", "/users/nobody", ``, permAdmin},
		{"POST", "/users/nobody/delete", ``, permAdmin},
		{"GET", "/users", ``, permAdmin},
	}
	// Every state-changing route the server has is in the table above, so a
	// new one cannot slip in unchecked. /login and /logout are open to
	// anyone by design; the push webhook checks its own signatures
	// (gitsync's tests).
	covered := map[string]bool{"POST /login": true, "POST /logout": true, "POST /api/v1/git/webhook": true, "POST /auth/token": true}
	for _, rt := range routes {
		if strings.HasPrefix(rt.path, "/api/v2/") {
			continue // added below, from the API's own table
		}
		rctx := chi.NewRouteContext()
		path, _, _ := strings.Cut(rt.path, "?")
		if !e.web.router.Match(rctx, rt.method, path) {
			t.Fatalf("%s %s matches no route", rt.method, rt.path)
		}
		covered[rt.method+" "+rctx.RoutePattern()] = true
	}
	// The API v2: every operation that is not a read needs its access
	// level; those updraft does not serve still need a caller (then 501).
	v2Need := map[string]perm{"Viewer": permRead, "User": permAct, "Op": permOp, "Admin": permAdmin, "": permRead}
	fill := strings.NewReplacer("{dag_id}", "sec", "{dag_run_id}", "r1", "{task_id}", "a", "{map_index}", "0", "{variable_key}", "v",
		"{pool_name}", "snowflake", "{connection_id}", "nope")
	for _, op := range apiv2.Operations() {
		if op.Method == "GET" {
			continue
		}
		covered[op.Method+" /api/v2"+op.Path] = true
		path := fill.Replace(op.Path)
		for strings.Contains(path, "{") {
			i, j := strings.Index(path, "{"), strings.Index(path, "}")
			path = path[:i] + "x" + path[j+1:]
		}
		routes = append(routes, struct {
			method, path, body string
			need               perm
		}{op.Method, "/api/v2" + path, `{}`, v2Need[op.Access]})
	}
	_ = chi.Walk(e.web.router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if method != "GET" && method != "HEAD" && !covered[method+" "+route] {
			t.Errorf("%s %s changes state but is not in this test's table", method, route)
		}
		return nil
	})
	for _, rt := range routes {
		for _, user := range []string{"", "viewer", "user", "op", "admin"} {
			status, body := e.call(rt.method, rt.path, rt.body, user)
			var want string
			switch {
			case user == "":
				want = "401"
			case !roleUsers[user].can(rt.need):
				want = "403"
			default:
				want = "allowed"
			}
			got := "allowed"
			switch {
			case status == 401 || status == 403:
				got = map[int]string{401: "401", 403: "403"}[status]
			case status == http.StatusSeeOther && strings.Contains(body, "/login?"):
				got = "401" // a page sends an anonymous browser to the login form
			}
			if got != want {
				t.Errorf("%s %s as %q: %d (%s), want %s", rt.method, rt.path, user, status, strings.TrimSpace(body), want)
			}
		}
	}
	// Reads are open to every role, closed to anonymous callers.
	for _, path := range []string{"/api/v1/dags", "/api/v1/dags/sec/dagRuns", "/api/v1/importErrors", "/api/v1/eventLogs", "/api/v1/pools", "/", "/dags.json", "/pools"} {
		if status, _ := e.call("GET", path, "", "viewer"); status != 200 {
			t.Errorf("viewer GET %s: %d", path, status)
		}
		if status, _ := e.call("GET", path, "", ""); status != 401 && status != http.StatusSeeOther {
			t.Errorf("anonymous GET %s: %d", path, status)
		}
	}
	// Every action is audited with its user.
	log, _ := e.st.AuditLog(e.ctx, 100)
	actors := map[string]bool{}
	for _, entry := range log {
		actors[entry.Actor] = true
	}
	if !actors["user"] || !actors["op"] || !actors["admin"] || actors["viewer"] || actors["anonymous"] {
		t.Errorf("audit actors: %v", actors)
	}
}

// A browser session must send its CSRF token with every state-changing
// request; a cross-site request is refused even with it.
func TestSessionsAndCSRF(t *testing.T) {
	e := secEnv(t)
	// Anonymous pages go to the login form, keeping where they were going.
	status, _ := e.call("GET", "/?q=sec", "", "")
	if status != http.StatusSeeOther {
		t.Fatalf("anonymous home: %d", status)
	}
	if _, status := e.login("op", "wrong"); status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", status)
	}
	b, _ := e.login("op", "op-password")
	u, _ := url.Parse(e.srv.URL)
	cookies := b.client.Jar.Cookies(u)
	if len(cookies) != 1 || cookies[0].Name != sessionCookie {
		t.Fatalf("cookies: %v", cookies)
	}
	// The cookie's attributes are not visible through the jar: check them
	// on a fresh login response.
	resp, err := noRedirect.PostForm(e.srv.URL+"/login", url.Values{"username": {"op"}, "password": {"op-password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	set := resp.Header.Get("Set-Cookie")
	for _, attr := range []string{"HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(set, attr) {
			t.Errorf("session cookie lacks %s: %s", attr, set)
		}
	}
	trigger := `{"dag_run_id": "from_browser"}`
	if status, body := b.do("POST", "/api/v1/dags/sec/dagRuns", trigger, false); status != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Fatalf("without a CSRF token: %d %s", status, body)
	}
	if status, _ := b.do("POST", "/api/v1/dags/sec/dagRuns", trigger, false, "X-CSRF-Token", "forged"); status != http.StatusForbidden {
		t.Fatalf("with a wrong CSRF token: %d", status)
	}
	if status, _ := b.do("POST", "/api/v1/dags/sec/dagRuns", trigger, true, "Sec-Fetch-Site", "cross-site"); status != http.StatusForbidden {
		t.Fatalf("cross-site with the token: %d", status)
	}
	if status, body := b.do("POST", "/api/v1/dags/sec/dagRuns", trigger, true); status != 200 {
		t.Fatalf("with the token: %d %s", status, body)
	}
	if log, _ := e.st.AuditLog(e.ctx, 1); len(log) != 1 || log[0].Actor != "op" || log[0].Action != "trigger" {
		t.Fatalf("audit: %+v", log)
	}
	// The login form itself refuses cross-site posts (login CSRF).
	req, _ := http.NewRequest("POST", e.srv.URL+"/login", strings.NewReader("username=op&password=op-password"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site login: %d", resp.StatusCode)
	}
	// Logging out needs the token too, and ends the session.
	if status, _ := b.do("POST", "/logout", "", false); status != http.StatusForbidden {
		t.Fatalf("logout without token: %d", status)
	}
	if status, _ := b.do("POST", "/logout", "", true); status != http.StatusSeeOther {
		t.Fatalf("logout: %d", status)
	}
	if status, _ := b.do("GET", "/api/v1/dags", "", false); status != http.StatusUnauthorized {
		t.Fatalf("after logout: %d", status)
	}
	// A changed role ends every session of the user.
	b2, _ := e.login("user", "user-password")
	usr, _ := e.st.User(e.ctx, "user")
	usr.Role = string(RoleViewer)
	if err := e.st.UpdateUser(e.ctx, usr); err != nil {
		t.Fatal(err)
	}
	if status, _ := b2.do("GET", "/api/v1/dags", "", false); status != http.StatusUnauthorized {
		t.Fatalf("session after a role change: %d", status)
	}
	// Redirects after login stay on this site.
	for in, want := range map[string]string{"/dags/sec": "/dags/sec", "//evil.example": "/", "/\\evil.example": "/", "https://evil.example": "/", "": "/",
		"/\t/evil.example": "/", "/\n/evil.example": "/", " //evil.example": "/", "\x00//evil.example": "/", "\\\\evil.example": "/",
		"/dags?x=1#top": "/dags?x=1#top", "/a\x01b": "/", "javascript:alert(1)": "/", "/\t\t": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q", in, got)
		}
	}
}

// Failed logins are limited per user and address: the right password
// does not help from the guessing address (not even one verified moments
// before), for the form and for basic auth alike; the count survives a
// restart, and the real user logs in from another address all along.
func TestLoginRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	e := secEnv(t, func(o *Options) { o.Now = clock })
	// op's password is verified (and remembered) before the guessing.
	if status, _ := e.call("GET", "/api/v1/dags", "", "op"); status != 200 {
		t.Fatalf("op before the guessing: %d", status)
	}
	for i := 0; i < maxUserFailures; i++ {
		if _, status := e.login("admin", "guess"); status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, status)
		}
		e.callAs("GET", "/api/v1/dags", "", "op", "guess")
	}
	if _, status := e.login("admin", "admin-password"); status != http.StatusTooManyRequests {
		t.Fatalf("after %d failures, the right password: %d", maxUserFailures, status)
	}
	if status, _ := e.call("GET", "/api/v1/dags", "", "admin"); status != http.StatusTooManyRequests {
		t.Fatalf("basic auth while limited: %d", status)
	}
	if status, _ := e.call("GET", "/api/v1/dags", "", "op"); status != http.StatusTooManyRequests {
		t.Fatalf("a password verified before the guessing, from the guessing address: %d", status)
	}
	// Another user from the same address is not locked out (yet).
	if status, _ := e.call("GET", "/api/v1/dags", "", "viewer"); status != 200 {
		t.Fatalf("other user: %d", status)
	}
	// A restarted server (or another replica) on the same database keeps
	// the guessing address out, and lets the real admin in from elsewhere.
	restarted := newAuth(e.st, AuthOptions{}, clock)
	if _, err := restarted.check(e.ctx, "admin", "admin-password", "127.0.0.1"); !errors.As(err, new(errTooMany)) {
		t.Fatalf("after a restart the guessing address gets in: %v", err)
	}
	if _, err := restarted.check(e.ctx, "admin", "admin-password", "10.0.0.9"); err != nil {
		t.Fatalf("after a restart the real admin from another address is locked out: %v", err)
	}
	if _, err := restarted.check(e.ctx, "op", "op-password", "10.0.0.9"); err != nil {
		t.Fatalf("op from another address: %v", err)
	}
	// One address guessing many names is stopped for every name.
	for i := 0; i < maxIPFailures; i++ {
		restarted.check(e.ctx, fmt.Sprintf("user%d", i), "guess", "10.0.0.66")
	}
	if _, err := restarted.check(e.ctx, "viewer", "viewer-password", "10.0.0.66"); !errors.As(err, new(errTooMany)) {
		t.Fatalf("an address that guessed %d names: %v", maxIPFailures, err)
	}
	// A good login from a guessing address does not reset its own count.
	if _, err := restarted.check(e.ctx, "viewer", "viewer-password", "10.0.0.9"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(failureWindow + time.Second)
	if status, _ := e.call("GET", "/api/v1/dags", "", "admin"); status != 200 {
		t.Fatalf("after the window: %d", status)
	}
	if _, err := restarted.check(e.ctx, "viewer", "viewer-password", "10.0.0.66"); err != nil {
		t.Fatalf("after the window, the guessing address: %v", err)
	}
}

// A trusted proxy's user header is honoured only from the proxy's address.
func TestAuthProxyHeader(t *testing.T) {
	trusted := secEnv(t, func(o *Options) {
		o.Auth = AuthOptions{ProxyHeader: "X-Forwarded-User", ProxyFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, ProxyRole: RoleViewer}
	})
	if status, body := trusted.call("GET", "/api/v1/dags", "", "", "X-Forwarded-User", "sso.person@example.com"); status != 200 {
		t.Fatalf("through the proxy: %d %s", status, body)
	}
	u, err := trusted.st.User(trusted.ctx, "sso.person@example.com")
	if err != nil || u.Role != "Viewer" {
		t.Fatalf("proxy user: %+v %v", u, err)
	}
	if status, _ := trusted.call("POST", "/api/v1/dags/sec/dagRuns", `{}`, "", "X-Forwarded-User", "sso.person@example.com"); status != http.StatusForbidden {
		t.Fatalf("viewer through the proxy triggers: %d", status)
	}
	elsewhere := secEnv(t, func(o *Options) {
		o.Auth = AuthOptions{ProxyHeader: "X-Forwarded-User", ProxyFrom: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	})
	if status, _ := elsewhere.call("GET", "/api/v1/dags", "", "", "X-Forwarded-User", "admin"); status != http.StatusUnauthorized {
		t.Fatalf("header from an untrusted address: %d", status)
	}
}

// Secret values never leave the server: not in variable responses, not in
// logs, not in rendered fields, not in pages.
func TestSecretsNeverInResponses(t *testing.T) {
	e := secEnv(t)
	const secret = "s3cr3t-V4lue-9000"
	for _, v := range []store.Variable{{Key: "snowflake_password", Value: secret}, {Key: "explicit", Value: secret + "-2", Secret: true}} {
		v.UpdatedAt = time.Now()
		if err := e.st.SetVariable(e.ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	// A try whose log and rendered fields hold the secret.
	run, err := e.sched.Trigger(e.ctx, "sec", scheduler.TriggerOptions{RunID: "r"})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "a.log")
	os.WriteFile(logPath, []byte("connecting with "+secret+"\nand "+secret+"-2\n"), 0o644)
	k := store.TIKey{DagID: "sec", RunID: run.RunID, TaskID: "a", MapIndex: -1}
	rendered, _ := json.Marshal(map[string]any{"bash_command": "echo " + secret})
	if err := e.st.StartTry(e.ctx, store.Try{TIKey: k, TryNumber: 1, StartDate: time.Now(), Executor: "local", LogPath: logPath, Rendered: string(rendered)}); err != nil {
		t.Fatal(err)
	}
	// An XCom that holds it (an HTTP response echoing a token).
	pushed, _ := json.Marshal("token=" + secret)
	if err := e.st.PushXComs(e.ctx, k, 1, time.Now(), map[string]json.RawMessage{"return_value": pushed, "other": json.RawMessage(`{"t": "` + secret + `-2"}`)}); err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, path := range []string{"/api/v1/dags/sec/dagRuns/r/taskInstances/a/xcomEntries/return_value", "/api/v1/dags/sec/dagRuns/r/taskInstances/a/xcomEntries/other",
		"/api/v1/dags/~/dagRuns/~/taskInstances/~/xcomEntries", "/dags/sec/runs/r/tasks/a",
		"/api/v1/variables", "/api/v1/variables/snowflake_password", "/api/v1/variables/explicit",
		"/api/v1/dags/sec/dagRuns/r/taskInstances/a", "/api/v1/dags/sec/dagRuns/r/taskInstances/a/logs/1",
		"/api/v1/dags/sec/dagRuns/r/taskInstances/a/logs/1?full_content=true", "/api/v1/eventLogs", "/", "/dags.json"} {
		status, body := e.call("GET", path, "", "admin")
		if status != 200 {
			t.Errorf("GET %s: %d %s", path, status, body)
		}
		if strings.Contains(body, secret) {
			t.Errorf("GET %s shows a secret: %s", path, body)
		}
		all.WriteString(body)
	}
	status, body := e.call("GET", "/api/v1/dags/sec/dagRuns/r/taskInstances/a/logs/1", "", "admin", "Accept", "text/plain")
	all.WriteString(body)
	if status != 200 || !strings.Contains(body, "connecting with ***") {
		t.Errorf("text log: %d %q", status, body)
	}
	if strings.Contains(all.String(), secret) {
		t.Fatal("a secret value appeared in a response")
	}
	if !strings.Contains(all.String(), `"echo ***"`) {
		t.Error("rendered fields not shown masked")
	}
	if !strings.Contains(all.String(), `"value":"token=***"`) || !strings.Contains(all.String(), `{\"t\": \"***\"}`) {
		t.Error("XComs not shown masked")
	}
}

// A log read in chunks, following continuation tokens, reassembles to the
// whole masked log: a secret cut by a chunk end is never shown in part.
func TestLogChunksNeverCutASecret(t *testing.T) {
	e := secEnv(t)
	const secret = "chunk-boundary-secret"
	if err := e.st.SetVariable(e.ctx, store.Variable{Key: "api_token", Value: secret, UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	run, _ := e.sched.Trigger(e.ctx, "sec", scheduler.TriggerOptions{RunID: "r"})
	// The secret straddles the first chunk's end.
	text := strings.Repeat("x", logChunk-5) + secret + "\n" + strings.Repeat("y", 100) + secret + "\n"
	logPath := filepath.Join(t.TempDir(), "a.log")
	os.WriteFile(logPath, []byte(text), 0o644)
	k := store.TIKey{DagID: "sec", RunID: run.RunID, TaskID: "a", MapIndex: -1}
	if err := e.st.StartTry(e.ctx, store.Try{TIKey: k, TryNumber: 1, StartDate: time.Now(), Executor: "local", LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	token := ""
	for i := 0; i < 5; i++ {
		status, body := e.call("GET", "/api/v1/dags/sec/dagRuns/r/taskInstances/a/logs/1?token="+token, "", "viewer")
		var out struct {
			Content string `json:"content"`
			Token   string `json:"continuation_token"`
		}
		if status != 200 || json.Unmarshal([]byte(body), &out) != nil {
			t.Fatalf("chunk %d: %d", i, status)
		}
		if strings.Contains(out.Content, secret[:5]) {
			t.Fatalf("chunk %d shows part of the secret", i)
		}
		got.WriteString(out.Content)
		if out.Content == "" {
			break
		}
		token = out.Token
	}
	if want := strings.ReplaceAll(text, secret, ops.SecretMask); got.String() != want {
		t.Fatalf("reassembled log differs: %d bytes, want %d", got.Len(), len(want))
	}
	if status, _ := e.call("GET", "/api/v1/dags/sec/dagRuns/r/taskInstances/a/logs/1?token=bogus", "", "viewer"); status != 400 {
		t.Fatalf("bad token: %d", status)
	}
}

func TestPasswordHashes(t *testing.T) {
	if _, err := HashPassword("short"); err == nil {
		t.Fatal("a 5-character password was accepted")
	}
	h, err := HashPassword("long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost([]byte(h)); cost != bcryptCost || bcrypt.CompareHashAndPassword([]byte(h), []byte("long enough password")) != nil {
		t.Fatalf("hash %q", h)
	}
	e := secEnv(t)
	if err := CreateUser(e.ctx, e.st, "<script>", "long enough password", RoleAdmin, time.Now()); err == nil {
		t.Fatal("a hostile user name was accepted")
	}
	if err := CreateUser(e.ctx, e.st, "ann", "long enough password", "Superuser", time.Now()); err == nil {
		t.Fatal("an unknown role was accepted")
	}
	created, err := EnsureAdmin(e.ctx, e.st, "root", "long enough password", time.Now())
	if err != nil || !created {
		t.Fatalf("bootstrap admin: %v %v", created, err)
	}
	// A second start leaves the admin (and a changed password) alone.
	if created, err := EnsureAdmin(e.ctx, e.st, "root", "another password", time.Now()); err != nil || created {
		t.Fatalf("second bootstrap: %v %v", created, err)
	}
	if status, _ := e.call("GET", "/api/v1/dags", "", ""); status != 401 {
		t.Fatal("anonymous")
	}
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/dags", nil)
	req.SetBasicAuth("root", "long enough password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("bootstrap admin over basic auth: %d", resp.StatusCode)
	}
}

// Paging and ordering follow Airflow: limit defaults to and is clamped at
// 100, bad values are 400 with an RFC 7807 body, order_by takes "-".
func TestAPIPaging(t *testing.T) {
	e := secEnv(t)
	for i := 0; i < 120; i++ {
		if err := e.st.SetVariable(e.ctx, store.Variable{Key: fmt.Sprintf("v%03d", i), Value: "x", UpdatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	var out struct {
		Variables []struct {
			Key string `json:"key"`
		} `json:"variables"`
		Total int `json:"total_entries"`
	}
	get := func(path string) int {
		t.Helper()
		status, body := e.call("GET", path, "", "admin")
		out.Variables = nil
		if status == 200 {
			if err := json.Unmarshal([]byte(body), &out); err != nil {
				t.Fatal(err)
			}
		} else if !strings.Contains(body, `"title"`) || !strings.Contains(body, `"status":400`) {
			t.Fatalf("%s: error body %s", path, body)
		}
		return status
	}
	if get("/api/v1/variables") != 200 || len(out.Variables) != 100 || out.Total != 120 {
		t.Fatalf("default page: %d of %d", len(out.Variables), out.Total)
	}
	if get("/api/v1/variables?limit=1000&offset=110") != 200 || len(out.Variables) != 10 || out.Variables[0].Key != "v110" {
		t.Fatalf("clamped page: %+v", out.Variables)
	}
	if get("/api/v1/variables?order_by=-key&limit=2") != 200 || out.Variables[0].Key != "v119" {
		t.Fatalf("descending: %+v", out.Variables)
	}
	for _, bad := range []string{"?limit=0", "?limit=x", "?offset=-1", "?order_by=value"} {
		if status := get("/api/v1/variables" + bad); status != 400 {
			t.Errorf("%s: %d", bad, status)
		}
	}
}

// Requests a client got wrong are refused whole, with the API's error
// body: data after the JSON value, dates outside 1970 to 9999, unknown
// endpoints and methods, cross-origin writes; the batch list pages; the
// static folder serves files, never a listing.
func TestAPIRefusesMalformedRequests(t *testing.T) {
	e := secEnv(t)
	for i := 0; i < 3; i++ {
		if _, err := e.sched.Trigger(e.ctx, "sec", scheduler.TriggerOptions{RunID: fmt.Sprintf("r%d", i), Actor: "setup"}); err != nil {
			t.Fatal(err)
		}
	}
	isProblem := func(status int, body string) bool {
		var p struct {
			Status int    `json:"status"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
			Type   string `json:"type"`
		}
		return json.Unmarshal([]byte(body), &p) == nil && p.Status == status && p.Title != "" && p.Detail != "" && p.Type != ""
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/dags/sec/dagRuns", `{"dag_run_id": "x1"}{"dag_run_id": "x2"}`},
		{"POST", "/api/v1/dags/sec/dagRuns", `{"dag_run_id": "x3"} trailing`},
		{"POST", "/api/v1/dags/sec/dagRuns", `{"dag_run_id": "x4", "logical_date": "0001-01-01T00:00:00Z"}`},
		{"POST", "/api/v1/dags/sec/dagRuns", `{"dag_run_id": "x5", "logical_date": "1969-12-31T23:59:59Z"}`},
		{"GET", "/api/v1/dags/sec/dagRuns?execution_date_gte=0001-01-01T00:00:00Z", ""},
		{"POST", "/api/v1/dags/~/dagRuns/list", `{"start_date_gte": "0001-01-01T00:00:00Z"}`},
		{"POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", `{"end_date_lte": "0100-01-01T00:00:00Z"}`},
		{"POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", `{"page_limit": 0}`},
	} {
		status, body := e.call(c.method, c.path, c.body, "admin")
		if status != 400 || !isProblem(400, body) {
			t.Errorf("%s %s %s: %d %s", c.method, c.path, c.body, status, body)
		}
	}
	if runs, _ := e.st.Runs(e.ctx, store.RunFilter{DagIDs: []string{"sec"}}); len(runs) != 3 {
		t.Fatalf("a refused request made a run: %d runs", len(runs))
	}
	// The task-instance batch list pages as the run list does.
	var tis struct {
		TaskInstances []map[string]any `json:"task_instances"`
		Total         int              `json:"total_entries"`
	}
	status, body := e.call("POST", "/api/v1/dags/~/dagRuns/~/taskInstances/list", `{"page_limit": 2, "page_offset": 1}`, "admin")
	if err := json.Unmarshal([]byte(body), &tis); status != 200 || err != nil || len(tis.TaskInstances) != 2 || tis.Total != 6 {
		t.Fatalf("batch page: %d %d of %d", status, len(tis.TaskInstances), tis.Total)
	}
	// Unknown endpoints and methods, anywhere under /api/.
	for _, c := range []struct {
		method, path string
		status       int
	}{{"GET", "/api/v1/nothing", 404}, {"GET", "/api/v3/dags", 404}, {"DELETE", "/api/v1/health", 405}} {
		if status, body := e.call(c.method, c.path, "", "admin"); status != c.status || !isProblem(c.status, body) {
			t.Errorf("%s %s: %d %s", c.method, c.path, status, body)
		}
	}
	// A cross-origin write is refused before authentication, as JSON.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/dags/sec/dagRuns", strings.NewReader(`{}`))
	req.SetBasicAuth("admin", "admin-password")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cross, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || !isProblem(403, string(cross)) {
		t.Fatalf("cross-origin write: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), cross)
	}
	// A handler that panics answers 500 in the API's format.
	rec := httptest.NewRecorder()
	e.web.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })).
		ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/dags", nil))
	if rec.Code != 500 || !isProblem(500, rec.Body.String()) || strings.Contains(rec.Body.String(), "boom") {
		t.Fatalf("panic: %d %s", rec.Code, rec.Body.String())
	}
	// Static files are served; their folder is not listed.
	for path, want := range map[string]int{"/static/app.css": 200, "/static/": 404, "/static": 404, "/static/../templates/layout.html": 404} {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

// The server's masker learns a secret the moment it is set or used here,
// before any task could print it: a secret variable set through the API
// or a form, a password given to a new or changed user, a password that
// logs in. Pages and the API mask with it too, so a value rotated away
// stays masked in old logs.
func TestServerMaskerLearnsSecretsAsTheyAreSet(t *testing.T) {
	m := dags.NewMasker()
	e := secEnv(t, func(o *Options) { o.Mask = m })
	masked := func(v string) bool { return m.Mask("<"+v+">") == "<***>" }
	if status, body := e.call("POST", "/api/v1/variables", `{"key": "warehouse_password", "value": "pw-one-1234"}`, "admin"); status != 200 {
		t.Fatalf("set variable: %d %s", status, body)
	}
	if status, body := e.call("POST", "/api/v1/users", `{"username": "nadia", "password": "nadia-secret-77", "email": "n@example.com", "roles": [{"name": "Viewer"}], "first_name": "N", "last_name": "A"}`, "admin"); status != 200 {
		t.Fatalf("create user: %d %s", status, body)
	}
	if status, body := e.call("PATCH", "/api/v1/users/nadia?update_mask=password", `{"password": "nadia-secret-88"}`, "admin"); status != 200 {
		t.Fatalf("change password: %d %s", status, body)
	}
	if status, _ := e.call("GET", "/api/v1/dags", "", "op"); status != 200 {
		t.Fatal("op")
	}
	for _, v := range []string{"pw-one-1234", "nadia-secret-77", "nadia-secret-88", "op-password"} {
		if !masked(v) {
			t.Errorf("the masker does not know %q", v)
		}
	}
	if masked("viewer-password") {
		t.Error("the masker knows a password that was never used here")
	}
	// Rotated: the store no longer has the old value, the masker does.
	if status, _ := e.call("PATCH", "/api/v1/variables/warehouse_password", `{"key": "warehouse_password", "value": "pw-two-5678"}`, "admin"); status != 200 {
		t.Fatal("rotate")
	}
	if secrets, _ := e.st.SecretValues(e.ctx); slices.Contains(secrets, "pw-one-1234") {
		t.Fatal("the store still has the old value")
	}
	if got := e.web.maskText("old pw-one-1234 new pw-two-5678", nil); got != "old *** new ***" {
		t.Fatalf("masked text: %q", got)
	}
}
