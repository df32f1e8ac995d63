package gitsync

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"updraft/gitsync/gittest"
)

func read(t *testing.T, rev Revision, name string) string {
	data, err := os.ReadFile(filepath.Join(rev.Dir, name))
	if err != nil {
		return "<missing>"
	}
	return string(data)
}

func newSyncer(t testing.TB, opts Options) *Syncer {
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
	r := gittest.NewRepo(t)
	first := r.Commit(map[string]*string{"dags/a.yaml": gittest.S("a: 1\n"), "dags/b.yaml": gittest.S("b: 1\n"), "README": gittest.S("not published")}, "one")
	d := gittest.StartDaemon(t, r.Base)
	sy := newSyncer(t, Options{URL: d.URL(), Path: "dags", Keep: 1})
	var published []string
	sy.OnPublish(func(rev Revision) { published = append(published, rev.Hash) })

	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	rev, _ := sy.Current()
	if rev.Hash != first || read(t, rev, "a.yaml") != "a: 1\n" || read(t, rev, "README") != "<missing>" {
		t.Fatalf("revision %+v", rev)
	}
	if target, _ := filepath.EvalSymlinks(sy.Link()); filepath.Base(target) != sy.revName(first) {
		t.Fatalf("link points at %s", target)
	}
	if changed, err := sy.Sync(ctx); err != nil || changed {
		t.Fatalf("unchanged branch: %v %v", changed, err)
	}
	// A new commit that changes one file and deletes another.
	second := r.Commit(map[string]*string{"dags/a.yaml": gittest.S("a: 2\n"), "dags/b.yaml": nil}, "two")
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("second sync: %v %v", changed, err)
	}
	rev, _ = sy.Current()
	if rev.Hash != second || read(t, rev, "a.yaml") != "a: 2\n" || read(t, rev, "b.yaml") != "<missing>" {
		t.Fatalf("after the second commit: %+v", rev)
	}
	// A force-push to rewritten history is followed.
	gittest.Git(t, r.Work, "reset", "-q", "--hard", first)
	forced := r.Commit(map[string]*string{"dags/c.yaml": gittest.S("c: 1\n")}, "rewritten")
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("after a force-push: %v %v", changed, err)
	}
	rev, _ = sy.Current()
	if rev.Hash != forced || read(t, rev, "c.yaml") != "c: 1\n" || read(t, rev, "a.yaml") != "a: 1\n" {
		t.Fatalf("after a force-push: %+v", rev)
	}
	// The remote goes away: the error is reported, the last good revision serves.
	d.Stop()
	if _, err := sy.Sync(ctx); err == nil {
		t.Fatal("no error with the remote gone")
	}
	st := sy.Status()
	if st.ConsecutiveFailures != 1 || st.LastError == "" || st.Current.Hash != forced || read(t, st.Current, "c.yaml") != "c: 1\n" {
		t.Fatalf("status with the remote gone: %+v", st)
	}
	d.Start()
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
	// A published folder removed behind the syncer's back is fetched again.
	if err := os.RemoveAll(filepath.Join(sy.opts.Root, sy.revName(forced))); err != nil {
		t.Fatal(err)
	}
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("after losing the published folder: %v %v", changed, err)
	}
	if rev, _ := sy.Current(); rev.Hash != forced || read(t, rev, "c.yaml") != "c: 1\n" {
		t.Fatalf("after losing the published folder: %+v", rev)
	}
	// A restarted syncer serves the published revision at once.
	again := newSyncer(t, Options{URL: d.URL(), Path: "dags", Root: sy.opts.Root})
	if rev, ok := again.Current(); !ok || rev.Hash != forced || read(t, rev, "c.yaml") != "c: 1\n" {
		t.Fatalf("after a restart: %+v %v", rev, ok)
	}
	// A restart with another folder of the repository does not serve the
	// tree exported for the old one; its first sync exports the new one.
	moved := newSyncer(t, Options{URL: d.URL(), Root: sy.opts.Root})
	if rev, ok := moved.Current(); ok {
		t.Fatalf("served a tree of another path: %+v", rev)
	}
	if changed, err := moved.Sync(ctx); err != nil || !changed {
		t.Fatalf("first sync with another path: %v %v", changed, err)
	}
	if rev, _ := moved.Current(); rev.Hash != forced || read(t, rev, "dags/c.yaml") != "c: 1\n" || read(t, rev, "README") != "not published" {
		t.Fatalf("with the whole repository: %+v", rev)
	}
}

