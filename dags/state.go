package dags

import (
	"crypto/sha1"
	"fmt"
	"math"
	"math/big"
	"time"
)

// TaskState is a task instance's state, with exactly Airflow's values.
type TaskState string

// Airflow's task instance states. StateNone is a task instance that has
// not been scheduled yet (Airflow's None).
const (
	StateNone            TaskState = "none"
	StateScheduled       TaskState = "scheduled"
	StateQueued          TaskState = "queued"
	StateRunning         TaskState = "running"
	StateSuccess         TaskState = "success"
	StateFailed          TaskState = "failed"
	StateUpForRetry      TaskState = "up_for_retry"
	StateUpForReschedule TaskState = "up_for_reschedule"
	StateUpstreamFailed  TaskState = "upstream_failed"
	StateSkipped         TaskState = "skipped"
	StateRemoved         TaskState = "removed"
	StateRestarting      TaskState = "restarting"
	StateDeferred        TaskState = "deferred"
)

// TaskStates lists every task state.
var TaskStates = []TaskState{StateNone, StateScheduled, StateQueued, StateRunning, StateSuccess, StateFailed,
	StateUpForRetry, StateUpForReschedule, StateUpstreamFailed, StateSkipped, StateRemoved, StateRestarting, StateDeferred}

// Finished reports whether a task instance in s will not run again unless
// it is cleared.
func (s TaskState) Finished() bool {
	switch s {
	case StateSuccess, StateFailed, StateSkipped, StateUpstreamFailed, StateRemoved:
		return true
	}
	return false
}

// RunState is a DAG run's state, with exactly Airflow's values.
type RunState string

// Airflow's DAG run states.
const (
	RunQueued  RunState = "queued"
	RunRunning RunState = "running"
	RunSuccess RunState = "success"
	RunFailed  RunState = "failed"
)

// Finished reports whether the run is over.
func (s RunState) Finished() bool { return s == RunSuccess || s == RunFailed }

// transitions is the one table of allowed task state changes. Every state
// change the scheduler, an executor or a user makes is checked against it
// (and applied in the store with compare-and-swap from the old state).
var transitions = map[TaskState][]TaskState{
	// Scheduling: trigger rules resolve a waiting task, or the task is gone.
	StateNone: {StateScheduled, StateUpstreamFailed, StateSkipped, StateRemoved, StateSuccess, StateFailed},
	// Handed to the executor, or undone by a clear / a timed-out run.
	StateScheduled: {StateQueued, StateNone, StateRemoved, StateSkipped, StateUpstreamFailed, StateSuccess, StateFailed},
	// Started, or failed to start (retried when tries are left).
	StateQueued: {StateRunning, StateFailed, StateUpForRetry, StateScheduled, StateNone, StateSkipped, StateSuccess},
	// Finished one way or another; cleared while running restarts it.
	StateRunning: {StateSuccess, StateFailed, StateUpForRetry, StateSkipped, StateRestarting},
	// Waiting for its retry delay.
	StateUpForRetry: {StateScheduled, StateNone, StateSkipped, StateSuccess, StateFailed},
	// A cleared running try is killed; the task then starts over.
	StateRestarting: {StateNone, StateScheduled, StateFailed, StateSuccess},
	// Finished states change only by clearing (to none) or marking.
	StateSuccess:        {StateNone, StateFailed},
	StateFailed:         {StateNone, StateSuccess},
	StateSkipped:        {StateNone, StateSuccess, StateFailed},
	StateUpstreamFailed: {StateNone, StateSuccess, StateFailed},
	StateRemoved:        {StateNone},
	// Sensors and deferrable operators do not exist in updraft yet; their
	// states are valid values (the API speaks them) with Airflow's exits.
	StateUpForReschedule: {StateScheduled, StateNone, StateFailed, StateSuccess},
	StateDeferred:        {StateScheduled, StateNone, StateFailed, StateSuccess},
}

// CanTransition reports whether a task instance may go from one state to another.
func CanTransition(from, to TaskState) bool {
	return contains(transitions[from], to)
}

// CheckTransition returns an error naming both states when the change is not allowed.
func CheckTransition(from, to TaskState) error {
	if !CanTransition(from, to) {
		return fmt.Errorf("task state cannot go from %s to %s", from, to)
	}
	return nil
}

// UpstreamCounts summarises the states of a task's direct upstream tasks
// in one run.
type UpstreamCounts struct {
	Total, Success, Skipped, Failed, UpstreamFailed, Removed int
}

// Add counts one upstream task instance in state s.
func (c *UpstreamCounts) Add(s TaskState) {
	c.Total++
	switch s {
	case StateSuccess:
		c.Success++
	case StateSkipped:
		c.Skipped++
	case StateFailed:
		c.Failed++
	case StateUpstreamFailed:
		c.UpstreamFailed++
	case StateRemoved:
		c.Removed++
	}
}

