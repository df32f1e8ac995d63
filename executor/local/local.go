// Package local is the executor that runs task tries as child processes on
// this host: BashOperator as bash -c, KubernetesPodOperator as its cmds and
// arguments (the image is ignored), EmptyOperator without a process.
//
// Each try runs under a small sh wrapper in its own process group. The
// wrapper records its pid and, when the command ends, the exit code, in
// files beside the try's log. A try therefore survives a scheduler crash,
// and a restarted scheduler adopts it (Adopt) and still learns how it ended.
package local

import (
	"context"
	"errors"
	"fmt"
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

	mu      sync.Mutex
	running map[executor.TryKey]*proc
}

type proc struct {
	pgid    int
	done    chan struct{}
	killed  string // reason, once Kill was called
	timeout *time.Timer
}

// New returns an executor running at most slots tries at once.
func New(slots int, log *slog.Logger) *Executor {
	return &Executor{slots: slots, grace: 5 * time.Second, poll: 200 * time.Millisecond, log: log,
		events: make(chan executor.Event, 1024), now: time.Now, running: map[executor.TryKey]*proc{}}
}

// Events delivers try events.
func (e *Executor) Events() <-chan executor.Event { return e.events }

// Free returns the number of free slots.
func (e *Executor) Free() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.slots - len(e.running)
}

// wrapper runs "$@", recording its pid and the exit code beside the log:
// $0 is the base path. Files are written atomically (temp + rename).
const wrapper = `b=$0; echo $$ >"$b.pid.tmp" && mv "$b.pid.tmp" "$b.pid"; "$@"; c=$?; echo $c >"$b.exit.tmp" && mv "$b.exit.tmp" "$b.exit"; exit $c`

// command returns the argv and environment of a try, and notes for its log.
func command(spec dags.OperatorSpec) (argv, env []string, dir string, notes []string, err error) {
	switch s := spec.(type) {
	case dags.BashSpec:
		env = os.Environ()
		if s.Env != nil {
			env = nil
			if s.AppendEnv {
				env = os.Environ()
			}
			for _, k := range sortedKeys(s.Env) {
				env = append(env, k+"="+s.Env[k])
			}
		}
		return []string{"bash", "-c", s.Command}, env, s.Cwd, nil, nil
	case dags.PodSpec:
		argv = append(append(argv, s.Cmds...), s.Arguments...)
		if len(s.Cmds) == 0 {
			return nil, nil, "", nil, fmt.Errorf("KubernetesPodOperator task has no cmds: the image's entrypoint cannot run on the local executor")
		}
		env = os.Environ()
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
		return argv, env, "", notes, nil
	}
	return nil, nil, "", nil, fmt.Errorf("the local executor cannot run %s", spec.Kind())
}

// base is the path prefix of a try's pid and exit files.
func base(t executor.Try) string { return strings.TrimSuffix(t.LogPath, ".log") }

// Start runs a try. EmptyOperator tries finish at once.
func (e *Executor) Start(ctx context.Context, t executor.Try) error {
	if err := os.MkdirAll(filepath.Dir(t.LogPath), 0o755); err != nil {
		return fmt.Errorf("try %s: log folder: %w", t.Key, err)
	}
	logf, err := os.OpenFile(t.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("try %s: log: %w", t.Key, err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "[%s] updraft: try %d of %s.%s (run %s) starting on the local executor\n",
		e.now().UTC().Format(time.RFC3339), t.Key.TryNumber, t.Key.DagID, t.Key.TaskID, t.Key.RunID)
	if _, ok := t.Spec.(dags.EmptySpec); ok {
		e.send(executor.Event{Key: t.Key, State: executor.Running})
		e.send(executor.Event{Key: t.Key, State: executor.Succeeded, Reason: "EmptyOperator"})
		return nil
	}
	argv, env, dir, notes, err := command(t.Spec)
	if err != nil {
		fmt.Fprintf(logf, "updraft: %v\n", err)
		return err
	}
	for _, n := range notes {
		fmt.Fprintf(logf, "updraft: %s\n", n)
	}
	e.mu.Lock()
	if len(e.running) >= e.slots {
		e.mu.Unlock()
		return executor.ErrFull
	}
	if _, dup := e.running[t.Key]; dup {
		e.mu.Unlock()
		return fmt.Errorf("try %s is already running", t.Key)
	}
	p := &proc{done: make(chan struct{})}
	e.running[t.Key] = p
	e.mu.Unlock()

	b := base(t)
	os.Remove(b + ".exit")
	if dir == "" {
		dir = filepath.Dir(t.LogPath)
	}
	cmd := exec.Command("sh", append([]string{"-c", wrapper, b}, argv...)...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		e.forget(t.Key)
		fmt.Fprintf(logf, "updraft: cannot start: %v\n", err)
		return fmt.Errorf("try %s: start: %w", t.Key, err)
	}
	p.pgid = cmd.Process.Pid
	e.send(executor.Event{Key: t.Key, State: executor.Running, Handle: "pid:" + strconv.Itoa(p.pgid)})
	e.armTimeout(t, p)
	go func() {
		err := cmd.Wait()
		code := -1
		var ee *exec.ExitError
		if err == nil {
			code = 0
		} else if errors.As(err, &ee) && ee.ExitCode() >= 0 {
			code = ee.ExitCode()
		}
		e.finish(t, p, code)
	}()
	return nil
}

func (e *Executor) armTimeout(t executor.Try, p *proc) {
	if t.Timeout > 0 {
		p.timeout = time.AfterFunc(t.Timeout, func() {
			_ = e.Kill(context.Background(), t.Key, fmt.Sprintf("execution_timeout of %v exceeded", t.Timeout))
		})
	}
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
	if !ok {
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
// ended its exit code is reported, if it still runs it is watched until it
// ends (and killed on timeout), otherwise ErrGone.
func (e *Executor) Adopt(ctx context.Context, t executor.Try) error {
	b := base(t)
	if code, ok := readInt(b + ".exit"); ok {
		p := &proc{done: make(chan struct{})}
		e.mu.Lock()
		e.running[t.Key] = p
		e.mu.Unlock()
		go e.finish(t, p, code)
		return nil
	}
	pid, ok := readInt(b + ".pid")
	if !ok || !alive(pid, b) {
		return fmt.Errorf("try %s: %w", t.Key, executor.ErrGone)
	}
	p := &proc{pgid: pid, done: make(chan struct{})}
	e.mu.Lock()
	e.running[t.Key] = p
	e.mu.Unlock()
	e.appendLog(t, "updraft: adopted by a restarted scheduler")
	e.send(executor.Event{Key: t.Key, State: executor.Running, Handle: "pid:" + strconv.Itoa(pid)})
	e.armTimeout(t, p)
	go func() {
		for {
			if code, ok := readInt(b + ".exit"); ok {
				e.finish(t, p, code)
				return
			}
			if !alive(pid, b) {
				// Killed without writing an exit code (by us, or by someone else).
				e.finish(t, p, -1)
				return
			}
			time.Sleep(e.poll)
		}
	}()
	return nil
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

func readInt(path string) (int, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return n, err == nil
}

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
