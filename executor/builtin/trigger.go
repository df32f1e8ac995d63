package builtin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"updraft/dags"
	"updraft/executor"
)

// ErrRunExists means the DAG already has a run with that id or logical date.
var ErrRunExists = errors.New("the run exists")

// Runs starts, resets and reads runs of other DAGs for
// TriggerDagRunOperator (the scheduler's commands, in the server).
type Runs interface {
	// Trigger starts a manual run and returns its id; ErrRunExists when
	// the DAG has one with that id or logical date. An empty runID gets
	// the scheduler's default (manual__<logical date>).
	Trigger(ctx context.Context, dagID, runID string, logical time.Time, conf map[string]any, actor string) (string, error)
	// Reset clears every task instance of a run, so it runs again.
	Reset(ctx context.Context, dagID, runID, actor string) error
	// State is a run's state.
	State(ctx context.Context, dagID, runID string) (string, error)
}

// logicalLayouts are the forms a templated logical_date takes ({{ ts }},
// {{ ds }}, ISO 8601 with or without fractions).
var logicalLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999-07:00", "2006-01-02T15:04:05", "2006-01-02"}

// runTrigger starts the other DAG's run, resets it when it exists and
// reset_dag_run asks for it, and with wait_for_completion polls it until
// it ends in an allowed or failed state.
func (e *Executor) runTrigger(ctx context.Context, s dags.TriggerDagRunSpec, t executor.Try, logLine func(string, ...any), out *result) error {
	if e.o.Runs == nil {
		return errors.New("this server cannot start runs of other DAGs")
	}
	logical := time.Now().UTC()
	if s.Logical != "" {
		var err error
		for _, layout := range logicalLayouts {
			var parsed time.Time
			if parsed, err = time.Parse(layout, s.Logical); err == nil {
				logical = parsed.UTC()
				break
			}
		}
		if err != nil {
			return fmt.Errorf("logical_date %q is not a date and time", s.Logical)
		}
	}
	actor := "task " + t.Key.DagID + "." + t.Key.TaskID
	runID, err := e.o.Runs.Trigger(ctx, s.DagID, s.RunID, logical, s.Conf, actor)
	switch {
	case errors.Is(err, ErrRunExists) && s.Reset:
		if runID == "" {
			runID = s.RunID
		}
		if runID == "" && e.o.External != nil {
			if st, err := e.o.External(ctx, s.DagID, logical, nil); err == nil {
				runID = st.RunID
			}
		}
		if runID == "" {
			return fmt.Errorf("%s has a run at %s, but it cannot be found to reset", s.DagID, logical.Format(time.RFC3339))
		}
		if err := e.o.Runs.Reset(ctx, s.DagID, runID, actor); err != nil {
			return fmt.Errorf("reset run %s of %s: %w", runID, s.DagID, err)
		}
		logLine("updraft: the run %s of %s existed and was cleared (reset_dag_run)", runID, s.DagID)
	case errors.Is(err, ErrRunExists) && s.SkipIfExists:
		logLine("updraft: %s already has that run (skip_when_already_exists)", s.DagID)
		return errSkip
	case errors.Is(err, ErrRunExists):
		return fmt.Errorf("%s already has a run with id %q or at %s; set reset_dag_run to clear it", s.DagID, s.RunID, logical.Format(time.RFC3339))
	case err != nil:
		return fmt.Errorf("trigger %s: %w", s.DagID, err)
	default:
		logLine("updraft: triggered run %s of %s (logical date %s)", runID, s.DagID, logical.Format(time.RFC3339))
	}
	// Airflow pushes these whatever do_xcom_push says.
	out.push("trigger_run_id", runID)
	out.push("trigger_logical_date_iso", logical.Format("2006-01-02T15:04:05-07:00"))
	if !s.Wait {
		return nil
	}
	for n := 1; ; n++ {
		state, err := e.o.Runs.State(ctx, s.DagID, runID)
		if err != nil {
			logLine("updraft: poll %d: cannot read run %s of %s: %v", n, runID, s.DagID, err)
		} else {
			logLine("updraft: poll %d: run %s of %s is %s", n, runID, s.DagID, state)
			switch {
			case slices.Contains(s.FailedStates, state):
				return fmt.Errorf("run %s of %s ended %s, one of failed_states", runID, s.DagID, state)
			case slices.Contains(s.AllowedStates, state):
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.PokeInterval):
		}
	}
}
