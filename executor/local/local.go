// Package local is the executor that runs task tries as child processes on
// this host: BashOperator as bash -c, KubernetesPodOperator as its cmds and
// arguments (the image is ignored), EmptyOperator without a process.
//
// A try costs one process beyond its command at most: a small wrapper
// (the leader of the try's process group, using only shell builtins) that
// runs the command. A BashOperator's command runs in the wrapper itself
// (bash with an EXIT trap, see bashWrapped), so `true` is one process; any
// other command runs under an sh wrapper. The
// command's output goes through a pipe to the server, which masks secret
// values before a byte reaches the log. The wrapper keeps the pipes it
// was given open: the output pipe's read end (fd 3), both ends of an
// acknowledgement pipe (fds 4, 5) and of a status pipe (fds 6, 7). When
// the command ends it says so on the status pipe, closes its output and
// waits for a line on the acknowledgement pipe before it exits with the
// command's exit code. So when the server dies, the try goes on, its
// output waits in the pipe instead of being lost, and a restarted server
// adopts it (Adopt): it finds the wrapper in /proc, opens its pipes again,
// reads what is left, and asks it (with a "w PATH" line) to write the exit
// code to a file beside the log before it exits. Normally no file is
// written but the log.
package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/python"
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

	wrappers wrapperIndex

	mu      sync.Mutex
	running map[executor.TryKey]*proc
	crashed bool
	py      *Python
}

// Python is how the local executor runs Python callables: the runner
// (python.Install's folder) under Interpreter, reaching the server's
// Execution API at APIURL with a credential for the one try.
type Python struct {
	Interpreter string // default python3
	Runtime     string
	APIURL      string
	Credentials *python.Credentials
	// DagsDir is the DAG folder of a git revision ("" when the DAG folder
	// is not from git): where the callable's files are.
	DagsDir func(revision string) (string, error)
}

// UsePython lets the executor run Python callables. Call it before the
// first Start.
func (e *Executor) UsePython(p Python) {
	if p.Interpreter == "" {
		p.Interpreter = "python3"
	}
	e.py = &p
}

