package dags

import (
	"os"
	"strings"
	"testing"
	"time"
)

// allowed is the expected transition matrix, written out independently of
// the table in state.go: every pair not listed must be refused.
var allowed = map[TaskState]string{
	StateNone:            "scheduled upstream_failed skipped removed success failed",
	StateScheduled:       "queued none removed skipped upstream_failed success failed",
	StateQueued:          "running failed up_for_retry scheduled none skipped success",
	StateRunning:         "success failed up_for_retry skipped restarting",
	StateUpForRetry:      "scheduled none skipped success failed",
	StateRestarting:      "none scheduled failed success",
	StateSuccess:         "none failed",
	StateFailed:          "none success",
	StateSkipped:         "none success failed",
	StateUpstreamFailed:  "none success failed",
	StateRemoved:         "none",
	StateUpForReschedule: "scheduled none failed success",
	StateDeferred:        "scheduled none failed success",
}

func TestTransitionsOverAllPairs(t *testing.T) {
	for _, from := range TaskStates {
		want := strings.Fields(allowed[from])
		for _, to := range TaskStates {
			if got := CanTransition(from, to); got != contains(want, string(to)) {
				t.Errorf("%s -> %s: allowed=%v, want %v", from, to, got, !got)
			}
		}
	}
	// Nothing finished runs again without passing through a clear.
	for _, from := range TaskStates {
		if from.Finished() && (CanTransition(from, StateRunning) || CanTransition(from, StateQueued) || CanTransition(from, StateScheduled)) {
			t.Errorf("finished state %s can restart without a clear", from)
		}
	}
	if err := CheckTransition(StateSuccess, StateRunning); err == nil || !strings.Contains(err.Error(), "success to running") {
		t.Errorf("CheckTransition: %v", err)
	}
}

func counts(states ...TaskState) UpstreamCounts {
	var c UpstreamCounts
	for _, s := range states {
		c.Add(s)
	}
	return c
}

func TestEveryTriggerRule(t *testing.T) {
	const (
		S = StateSuccess
		F = StateFailed
		K = StateSkipped
		U = StateUpstreamFailed
		R = StateRunning
		N = StateNone
	)
	run, wait := "run", "wait"
	cases := []struct {
		rule TriggerRule
		up   []TaskState
		want string // run, wait, skipped, upstream_failed
	}{
		{AllSuccess, []TaskState{S, S}, run},
		{AllSuccess, []TaskState{S, R}, wait},
		{AllSuccess, []TaskState{S, F}, "upstream_failed"},
		{AllSuccess, []TaskState{R, U}, "upstream_failed"},
		{AllSuccess, []TaskState{S, K}, "skipped"},
		{AllSuccess, []TaskState{S, StateRemoved}, run},
		{AllFailed, []TaskState{F, U}, run},
		{AllFailed, []TaskState{F, R}, wait},
		{AllFailed, []TaskState{F, S}, "skipped"},
		{AllFailed, []TaskState{K, F}, "skipped"},
		{AllDone, []TaskState{S, F, K, U}, run},
		{AllDone, []TaskState{S, R}, wait},
		{AllSkipped, []TaskState{K, K}, run},
		{AllSkipped, []TaskState{K, S}, "skipped"},
		{AllSkipped, []TaskState{K, N}, wait},
		{OneSuccess, []TaskState{S, R}, run},
		{OneSuccess, []TaskState{F, R}, wait},
		{OneSuccess, []TaskState{K, K}, "skipped"},
		{OneSuccess, []TaskState{F, K}, "upstream_failed"},
		{OneFailed, []TaskState{F, R}, run},
		{OneFailed, []TaskState{U, N}, run},
		{OneFailed, []TaskState{S, R}, wait},
		{OneFailed, []TaskState{S, K}, "skipped"},
		{OneDone, []TaskState{S, R}, run},
		{OneDone, []TaskState{F, R}, run},
		{OneDone, []TaskState{K, R}, wait},
		{OneDone, []TaskState{K, K}, "skipped"},
		{NoneFailed, []TaskState{S, K}, run},
		{NoneFailed, []TaskState{S, R}, wait},
		{NoneFailed, []TaskState{F, R}, "upstream_failed"},
		{NoneFailedMinOneSuccess, []TaskState{S, K}, run},
		{NoneFailedMinOneSuccess, []TaskState{K, K}, "skipped"},
		{NoneFailedMinOneSuccess, []TaskState{U, S}, "upstream_failed"},
		{NoneFailedMinOneSuccess, []TaskState{S, R}, wait},
		{NoneSkipped, []TaskState{S, F}, run},
		{NoneSkipped, []TaskState{K, R}, "skipped"},
		{NoneSkipped, []TaskState{S, R}, wait},
		{Always, []TaskState{R, N}, run},
		{AllDoneSetupSuccess, []TaskState{F, S}, run},
		{AllSuccess, nil, run},
	}
	for _, c := range cases {
		d := c.rule.Evaluate(counts(c.up...))
		got := wait
		switch {
		case d.Run:
			got = run
		case d.Settle != "":
			got = string(d.Settle)
		}
		if got != c.want {
			t.Errorf("%s over %v = %s, want %s", c.rule, c.up, got, c.want)
		}
	}
	// Every rule appears in the table above.
	for _, r := range TriggerRules {
		found := false
		for _, c := range cases {
			found = found || c.rule == r
		}
		if !found {
			t.Errorf("trigger rule %s is not tested", r)
		}
	}
}

func TestRunStateFromLeaves(t *testing.T) {
	d := mustDAG(t, Load(os.DirFS("examples"), Options{}), "dbt_nightly")
	states := map[string]TaskState{}
	for _, task := range d.Tasks {
		states[task.ID] = StateSuccess
	}
	states["dbt-cloud-run"] = StateFailed
	states["dbt-cloud-snapshots"] = StateUpstreamFailed
	states["dbt-cloud-tests"] = StateUpstreamFailed
	// all_done leaves succeeded: the run succeeds despite the failure (Airflow's leaf rule).
	if s, ok := RunStateFromLeaves(d, states); !ok || s != RunSuccess {
		t.Errorf("= %s %v, want success", s, ok)
	}
	states["dbt-cloud-final"] = StateFailed
	if s, ok := RunStateFromLeaves(d, states); !ok || s != RunFailed {
		t.Errorf("= %s %v, want failed", s, ok)
	}
	states["deferred-merge"] = StateRunning
	if _, ok := RunStateFromLeaves(d, states); ok {
		t.Error("decided while a task is running")
	}
}

// Expected values computed with Airflow 2.8's formula in Python.
func TestRetryDelay(t *testing.T) {
	task := &Task{ID: "load", RetryDelay: time.Minute}
	logical := utc("2024-01-01T00:00:00Z")
	eq(t, "fixed", RetryDelay(task, "etl", logical, 3), time.Minute)
	task.RetryExponentialBackoff = true
	eq(t, "try 1", RetryDelay(task, "etl", logical, 1), 72*time.Second)
	eq(t, "try 2", RetryDelay(task, "etl", logical, 2), 173*time.Second)
	eq(t, "try 3", RetryDelay(task, "etl", logical, 3), 273*time.Second)
	task.RetryDelay = 5 * time.Minute
	eq(t, "300 s", RetryDelay(task, "etl", logical, 1), 552*time.Second)
	task.MaxRetryDelay = 400 * time.Second
	eq(t, "max_retry_delay", RetryDelay(task, "etl", logical, 1), 400*time.Second)
	task.MaxRetryDelay = 0
	eq(t, "24 h ceiling", RetryDelay(task, "etl", logical, 40), 24*time.Hour)
}