// Smart HTTP with basic auth: the password is read from its file at each
// attempt, so a rotated credential works without a restart; a wrong one
// fails clearly; a deleted branch is an error and the last good revision
// stays.
func TestHTTPBasicAuthRotationAndDeletedBranch(t *testing.T) {
	ctx := context.Background()
	r := gittest.NewRepo(t)
	r.Commit(map[string]*string{"a.yaml": gittest.S("a: 1\n")}, "one")
	srv := gittest.StartHTTP(t, r.Base, "updraft", "first-secret")
	secret := filepath.Join(t.TempDir(), "password")
	os.WriteFile(secret, []byte("first-secret\n"), 0o600)
	sy := newSyncer(t, Options{URL: srv.URL(), Auth: Auth{Username: "updraft", PasswordFile: secret}})
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	srv.SetPassword("rotated-secret")
	second := r.Commit(map[string]*string{"a.yaml": gittest.S("a: 2\n")}, "two")
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
	gittest.Git(t, filepath.Join(r.Base, "repo.git"), "update-ref", "-d", "refs/heads/master")
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
	r := gittest.NewRepo(t)
	files := func(n int) map[string]*string {
		out := map[string]*string{}
		for i := 0; i < 20; i++ {
			out[fmt.Sprintf("f%02d.yaml", i)] = gittest.S(fmt.Sprintf("revision: %d\n", n))
		}
		return out
	}
	r.Commit(files(0), "zero")
	d := gittest.StartDaemon(t, r.Base)
	sy := newSyncer(t, Options{URL: d.URL(), Keep: 1})
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
		r.Commit(files(n), fmt.Sprint(n))
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
	r := gittest.NewRepo(t)
	r.Commit(map[string]*string{"a.yaml": gittest.S("a: 1\n")}, "one")
	d := gittest.StartDaemon(t, r.Base)
	sy := newSyncer(t, Options{URL: d.URL(), Interval: time.Hour})
	published := make(chan string, 10)
	sy.OnPublish(func(rev Revision) { published <- rev.Hash })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- sy.Run(ctx) }()
	<-published
	second := r.Commit(map[string]*string{"a.yaml": gittest.S("a: 2\n")}, "two")
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

