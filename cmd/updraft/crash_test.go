package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// buildBinary builds updraft for the process-level tests, as the
// container image does (static, cgo off), so every test that builds it
// shares one build in the cache.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "updraft")
	cmd := exec.Command("go", "build", "-tags", "minicore_disabled", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// buildBinaryB builds the binary as "make build" ships it (stripped,
// -trimpath), for benchmarks.
func buildBinaryB(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "updraft")
	cmd := exec.Command("go", "build", "-tags", "minicore_disabled", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// serverURL waits for a server's "url=" log line and returns the URL it
// listens on; no such line within the time fails the test.
func serverURL(tb testing.TB, out fmt.Stringer, within time.Duration) string {
	tb.Helper()
	re := regexp.MustCompile(`url=(http://\S+)`)
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
	}
	tb.Fatalf("server did not start:\n%s", out.String())
	return ""
}

// startAdminServer starts the binary's server with the bootstrap admin
// and returns its process (killed at the end of the test) and URL.
func startAdminServer(tb testing.TB, bin string, out *syncBuffer, args ...string) (*exec.Cmd, string) {
	tb.Helper()
	cmd := exec.Command(bin, append([]string{"server", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(), "UPDRAFT_ADMIN_USER=admin", "UPDRAFT_ADMIN_PASSWORD="+adminPassword)
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, serverURL(tb, out, 30*time.Second)
}

type serverProc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func startServer(t *testing.T, bin, dir string) *serverProc {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(bin, "server", "--dags", filepath.Join(dir, "dags"), "--db", "sqlite:"+filepath.Join(dir, "u.db"),
		"--logs", filepath.Join(dir, "logs"), "--addr", "127.0.0.1:0", "--dags-interval", "100ms")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &serverProc{cmd: cmd, out: &out}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool, logs ...*syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out string
	for _, l := range logs {
		out += l.String()
	}
	t.Fatalf("timed out waiting for %s\n%s", what, out)
}

func lines(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

func query(t *testing.T, dir, q string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "u.db")+"?_pragma=busy_timeout(5000)&mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out string
	if err := db.QueryRowContext(context.Background(), q).Scan(&out); err != nil {
		return ""
	}
	return out
}

// SIGKILL the server while a task runs, restart it: the task is adopted,
// every run finishes, and no try runs twice.
func TestKilledServerResumes(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	marks := filepath.Join(dir, "marks")
	os.MkdirAll(marks, 0o755)
	writeFile(t, filepath.Join(dir, "dags", "crash.yaml"), fmt.Sprintf(`
crash:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: first, operator: BashOperator, bash_command: "echo run >> %[1]s/first; sleep 3"}
    - {task_id: second, operator: BashOperator, bash_command: "echo run >> %[1]s/second", dependencies: [first]}
lost:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: victim, operator: BashOperator, bash_command: "echo run >> %[1]s/victim; if [ $(wc -l < %[1]s/victim) -lt 2 ]; then sleep 30; fi", retries: 1, retry_delay: 0}
`, marks))
	s := startServer(t, bin, dir)
	for _, id := range []string{"crash", "lost"} {
		code, out, errOut := run(t, map[string]string{"UPDRAFT_DB": "sqlite:" + filepath.Join(dir, "u.db"), "UPDRAFT_DAGS": filepath.Join(dir, "dags")},
			"dags", "trigger", id, "--logical-date", "2024-01-01")
		if code != 0 {
			t.Fatalf("trigger %s: %s %s", id, out, errOut)
		}
	}
	// Started, and their processes recorded (the handle comes with the
	// try's running event, a moment after the process begins).
	waitFor(t, "both tasks to start", 30*time.Second, func() bool {
		return lines(filepath.Join(marks, "first")) == 1 && lines(filepath.Join(marks, "victim")) == 1 &&
			strings.HasPrefix(query(t, dir, `SELECT handle FROM task_tries WHERE task_id = 'victim'`), "pid:")
	}, s.out)
	_ = s
	// Kill the server, and with it (by hand) the "victim" task's process group.
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()
	pid := query(t, dir, `SELECT handle FROM task_tries WHERE task_id = 'victim'`)
	if n, err := fmt.Sscanf(pid, "pid:%d", new(int)); n != 1 || err != nil {
		t.Fatalf("victim's handle %q", pid)
	}
	var victim int
	fmt.Sscanf(pid, "pid:%d", &victim)
	syscall.Kill(-victim, syscall.SIGKILL)

	restarted := startServer(t, bin, dir)
	waitFor(t, "both runs to finish", 60*time.Second, func() bool {
		return query(t, dir, `SELECT group_concat(state, ',') FROM (SELECT state FROM dag_runs ORDER BY dag_id)`) == "success,success"
	})
	if n := lines(filepath.Join(marks, "first")); n != 1 {
		t.Errorf("first ran %d times", n)
	}
	if n := lines(filepath.Join(marks, "second")); n != 1 {
		t.Errorf("second ran %d times", n)
	}
	if got := query(t, dir, `SELECT group_concat(task_id || ':' || try_number || ':' || state, ' ') FROM (SELECT * FROM task_tries ORDER BY task_id, try_number)`); got != "first:1:success second:1:success victim:1:failed victim:2:success" {
		t.Errorf("tries: %s\n%s", got, restarted.out.String())
	}
	if reason := query(t, dir, `SELECT reason FROM task_tries WHERE task_id = 'victim' AND try_number = 1`); !strings.Contains(reason, "process is gone") {
		t.Errorf("victim's first try reason %q", reason)
	}
	if !strings.Contains(restarted.out.String(), "adopted a try left running") {
		t.Errorf("the restarted server did not adopt the running try:\n%s", restarted.out.String())
	}
}
