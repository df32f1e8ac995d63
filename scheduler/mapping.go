package scheduler

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// groupByTask lists each task's instances, by map index.
func groupByTask(byID map[tiID]*store.TaskInstance) map[string][]*store.TaskInstance {
	out := make(map[string][]*store.TaskInstance, len(byID))
	for _, ti := range byID {
		out[ti.TaskID] = append(out[ti.TaskID], ti)
	}
	for _, l := range out {
		sort.Slice(l, func(i, j int) bool { return l[i].MapIndex < l[j].MapIndex })
	}
	return out
}

// upstreamCounts counts the states of ti's direct upstream instances: all
// of an upstream task's instances, or, for the upstream a mapped instance
// is zipped with, the one with its map index.
func upstreamCounts(d *dags.DAG, t *dags.Task, ti *store.TaskInstance, byTask map[string][]*store.TaskInstance) dags.UpstreamCounts {
	var c dags.UpstreamCounts
	for _, u := range t.Upstream {
		insts := byTask[u]
		if len(insts) == 0 {
			c.Add(dags.StateRemoved)
			continue
		}
		if ti.MapIndex >= 0 && t.Mapped() && t.Expand.Zipped(u) && insts[0].MapIndex >= 0 {
			found := false
			for _, ui := range insts {
				if ui.MapIndex == ti.MapIndex {
					c.Add(ui.State)
					found = true
				}
			}
			if !found {
				c.Add(dags.StateRemoved)
			}
			continue
		}
		for _, ui := range insts {
			c.Add(ui.State)
		}
	}
	return c
}

// aggregateState is a task's state over its instances, for the run's leaf
// rule: unfinished while one is, failed (or upstream_failed) if one is,
// skipped if all are, success otherwise.
func aggregateState(insts []*store.TaskInstance) dags.TaskState {
	if len(insts) == 1 {
		return insts[0].State
	}
	var failed, upFailed, skipped bool
	all := true
	for _, ti := range insts {
		switch {
		case !ti.State.Finished():
			return ti.State
		case ti.State == dags.StateFailed:
			failed = true
		case ti.State == dags.StateUpstreamFailed:
			upFailed = true
		case ti.State == dags.StateSkipped:
			skipped = true
			continue
		}
		all = false
	}
	switch {
	case failed:
		return dags.StateFailed
	case upFailed:
		return dags.StateUpstreamFailed
	case skipped && all:
		return dags.StateSkipped
	}
	return dags.StateSuccess
}

// expandTask expands a mapped task's placeholder instance once what it
// maps over is known: a zipped upstream once that one has expanded, any
// other source once its upstream tasks let it run (trigger rule), as in
// Airflow. A list of no items skips the task; one that cannot be read
// fails it (and says why in an alert). It reports whether it expanded.
func (s *Scheduler) expandTask(ctx context.Context, st *store.Store, d *dags.DAG, t *dags.Task, r store.Run, ph *store.TaskInstance,
	byTask map[string][]*store.TaskInstance, now time.Time) (bool, error) {
	var zipped, zipKey string // the mapped upstream task it maps over, and its XCom key
	for _, src := range t.Expand.Sources() {
		if src.Task != "" && d.Task(src.Task) != nil && d.Task(src.Task).Mapped() {
			zipped, zipKey = src.Task, src.Key
		}
	}
	if zipKey == "" {
		zipKey = dags.ReturnValueKey
	}
	settle := func(to dags.TaskState, why string) (bool, error) {
		upd := *ph
		end := now
		upd.State, upd.EndDate = to, &end
		ok, err := st.UpdateTaskInstance(ctx, upd, dags.StateNone)
		if err != nil || !ok {
			s.cache.drop(r.DagID, r.RunID)
			return false, err
		}
		*ph = upd
		s.log.Info("mapped task settled", "dag_id", r.DagID, "run_id", r.RunID, "task_id", t.ID, "state", to, "reason", why)
		if to == dags.StateFailed {
			return false, st.AddAlert(ctx, taskAlert(AlertTaskFailed, ph.Key(), 0, why, now))
		}
		return false, nil
	}
	var lists [][]any
	if zipped != "" {
		up := byTask[zipped]
		if len(up) == 0 || up[0].MapIndex < 0 {
			// Not expanded: wait, or settle as the trigger rule says
			// when the upstream will never expand.
			if len(up) > 0 && up[0].State.Finished() {
				dec := t.TriggerRule.Evaluate(upstreamCounts(d, t, ph, byTask))
				switch {
				case dec.Settle != "":
					return settle(dec.Settle, "the task it maps over did not run")
				case dec.Run:
					return settle(dags.StateSkipped, "the task it maps over has no instances")
				}
			}
			return false, nil
		}
		refs := make([]any, len(up))
		for i, ui := range up {
			refs[i] = dags.MapRef{Task: zipped, MapIndex: ui.MapIndex, Key: zipKey}
		}
		lists = [][]any{refs}
	} else {
		dec := t.TriggerRule.Evaluate(upstreamCounts(d, t, ph, byTask))
		switch {
		case dec.Settle != "":
			return settle(dec.Settle, "upstream tasks decided")
		case !dec.Run:
			return false, nil
		}
		for _, src := range t.Expand.Sources() {
			l, err := s.mapList(ctx, st, d, t, r, src, now)
			if err != nil {
				return settle(dags.StateFailed, fmt.Sprintf("%s cannot expand: %v", t.ID, err))
			}
			lists = append(lists, l)
		}
	}
	inputs, err := t.Expand.MapInputs(lists)
	if err != nil {
		return settle(dags.StateFailed, fmt.Sprintf("%s cannot expand: %v", t.ID, err))
	}
	if len(inputs) > dags.MaxMapLength {
		return settle(dags.StateFailed, fmt.Sprintf("%s would have %d mapped instances, over the limit of %d", t.ID, len(inputs), dags.MaxMapLength))
	}
	if len(inputs) == 0 {
		return settle(dags.StateSkipped, "it maps over an empty list")
	}
	tis := make([]store.TaskInstance, len(inputs))
	for i, in := range inputs {
		b, err := json.Marshal(in)
		if err != nil {
			return settle(dags.StateFailed, fmt.Sprintf("%s cannot expand: %v", t.ID, err))
		}
		ti := *ph
		ti.MapIndex, ti.MapInput, ti.State = i, string(b), dags.StateNone
		tis[i] = ti
	}
	ok, err := st.ExpandTaskInstance(ctx, ph.Key(), tis)
	if err != nil || !ok {
		s.cache.drop(r.DagID, r.RunID)
		return false, err
	}
	s.log.Info("mapped task expanded", "dag_id", r.DagID, "run_id", r.RunID, "task_id", t.ID, "instances", len(tis))
	return true, nil
}

