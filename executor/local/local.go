// Package local is the executor that runs task tries as child processes on
// this host: BashOperator as bash -c, KubernetesPodOperator as its cmds and
// arguments (the image is ignored), EmptyOperator without a process.
//
// Each try is two processes: a small sh wrapper (the leader of the try's
// process group) and the command. The wrapper records its pid and, when
// the command ends, the exit code, in files beside the try's log. The
// command's output goes through a pipe to the server, which masks secret
// values before a byte reaches the log. The wrapper holds the pipe's read
// end (fd 3) and both ends of an acknowledgement pipe (fds 4 and 5), and
// after the command ends it waits for a line on fd 4 before it exits: so when the server dies the command's output waits in
// the pipe instead of being lost, and a restarted server adopts the try
// (Adopt) by opening those pipes again through /proc, reads what is left,
// and still learns how the try ended.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"updraft/dags"
	"updraft/executor"
)

// Executor runs tries as local processes.
type Executor struct {
	slots  int
	grace  time.Duration
	poll   time.Duration
	log    *slog.Logger
	events chan executor.Event
	now    func() time.Time
	base   []string // the base environment of every task (Env)

	mu      sync.Mutex
	running map[executor.TryKey]*proc
	crashed bool
}

type proc struct {
	pgid    int
	done    chan struct{}
	killed  string // reason, once Kill was called
	timeout *time.Timer
	out     *os.File // the output pipe's read end
	ack     *os.File // the acknowledgement pipe's write end
}

// New returns an executor running at most slots tries at once.
func New(slots int, log *slog.Logger) *Executor {
	return &Executor{slots: slots, grace: 5 * time.Second, poll: 200 * time.Millisecond, log: log,
		events: make(chan executor.Event, 1024), now: time.Now, running: map[executor.TryKey]*proc{},
		base: BaseEnv(os.Getenv)}
}

// Events delivers try events.
func (e *Executor) Events() <-chan executor.Event { return e.events }

// Free returns the number of free slots.
func (e *Executor) Free() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.slots - len(e.running)
}

// wrapper runs "$@", records its own pid and the command's exit code
// beside the log ($0 is the base path; a file counts once its line ends),
// closes its output so that the server sees the end of it, and waits for
// the server's line on fd 4. Only shell builtins: no process but the
// command. The command runs without redirections, so that the shell keeps
// the pipes at fds 3, 4 and 5 (where Adopt finds them) while it runs; it
// inherits them, as it inherits nothing secret.
const wrapper = `b=$0; echo $$ >"$b.pid"; "$@"; c=$?; echo $c >"$b.exit"; exec >&- 2>&-; read -r x <&4; exit $c`

