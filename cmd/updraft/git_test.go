package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"updraft/gitsync/gittest"
)

const gitDAG = "%s:\n  schedule: '@daily'\n  catchup: false\n  is_paused_upon_creation: false\n  start_date: 2026-01-01\n  tasks:\n    t: {operator: airflow.operators.bash.BashOperator, bash_command: 'echo %s'}\n"

func dagYAML(id, echo string) *string {
	return gittest.S(strings.ReplaceAll(strings.ReplaceAll(gitDAG, "%s:", id+":"), "echo %s", "echo "+echo))
}

// gitRemote is a git server the test can take away and bring back.
type gitRemote interface {
	URL() string
	Stop()
	Start()
}

// The server follows a branch served by git daemon, by smart HTTP with
// basic auth and by sshd with key auth: a new commit is picked up, a
// broken commit keeps the last good DAG serving with its import error
// shown (with the revision) until a fix clears it, a deleted file takes
// its DAG away, a force-push is followed, a remote that goes away shows
// in /health and the UI while the last revision keeps serving, and a
// rotated credential works without a restart.
func TestServerFollowsGitBranch(t *testing.T) {
	for _, transport := range []string{"git daemon", "smart HTTP", "ssh"} {
		t.Run(transport, func(t *testing.T) { followBranch(t, transport) })
	}
}