// mapList reads one map source's list: a literal, a template rendered in
// the run's context, or an upstream task's XCom.
func (s *Scheduler) mapList(ctx context.Context, st *store.Store, d *dags.DAG, t *dags.Task, r store.Run, src dags.MapSource, now time.Time) ([]any, error) {
	switch {
	case src.Literal != nil:
		return src.Literal, nil
	case src.Template != "":
		vars, secret, err := st.TemplateVariables(ctx)
		if err != nil {
			return nil, err
		}
		s.opts.Mask.Add(secret...)
		out, err := dags.NewRenderer(t, s.runContext(ctx, st, d, r, -1, 0, now), vars).RenderString(src.Template)
		if err != nil {
			return nil, err
		}
		return dags.ListOf(out)
	case src.Task != "":
		key := src.Key
		if key == "" {
			key = dags.ReturnValueKey
		}
		xs, err := st.XComs(ctx, store.XComFilter{DagID: r.DagID, RunID: r.RunID, TaskIDs: []string{src.Task}, Key: key})
		if err != nil {
			return nil, err
		}
		if len(xs) == 0 {
			return nil, fmt.Errorf("%s pushed no XCom %s to map over", src.Task, key)
		}
		var v any
		if err := json.Unmarshal(xs[0].Value, &v); err != nil {
			return nil, err
		}
		return dags.ListOf(dags.JSONNumbers(v))
	}
	return nil, fmt.Errorf("nothing to map over")
}

// runContext is the template context of a task instance of run r.
func (s *Scheduler) runContext(ctx context.Context, st *store.Store, d *dags.DAG, r store.Run, mapIndex, try int, now time.Time) dags.RunContext {
	return dags.RunContext{DAG: d, RunID: r.RunID, RunType: r.RunType, LogicalDate: r.LogicalDate,
		DataInterval: r.Interval, Conf: r.Conf, TryNumber: try, MapIndex: mapIndex, Now: now,
		XCom: storeXCom{ctx: ctx, st: st, logical: r.LogicalDate}}
}

// instanceInput resolves a mapped instance's input: references to a zipped
// upstream instance become that instance's XCom.
func instanceInput(ctx context.Context, st *store.Store, ti store.TaskInstance) (map[string]any, error) {
	if ti.MapInput == "" {
		return nil, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(ti.MapInput), &raw); err != nil {
		return nil, fmt.Errorf("the instance's input is not JSON: %v", err)
	}
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		var ref struct {
			Task     *string `json:"task"`
			MapIndex int     `json:"map_index"`
			Key      string  `json:"key"`
		}
		if isRef(v) && json.Unmarshal(v, &ref) == nil && ref.Task != nil {
			idx := ref.MapIndex
			xs, err := st.XComs(ctx, store.XComFilter{DagID: ti.DagID, RunID: ti.RunID, TaskIDs: []string{*ref.Task}, Key: ref.Key, MapIndex: &idx})
			if err != nil {
				return nil, err
			}
			if len(xs) == 0 {
				return nil, fmt.Errorf("%s[%d] pushed no XCom %s for this instance", *ref.Task, idx, ref.Key)
			}
			var x any
			if err := json.Unmarshal(xs[0].Value, &x); err != nil {
				return nil, err
			}
			out[k] = dags.JSONNumbers(x)
			continue
		}
		var x any
		dec := json.NewDecoder(strings.NewReader(string(v)))
		dec.UseNumber()
		if err := dec.Decode(&x); err != nil {
			return nil, err
		}
		out[k] = dags.JSONNumbers(x)
	}
	return out, nil
}

// isRef tells a MapRef's JSON from a mapped value that happens to be an
// object: exactly the keys task, map_index and key.
func isRef(v json.RawMessage) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil || len(m) != 3 {
		return false
	}
	_, a := m["task"]
	_, b := m["map_index"]
	_, c := m["key"]
	return a && b && c
}