type proc struct {
	pgid    int
	done    chan struct{}
	killed  string // reason, once Kill was called
	timeout *time.Timer
	out     *os.File // the output pipe's read end
	ack     *os.File // the acknowledgement pipe's write end
	status  *os.File // the status pipe's read end (tries started here)
	last    lastLine // the output's last line (a BashOperator's XCom)
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

// wrapper runs "$@" ($0 is the try's base path), says on fd 6 that it
// ended and with which exit code, closes its output so that the server
// sees the end of it, and waits for the server's line on fd 4: "w" asks
// it to write the exit code to $0.exit first (an adopting server is not
// its parent). The command
// runs without redirections, so that the shell keeps the pipes at fds 3
// to 7 (where Adopt finds them) while it runs; it inherits them, as it
// inherits nothing secret.
const wrapper = `"$@"; c=$?; echo $c >&6; exec >&- 2>&-; read -r x <&4; [ -z "$x" ] || echo $c >"$0.exit"; exit $c`

// legacyWrapper is the wrapper of the release before, which said only
// that the command ended: a try it runs is still adopted after an upgrade.
const legacyWrapper = `"$@"; c=$?; echo >&6; exec >&- 2>&-; read -r x <&4; [ -z "$x" ] || echo $c >"$0.exit"; exit $c`

// bashTrap is the first line of a BashOperator's script when the command
// runs in the wrapper itself: the same protocol as wrapper, from bash's
// EXIT trap, so it runs however the script ends (its end, exit, set -e).
// It is quiet under set -x, survives set -eu, and calls builtins by name
// so that the script's functions cannot stand in for them (exec is
// called plainly: "builtin exec" would undo its redirections, and a
// script that names exec or trap runs under the sh wrapper). The ": BASE"
// that follows it names the try for Adopt; the script's own first line
// follows on the same line, so bash's messages keep its line numbers.
const bashTrap = `trap '{ c=$?; set +exu; } 2>/dev/null; builtin echo $c >&6; exec >&- 2>&-; builtin read -r x p <&4; [[ -z $x ]] || builtin echo $c >"$p"; builtin exit $c' EXIT; : `

// ownsExit matches a command that sets its own traps or replaces its
// shell (trap, exec): it runs under the sh wrapper, whose protocol it
// cannot undo.
var ownsExit = regexp.MustCompile(`(^|[^A-Za-z0-9_])(trap|exec)([^A-Za-z0-9_]|$)`)

// bashWrapped returns the argv that runs a BashOperator's command in the
// wrapper's own bash, or false when it needs the sh wrapper (see ownsExit;
// a base path with a newline cannot be named on the trap's line).
func bashWrapped(b, command string) ([]string, bool) {
	if ownsExit.MatchString(command) || strings.ContainsAny(b, "\n\x00") {
		return nil, false
	}
	return []string{"bash", "-c", bashTrap + shellQuote(b) + "; " + command}, true
}

// shellQuote quotes s for sh: in single quotes, each single quote in it
// written as quote, backslash, quote, quote.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// unquoteShell reads back a word shellQuote wrote at the start of s and
// returns it with what follows it.
func unquoteShell(s string) (word, rest string, ok bool) {
	var b strings.Builder
	for strings.HasPrefix(s, "'") {
		end := strings.IndexByte(s[1:], '\'')
		if end < 0 {
			return "", "", false
		}
		b.WriteString(s[1 : 1+end])
		s = s[2+end:]
		if !strings.HasPrefix(s, `\'`) {
			return b.String(), s, true
		}
		b.WriteByte('\'')
		s = s[2:]
	}
	return "", "", false
}

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
		if s.DoXComPush {
			// The host has no /airflow/xcom: the try's own folder stands in.
			for i := range argv {
				argv[i] = strings.ReplaceAll(argv[i], podXComDir, xcomDir(t))
			}
			if err := os.MkdirAll(xcomDir(t), executor.LogDirMode); err != nil {
				return nil, nil, "", nil, err
			}
			os.Remove(filepath.Join(xcomDir(t), "return.json"))
			notes = append(notes, "do_xcom_push: "+podXComDir+" in cmds and arguments is "+xcomDir(t)+" on this host")
		}
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
	case dags.PythonSpec:
		return e.pythonCommand(t, s)
	}
	return nil, nil, "", nil, fmt.Errorf("the local executor cannot run %s", t.Spec.Kind())
}

// pythonCommand runs the Python runner on the callable: its input and
// result are files beside the try's log, the DAG folder is the one of
// the run's revision. Nothing of the server's environment is passed on
// but the base set; the try's credential is valid for this try only.
func (e *Executor) pythonCommand(t executor.Try, s dags.PythonSpec) (argv, env []string, dir string, notes []string, err error) {
	if e.py == nil {
		return nil, nil, "", nil, fmt.Errorf("this server runs no Python callables (no --python runtime configured)")
	}
	dagsDir, err := e.py.DagsDir(t.Revision)
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("the DAG files of revision %s: %w", t.Revision, err)
	}
	in, err := json.Marshal(python.NewInput(s))
	if err != nil {
		return nil, nil, "", nil, fmt.Errorf("the callable's arguments: %w", err)
	}
	b := base(t)
	os.Remove(b + ".result.json")
	if err := os.WriteFile(b+".input.json", in, executor.LogFileMode); err != nil {
		return nil, nil, "", nil, err
	}
	interp := e.py.Interpreter
	if s.Python != "" {
		interp = s.Python
	}
	env = append(append([]string{}, e.base...), t.ContextEnv...)
	env = append(env,
		python.EnvInputFile+"="+b+".input.json",
		python.EnvResultFile+"="+b+".result.json",
		python.EnvDagsDir+"="+dagsDir,
		python.EnvAPIURL+"="+e.py.APIURL,
		python.EnvToken+"="+e.py.Credentials.Mint(t.Key))
	notes = append(notes, fmt.Sprintf("python: %s from %s with %s", s.Callable(), dagsDir, interp))
	return []string{interp, "-u", filepath.Join(e.py.Runtime, python.RunnerFile)}, env, "", notes, nil
}

