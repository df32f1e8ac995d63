package main

import (
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// securityServer is a real updraft binary serving a prepared folder.
type securityServer struct {
	cmd *osexec.Cmd
	url string
	out *syncBuffer
}

// startBinary starts "updraft server" with exactly env (no variable of the
// test's own environment), as the user nobody when the tests run as root
// and asNobody is set (dir is then made theirs).
func startBinary(t *testing.T, bin, dir string, env []string, asNobody bool, args ...string) *securityServer {
	t.Helper()
	var out syncBuffer
	cmd := osexec.Command(bin, append([]string{"server", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir}, env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if asNobody && os.Geteuid() == 0 {
		for p := filepath.Dir(bin); p != "/"; p = filepath.Dir(p) {
			os.Chmod(p, 0o755) // let nobody reach the binary (temp folders are 0700)
		}
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				os.Lchown(p, 65534, 65534)
			}
			return nil
		})
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &securityServer{cmd: cmd, url: serverURL(t, &out, 30*time.Second), out: &out}
}

// get fetches a path as the bootstrap admin and returns status and body.
func (s *securityServer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := adminGet(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// peakRSS is a process's peak resident memory in MB.
func peakRSS(t *testing.T, pid int) float64 {
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status)
	if m == nil {
		t.Fatalf("no VmHWM for %d", pid)
	}
	kb, _ := strconv.Atoi(string(m[1]))
	return float64(kb) / 1024
}

// A committer's hostile DAG folder, served by the real server (as an
// unprivileged user, as in production): every hostile entry is an import
// error naming the file and why, the good DAG loads, no page shows the
// server's environment or database, and the server stays healthy and small.
func TestHostileDAGFolderServer(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	dagDir := filepath.Join(dir, "dags")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(dagDir, 0o755))
	writeFile(t, filepath.Join(dagDir, "good.yaml"), "good:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n")
	writeFile(t, filepath.Join(dir, "outside.yaml"), "outside:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n")
	must(os.Symlink("/proc/self/environ", filepath.Join(dagDir, "environ.yaml")))
	must(os.Symlink("/dev/zero", filepath.Join(dagDir, "zero.yaml")))
	must(os.Symlink("../outside.yaml", filepath.Join(dagDir, "outside.yaml")))
	must(os.Symlink("../u.db", filepath.Join(dagDir, "db.yaml")))
	must(syscall.Mkfifo(filepath.Join(dagDir, "fifo.yaml"), 0o644))
	f, err := os.Create(filepath.Join(dagDir, "sparse.yaml"))
	must(err)
	must(f.Truncate(4 << 30))
	f.Close()
	must(os.Symlink("loop2.yaml", filepath.Join(dagDir, "loop.yaml")))
	must(os.Symlink("loop.yaml", filepath.Join(dagDir, "loop2.yaml")))
	writeFile(t, filepath.Join(dagDir, "noread.yaml"), "noread:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n")
	must(os.Chmod(filepath.Join(dagDir, "noread.yaml"), 0))
	const secret = "the-admin-secret-4711"
	s := startBinary(t, bin, dir, []string{"UPDRAFT_ADMIN_USER=admin", "UPDRAFT_ADMIN_PASSWORD=" + adminPassword,
		"UPDRAFT_CONN_WAREHOUSE=postgres://loader:" + secret + "@db.example.com/dw"}, true,
		"--dags", dagDir, "--db", "sqlite:"+filepath.Join(dir, "u.db"), "--logs", filepath.Join(dir, "logs"))

	want := map[string]string{
		"environ.yaml": "outside the DAG folder", "zero.yaml": "outside the DAG folder", "outside.yaml": "outside the DAG folder",
		"db.yaml": "outside the DAG folder", "fifo.yaml": "named pipe", "sparse.yaml": "over the 1048576 byte limit",
		"loop.yaml": "loop of symbolic links", "loop2.yaml": "loop of symbolic links",
	}
	if os.Geteuid() != 0 || s.cmd.SysProcAttr != nil {
		want["noread.yaml"] = "permission denied"
	}
	var body string
	waitFor(t, "the import errors", 30*time.Second, func() bool {
		_, body = s.get(t, "/api/v1/importErrors?limit=100")
		return strings.Count(body, `"filename"`) >= len(want)
	}, s.out)
	for file, reason := range want {
		if !regexp.MustCompile(regexp.QuoteMeta(file) + `"[^}]*` + regexp.QuoteMeta(reason)).MatchString(body) {
			t.Errorf("%s: no import error with %q in\n%s", file, reason, body)
		}
	}
	if code, dagsBody := s.get(t, "/api/v1/dags"); code != 200 || !strings.Contains(dagsBody, `"dag_id":"good"`) || strings.Contains(dagsBody, `"dag_id":"outside"`) {
		t.Errorf("dags: %d %s", code, dagsBody)
	}
	// No page shows what the links point at.
	for file := range want {
		_, page := s.get(t, "/files/"+base64.RawURLEncoding.EncodeToString([]byte(file)))
		for _, leak := range []string{secret, adminPassword, "UPDRAFT_", "SQLite format"} {
			if strings.Contains(page, leak) {
				t.Errorf("the page of %s shows %q", file, leak)
			}
		}
	}
	if code, health := s.get(t, "/health"); code != 200 || strings.Contains(health, "unhealthy") {
		t.Errorf("health: %d %s", code, health)
	}
	mb := peakRSS(t, s.cmd.Process.Pid)
	t.Logf("server peak RSS %.0f MB, running as uid %d", mb, s.cmd.SysProcAttr.Credential.Uid)
	if mb > 200 {
		t.Errorf("the server peaked at %.0f MB", mb)
	}
}

// A task that prints its environment and a secret variable: the log file
// on disk (0600), its copy in the database, the rendered fields, the API
// and the UI show neither the server's secrets nor the variable, and the
// old value stays masked after the variable is rotated.
func TestTaskSecretsNeverReachLogs(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	writeFile(t, filepath.Join(dagDir, "leak.yaml"), `
leak:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - task_id: print
      operator: BashOperator
      bash_command: 'env; echo "token={{ var.value.api_token }}"; echo "json={\"t\": \"{{ var.value.api_token }}\"}"'
`)
	db := "sqlite:" + filepath.Join(dir, "u.db")
	const (
		token    = "tok-3f9a-secret-value"
		connPass = "conn-pass-8c1d"
		hookKey  = "hookkey5bd2e7f1a9c3"
	)
	if code, _, errOut := run(t, nil, "variables", "set", "api_token", token, "--secret", "--db", db); code != 0 {
		t.Fatalf("variables set: %s", errOut)
	}
	env := []string{"UPDRAFT_ADMIN_USER=admin", "UPDRAFT_ADMIN_PASSWORD=" + adminPassword,
		"UPDRAFT_CONN_WAREHOUSE=postgres://loader:" + connPass + "@db.example.com/dw",
		"UPDRAFT_MATTERMOST_WEBHOOK_URL=http://127.0.0.1:1/hooks/" + hookKey}
	s := startBinary(t, bin, dir, env, false, "--dags", dagDir, "--db", db, "--logs", filepath.Join(dir, "logs"), "--log-copies", "on", "--dags-interval", "100ms")
	if code, body := adminPost(t, s.url+"/api/v1/dags/leak/dagRuns", `{"dag_run_id": "r1"}`); code != 200 {
		t.Fatalf("trigger: %d %s", code, body)
	}
	waitFor(t, "the run to end", 60*time.Second, func() bool {
		_, body := s.get(t, "/api/v1/dags/leak/dagRuns/r1")
		return strings.Contains(body, `"state":"success"`)
	}, s.out)
	leaks := []string{adminPassword, token, connPass, hookKey, "UPDRAFT_"}
	check := func(where, text string) {
		t.Helper()
		for _, l := range leaks {
			if strings.Contains(text, l) {
				t.Errorf("%s holds %q", where, l)
			}
		}
	}
	var logFile string
	filepath.WalkDir(filepath.Join(dir, "logs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".log") {
			logFile = p
		}
		if err == nil && d.IsDir() {
			if fi, _ := d.Info(); fi.Mode().Perm() != 0o700 {
				t.Errorf("log folder %s has mode %v", p, fi.Mode().Perm())
			}
		}
		return nil
	})
	disk, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(logFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("log file mode %v", fi.Mode().Perm())
	}
	check("the log on disk", string(disk))
	t.Logf("log on disk:\n%s", disk)
	for _, want := range []string{"token=***", `json={"t": "***"}`, "AIRFLOW_CTX_DAG_ID=leak", "PATH="} {
		if !strings.Contains(string(disk), want) {
			t.Errorf("the log lacks %q:\n%s", want, disk)
		}
	}
	sqldb, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "u.db")+"?_pragma=busy_timeout(5000)&mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer sqldb.Close()
	for _, q := range []string{`SELECT COALESCE(group_concat(CAST(data AS TEXT), ''), '') FROM log_chunks`, `SELECT group_concat(rendered || reason, '') FROM task_tries`,
		`SELECT COALESCE(group_concat(detail, ''), '') FROM audit_log`} {
		var text string
		if err := sqldb.QueryRow(q).Scan(&text); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		check(q, text)
		if strings.Contains(q, "log_chunks") && !strings.Contains(text, "token=***") {
			t.Errorf("the database copy of the log lacks the masked line: %q", text)
		}
	}
	// Rotated: the old value is still masked everywhere.
	if code, body := adminPatch(t, s.url+"/api/v1/variables/api_token", `{"key": "api_token", "value": "new-token-value-1"}`); code != 200 {
		t.Fatalf("rotate: %d %s", code, body)
	}
	for _, path := range []string{"/api/v1/dags/leak/dagRuns/r1/taskInstances/print/logs/1", "/dags/leak/runs/r1/tasks/print",
		"/dags/leak/runs/r1/tasks/print/logs/1", "/api/v1/dags/leak/dagRuns/r1/taskInstances/print"} {
		code, body := s.get(t, path)
		if code != 200 {
			t.Errorf("%s: %d", path, code)
		}
		check(path, body)
		if strings.Contains(path, "logs") && !strings.Contains(body, "token=***") {
			t.Errorf("%s lacks the masked line:\n%.500s", path, body)
		}
	}
}

// adminPatch sends a JSON PATCH as the bootstrap admin.
func adminPatch(tb testing.TB, url, body string) (int, string) {
	tb.Helper()
	return adminSend(tb, http.MethodPatch, url, body)
}
