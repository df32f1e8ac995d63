package gitsync

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// repo is a bare repository plus a working clone that pushes to it.
type repo struct {
	t    *testing.T
	base string // folder holding repo.git
	work string
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newRepo(t *testing.T) *repo {
	base := t.TempDir()
	runGit(t, base, "init", "-q", "--bare", "-b", "master", "repo.git")
	runGit(t, filepath.Join(base, "repo.git"), "config", "http.receivepack", "true")
	work := filepath.Join(t.TempDir(), "work")
	runGit(t, base, "clone", "-q", filepath.Join(base, "repo.git"), work)
	runGit(t, work, "checkout", "-q", "-b", "master")
	return &repo{t: t, base: base, work: work}
}

// commit replaces the working tree's files (nil content deletes) and pushes.
func (r *repo) commit(files map[string]*string, msg string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.work, name)
		if content == nil {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(*content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	runGit(r.t, r.work, "add", "-A")
	runGit(r.t, r.work, "commit", "-q", "--allow-empty", "-m", msg)
	runGit(r.t, r.work, "push", "-q", "-f", "origin", "HEAD:master")
	return runGit(r.t, r.work, "rev-parse", "HEAD")
}

func s(v string) *string { return &v }

// daemon serves the repository with git daemon on a fixed loopback port.
type daemon struct {
	t    *testing.T
	base string
	port int
	cmd  *exec.Cmd
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startDaemon(t *testing.T, base string, port int) *daemon {
	d := &daemon{t: t, base: base, port: port}
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *daemon) start() {
	// git-daemon itself, not the git wrapper: killing the wrapper would
	// leave the daemon listening.
	d.cmd = exec.Command(filepath.Join(runGit(d.t, d.base, "--exec-path"), "git-daemon"), "--reuseaddr", "--export-all", "--base-path="+d.base, "--listen=127.0.0.1",
		fmt.Sprintf("--port=%d", d.port), d.base)
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", d.port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.t.Fatal("git daemon did not start")
}

func (d *daemon) stop() {
	if d.cmd != nil && d.cmd.Process != nil {
		d.cmd.Process.Kill()
		d.cmd.Wait()
		d.cmd = nil
	}
}

func (d *daemon) url() string { return fmt.Sprintf("git://127.0.0.1:%d/repo.git", d.port) }

func read(t *testing.T, rev Revision, name string) string {
	data, err := os.ReadFile(filepath.Join(rev.Dir, name))
	if err != nil {
		return "<missing>"
	}
	return string(data)
}

func newSyncer(t *testing.T, opts Options) *Syncer {
	if opts.Root == "" {
		opts.Root = t.TempDir()
	}
	if opts.Branch == "" {
		opts.Branch = "master"
	}
	sy, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return sy
}

func TestFollowsBranchOverGitDaemon(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	first := r.commit(map[string]*string{"dags/a.yaml": s("a: 1\n"), "dags/b.yaml": s("b: 1\n"), "README": s("not published")}, "one")
	d := startDaemon(t, r.base, freePort(t))
	sy := newSyncer(t, Options{URL: d.url(), Path: "dags", Keep: 1})
	var published []string
	sy.OnPublish(func(rev Revision) { published = append(published, rev.Hash) })

	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	rev, _ := sy.Current()
	if rev.Hash != first || read(t, rev, "a.yaml") != "a: 1\n" || read(t, rev, "README") != "<missing>" {
		t.Fatalf("revision %+v", rev)
	}
	if target, _ := filepath.EvalSymlinks(sy.Link()); !strings.HasSuffix(target, "rev-"+first) {
		t.Fatalf("link points at %s", target)
	}
	if changed, err := sy.Sync(ctx); err != nil || changed {
		t.Fatalf("unchanged branch: %v %v", changed, err)
	}
	// A new commit that changes one file and deletes another.
	second := r.commit(map[string]*string{"dags/a.yaml": s("a: 2\n"), "dags/b.yaml": nil}, "two")
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("second sync: %v %v", changed, err)
	}
	rev, _ = sy.Current()
	if rev.Hash != second || read(t, rev, "a.yaml") != "a: 2\n" || read(t, rev, "b.yaml") != "<missing>" {
		t.Fatalf("after the second commit: %+v", rev)
	}
	// A force-push to rewritten history is followed.
	runGit(t, r.work, "reset", "-q", "--hard", first)
	forced := r.commit(map[string]*string{"dags/c.yaml": s("c: 1\n")}, "rewritten")
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("after a force-push: %v %v", changed, err)
	}
	rev, _ = sy.Current()
	if rev.Hash != forced || read(t, rev, "c.yaml") != "c: 1\n" || read(t, rev, "a.yaml") != "a: 1\n" {
		t.Fatalf("after a force-push: %+v", rev)
	}
	// The remote goes away: the error is reported, the last good revision serves.
	d.stop()
	if _, err := sy.Sync(ctx); err == nil {
		t.Fatal("no error with the remote gone")
	}
	st := sy.Status()
	if st.ConsecutiveFailures != 1 || st.LastError == "" || st.Current.Hash != forced || read(t, st.Current, "c.yaml") != "c: 1\n" {
		t.Fatalf("status with the remote gone: %+v", st)
	}
	d.start()
	if _, err := sy.Sync(ctx); err != nil {
		t.Fatalf("remote back: %v", err)
	}
	if st := sy.Status(); st.ConsecutiveFailures != 0 || st.LastError != "" {
		t.Fatalf("status after recovery: %+v", st)
	}
	if strings.Join(published, ",") != strings.Join([]string{first, second, forced}, ",") {
		t.Fatalf("published %v", published)
	}
	// Old revisions are cleaned up (Keep 1): the current one and one more.
	entries, _ := filepath.Glob(filepath.Join(sy.opts.Root, "rev-*"))
	if len(entries) != 2 {
		t.Fatalf("revisions on disk: %v", entries)
	}
	// A restarted syncer serves the published revision at once.
	again := newSyncer(t, Options{URL: d.url(), Path: "dags", Root: sy.opts.Root})
	if rev, ok := again.Current(); !ok || rev.Hash != forced || read(t, rev, "c.yaml") != "c: 1\n" {
		t.Fatalf("after a restart: %+v %v", rev, ok)
	}
}

// Smart HTTP with basic auth: the password is read from its file at each
// attempt, so a rotated credential works without a restart; a wrong one
// fails clearly; a deleted branch is an error and the last good revision
// stays.
func TestHTTPBasicAuthRotationAndDeletedBranch(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	r.commit(map[string]*string{"a.yaml": s("a: 1\n")}, "one")
	var password atomic.Value
	password.Store("first-secret")
	backend := &cgi.Handler{Path: "/usr/lib/git-core/git-http-backend",
		Env: []string{"GIT_PROJECT_ROOT=" + r.base, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		if !ok || user != "updraft" || pass != password.Load().(string) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, req)
	}))
	defer srv.Close()
	secret := filepath.Join(t.TempDir(), "password")
	os.WriteFile(secret, []byte("first-secret\n"), 0o600)
	sy := newSyncer(t, Options{URL: srv.URL + "/repo.git", Auth: Auth{Username: "updraft", PasswordFile: secret}})
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	password.Store("rotated-secret")
	second := r.commit(map[string]*string{"a.yaml": s("a: 2\n")}, "two")
	if _, err := sy.Sync(ctx); err == nil || !strings.Contains(strings.ToLower(err.Error()), "auth") {
		t.Fatalf("stale credential: %v", err)
	}
	os.WriteFile(secret, []byte("rotated-secret\n"), 0o600)
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("after rotating the credential: %v %v", changed, err)
	}
	if rev, _ := sy.Current(); rev.Hash != second || read(t, rev, "a.yaml") != "a: 2\n" {
		t.Fatalf("revision %+v", rev)
	}
	runGit(t, filepath.Join(r.base, "repo.git"), "update-ref", "-d", "refs/heads/master")
	if _, err := sy.Sync(ctx); err == nil || !strings.Contains(err.Error(), `branch "master" not found`) {
		t.Fatalf("deleted branch: %v", err)
	}
	if rev, _ := sy.Current(); rev.Hash != second || read(t, rev, "a.yaml") != "a: 2\n" {
		t.Fatalf("the last good revision did not keep serving: %+v", rev)
	}
}