// readPythonResult reads what the runner reported (nil: nothing).
func readPythonResult(t executor.Try) (*python.Result, error) {
	b, err := os.ReadFile(base(t) + ".result.json")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return python.ParseResult(b)
}

// base is the path prefix of a try's exit file (and its wrapper's $0).
func base(t executor.Try) string { return strings.TrimSuffix(t.LogPath, ".log") }

// podXComDir is where a pod task writes its XCom (return.json), as
// KubernetesPodOperator has it.
const podXComDir = "/airflow/xcom"

// xcomDir is the folder that stands for podXComDir in a local try.
func xcomDir(t executor.Try) string { return base(t) + ".xcom" }

// lastLine keeps the last line of a try's output, as Airflow's
// BashOperator pushes it: without trailing white space, "" when the
// output ended with an empty line. Safe for one writer and later readers.
type lastLine struct {
	mu      sync.Mutex
	line    []byte // the last complete line
	partial []byte // what followed it, not ended yet
	seen    bool
}

const maxLastLine = 1 << 20

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = true
	rest := p
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		l.line = append(append(l.line[:0], l.partial...), rest[:i]...)
		l.partial = l.partial[:0]
		rest = rest[i+1:]
	}
	if len(l.partial)+len(rest) <= maxLastLine {
		l.partial = append(l.partial, rest...)
	}
	return len(p), nil
}

// get returns the last line, and false when no output was seen.
func (l *lastLine) get() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := l.line
	if len(l.partial) > 0 {
		line = l.partial
	}
	return strings.TrimRight(string(line), " \t\r\n"), l.seen
}

// result reads what a succeeded try pushes: a BashOperator's last line of
// output, a pod task's return.json. A pod task that pushes but wrote no
// JSON there fails with the reason.
func (e *Executor) result(t executor.Try, p *proc) (map[string]json.RawMessage, string) {
	if !t.XComPush {
		return nil, ""
	}
	switch t.Spec.(type) {
	case dags.BashSpec:
		line, seen := p.last.get()
		if !seen {
			line = lastLogLine(t.LogPath) // adopted: the output went to the log before the restart
		}
		b, _ := json.Marshal(line)
		return executor.ReturnValue(b), ""
	case dags.PodSpec:
		b, err := os.ReadFile(filepath.Join(xcomDir(t), "return.json"))
		if err != nil {
			return nil, "do_xcom_push is set but the task wrote no " + podXComDir + "/return.json"
		}
		if !json.Valid(b) {
			return nil, podXComDir + "/return.json is not JSON: " + truncateText(string(b), 200)
		}
		return executor.ReturnValue(bytes.TrimSpace(b)), ""
	}
	return nil, ""
}

