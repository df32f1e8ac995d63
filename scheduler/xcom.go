package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
)

// DefaultXComMaxBytes bounds what one try may push (all its keys
// together) unless Options.XComMaxBytes says otherwise.
const DefaultXComMaxBytes = 1 << 20

// storeXCom is where templates pull XComs from: the store, read in the
// transaction that renders the try.
type storeXCom struct {
	ctx     context.Context
	st      *store.Store
	logical time.Time // the rendering run's logical date (include_prior_dates)
}

func (x storeXCom) PullXCom(q dags.XComQuery) ([]dags.XComValue, error) {
	f := store.XComFilter{DagID: q.DagID, RunID: q.RunID, TaskIDs: q.TaskIDs, Key: q.Key, IncludePrior: q.IncludePrior, Before: x.logical}
	if len(q.MapIndexes) == 1 {
		f.MapIndex = &q.MapIndexes[0]
	}
	rows, err := x.st.XComs(x.ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]dags.XComValue, 0, len(rows))
	for _, r := range rows {
		if q.MapIndexes != nil && !slices.Contains(q.MapIndexes, r.MapIndex) {
			continue
		}
		out = append(out, dags.XComValue{TaskID: r.TaskID, MapIndex: r.MapIndex, RunID: r.RunID, Value: r.Value})
	}
	return out, nil
}

func (s *Scheduler) xcomLimit() int {
	if s.opts.XComMaxBytes > 0 {
		return s.opts.XComMaxBytes
	}
	return DefaultXComMaxBytes
}

// checkResult says why a succeeded try's result cannot be used, or "":
// an XCom over the size limit or not JSON, a branch to tasks the DAG
// (d, nil when unknown) does not have.
func (s *Scheduler) checkResult(d *dags.DAG, ev executor.Event) string {
	if ev.State != executor.Succeeded {
		return ""
	}
	size := 0
	for key, v := range ev.XCom {
		size += len(v)
		if !json.Valid(v) {
			return fmt.Sprintf("XCom %s is not JSON", key)
		}
	}
	if size > s.xcomLimit() {
		return fmt.Sprintf("the try's XCom is %d bytes, over the limit of %d bytes (the server's --xcom-max-bytes)", size, s.xcomLimit())
	}
	if d != nil && ev.Branch != nil {
		var unknown []string
		for _, id := range ev.Branch.Follow {
			if d.Task(id) == nil {
				unknown = append(unknown, id)
			}
		}
		if len(unknown) > 0 {
			return fmt.Sprintf("the branch follows task(s) the DAG does not have: %s", strings.Join(unknown, ", "))
		}
	}
	return ""
}

// applyBranch skips what a branching task decided against (checked by
// checkResult): its direct downstream tasks not followed and, with All,
// everything downstream of them, whatever their trigger rules.
func (s *Scheduler) applyBranch(ctx context.Context, st *store.Store, d *dags.DAG, k store.TIKey, b *dags.Branch, at time.Time) error {
	if d == nil || b == nil {
		return nil
	}
	// A mapped instance's decision reaches only the instances zipped with
	// it (the same map index down its chain), as Airflow skips within a
	// mapped task group; an unmapped task's reaches every instance.
	zippedWith := func(down, up string) bool {
		return k.MapIndex < 0 || (d.Task(down) != nil && d.Task(down).Mapped() && d.Task(down).Expand.Zipped(up))
	}
	skip := map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		for _, down := range d.Downstream(id) {
			if !skip[down] && zippedWith(down, id) {
				skip[down] = true
				walk(down)
			}
		}
	}
	for _, down := range d.Downstream(k.TaskID) {
		if slices.Contains(b.Follow, down) || !zippedWith(down, k.TaskID) {
			continue
		}
		skip[down] = true
		if b.All {
			walk(down)
		}
	}
	if len(skip) == 0 {
		return nil
	}
	tis, err := st.TaskInstances(ctx, k.DagID, k.RunID)
	if err != nil {
		return err
	}
	for _, ti := range tis {
		if !skip[ti.TaskID] || (ti.State != dags.StateNone && ti.State != dags.StateScheduled) ||
			(k.MapIndex >= 0 && ti.MapIndex != k.MapIndex) {
			continue
		}
		upd := ti
		upd.State, upd.EndDate = dags.StateSkipped, &at
		ok, err := st.UpdateTaskInstance(ctx, upd, ti.State)
		if err != nil {
			return err
		}
		if ok {
			s.cache.update(upd)
		}
	}
	return nil
}