func (c UpstreamCounts) done() int {
	return c.Success + c.Skipped + c.Failed + c.UpstreamFailed + c.Removed
}
func (c UpstreamCounts) allDone() bool { return c.done() >= c.Total }
func (c UpstreamCounts) failures() int { return c.Failed + c.UpstreamFailed }

// Decision is what a trigger rule says about a waiting task: run it, settle
// it without running (upstream_failed or skipped), or keep waiting.
type Decision struct {
	Run    bool
	Settle TaskState // StateUpstreamFailed or StateSkipped when the task will never run
}

// Wait is the decision to keep waiting for upstream tasks.
var Wait = Decision{}

// Evaluate applies a trigger rule to the upstream states, as Airflow 2's
// TriggerRuleDep does. Removed upstream tasks count as done and successful
// for the success rules, as in Airflow.
func (r TriggerRule) Evaluate(c UpstreamCounts) Decision {
	if c.Total == 0 {
		return Decision{Run: true}
	}
	run := Decision{Run: true}
	skip := Decision{Settle: StateSkipped}
	fail := Decision{Settle: StateUpstreamFailed}
	succ := c.Success + c.Removed
	switch r {
	case AllSuccess, "":
		switch {
		case c.failures() > 0:
			return fail
		case c.Skipped > 0:
			return skip
		case succ == c.Total:
			return run
		}
	case AllFailed:
		switch {
		case c.Success > 0 || c.Skipped > 0:
			return skip
		case c.allDone():
			return run
		}
	case AllDone, AllDoneSetupSuccess:
		if c.allDone() {
			return run
		}
	case AllSkipped:
		switch {
		case c.Success > 0 || c.failures() > 0:
			return skip
		case c.allDone():
			return run
		}
	case OneSuccess:
		switch {
		case c.Success > 0:
			return run
		case c.allDone() && c.Skipped == c.Total:
			return skip
		case c.allDone():
			return fail
		}
	case OneFailed:
		switch {
		case c.failures() > 0:
			return run
		case c.allDone():
			return skip
		}
	case OneDone:
		switch {
		case c.Success > 0 || c.failures() > 0:
			return run
		case c.allDone():
			return skip
		}
	case NoneFailed:
		switch {
		case c.failures() > 0:
			return fail
		case c.allDone():
			return run
		}
	case NoneFailedMinOneSuccess:
		switch {
		case c.failures() > 0:
			return fail
		case c.allDone() && c.Skipped == c.Total:
			return skip
		case c.allDone():
			return run
		}
	case NoneSkipped:
		switch {
		case c.Skipped > 0:
			return skip
		case c.allDone():
			return run
		}
	case Always:
		return run
	}
	return Wait
}

// RunStateFromLeaves decides a run's state once no task instance is
// unfinished (Airflow's rule): failed if any leaf failed or is
// upstream_failed, success otherwise. A leaf is a task nothing depends on.
// It returns false while any task instance is unfinished.
func RunStateFromLeaves(d *DAG, states map[string]TaskState) (RunState, bool) {
	for _, t := range d.Tasks {
		if s, ok := states[t.ID]; !ok || !s.Finished() {
			return "", false
		}
	}
	for _, leaf := range d.Leaves() {
		if s := states[leaf.ID]; s == StateFailed || s == StateUpstreamFailed {
			return RunFailed, true
		}
	}
	return RunSuccess, true
}

// RetryDelay is how long a task waits after its try number `try` failed
// before the next try, as Airflow computes it: retry_delay, or with
// exponential backoff retry_delay * 2^(try-1) plus a deterministic jitter
// below that, capped by max_retry_delay and Airflow's 24 h ceiling.
func RetryDelay(t *Task, dagID string, logical time.Time, try int) time.Duration {
	if !t.RetryExponentialBackoff {
		return t.RetryDelay
	}
	minBackoff := math.Ceil(t.RetryDelay.Seconds() * math.Pow(2, float64(try-1)))
	if minBackoff < 1 {
		minBackoff = 1
	}
	ceiling := MaxTaskRetryDelay.Seconds()
	var seconds float64
	if minBackoff >= ceiling {
		seconds = ceiling
	} else {
		sum := sha1.Sum([]byte(fmt.Sprintf("%s#%s#%s#%d", dagID, t.ID, NewDateTime(logical).iso(), try+1)))
		h := new(big.Int).SetBytes(sum[:])
		mod := new(big.Int).Mod(h, big.NewInt(int64(minBackoff))).Int64()
		seconds = math.Min(minBackoff+float64(mod), ceiling)
	}
	d := time.Duration(seconds) * time.Second
	if t.MaxRetryDelay > 0 && d > t.MaxRetryDelay {
		d = t.MaxRetryDelay
	}
	return d
}