// lastLogLine is the last line of a try's own output in its log: the last
// line that is not one of updraft's ("[time] updraft: ...").
func lastLogLine(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const tail = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > tail {
		_, _ = f.Seek(st.Size()-tail, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := lines[i]; !(strings.HasPrefix(l, "[") && strings.Contains(l, "] updraft: ")) {
			return strings.TrimRight(l, " \t\r")
		}
	}
	return ""
}

func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Start runs a try. EmptyOperator tries finish at once.
func (e *Executor) Start(ctx context.Context, t executor.Try) error {
	logf, err := executor.OpenLog(t, false)
	if err != nil {
		return fmt.Errorf("try %s: log: %w", t.Key, err)
	}
	fmt.Fprintf(logf, "[%s] updraft: try %d of %s (run %s) starting on the local executor\n",
		e.now().UTC().Format(time.RFC3339), t.Key.TryNumber, t.Key.Task(), t.Key.RunID)
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

// spawn starts the wrapper with its pipes and keeps the server's ends in p.
func (e *Executor) spawn(t executor.Try, p *proc, argv, env []string, dir string) (*exec.Cmd, error) {
	b := base(t)
	os.Remove(b + ".exit")
	if dir == "" {
		dir = filepath.Dir(t.LogPath)
	}
	var fds [6]*os.File // out r/w, ack r/w, status r/w
	for i := 0; i < 6; i += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll(fds[:i]...)
			return nil, err
		}
		fds[i], fds[i+1] = r, w
	}
	outR, outW, ackR, ackW, stR, stW := fds[0], fds[1], fds[2], fds[3], fds[4], fds[5]
	cmd := exec.Command("sh", append([]string{"-c", wrapper, b}, argv...)...)
	if s, bash := t.Spec.(dags.BashSpec); bash {
		if own, ok := bashWrapped(b, s.Command); ok {
			cmd = exec.Command(own[0], own[1:]...) // the command is its own wrapper
		}
	}
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.ExtraFiles = []*os.File{outR, ackR, ackW, stW, stR} // fds 3 to 7
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err := cmd.Start()
	closeAll(outW, ackR, stW)
	if err != nil {
		closeAll(outR, ackW, stR)
		return nil, err
	}
	p.pgid, p.out, p.ack, p.status = cmd.Process.Pid, outR, ackW, stR
	return cmd, nil
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// follow copies a try's output into its log until the output ends (or,
// once the command ended, for the grace period at most: a background
// process may hold it open), lets the wrapper go and reports the outcome.
// For a try this process started, exited delivers the wrapper's exit
// status (the command's exit code); for an adopted one it is nil: the
// wrapper is asked to write the code to a file, and watched through /proc.
func (e *Executor) follow(t executor.Try, p *proc, logf io.WriteCloser, exited <-chan int) {
	b := base(t)
	copied := make(chan struct{})
	go func() {
		var dst io.Writer = logf
		if t.XComPush {
			dst = io.MultiWriter(logf, &p.last)
		}
		_, _ = io.Copy(dst, p.out)
		close(copied)
	}()
	ended := make(chan struct{}) // the command ended (the wrapper said so)
	said := -1                   // the exit code it said, once ended is closed
	if p.status != nil {
		go func() {
			line, _ := bufio.NewReader(p.status).ReadString('\n')
			if strings.HasSuffix(line, "\n") {
				if c, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
					said = c
				}
				close(ended)
			}
		}()
	}
	code, haveCode := -1, false
	graceAfter := func() {
		select {
		case <-copied:
		case <-time.After(e.grace):
		}
	}
	poll := time.NewTicker(e.poll)
	defer poll.Stop()
	for waiting := true; waiting; {
		select {
		case <-copied:
			waiting = false
		case <-ended:
			graceAfter()
			waiting = false
		case code = <-exited: // killed, or died: nothing more to wait for
			haveCode, exited = true, nil
			graceAfter()
			waiting = false
		case <-poll.C:
			if exited == nil && !alive(p.pgid, b) {
				graceAfter()
				waiting = false
			}
		}
	}
	if e.isCrashed() {
		return // a test's stand-in for the server dying: leave everything as it is
	}
	if !haveCode && exited != nil {
		// The output ends once the wrapper said how the command ended
		// (or the wrapper died): its word is the outcome, and its exit
		// (the Wait in Start) need not be waited for.
		select {
		case <-ended:
			code, haveCode = said, said >= 0
		case code = <-exited:
			haveCode, exited = true, nil
		}
	}
	closeAll(p.out, p.status)
	switch {
	case haveCode:
		if exited != nil {
			_, _ = p.ack.Write([]byte("\n")) // let it exit
		}
	case exited != nil:
		_, _ = p.ack.Write([]byte("\n"))
		code = <-exited
	default:
		// Adopted: ask the wrapper for the code in a file, and wait for it.
		_, _ = p.ack.Write([]byte("w " + b + ".exit\n"))
		for alive(p.pgid, b) {
			time.Sleep(5 * time.Millisecond)
		}
		if c, ok := readExit(b); ok {
			code = c
		}
	}
	p.ack.Close()
	e.finish(t, p, code, logf)
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
		closeAll(p.out, p.ack, p.status)
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
func (e *Executor) finish(t executor.Try, p *proc, code int, logf io.WriteCloser) {
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
		var why string
		if ev.XCom, why = e.result(t, p); why != "" {
			ev.State, ev.Reason = executor.Failed, why
		}
	case code > 0 && slices.Contains(t.SkipOn, code):
		ev.State, ev.Reason = executor.Skipped, fmt.Sprintf("exit code %d is in skip_on_exit_code", code)
	case code > 0:
		ev.State, ev.Reason = executor.Failed, fmt.Sprintf("exit code %d", code)
	default:
		ev.State, ev.Reason = executor.Failed, "process ended without an exit code"
	}
	if s, ok := t.Spec.(dags.PythonSpec); ok && reason == "" { // a killed try keeps why it was killed
		res, err := readPythonResult(t)
		if err != nil {
			ev.State, ev.Reason = executor.Failed, err.Error()
		} else {
			python.Finish(&ev, s, res, t.XComPush)
		}
	}
	line := strings.TrimSpace(fmt.Sprintf("updraft: try ended: %s %s", ev.State, ev.Reason))
	if logf != nil {
		fmt.Fprintf(logf, "[%s] %s\n", e.now().UTC().Format(time.RFC3339), line)
		logf.Close()
	} else {
		e.appendLog(t, line)
	}
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

// Adopt re-attaches to a try started by an earlier process: its wrapper
// is found in /proc (it runs the command, or waits for its output to be
// read), its pipes are opened again and followed as Start does, and the
// try is killed on its timeout, counted from its start. A try whose
// wrapper wrote its exit code and is gone is reported with it. Otherwise
// ErrGone.
func (e *Executor) Adopt(ctx context.Context, t executor.Try) error {
	b := base(t)
	if pid, ok := e.wrappers.find(b); ok {
		fd := func(n, flag int) (*os.File, error) {
			return os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", pid, n), flag, 0)
		}
		out, oerr := fd(3, os.O_RDONLY)
		ack, aerr := fd(5, os.O_WRONLY)
		if oerr != nil || aerr != nil {
			closeAll(out, ack)
			return fmt.Errorf("try %s: reopen the pipes of its process %d: %w", t.Key, pid, errors.Join(oerr, aerr))
		}
		logf, err := executor.OpenLog(t, false)
		if err != nil {
			closeAll(out, ack)
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
	if code, ok := readExit(b); ok {
		p := &proc{done: make(chan struct{})}
		e.mu.Lock()
		e.running[t.Key] = p
		e.mu.Unlock()
		go e.finish(t, p, code, nil)
		return nil
	}
	return fmt.Errorf("try %s: %w", t.Key, executor.ErrGone)
}

// wrapperIndex finds the wrappers of tries in /proc by their base path
// (their $0). One look serves the adoptions of a restart.
type wrapperIndex struct {
	mu   sync.Mutex
	at   time.Time
	pids map[string]int
}

func (w *wrapperIndex) find(b string) (int, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.pids == nil || time.Since(w.at) > time.Second {
		w.pids, w.at = scanWrappers(), time.Now()
	}
	pid, ok := w.pids[b]
	if ok && !alive(pid, b) {
		return 0, false
	}
	return pid, ok
}

// scanWrappers maps the base path of every live try wrapper to its pid.
func scanWrappers() map[string]int {
	out := map[string]int{}
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		if b, ok := wrapperBase(pid); ok {
			out[b] = pid
		}
	}
	return out
}

// wrapperBase returns the base path of a try wrapper process.
func wrapperBase(pid int) (string, bool) {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return "", false
	}
	args := strings.Split(string(cmdline), "\x00")
	if len(args) >= 3 && args[1] == "-c" {
		if script, ok := strings.CutPrefix(args[2], bashTrap); ok {
			b, rest, ok := unquoteShell(script)
			return b, ok && strings.HasPrefix(rest, "; ")
		}
	}
	if len(args) < 4 || args[1] != "-c" || (args[2] != wrapper && args[2] != legacyWrapper) {
		return "", false
	}
	return args[3], true
}

// alive reports whether pid is running and is the wrapper of this try
// (its command line names the try's base path), so a reused pid is not
// mistaken for it.
func alive(pid int, b string) bool {
	if got, ok := wrapperBase(pid); !ok || got != b {
		return false
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if i := strings.LastIndex(string(stat), ")"); i >= 0 && strings.HasPrefix(strings.TrimSpace(string(stat[i+1:])), "Z") {
		return false // a zombie has ended
	}
	return true
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

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
