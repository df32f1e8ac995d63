package main

import (
	"context"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"updraft/executor/builtin"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web"
)

// connectionsCmd is `updraft connections list | test ID`. Passwords are
// never printed.
func (m Main) connectionsCmd(ctx context.Context, args []string) int {
	const use = "usage: updraft connections list | test CONN_ID"
	conns := m.connections()
	switch {
	case len(args) == 1 && args[0] == "list":
		list, err := conns.List()
		if err != nil {
			return m.fail(err)
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CONN_ID\tTYPE\tCONNECTION\tFROM")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.ID, c.Type, c.Masked(), c.Source)
		}
		tw.Flush()
		return 0
	case len(args) == 2 && args[0] == "test":
		c, err := conns.Get(args[1])
		if err != nil {
			return m.fail(err)
		}
		msg, err := builtin.Test(ctx, c)
		if err != nil {
			fmt.Fprintln(m.Stdout, err)
			return 1
		}
		fmt.Fprintln(m.Stdout, msg)
		return 0
	}
	fmt.Fprintln(m.Stderr, use)
	return 2
}

// connectionsView shows the server's connections to the web UI and API:
// never a password or an extra.
type connectionsView struct{ c builtin.Connections }

func (v connectionsView) List() ([]web.ConnectionInfo, error) {
	list, err := v.c.List()
	if err != nil {
		return nil, err
	}
	out := make([]web.ConnectionInfo, 0, len(list))
	for _, c := range list {
		out = append(out, web.ConnectionInfo{ID: c.ID, Type: c.Type, Host: c.Host, Login: c.Login, Schema: c.Schema, Port: c.Port,
			Masked: c.Masked(), Source: c.Source})
	}
	return out, nil
}

func (v connectionsView) Test(ctx context.Context, id string) (string, error) {
	c, err := v.c.Get(id)
	if errors.Is(err, builtin.ErrNoConnection) {
		return "", fmt.Errorf("connection %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return "", err
	}
	return builtin.Test(ctx, c)
}

// externalLookup lets external-task sensors read other DAGs' runs from
// the store.
func externalLookup(st *store.Store) builtin.ExternalLookup {
	return func(ctx context.Context, dagID string, logical time.Time, taskIDs []string) (builtin.ExternalState, error) {
		var out builtin.ExternalState
		if _, err := st.DAG(ctx, dagID); err == nil {
			out.DAGExists = true
		} else if !errors.Is(err, store.ErrNotFound) {
			return out, err
		}
		runs, err := st.Runs(ctx, store.RunFilter{DagID: dagID, LogicalGTE: &logical, LogicalLTE: &logical, Limit: 1})
		if err != nil || len(runs) == 0 {
			return out, err
		}
		out.RunID, out.RunState = runs[0].RunID, string(runs[0].State)
		if len(taskIDs) == 0 {
			return out, nil
		}
		tis, err := st.TaskInstances(ctx, dagID, out.RunID)
		if err != nil {
			return out, err
		}
		out.Tasks = map[string]string{}
		for _, ti := range tis {
			state := string(ti.State)
			if state == "" {
				state = "none"
			}
			out.Tasks[ti.TaskID] = state
		}
		return out, nil
	}
}

// runStarter lets TriggerDagRunOperator tasks start, reset and read runs
// through the scheduler. sched is set once the scheduler exists, before
// anything runs.
type runStarter struct {
	sched *scheduler.Scheduler
	st    *store.Store
}

func (r *runStarter) Trigger(ctx context.Context, dagID, runID string, logical time.Time, conf map[string]any, actor string) (string, error) {
	run, err := r.sched.Trigger(ctx, dagID, scheduler.TriggerOptions{RunID: runID, LogicalDate: &logical, Conf: conf, Actor: actor})
	if errors.Is(err, store.ErrConflict) {
		return runID, fmt.Errorf("%w: %v", builtin.ErrRunExists, err)
	}
	return run.RunID, err
}

func (r *runStarter) Reset(ctx context.Context, dagID, runID, actor string) error {
	tis, err := r.st.TaskInstances(ctx, dagID, runID)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(tis))
	for _, ti := range tis {
		ids = append(ids, ti.TaskID)
	}
	_, err = r.sched.Clear(ctx, dagID, runID, ids, scheduler.ClearOptions{Actor: actor})
	return err
}

func (r *runStarter) State(ctx context.Context, dagID, runID string) (string, error) {
	run, err := r.st.Run(ctx, dagID, runID)
	return string(run.State), err
}