// SSH through a throwaway sshd: key auth with strict known_hosts checking
// (a wrong host key is refused), a new commit, a rotated key (the key file
// is re-read at each attempt), and the server going away and coming back.
func TestSSHKeyAuthAndKnownHosts(t *testing.T) {
	ctx := context.Background()
	r := gittest.NewRepo(t)
	first := r.Commit(map[string]*string{"dags/a.yaml": gittest.S("a: 1\n")}, "one")
	sshd := gittest.StartSSHD(t, r.Base)
	key := filepath.Join(t.TempDir(), "id_ed25519")
	copyFile(t, sshd.KeyFile, key)
	copyFile(t, sshd.KeyFile+".pub", key+".pub")
	sy := newSyncer(t, Options{URL: sshd.URL(), Path: "dags", Auth: Auth{SSHKeyFile: key, KnownHostsFile: sshd.KnownHosts}})
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("first sync: %v %v", changed, err)
	}
	if rev, _ := sy.Current(); rev.Hash != first || read(t, rev, "a.yaml") != "a: 1\n" {
		t.Fatalf("revision %+v", rev)
	}

	// A known_hosts file holding another key for this host is refused.
	other := filepath.Join(t.TempDir(), "other")
	gittest.NewKey(t, other)
	pub, _ := os.ReadFile(other + ".pub")
	hosts, _ := os.ReadFile(sshd.KnownHosts)
	wrong := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(wrong, []byte(strings.Fields(string(hosts))[0]+" "+strings.Join(strings.Fields(string(pub))[:2], " ")+"\n"), 0o644)
	impostor := newSyncer(t, Options{URL: sshd.URL(), Auth: Auth{SSHKeyFile: key, KnownHostsFile: wrong}})
	if _, err := impostor.Sync(ctx); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("a wrong host key was accepted: %v", err)
	}

	// The server now accepts only a new key: the old one fails until the
	// key file is replaced, with no new Syncer.
	second := r.Commit(map[string]*string{"dags/a.yaml": gittest.S("a: 2\n")}, "two")
	rotated := filepath.Join(t.TempDir(), "rotated")
	gittest.NewKey(t, rotated)
	sshd.Authorize(rotated)
	if _, err := sy.Sync(ctx); err == nil {
		t.Fatal("the retired key still works")
	}
	copyFile(t, rotated, key)
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("after rotating the key: %v %v", changed, err)
	}
	if rev, _ := sy.Current(); rev.Hash != second || read(t, rev, "a.yaml") != "a: 2\n" {
		t.Fatalf("revision %+v", rev)
	}

	// The server goes away and comes back; a commit made meanwhile arrives.
	sshd.Stop()
	third := r.Commit(map[string]*string{"dags/b.yaml": gittest.S("b: 1\n")}, "three")
	if _, err := sy.Sync(ctx); err == nil {
		t.Fatal("no error with sshd gone")
	}
	if rev, _ := sy.Current(); rev.Hash != second {
		t.Fatalf("the last good revision did not keep serving: %+v", rev)
	}
	sshd.Start()
	if changed, err := sy.Sync(ctx); err != nil || !changed {
		t.Fatalf("sshd back: %v %v", changed, err)
	}
	if rev, _ := sy.Current(); rev.Hash != third || read(t, rev, "b.yaml") != "b: 1\n" {
		t.Fatalf("revision %+v", rev)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// Links are checked out as links, wherever they point (the DAG loader
// follows them only inside the revision), and no write goes through one.
func TestSymlinksAreCheckedOutAsLinks(t *testing.T) {
	ctx := context.Background()
	r := gittest.NewRepo(t)
	outside := filepath.Join(t.TempDir(), "outside")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(r.Work, "dags", "sub"), 0o755))
	must(os.WriteFile(filepath.Join(r.Work, "dags", "sub", "real.yaml"), []byte("real: 1\n"), 0o644))
	must(os.Symlink("sub/real.yaml", filepath.Join(r.Work, "dags", "inside.yaml")))
	must(os.Symlink("/proc/self/environ", filepath.Join(r.Work, "dags", "environ.yaml")))
	must(os.Symlink("../../../../../../../etc/passwd", filepath.Join(r.Work, "dags", "climb.yaml")))
	must(os.Symlink(outside, filepath.Join(r.Work, "dags", "outdir")))
	r.Commit(nil, "links")
	d := gittest.StartDaemon(t, r.Base)
	sy := newSyncer(t, Options{URL: d.URL(), Path: "dags", Keep: 1})
	if _, err := sy.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	rev, _ := sy.Current()
	for name, want := range map[string]string{"inside.yaml": "sub/real.yaml", "environ.yaml": "/proc/self/environ",
		"climb.yaml": "../../../../../../../etc/passwd", "outdir": outside} {
		got, err := os.Readlink(filepath.Join(rev.Dir, name))
		if err != nil || got != want {
			t.Errorf("%s: link to %q (%v), want %q", name, got, err, want)
		}
	}
	if read(t, rev, "inside.yaml") != "real: 1\n" {
		t.Error("a link inside the revision does not resolve")
	}
	if _, err := os.Lstat(outside); !os.IsNotExist(err) {
		t.Errorf("something was written outside the checkout: %v", err)
	}
}
