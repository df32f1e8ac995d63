// Package gittest serves throwaway git repositories on loopback for tests:
// a bare repository with a working clone that commits and pushes, served
// by git daemon (git://) or git http-backend (smart HTTP).
package gittest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Repo is a bare repository plus a working clone that pushes to it.
type Repo struct {
	t    testing.TB
	Base string // folder holding repo.git
	Work string // the working clone
}

// Git runs git in dir and returns its trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
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

// NewRepo creates an empty repository with a master branch.
func NewRepo(t testing.TB) *Repo {
	base := t.TempDir()
	Git(t, base, "init", "-q", "--bare", "-b", "master", "repo.git")
	Git(t, filepath.Join(base, "repo.git"), "config", "http.receivepack", "true")
	work := filepath.Join(t.TempDir(), "work")
	Git(t, base, "clone", "-q", filepath.Join(base, "repo.git"), work)
	Git(t, work, "checkout", "-q", "-b", "master")
	return &Repo{t: t, Base: base, Work: work}
}

// Commit replaces the working tree's files (nil content deletes) and pushes.
func (r *Repo) Commit(files map[string]*string, msg string) string {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.Work, name)
		if content == nil {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(*content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	Git(r.t, r.Work, "add", "-A")
	Git(r.t, r.Work, "commit", "-q", "--allow-empty", "-m", msg)
	Git(r.t, r.Work, "push", "-q", "-f", "origin", "HEAD:master")
	return Git(r.t, r.Work, "rev-parse", "HEAD")
}

// S returns a pointer to v, for Commit.
func S(v string) *string { return &v }

// Daemon serves the repository with git daemon on a fixed loopback port.
type Daemon struct {
	t    testing.TB
	base string
	port int
	cmd  *exec.Cmd
	proc *server
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartDaemon serves base until the test ends; Stop and Start it to
// take the remote away and bring it back on the same port.
func StartDaemon(t testing.TB, base string) *Daemon {
	d := &Daemon{t: t, base: base, port: freePort(t)}
	d.Start()
	t.Cleanup(d.Stop)
	return d
}

// Start starts the daemon.
func (d *Daemon) Start() {
	// git-daemon itself, not the git wrapper: killing the wrapper would
	// leave the daemon listening.
	d.cmd = exec.Command(filepath.Join(Git(d.t, d.base, "--exec-path"), "git-daemon"), "--verbose", "--reuseaddr",
		"--export-all", "--base-path="+d.base, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", d.port), d.base)
	d.proc = startServer(d.t, d.cmd, "Ready to rumble")
}

// Stop kills the daemon.
func (d *Daemon) Stop() {
	d.proc.stop()
}

// URL is the repository's git:// address.
func (d *Daemon) URL() string { return fmt.Sprintf("git://127.0.0.1:%d/repo.git", d.port) }

// server is a started server process and its log.
type server struct {
	cmd    *exec.Cmd
	log    *lockedBuffer
	exited chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer starts cmd and waits until its log says ready. A server that
// exits first (its port taken by another process, say) fails the test with
// its log, rather than letting the test talk to whatever holds the port.
func startServer(tb testing.TB, cmd *exec.Cmd, ready string) *server {
	tb.Helper()
	s := &server{cmd: cmd, log: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = s.log
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { cmd.Wait(); close(s.exited) }()
	deadline := time.After(10 * time.Second)
	for !strings.Contains(s.log.String(), ready) {
		select {
		case <-s.exited:
			tb.Fatalf("%s exited:\n%s", filepath.Base(cmd.Path), s.log.String())
		case <-deadline:
			s.stop()
			tb.Fatalf("%s did not start:\n%s", filepath.Base(cmd.Path), s.log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return s
}

func (s *server) stop() {
	if s == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
}