func followBranch(t *testing.T, transport string) {
	repo := gittest.NewRepo(t)
	first := repo.Commit(map[string]*string{"dags/a.yaml": dagYAML("a", "1"), "dags/b.yaml": dagYAML("b", "1"),
		"README.md": gittest.S("not a DAG folder")}, "first")
	db := t.TempDir()
	env := map[string]string{"UPDRAFT_GIT_PATH": "dags", "UPDRAFT_GIT_INTERVAL": "100ms", "UPDRAFT_DAGS_INTERVAL": "1h",
		"UPDRAFT_DB": "sqlite:" + db + "/u.db"}
	secrets := t.TempDir()
	var remote gitRemote
	var rotate func() // changes the credential on the server and in its file
	switch transport {
	case "git daemon":
		remote = gittest.StartDaemon(t, repo.Base)
	case "smart HTTP":
		h := gittest.StartHTTP(t, repo.Base, "updraft", "password-1")
		remote = h
		writeFile(t, secrets+"/password", "password-1\n")
		env["UPDRAFT_GIT_USERNAME"], env["UPDRAFT_GIT_PASSWORD_FILE"] = "updraft", secrets+"/password"
		rotate = func() {
			h.SetPassword("password-2")
			writeFile(t, secrets+"/password", "password-2\n")
		}
	case "ssh":
		s := gittest.StartSSHD(t, repo.Base)
		remote = s
		key, _ := os.ReadFile(s.KeyFile)
		writeFile(t, secrets+"/key", string(key))
		env["UPDRAFT_GIT_SSH_KEY_FILE"], env["UPDRAFT_GIT_KNOWN_HOSTS_FILE"] = secrets+"/key", s.KnownHosts
		rotate = func() {
			gittest.NewKey(t, secrets+"/new")
			s.Authorize(secrets + "/new")
			key, _ := os.ReadFile(secrets + "/new")
			writeFile(t, secrets+"/key", string(key))
		}
	}
	env["UPDRAFT_GIT_URL"] = remote.URL()
	url, errOut := startInProcess(t, env)
	get := func(path string) string {
		resp, err := adminGet(url + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	type bag struct {
		Revision string `json:"revision"`
		DAGs     []struct {
			ID   string `json:"dag_id"`
			Hash string `json:"hash"`
		} `json:"dags"`
		Errors []struct {
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"import_errors"`
	}
	current := func() bag {
		var b bag
		_ = json.Unmarshal([]byte(get("/dags.json")), &b)
		return b
	}
	ids := func(b bag) string {
		var out []string
		for _, d := range b.DAGs {
			out = append(out, d.ID)
		}
		return strings.Join(out, ",")
	}
	within := 10 * time.Second
	waitFor(t, "the first revision", within, func() bool {
		b := current()
		return b.Revision == first && ids(b) == "a,b" && len(b.Errors) == 0
	}, errOut)
	hashA := current().DAGs[0].Hash
	// The run the schedule creates records the commit and the DAG version.
	waitFor(t, "a run of a with its git revision", within, func() bool {
		return query(t, db, `SELECT git_revision || ' ' || dag_version FROM dag_runs WHERE dag_id = 'a'`) == first+" "+hashA
	}, errOut)
	// Airflow 3 calls the branch the DAG bundle and the commit its version.
	c := &v2Caller{t: t, base: url, hc: http.DefaultClient}
	tok := v2Token(t, url, "admin", adminPassword)
	if d := c.json(tok, "GET", "/api/v2/dags/a", "", 200); d["bundle_name"] != "master" || d["bundle_version"] != first {
		t.Errorf("v2 DAG: bundle %v at %v, want master at %s", d["bundle_name"], d["bundle_version"], first)
	}
	runs := c.json(tok, "GET", "/api/v2/dags/a/dagRuns", "", 200)["dag_runs"].([]any)
	if r := runs[0].(map[string]any); r["bundle_version"] != first || fmt.Sprint(r["dag_versions"].([]any)[0].(map[string]any)["bundle_version"]) != first {
		t.Errorf("v2 run: %v", r)
	}

	broken := repo.Commit(map[string]*string{"dags/a.yaml": gittest.S("a:\n  tasks: [broken\n")}, "broken")
	waitFor(t, "the broken revision", within, func() bool {
		b := current()
		return b.Revision == broken && ids(b) == "a,b" && len(b.Errors) == 1 && b.Errors[0].File == "a.yaml" && b.Errors[0].Line > 0
	}, errOut)
	if b := current(); b.DAGs[0].Hash != hashA {
		t.Fatalf("DAG a is not its last good version: %+v", b)
	}
	// The banner is read from the store, which the scheduler updates on its
	// next step after the load.
	waitFor(t, "the UI banner to show the import error with its revision", within, func() bool {
		page := get("/")
		return strings.Contains(page, "import error") && strings.Contains(page, broken[:12]) && strings.Contains(page, "keeps serving")
	}, errOut)

	fixed := repo.Commit(map[string]*string{"dags/a.yaml": dagYAML("a", "2"), "dags/b.yaml": nil}, "fix a, drop b")
	waitFor(t, "the fixed revision", within, func() bool {
		b := current()
		return b.Revision == fixed && ids(b) == "a" && len(b.Errors) == 0 && b.DAGs[0].Hash != hashA
	}, errOut)

	gittest.Git(t, repo.Work, "reset", "-q", "--hard", first)
	forced := repo.Commit(map[string]*string{"dags/c.yaml": dagYAML("c", "1")}, "rewritten history")
	waitFor(t, "the force-pushed revision", within, func() bool {
		b := current()
		return b.Revision == forced && ids(b) == "a,b,c" && len(b.Errors) == 0 && b.DAGs[0].Hash == hashA
	}, errOut)

	remote.Stop()
	waitFor(t, "the sync failure in /health", within, func() bool {
		var h struct {
			Git struct {
				Status   string `json:"status"`
				Failures int    `json:"consecutive_failures"`
				Revision string `json:"revision"`
			} `json:"git_sync"`
		}
		_ = json.Unmarshal([]byte(get("/health")), &h)
		return h.Git.Status == "unhealthy" && h.Git.Failures > 0 && h.Git.Revision == forced
	}, errOut)
	if page := get("/"); !strings.Contains(page, "Git sync failing") || !strings.Contains(page, forced[:12]) {
		t.Fatalf("the UI does not show the failing sync:\n%s", page)
	}
	if b := current(); b.Revision != forced || ids(b) != "a,b,c" {
		t.Fatalf("the last good revision stopped serving: %+v", b)
	}
	remote.Start()
	waitFor(t, "recovery", within, func() bool {
		h := get("/health")
		return strings.Contains(h, `"consecutive_failures":0`) && !strings.Contains(h, "unhealthy")
	}, errOut)

	if rotate != nil {
		rotate()
		after := repo.Commit(map[string]*string{"dags/c.yaml": nil}, "after the rotation")
		waitFor(t, "a commit after rotating the credential", within, func() bool {
			b := current()
			return b.Revision == after && ids(b) == "a,b"
		}, errOut)
	}
}

// startInProcess runs "updraft server" in this process on a free port
// with env on top of a fresh database and log folder, stops it when the
// test ends, and returns its URL and its log.
func startInProcess(tb testing.TB, env map[string]string) (string, *syncBuffer) {
	tb.Helper()
	p, log := startInProcessCtx(tb, env)
	return p.url, log
}

// inProcess is a server running in the test process.
type inProcess struct {
	url  string
	stop func() // stops it and waits (also done at cleanup)
}

// startInProcessCtx starts a server in-process with the test's settings
// over defaults (a fresh database, logs and git root, the bootstrap admin).
func startInProcessCtx(tb testing.TB, env map[string]string) (*inProcess, *syncBuffer) {
	tb.Helper()
	dir := tb.TempDir()
	all := map[string]string{"UPDRAFT_ADDR": "127.0.0.1:0", "UPDRAFT_DB": "sqlite:" + dir + "/u.db",
		"UPDRAFT_LOGS": dir + "/logs", "UPDRAFT_GIT_ROOT": dir + "/git",
		"UPDRAFT_ADMIN_USER": "admin", "UPDRAFT_ADMIN_PASSWORD": adminPassword}
	for k, v := range env {
		all[k] = v
	}
	errOut := &syncBuffer{}
	m := Main{Stdout: &syncBuffer{}, Stderr: errOut, Env: func(k string) string { return all[k] }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"server"}) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			tb.Error("server did not stop")
		}
	}
	tb.Cleanup(stop)
	return &inProcess{url: serverURL(tb, errOut, 10*time.Second), stop: stop}, errOut
}

// adminPost posts JSON as the bootstrap admin.
func adminPost(tb testing.TB, url, body string) (int, string) {
	tb.Helper()
	return adminSend(tb, http.MethodPost, url, body)
}

// adminSend sends a JSON body as the bootstrap admin.
func adminSend(tb testing.TB, method, url, body string) (int, string) {
	tb.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("admin", adminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// adminPassword is the bootstrap admin's password of in-process servers.
const adminPassword = "admin-password"

// adminGet fetches a page as the bootstrap admin.
func adminGet(url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("admin", adminPassword)
	return http.DefaultClient.Do(req)
}

// webhookServer serves a repository with one DAG and a server that polls
// it only hourly, so only the webhook can bring a commit in quickly.
type webhookServer struct {
	repo   *gittest.Repo
	url    string
	secret string
	log    *syncBuffer
}

func newWebhookServer(tb testing.TB) *webhookServer {
	repo := gittest.NewRepo(tb)
	repo.Commit(map[string]*string{"a.yaml": dagYAML("a", "0")}, "first")
	daemon := gittest.StartDaemon(tb, repo.Base)
	secret := filepath.Join(tb.TempDir(), "webhook-secret")
	if err := os.WriteFile(secret, []byte("hook-secret\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	url, log := startInProcess(tb, map[string]string{"UPDRAFT_GIT_URL": daemon.URL(), "UPDRAFT_GIT_INTERVAL": "1h",
		"UPDRAFT_DAGS_INTERVAL": "1h", "UPDRAFT_GIT_WEBHOOK_SECRET_FILE": secret})
	return &webhookServer{repo: repo, url: url, secret: "hook-secret", log: log}
}

// revision returns the revision the server's DAG bag was loaded from.
func (w *webhookServer) revision() string {
	resp, err := adminGet(w.url + "/dags.json")
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var out struct {
		Revision string `json:"revision"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out.Revision
}

// push commits a new version of the DAG and sends GitHub's push webhook.
func (w *webhookServer) push(tb testing.TB, n int) string {
	hash := w.repo.Commit(map[string]*string{"a.yaml": dagYAML("a", fmt.Sprint(n))}, fmt.Sprint("change ", n))
	body := fmt.Sprintf(`{"ref":"refs/heads/master","after":%q}`, hash)
	req, _ := http.NewRequest(http.MethodPost, w.url+"/api/v1/git/webhook", strings.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+gittest.Signature([]byte(body), w.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		tb.Fatalf("webhook: %s", resp.Status)
	}
	return hash
}

// A push webhook brings a commit in at once although the branch is only
// polled hourly.
func TestServerSyncsOnWebhook(t *testing.T) {
	w := newWebhookServer(t)
	waitFor(t, "the first revision", 10*time.Second, func() bool { return w.revision() != "" }, w.log)
	hash := w.push(t, 1)
	waitFor(t, "the pushed revision", 10*time.Second, func() bool { return w.revision() == hash }, w.log)
}

// BenchmarkPushToSchedulable measures the time from a push webhook to the
// new revision's DAGs being in the scheduler's DAG bag (ns/op per push).
func BenchmarkPushToSchedulable(b *testing.B) {
	w := newWebhookServer(b)
	for deadline := time.Now().Add(10 * time.Second); w.revision() == ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("no first revision")
		}
	}
	var worst time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		start := time.Now()
		b.StartTimer()
		hash := w.push(b, i+1)
		for w.revision() != hash {
			if time.Since(start) > 30*time.Second {
				b.Fatalf("revision %s not live: %s", hash, w.log.String())
			}
			time.Sleep(2 * time.Millisecond)
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Milliseconds()), "worst-ms")
}
