package builtin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"updraft/dags"
)

// ExternalState is what an external-task sensor sees of another DAG's run.
type ExternalState struct {
	DAGExists bool
	RunID     string // "" when there is no run at that logical date yet
	RunState  string
	Tasks     map[string]string // state by task id; a task the run lacks is absent
}

// ExternalLookup reads another DAG's run at a logical date (the store).
type ExternalLookup func(ctx context.Context, dagID string, logical time.Time, taskIDs []string) (ExternalState, error)

// errSensorTimeout is a sensor's timeout: final, not retried.
var errSensorTimeout = errors.New("sensor timeout")

// errSkip ends a try as skipped (soft_fail, or a skipped_states match).
var errSkip = errors.New("skipped")

// poker checks a sensor's condition once: done when it holds, an error
// when it never will.
type poker func(ctx context.Context, n int) (done bool, err error)

// runSensor pokes until the condition holds, the timeout passes or ctx
// ends. With soft_fail, a timeout or a failure ends the try as skipped.
func (e *Executor) runSensor(ctx context.Context, s dags.Sensor, logLine func(string, ...any)) error {
	set := s.Settings()
	var poke poker
	switch spec := s.(type) {
	case dags.ExternalTaskSpec:
		poke = e.externalPoker(spec, logLine)
	case dags.HttpSensorSpec:
		poke = e.httpPoker(spec, logLine)
	case dags.SqlSensorSpec:
		poke = e.sqlPoker(spec, logLine)
	default:
		return fmt.Errorf("%s is not a sensor updraft runs", s.Kind())
	}
	start := time.Now()
	logLine("updraft: poking every %s (mode %s), timeout %s", set.PokeInterval, set.Mode, set.Timeout)
	for n := 1; ; n++ {
		done, err := poke(ctx, n)
		if err == nil && done {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			if set.SoftFail || errors.Is(err, errSkip) {
				logLine("updraft: %s; skipped (soft_fail)", err)
				return errSkip
			}
			return err
		}
		left := set.Timeout - time.Since(start)
		if left <= 0 {
			if set.SoftFail {
				logLine("updraft: timed out after %s; skipped (soft_fail)", set.Timeout)
				return errSkip
			}
			return fmt.Errorf("%w: the condition did not hold within %s", errSensorTimeout, set.Timeout)
		}
		wait := set.NextPoke(n, left)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// externalPoker checks the other DAG's run: its state, or its tasks'.
func (e *Executor) externalPoker(s dags.ExternalTaskSpec, logLine func(string, ...any)) poker {
	what := s.ExternalDagID
	if len(s.ExternalTaskIDs) > 0 {
		what += "." + strings.Join(s.ExternalTaskIDs, ",")
	}
	logLine("updraft: waiting for %s at logical date %s to be %s", what, s.LogicalDate.UTC().Format(time.RFC3339), strings.Join(s.AllowedStates, " or "))
	return func(ctx context.Context, n int) (bool, error) {
		if e.o.External == nil {
			return false, errors.New("this server cannot look at other DAGs' runs")
		}
		st, err := e.o.External(ctx, s.ExternalDagID, s.LogicalDate, s.ExternalTaskIDs)
		if err != nil {
			logLine("updraft: poke %d: cannot read %s: %v", n, s.ExternalDagID, err)
			return false, nil // the store may be back at the next poke
		}
		if s.CheckExistence && !st.DAGExists {
			return false, fmt.Errorf("the DAG %s does not exist (check_existence)", s.ExternalDagID)
		}
		if st.RunID == "" {
			logLine("updraft: poke %d: %s has no run at %s yet", n, s.ExternalDagID, s.LogicalDate.UTC().Format(time.RFC3339))
			return false, nil
		}
		var states []string
		if len(s.ExternalTaskIDs) == 0 {
			states = []string{st.RunState}
		} else {
			for _, id := range s.ExternalTaskIDs {
				state, ok := st.Tasks[id]
				if !ok {
					if s.CheckExistence {
						return false, fmt.Errorf("the run %s of %s has no task %s (check_existence)", st.RunID, s.ExternalDagID, id)
					}
					state = "none"
				}
				states = append(states, state)
			}
		}
		logLine("updraft: poke %d: %s in run %s: %s", n, what, st.RunID, strings.Join(states, ", "))
		all := true
		for _, state := range states {
			switch {
			case slices.Contains(s.FailedStates, state):
				return false, fmt.Errorf("%s in run %s is %s, one of failed_states", what, st.RunID, state)
			case slices.Contains(s.SkippedStates, state):
				return false, fmt.Errorf("%w: %s in run %s is %s, one of skipped_states", errSkip, what, st.RunID, state)
			case !slices.Contains(s.AllowedStates, state):
				all = false
			}
		}
		return all, nil
	}
}

// httpPoker requests the endpoint: an allowlisted status (404) means "not
// yet", another error status fails the try, and an answer that fails
// response_check is polled again.
func (e *Executor) httpPoker(s dags.HttpSensorSpec, logLine func(string, ...any)) poker {
	return func(ctx context.Context, n int) (bool, error) {
		status, body, _, err := e.request(ctx, s.Request, logLine)
		if err != nil {
			return false, err
		}
		if slices.Contains(s.NotYetStatus, status) {
			logLine("updraft: poke %d: HTTP %d, not yet", n, status)
			return false, nil
		}
		if len(s.Request.CheckStatus) == 0 && status >= 400 {
			return false, fmt.Errorf("HTTP %d %s", status, http.StatusText(status))
		}
		if err := s.Request.CheckResponse(status, body); err != nil {
			logLine("updraft: poke %d: %v", n, err)
			return false, nil
		}
		return true, nil
	}
}

// sqlPoker runs the query and tests the first cell of its first row.
func (e *Executor) sqlPoker(s dags.SqlSensorSpec, logLine func(string, ...any)) poker {
	return func(ctx context.Context, n int) (bool, error) {
		cell, found, err := e.firstCell(ctx, s.Query)
		if err != nil {
			return false, err
		}
		if !found {
			if s.FailOnEmpty {
				return false, errors.New("the query returned no row (fail_on_empty)")
			}
			logLine("updraft: poke %d: no row yet", n)
			return false, nil
		}
		ok := truthy(cell)
		logLine("updraft: poke %d: first cell %v: %t", n, cellText(cell), ok)
		return ok, nil
	}
}

// truthy is Python's truth of a database value, as SqlSensor tests it:
// null, false, zero and empty are false. Numbers the driver hands over as
// text (PostgreSQL's numeric) count by their value.
func truthy(v any) bool {
	switch x := v.(type) {
	case int32:
		return x != 0
	case int:
		return x != 0
	case float32:
		return x != 0
	case []byte:
		return truthy(string(x))
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f != 0
		}
	case time.Time:
		return true
	}
	return dags.Truthy(v)
}

func cellText(v any) string {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return fmt.Sprint(v)
}