// BaseEnv is the environment every task starts from, taken from the
// server's: PATH (a default if unset), HOME, USER, LOGNAME, SHELL, TMPDIR,
// TZ, LANG and the LC_* settings. Nothing else of the server's
// environment reaches a task: not its UPDRAFT_* settings, not connection
// URIs, not the webhook URL.
func BaseEnv(getenv func(string) string) []string {
	var env []string
	for _, k := range baseEnvNames {
		v := getenv(k)
		if k == "PATH" && v == "" {
			v = "/usr/local/bin:/usr/bin:/bin"
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// baseEnvNames are the variables BaseEnv passes on.
var baseEnvNames = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TMPDIR", "TZ", "LANG", "LANGUAGE",
	"LC_ALL", "LC_CTYPE", "LC_COLLATE", "LC_MESSAGES", "LC_MONETARY", "LC_NUMERIC", "LC_TIME"}

// command returns the argv and environment of a try, and notes for its log.
// The environment follows Airflow's BashOperator with the base set in
// place of the server's environment: env replaces it unless append_env,
// and Airflow's AIRFLOW_CTX_* variables are always set.
func (e *Executor) command(t executor.Try) (argv, env []string, dir string, notes []string, err error) {
	switch s := t.Spec.(type) {
	case dags.BashSpec:
		if s.Env == nil || s.AppendEnv {
			env = append(env, e.base...)
		}
		for _, k := range sortedKeys(s.Env) {
			env = append(env, k+"="+s.Env[k])
		}
		return []string{"bash", "-c", s.Command}, append(env, t.ContextEnv...), s.Cwd, nil, nil
	case dags.PodSpec:
		argv = append(append(argv, s.Cmds...), s.Arguments...)
		if len(s.Cmds) == 0 {
			return nil, nil, "", nil, fmt.Errorf("KubernetesPodOperator task has no cmds: the image's entrypoint cannot run on the local executor")
		}
		env = append(env, e.base...)
		for _, ev := range s.EnvVars {
			if ev.ValueFrom != nil {
				notes = append(notes, fmt.Sprintf("env %s comes from the cluster (valueFrom) and is not set locally", ev.Name))
				continue
			}
			env = append(env, ev.Name+"="+ev.Value)
		}
		notes = append(notes, fmt.Sprintf("image %s is ignored: the local executor runs cmds and arguments on this host", s.Image))
		for _, sec := range s.Secrets {
			notes = append(notes, fmt.Sprintf("secret %s (%s) is not available on the local executor", sec.Secret, sec.DeployType))
		}
		return argv, append(env, t.ContextEnv...), "", notes, nil
	}
	return nil, nil, "", nil, fmt.Errorf("the local executor cannot run %s", t.Spec.Kind())
}

// base is the path prefix of a try's pid and exit files.
func base(t executor.Try) string { return strings.TrimSuffix(t.LogPath, ".log") }

// Start runs a try. EmptyOperator tries finish at once.
func (e *Executor) Start(ctx context.Context, t executor.Try) error {
	logf, err := executor.OpenLog(t, false)
	if err != nil {
		return fmt.Errorf("try %s: log: %w", t.Key, err)
	}
	fmt.Fprintf(logf, "[%s] updraft: try %d of %s.%s (run %s) starting on the local executor\n",
		e.now().UTC().Format(time.RFC3339), t.Key.TryNumber, t.Key.DagID, t.Key.TaskID, t.Key.RunID)
	if _, ok := t.Spec.(dags.EmptySpec); ok {
		logf.Close()
		e.send(executor.Event{Key: t.Key, State: executor.Running})
		e.send(executor.Event{Key: t.Key, State: executor.Succeeded, Reason: "EmptyOperator"})
		return nil
	}
	argv, env, dir, notes, err := e.command(t)
	if err != nil {
		fmt.Fprintf(logf, "updraft: %v\n", err)
		logf.Close()
		return err
	}
	for _, n := range notes {
		fmt.Fprintf(logf, "updraft: %s\n", n)
	}
	e.mu.Lock()
	if len(e.running) >= e.slots {
		e.mu.Unlock()
		logf.Close()
		return executor.ErrFull
	}
	if _, dup := e.running[t.Key]; dup {
		e.mu.Unlock()
		logf.Close()
		return fmt.Errorf("try %s is already running", t.Key)
	}
	p := &proc{done: make(chan struct{})}
	e.running[t.Key] = p
	e.mu.Unlock()

	cmd, err := e.spawn(t, p, argv, env, dir)
	if err != nil {
		e.forget(t.Key)
		fmt.Fprintf(logf, "updraft: cannot start: %v\n", err)
		logf.Close()
		return fmt.Errorf("try %s: start: %w", t.Key, err)
	}
	e.send(executor.Event{Key: t.Key, State: executor.Running, Handle: "pid:" + strconv.Itoa(p.pgid)})
	e.armTimeout(t, p)
	exited := make(chan int, 1)
	go func() {
		err := cmd.Wait()
		code := -1
		var ee *exec.ExitError
		if err == nil {
			code = 0
		} else if errors.As(err, &ee) && ee.ExitCode() >= 0 {
			code = ee.ExitCode()
		}
		exited <- code
	}()
	go e.follow(t, p, logf, exited)
	return nil
}

// spawn starts the wrapper with its two pipes and keeps the server's ends
// in p.
func (e *Executor) spawn(t executor.Try, p *proc, argv, env []string, dir string) (*exec.Cmd, error) {
	b := base(t)
	os.Remove(b + ".exit")
	if dir == "" {
		dir = filepath.Dir(t.LogPath)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, err
	}
	cmd := exec.Command("sh", append([]string{"-c", wrapper, b}, argv...)...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.ExtraFiles = []*os.File{outR, ackR, ackW} // fds 3, 4 and 5
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	outW.Close()
	ackR.Close()
	if err != nil {
		outR.Close()
		ackW.Close()
		return nil, err
	}
	p.pgid, p.out, p.ack = cmd.Process.Pid, outR, ackW
	return cmd, nil
}

// follow copies a try's output into its log until the output ends, then
// reads how the command ended, lets the wrapper go and reports the
// outcome. exited delivers the wrapper's exit code when this process is
// its parent; for an adopted try it is nil and the wrapper is watched
// through /proc.
func (e *Executor) follow(t executor.Try, p *proc, logf io.WriteCloser, exited <-chan int) {
	b := base(t)
	copied := make(chan struct{})
	go func() {
		_, _ = io.Copy(logf, p.out)
		close(copied)
	}()
	wrapperCode := -1
	for waiting := true; waiting; {
		select {
		case <-copied:
			waiting = false
		case wrapperCode = <-exited:
			exited = nil // the wrapper is gone: what is left of the output comes soon, or never
			select {
			case <-copied:
			case <-time.After(e.grace):
			}
			waiting = false
		case <-time.After(e.poll):
			if exited == nil && !alive(p.pgid, b) {
				select {
				case <-copied:
				case <-time.After(e.grace):
				}
				waiting = false
			}
		}
	}
	if e.isCrashed() {
		return // a test's stand-in for the server dying: leave everything as it is
	}
	p.out.Close()
	code, ok := readExit(b)
	if !ok {
		code = wrapperCode
	}
	_, _ = p.ack.Write([]byte("\n"))
	p.ack.Close()
	logf.Close()
	if exited != nil {
		<-exited
	}
	e.finish(t, p, code)
}

func (e *Executor) isCrashed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.crashed
}

// crash stops following tries as a dead server would (tests only): the
// server's ends of every pipe are closed, nothing more is reported.
func (e *Executor) crash() {
	e.mu.Lock()
	e.crashed = true
	procs := make([]*proc, 0, len(e.running))
	for _, p := range e.running {
		procs = append(procs, p)
	}
	e.mu.Unlock()
	for _, p := range procs {
		if p.timeout != nil {
			p.timeout.Stop()
		}
		if p.out != nil {
			p.out.Close()
			p.ack.Close()
		}
	}
}

func (e *Executor) armTimeout(t executor.Try, p *proc) {
	if t.Timeout <= 0 {
		return
	}
	left := t.Timeout
	if !t.Started.IsZero() {
		left -= e.now().Sub(t.Started)
	}
	p.timeout = time.AfterFunc(max(left, 0), func() {
		_ = e.Kill(context.Background(), t.Key, fmt.Sprintf("execution_timeout of %v exceeded", t.Timeout))
	})
}

// finish reports a try's outcome from its exit code (-1: unknown).
func (e *Executor) finish(t executor.Try, p *proc, code int) {
	if p.timeout != nil {
		p.timeout.Stop()
	}
	e.mu.Lock()
	reason := p.killed
	e.mu.Unlock()
	ev := executor.Event{Key: t.Key}
	if code >= 0 {
		c := code
		ev.ExitCode = &c
	}
	switch {
	case reason != "":
		ev.State, ev.Reason = executor.Failed, reason
	case code == 0:
		ev.State = executor.Succeeded
	case code > 0 && containsInt(t.SkipOn, code):
		ev.State, ev.Reason = executor.Skipped, fmt.Sprintf("exit code %d is in skip_on_exit_code", code)
	case code > 0:
		ev.State, ev.Reason = executor.Failed, fmt.Sprintf("exit code %d", code)
	default:
		ev.State, ev.Reason = executor.Failed, "process ended without an exit code"
	}
	e.appendLog(t, strings.TrimSpace(fmt.Sprintf("updraft: try ended: %s %s", ev.State, ev.Reason)))
	e.forget(t.Key)
	close(p.done)
	e.send(ev)
}

func (e *Executor) appendLog(t executor.Try, line string) {
	executor.AppendLogLine(t.Mask, t.LogPath, e.now(), line)
}

func (e *Executor) forget(k executor.TryKey) {
	e.mu.Lock()
	delete(e.running, k)
	e.mu.Unlock()
}

func (e *Executor) send(ev executor.Event) {
	if ev.At.IsZero() {
		ev.At = e.now()
	}
	e.events <- ev
}

// Kill stops a try's whole process group: SIGTERM, then SIGKILL after the
// grace period. Its final event is Failed with reason.
func (e *Executor) Kill(ctx context.Context, k executor.TryKey, reason string) error {
	e.mu.Lock()
	p, ok := e.running[k]
	if ok && p.killed == "" {
		p.killed = reason
	}
	e.mu.Unlock()
	if !ok || p.pgid == 0 {
		return nil
	}
	_ = syscall.Kill(-p.pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(e.grace):
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	case <-ctx.Done():
		_ = syscall.Kill(-p.pgid, syscall.SIGKILL)
	}
	return nil
}

// Adopt re-attaches to a try started by an earlier process: if it already
// ended and its wrapper is gone its exit code is reported; if its wrapper
// is still there (running the command, or waiting for its output to be
// read) the output pipe is opened again and followed as Start does, and
// the try is killed on its timeout, counted from its start. Otherwise
// ErrGone.
func (e *Executor) Adopt(ctx context.Context, t executor.Try) error {
	b := base(t)
	pid, havePid := readInt(b + ".pid")
	if havePid && alive(pid, b) {
		out, oerr := os.OpenFile(fmt.Sprintf("/proc/%d/fd/3", pid), os.O_RDONLY, 0)
		ack, aerr := os.OpenFile(fmt.Sprintf("/proc/%d/fd/5", pid), os.O_WRONLY, 0)
		if oerr == nil && aerr == nil {
			logf, err := executor.OpenLog(t, false)
			if err != nil {
				out.Close()
				ack.Close()
				return fmt.Errorf("try %s: log: %w", t.Key, err)
			}
			p := &proc{pgid: pid, done: make(chan struct{}), out: out, ack: ack}
			e.mu.Lock()
			e.running[t.Key] = p
			e.mu.Unlock()
			fmt.Fprintf(logf, "[%s] updraft: adopted by a restarted scheduler\n", e.now().UTC().Format(time.RFC3339))
			e.send(executor.Event{Key: t.Key, State: executor.Running, Handle: "pid:" + strconv.Itoa(pid)})
			e.armTimeout(t, p)
			go e.follow(t, p, logf, nil)
			return nil
		}
		if out != nil {
			out.Close()
		}
		if ack != nil {
			ack.Close()
		}
		e.log.Warn("cannot reopen a try's output; waiting for its exit code", "try", t.Key.String(), "pid", pid, "err", errors.Join(oerr, aerr))
		p := &proc{pgid: pid, done: make(chan struct{})}
		e.mu.Lock()
		e.running[t.Key] = p
		e.mu.Unlock()
		e.send(executor.Event{Key: t.Key, State: executor.Running, Handle: "pid:" + strconv.Itoa(pid)})
		e.armTimeout(t, p)
		go func() {
			for alive(pid, b) {
				time.Sleep(e.poll)
			}
			code, ok := readExit(b)
			if !ok {
				code = -1
			}
			e.finish(t, p, code)
		}()
		return nil
	}
	if code, ok := readExit(b); ok {
		p := &proc{done: make(chan struct{})}
		e.mu.Lock()
		e.running[t.Key] = p
		e.mu.Unlock()
		go e.finish(t, p, code)
		return nil
	}
	return fmt.Errorf("try %s: %w", t.Key, executor.ErrGone)
}

// alive reports whether pid is running and is the wrapper of this try
// (its command line names the try's base path), so a reused pid is not
// mistaken for it.
func alive(pid int, b string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := strings.LastIndex(string(stat), ")"); i >= 0 && strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
		return false // a zombie has ended
	}
	return strings.Contains(string(cmdline), b)
}

// readInt reads a number the wrapper wrote: it counts once its line ends
// (a file being written is not read half-way).
func readInt(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(string(data), "\n") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return n, err == nil
}

// readExit reads a try's exit code, if the wrapper wrote it.
func readExit(b string) (int, bool) { return readInt(b + ".exit") }

func containsInt(list []int, x int) bool {
	for _, v := range list {
		if v == x {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
