package local

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/executortest"
)

func harness() executortest.Harness {
	return executortest.Harness{
		New: func(t *testing.T, slots int) (executor.Executor, func()) {
			ex := New(slots, slog.New(slog.DiscardHandler))
			return ex, ex.crash
		},
		Spec: func(b executortest.Behavior) dags.OperatorSpec {
			if b.PushXCom {
				write := ""
				if b.XCom != "" {
					write = fmt.Sprintf("printf '%%s' '%s' > /airflow/xcom/return.json; ", b.XCom)
				}
				return dags.PodSpec{Image: "x", Cmds: []string{"sh", "-c"}, DoXComPush: true,
					Arguments: []string{fmt.Sprintf("echo %s; %ssleep %g", b.Output, write, b.Duration.Seconds())}}
			}
			if b.Forever {
				return dags.BashSpec{Command: "echo started; sleep 300 & wait"}
			}
			return dags.BashSpec{Command: fmt.Sprintf("echo %s; echo err >&2; sleep %g; exit %d", b.Output, b.Duration.Seconds(), b.ExitCode)}
		},
		Logs: true,
	}
}

func TestConformance(t *testing.T) { executortest.Run(t, harness()) }

// A KubernetesPodOperator task runs its cmds and arguments on the host with
// its env_vars; the log says the image is ignored.
func TestPodCommandLocally(t *testing.T) {
	ex := New(1, slog.New(slog.DiscardHandler))
	spec := dags.PodSpec{Image: "busybox", Cmds: []string{"sh", "-c"}, Arguments: []string{`echo "db=$DB"`},
		EnvVars: []corev1.EnvVar{{Name: "DB", Value: "RAW"}}}
	try := executortest.NewTry(t, spec)
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	if ev := executortest.Final(t, ex, try.Key, 30*time.Second); ev.State != executor.Succeeded {
		t.Fatalf("event = %+v", ev)
	}
	log := readFile(try.LogPath)
	if !strings.Contains(log, "db=RAW") || !strings.Contains(log, "image busybox is ignored") {
		t.Fatalf("log:\n%s", log)
	}
	if err := ex.Start(context.Background(), executortest.NewTry(t, dags.PodSpec{Image: "x"})); err == nil {
		t.Fatal("a pod task without cmds started locally")
	}
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// A task sees the documented base environment and Airflow's context
// variables, never the server's own settings or secrets; what it prints is
// masked before it reaches the disk, in a file only the server's user reads.
func TestTaskEnvironmentAndMaskedLog(t *testing.T) {
	t.Setenv("UPDRAFT_ADMIN_PASSWORD", "admin-pass-4242")
	t.Setenv("UPDRAFT_CONN_WAREHOUSE", "snowflake://u:conn-pass-4242@acct/db")
	t.Setenv("TZ", "Europe/Amsterdam")
	ex := New(1, slog.New(slog.DiscardHandler))
	try := executortest.NewTry(t, dags.BashSpec{Command: `env; echo "secret=$MY_SECRET"`, Env: map[string]string{"MY_SECRET": "var-secret-4242"}, AppendEnv: true})
	try.LogPath = filepath.Join(t.TempDir(), "logs", "dag", "try.log")
	try.Mask = dags.NewMasker("var-secret-4242")
	try.ContextEnv = []string{"AIRFLOW_CTX_DAG_ID=conformance", "AIRFLOW_CTX_TASK_ID=" + try.Key.TaskID}
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	if ev := executortest.Final(t, ex, try.Key, 30*time.Second); ev.State != executor.Succeeded {
		t.Fatalf("event = %+v", ev)
	}
	log := readFile(try.LogPath)
	for _, bad := range []string{"UPDRAFT_", "admin-pass-4242", "conn-pass-4242", "var-secret-4242"} {
		if strings.Contains(log, bad) {
			t.Errorf("the log on disk holds %q:\n%s", bad, log)
		}
	}
	for _, want := range []string{"PATH=", "TZ=Europe/Amsterdam", "AIRFLOW_CTX_DAG_ID=conformance", "secret=***"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	for path, want := range map[string]os.FileMode{try.LogPath: 0o600, filepath.Dir(try.LogPath): 0o700, filepath.Dir(filepath.Dir(try.LogPath)): 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
}

// env without append_env replaces the base environment, as in Airflow.
func TestEnvReplacesTheBaseEnvironment(t *testing.T) {
	ex := New(1, slog.New(slog.DiscardHandler))
	try := executortest.NewTry(t, dags.BashSpec{Command: `echo "home=[$HOME] only=[$ONLY]"`, Env: map[string]string{"ONLY": "this"}})
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	executortest.Final(t, ex, try.Key, 30*time.Second)
	if log := readFile(try.LogPath); !strings.Contains(log, "home=[] only=[this]") {
		t.Fatalf("log:\n%s", log)
	}
}

// A try costs one process beyond its command at most: a BashOperator's
// command runs in the wrapper's own bash (its only child is the command's
// sleep), one that sets its own trap runs under the sh wrapper (whose only
// child is bash).
func TestOneHelperProcessPerTry(t *testing.T) {
	ex := New(2, slog.New(slog.DiscardHandler))
	for cmd, want := range map[string][2]string{
		"echo started; sleep 30":                       {"bash", "sleep"},
		"trap 'echo bye' EXIT; echo started; sleep 30": {"sh", "bash"},
	} {
		try := executortest.NewTry(t, dags.BashSpec{Command: cmd})
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		ev := executortest.Running(t, ex, try.Key, 30*time.Second)
		pid, _ := strconv.Atoi(strings.TrimPrefix(ev.Handle, "pid:"))
		for i := 0; ; i++ {
			if strings.Contains(readFile(try.LogPath), "started") {
				break
			}
			if i > 3000 {
				t.Fatal("never started")
			}
			time.Sleep(10 * time.Millisecond)
		}
		comm := strings.TrimSpace(readFile(fmt.Sprintf("/proc/%d/comm", pid)))
		var children []string
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			stat := readFile("/proc/" + e.Name() + "/stat")
			i := strings.LastIndex(stat, ")")
			if i < 0 {
				continue
			}
			fields := strings.Fields(stat[i+1:])
			if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
				children = append(children, strings.TrimSpace(readFile("/proc/"+e.Name()+"/comm")))
			}
		}
		_ = ex.Kill(context.Background(), try.Key, "test over")
		executortest.Final(t, ex, try.Key, 30*time.Second)
		if comm != want[0] || len(children) != 1 || children[0] != want[1] {
			t.Errorf("%s: wrapper %q has children %q, want %q with one child %q", cmd, comm, children, want[0], want[1])
		}
	}
}

// A BashOperator's command in the wrapper's own bash behaves as under
// bash -c: exit codes, set -e, $0, line numbers in bash's messages,
// set -x not tracing the wrapper, and a base path that needs quoting.
func TestBashInTheWrapper(t *testing.T) {
	ex := New(1, slog.New(slog.DiscardHandler))
	for _, c := range []struct {
		cmd  string
		code int
		want []string
		not  []string
	}{
		{cmd: "echo a; exit 4", code: 4, want: []string{"a"}},
		{cmd: "set -e\nfalse\necho never", code: 1, not: []string{"never"}},
		{cmd: "set -eux\necho \"zero=$0\"", code: 0, want: []string{"zero=bash", "+ echo zero=bash"}, not: []string{"set +exu", "builtin"}},
		{cmd: "echo one\nno-such-command-here", code: 127, want: []string{"line 2: no-such-command-here"}},
		{cmd: "echo() { return 9; }; read() { return 9; }; echo hidden", code: 9},
	} {
		try := executortest.NewTry(t, dags.BashSpec{Command: c.cmd})
		try.LogPath = filepath.Join(filepath.Dir(try.LogPath), "it's a run", "attempt=1.log")
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		ev := executortest.Final(t, ex, try.Key, 30*time.Second)
		if ev.ExitCode == nil || *ev.ExitCode != c.code {
			t.Errorf("%q: event %+v, want exit code %d", c.cmd, ev, c.code)
		}
		log := readFile(try.LogPath)
		for _, w := range c.want {
			if !strings.Contains(log, w) {
				t.Errorf("%q: log lacks %q:\n%s", c.cmd, w, log)
			}
		}
		for _, w := range c.not {
			if strings.Contains(log, w) {
				t.Errorf("%q: log has %q:\n%s", c.cmd, w, log)
			}
		}
	}
}

// Output a try writes while no server reads it waits in the pipe: after a
// restart it is all in the log, masked, with the try's real outcome.
func TestOutputWrittenWhileTheServerIsDownIsKept(t *testing.T) {
	first := New(1, slog.New(slog.DiscardHandler))
	// ~400 KB after the crash: more than a pipe holds, so the task waits.
	cmd := `echo started; sleep 1; for i in $(seq 1 4000); do echo "line $i pw=hunter-4242 padding padding padding padding padding padding padding"; done; echo the-end; exit 3`
	try := executortest.NewTry(t, dags.BashSpec{Command: cmd})
	try.Mask = dags.NewMasker("hunter-4242")
	if err := first.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	executortest.Running(t, first, try.Key, 30*time.Second)
	for !strings.Contains(readFile(try.LogPath), "started") {
		time.Sleep(10 * time.Millisecond)
	}
	first.crash()
	time.Sleep(3 * time.Second) // the task writes with nobody reading
	second := New(1, slog.New(slog.DiscardHandler))
	if err := second.Adopt(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	ev := executortest.Final(t, second, try.Key, 60*time.Second)
	if ev.State != executor.Failed || ev.ExitCode == nil || *ev.ExitCode != 3 {
		t.Fatalf("event = %+v", ev)
	}
	log := readFile(try.LogPath)
	if strings.Contains(log, "hunter-4242") || !strings.Contains(log, "line 4000 pw=***") || !strings.Contains(log, "the-end") {
		t.Fatalf("log (%d bytes) lost output or leaked the secret:\n%.2000s", len(log), log)
	}
	if n := strings.Count(log, "pw=***"); n != 4000 {
		t.Fatalf("%d of 4000 lines in the log", n)
	}
}

// A BashOperator pushes the last line of its output (stdout and stderr,
// as Airflow's subprocess hook reads them), without trailing space.
func TestBashPushesLastLine(t *testing.T) {
	ex := New(3, slog.New(slog.DiscardHandler))
	for cmd, want := range map[string]string{
		`echo first; echo "the last one  "`: `"the last one"`,
		`echo first; printf 'no newline'`:   `"no newline"`,
		`echo first; echo`:                  `""`,
		`true`:                              `""`,
	} {
		try := executortest.NewTry(t, dags.BashSpec{Command: cmd})
		try.XComPush = true
		if err := ex.Start(context.Background(), try); err != nil {
			t.Fatal(err)
		}
		ev := executortest.Final(t, ex, try.Key, 30*time.Second)
		if got := string(ev.XCom["return_value"]); ev.State != executor.Succeeded || got != want {
			t.Errorf("%s: pushed %s (%+v), want %s", cmd, got, ev, want)
		}
	}
	quiet := executortest.NewTry(t, dags.BashSpec{Command: "echo x"})
	if err := ex.Start(context.Background(), quiet); err != nil {
		t.Fatal(err)
	}
	if ev := executortest.Final(t, ex, quiet.Key, 30*time.Second); ev.XCom != nil {
		t.Errorf("do_xcom_push false pushed %v", ev.XCom)
	}
}
