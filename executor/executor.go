package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"updraft/dags"
)

// TryKey identifies one try of one task instance. MapIndex is the task
// instance's map index, -1 for an unmapped task.
type TryKey struct {
	DagID, RunID, TaskID string
	TryNumber            int
	MapIndex             int
}

func (k TryKey) String() string {
	if k.MapIndex >= 0 {
		return fmt.Sprintf("%s/%s/%s[%d]#%d", k.DagID, k.RunID, k.TaskID, k.MapIndex, k.TryNumber)
	}
	return fmt.Sprintf("%s/%s/%s#%d", k.DagID, k.RunID, k.TaskID, k.TryNumber)
}

// Task names the try's task instance in logs: "dag.task", with a mapped
// instance's index ("dag.task[2]").
func (k TryKey) Task() string {
	if k.MapIndex >= 0 {
		return fmt.Sprintf("%s.%s[%d]", k.DagID, k.TaskID, k.MapIndex)
	}
	return k.DagID + "." + k.TaskID
}

// Try is one try to run: the task with its fields already rendered.
type Try struct {
	Key     TryKey
	Spec    dags.OperatorSpec // rendered
	SkipOn  []int             // exit codes that mean skipped
	Timeout time.Duration     // execution_timeout; 0 means none
	LogPath string            // where the try's log goes; the executor appends to it
	// Started is when the try was recorded as started (set on Adopt, so
	// that timeouts count from the try's start, not from the adoption).
	Started time.Time
	// Mask masks secret values in everything the executor writes to the
	// log (see OpenLog); nil masks nothing.
	Mask *dags.Masker
	// ContextEnv is Airflow's AIRFLOW_CTX_* variables for the try
	// ("AIRFLOW_CTX_DAG_ID=..."), added to a local task's environment.
	ContextEnv []string
	// Revision is the git revision of the run's DAG version ("" when the
	// DAG folder is not from git): a Python callable runs on its files.
	Revision string
	// XComPush is the task's do_xcom_push: the try's result is reported
	// in its final event (Event.XCom) only when it is set.
	XComPush bool
}

// State is what an event reports about a try.
type State string

// Event states.
const (
	Running   State = "running"
	Succeeded State = "success"
	Failed    State = "failed"
	Skipped   State = "skipped"
)

// Event reports a try's progress. Every started try produces exactly one
// final event (Succeeded, Failed or Skipped), possibly after a Running one.
type Event struct {
	Key      TryKey
	State    State
	ExitCode *int   // when the process exited
	Reason   string // why it failed: "exit code 3", "execution_timeout of 1h exceeded", "killed: marked failed"
	Handle   string // on Running: the executor's handle (pid, pod name)
	At       time.Time
	// Final marks a failure that retries cannot help (a sensor's timeout,
	// as in Airflow): the task instance fails even with retries left.
	Final bool
	// XCom is what a succeeded (or skipped) try pushed, by key (JSON
	// values); dags.ReturnValueKey holds the operator's result.
	XCom map[string]json.RawMessage
	// Branch is set by a branching task that succeeded: which of its
	// downstream tasks go on.
	Branch *dags.Branch
}

// ReturnValue is the XCom of a try that pushes v as its result.
func ReturnValue(v json.RawMessage) map[string]json.RawMessage {
	return map[string]json.RawMessage{dags.ReturnValueKey: v}
}

// ErrFull means the executor has no free slot; try again after an event.
var ErrFull = errors.New("executor is at its concurrency limit")

// ErrGone means a try to adopt is no longer running and left no outcome.
var ErrGone = errors.New("try is gone")

// Executor runs task tries. Implementations are safe for concurrent use.
type Executor interface {
	// Start begins a try and returns once it is running (or failed to
	// start). Progress arrives on Events.
	Start(ctx context.Context, t Try) error
	// Kill stops a running try; its final event is Failed with reason.
	// Killing a try that already finished is not an error.
	Kill(ctx context.Context, k TryKey, reason string) error
	// Adopt re-attaches to a try started by an earlier process (after a
	// restart): its events then arrive as if it had been started here. It
	// returns ErrGone when the try neither runs nor left an outcome.
	Adopt(ctx context.Context, t Try) error
	// Events delivers try events.
	Events() <-chan Event
	// Free returns how many more tries Start would accept now.
	Free() int
}

// LogReplayer is implemented by executors whose Adopt writes a try's log
// again from its start (the Kubernetes executor reads the pod's whole
// output again). A copy of the log kept elsewhere is then replaced rather
// than extended.
type LogReplayer interface {
	ReplaysLog(t Try) bool
}

// AppendLogLine adds one line of updraft's own to a try's log, stamped
// with its time and masked, creating the log (and its folder) if need be.
// It returns the bytes written; a log that cannot be written is skipped
// silently (the try's state says what happened).
func AppendLogLine(m *dags.Masker, path string, at time.Time, line string) string {
	text := m.Mask(fmt.Sprintf("[%s] %s\n", at.UTC().Format(time.RFC3339), line))
	if f, err := openLogFile(path, os.O_APPEND); err == nil {
		_, _ = f.WriteString(text)
		f.Close()
	}
	return text
}

// Log file and folder modes: only the server's user reads them (a Viewer
// reads logs through the server, which masks them).
const (
	LogFileMode os.FileMode = 0o600
	LogDirMode  os.FileMode = 0o700
)

// openLogFile opens (creating it and its folder) a log file for writing.
// flag adds os.O_APPEND or os.O_TRUNC.
func openLogFile(path string, flag int) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), LogDirMode); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|flag, LogFileMode)
}

// OpenLog opens the try's log for appending (truncating it when truncate
// is set): every byte written goes through the try's masker before it
// reaches the disk. Close flushes what the masker held back.
func OpenLog(t Try, truncate bool) (io.WriteCloser, error) {
	flag := os.O_APPEND
	if truncate {
		flag = os.O_TRUNC
	}
	f, err := openLogFile(t.LogPath, flag)
	if err != nil {
		return nil, err
	}
	return &maskedFile{MaskingWriter: t.Mask.Writer(f), f: f}, nil
}

type maskedFile struct {
	*dags.MaskingWriter
	f *os.File
}

func (m *maskedFile) Close() error {
	err := m.MaskingWriter.Close()
	if cerr := m.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sweeper is an executor that leaves things behind (pods): Sweep removes
// what no live try needs and says how many it removed. live reports
// whether a try may still need what it left.
type Sweeper interface {
	Sweep(ctx context.Context, live func(TryKey) bool) (int, error)
}
