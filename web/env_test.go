package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/crypto/bcrypt"

	"updraft/dags"
	"updraft/executor/local"
	"updraft/scheduler"
	"updraft/store"
)

type fixedBag struct {
	res *dags.Result
	at  time.Time
}

func (b fixedBag) Current() (*dags.Result, time.Time) { return b.res, b.at }

// env is a web server on a real SQLite store and a real scheduler (with
// the local executor; tests step it with Tick instead of running it), with
// one user per role: "viewer", "user", "op" and "admin", each with the
// password name+"-password".
type env struct {
	t     testing.TB
	ctx   context.Context
	st    *store.Store
	sched *scheduler.Scheduler
	web   *Server
	srv   *httptest.Server
}

var roleUsers = map[string]Role{"viewer": RoleViewer, "user": RoleUser, "op": RoleOp, "admin": RoleAdmin}

func newEnv(t testing.TB, bag Bag, tweak ...func(*Options)) *env {
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
	// Hashes of the cheapest cost keep the tests fast (the race detector
	// makes bcrypt very slow); a hash's cost travels with it, so checking
	// these is cheap too. HashPassword's own cost is tested on its own.
	for name, role := range roleUsers {
		h, err := bcrypt.GenerateFromPassword([]byte(name+"-password"), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateUser(ctx, store.User{Username: name, PasswordHash: string(h), Role: string(role), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	sched := scheduler.New(st, local.New(2, log), bag, scheduler.Options{LogDir: t.TempDir(), Log: log, ExecutorName: "local"})
	if _, err := sched.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	o := Options{Bag: bag, Store: st, Commands: sched, Log: log, Heartbeat: sched.Heartbeat}
	for _, f := range tweak {
		f(&o)
	}
	w := New(o)
	srv := httptest.NewServer(w)
	t.Cleanup(srv.Close)
	return &env{t: t, ctx: ctx, st: st, sched: sched, web: w, srv: srv}
}

// call makes a request as a user through basic auth ("" for anonymous)
// and returns the status and body.
func (e *env) call(method, path, body, user string, hdr ...string) (int, string) {
	e.t.Helper()
	return e.callAs(method, path, body, user, user+"-password", hdr...)
}

// callAs is call with a password of the caller's choosing.
func (e *env) callAs(method, path, body, user, password string, hdr ...string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case user != "" && strings.HasPrefix(path, "/api/v2/"):
		// Airflow 3's API takes bearer tokens only.
		tok, err := e.web.auth.tokens.Issue(context.Background(), user, 0)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case user != "":
		req.SetBasicAuth(user, password)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// browser is a logged-in browser session: a cookie jar and the page's
// CSRF token.
type browser struct {
	e      *env
	client *http.Client
	csrf   string
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

func (e *env) login(user, password string) (*browser, int) {
	e.t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{e: e, client: &http.Client{Jar: jar, CheckRedirect: noRedirect.CheckRedirect}}
	resp, err := b.client.PostForm(e.srv.URL+"/login", url.Values{"username": {user}, "password": {password}, "next": {"/"}})
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, resp.StatusCode
	}
	status, page := b.do("GET", "/", "", false)
	m := csrfMeta.FindStringSubmatch(page)
	if status != 200 || m == nil {
		e.t.Fatalf("home after login: %d, csrf meta found: %v", status, m != nil)
	}
	b.csrf = m[1]
	return b, resp.StatusCode
}

// do makes a request in the session, with the CSRF header when withCSRF.
func (b *browser) do(method, path, body string, withCSRF bool, hdr ...string) (int, string) {
	b.e.t.Helper()
	req, _ := http.NewRequest(method, b.e.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if withCSRF {
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// runUntil steps the scheduler (its local executor runs the tries) until
// the run is in state, and fails the test after 10 s.
func (e *env) runUntil(dagID, runID string, state dags.RunState) {
	e.t.Helper()
	for i := 0; i < 400; i++ {
		if _, err := e.sched.Tick(e.ctx); err != nil {
			e.t.Fatal(err)
		}
		if r, err := e.st.Run(e.ctx, dagID, runID); err == nil && r.State == state {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	r, _ := e.st.Run(e.ctx, dagID, runID)
	e.t.Fatalf("run %s of %s is %s, not %s", runID, dagID, r.State, state)
}

// yamlEnv is an env whose DAG folder is one file holding yaml, which must
// load without errors.
func yamlEnv(t *testing.T, yaml string) *env {
	t.Helper()
	res := dags.Load(fstest.MapFS{"dags.yaml": {Data: []byte(yaml)}}, dags.Options{})
	if errs := res.Problems().Errors(); len(errs) > 0 {
		t.Fatalf("fixture: %v", errs)
	}
	return newEnv(t, fixedBag{res, time.Now()})
}