// A reader that resolves the link once per read never sees files of two
// revisions, while commits are published continuously.
func TestReadersNeverSeeMixedRevisions(t *testing.T) {
	ctx := context.Background()
	r := newRepo(t)
	files := func(n int) map[string]*string {
		out := map[string]*string{}
		for i := 0; i < 20; i++ {
			out[fmt.Sprintf("f%02d.yaml", i)] = s(fmt.Sprintf("revision: %d\n", n))
		}
		return out
	}
	r.commit(files(0), "zero")
	d := startDaemon(t, r.base, freePort(t))
	sy := newSyncer(t, Options{URL: d.url(), Keep: 1})
	if _, err := sy.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var reads, mixed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			dir, err := filepath.EvalSymlinks(sy.Link())
			if err != nil {
				continue
			}
			seen := map[string]bool{}
			complete := true
			for i := 0; i < 20; i++ {
				data, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", i)))
				if err != nil {
					complete = false // removed while read (older than Keep): not a mix
					break
				}
				seen[string(data)] = true
			}
			if complete {
				reads.Add(1)
				if len(seen) != 1 {
					mixed.Add(1)
				}
			}
		}
	}()
	for n := 1; n <= 15; n++ {
		r.commit(files(n), fmt.Sprint(n))
		if _, err := sy.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if reads.Load() < 10 || mixed.Load() != 0 {
		t.Fatalf("%d complete reads, %d mixed", reads.Load(), mixed.Load())
	}
	if rev, _ := sy.Current(); read(t, rev, "f07.yaml") != "revision: 15\n" {
		t.Fatalf("final revision: %+v", rev)
	}
}

// Run syncs on its interval and at once when triggered.
func TestRunAndTrigger(t *testing.T) {
	r := newRepo(t)
	r.commit(map[string]*string{"a.yaml": s("a: 1\n")}, "one")
	d := startDaemon(t, r.base, freePort(t))
	sy := newSyncer(t, Options{URL: d.url(), Interval: time.Hour})
	published := make(chan string, 10)
	sy.OnPublish(func(rev Revision) { published <- rev.Hash })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sy.Run(ctx) }()
	<-published
	second := r.commit(map[string]*string{"a.yaml": s("a: 2\n")}, "two")
	sy.Trigger() // a webhook: no waiting for the hour
	select {
	case got := <-published:
		if got != second {
			t.Fatalf("published %s, want %s", got, second)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("trigger did not sync")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestOptionsAndRedaction(t *testing.T) {
	if _, err := New(Options{URL: "x", Branch: "b", Root: t.TempDir(), Auth: Auth{SSHKeyFile: "k"}}); err == nil {
		t.Fatal("an SSH key without known_hosts was accepted")
	}
	if got := redact("https://bob:hunter2@example.com/r.git"); strings.Contains(got, "hunter2") {
		t.Fatalf("redact: %s", got)
	}
}
