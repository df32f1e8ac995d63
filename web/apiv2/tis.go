package apiv2

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web/ops"
)

// tiID is a stable UUID for a task instance (Airflow's are random).
func tiID(k store.TIKey) string {
	h := sha256.Sum256([]byte(k.DagID + "\x00" + k.RunID + "\x00" + k.TaskID + "\x00" + strconv.Itoa(k.MapIndex)))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// tiState is a state as TaskInstanceState: none is null.
func tiState(st dags.TaskState) *string {
	if st == dags.StateNone {
		return nil
	}
	s := string(st)
	return &s
}

// tiResponse is Airflow 3's TaskInstanceResponse.
func (a *api) tiResponse(ctx context.Context, v ops.TIView) map[string]any {
	ti, run := v.TI, v.Run
	m := map[string]any{
		"id": tiID(ti.Key()), "task_id": ti.TaskID, "task_display_name": ti.TaskID, "dag_id": ti.DagID, "dag_display_name": a.dagName(ti.DagID),
		"dag_run_id": ti.RunID, "map_index": ti.MapIndex, "logical_date": apiTime(run.LogicalDate), "run_after": apiTime(runAfter(run)),
		"start_date": timePtr(ti.StartDate), "end_date": timePtr(ti.EndDate), "duration": nil, "state": tiState(ti.State),
		"try_number": ti.TryNumber, "max_tries": ti.MaxTries, "hostname": nil, "unixname": "updraft", "pool": ti.Pool,
		"pool_slots": ti.PoolSlots, "queue": v.Queue(), "priority_weight": ti.PriorityWeight, "operator": ti.Operator,
		"operator_name": ti.Operator, "queued_when": timePtr(ti.QueuedAt), "scheduled_when": nil, "pid": v.PID,
		"executor": nil, "executor_config": "{}", "note": nil, "rendered_map_index": nullable(ti.Label),
		"rendered_fields": v.Rendered, "trigger": nil, "triggerer_job": nil, "dag_version": a.versionOf(ctx, run.DagID, run.DAGVersion),
	}
	if ti.StartDate != nil && ti.EndDate != nil {
		m["duration"] = ti.EndDate.Sub(*ti.StartDate).Seconds()
	}
	if v.Last != nil {
		m["hostname"], m["executor"] = nullable(v.Last.Hostname), nullable(v.Last.Executor)
	}
	return m
}

// tryResponse is Airflow 3's TaskInstanceHistoryResponse: one try.
func (a *api) tryResponse(ctx context.Context, ti store.TaskInstance, run store.Run, t store.Try) map[string]any {
	m := map[string]any{
		"task_id": ti.TaskID, "task_display_name": ti.TaskID, "dag_id": ti.DagID, "dag_display_name": a.dagName(ti.DagID),
		"dag_run_id": ti.RunID, "map_index": ti.MapIndex, "start_date": apiTime(t.StartDate), "end_date": timePtr(t.EndDate),
		"duration": nil, "state": tiState(t.State), "try_number": t.TryNumber, "max_tries": ti.MaxTries,
		"hostname": nullable(t.Hostname), "unixname": "updraft", "pool": ti.Pool, "pool_slots": ti.PoolSlots, "queue": nil,
		"priority_weight": ti.PriorityWeight, "operator": ti.Operator, "operator_name": ti.Operator, "queued_when": nil,
		"scheduled_when": nil, "pid": nil, "executor": nullable(t.Executor), "executor_config": "{}",
		"dag_version": a.versionOf(ctx, run.DagID, run.DAGVersion),
	}
	if t.EndDate != nil {
		m["duration"] = t.EndDate.Sub(t.StartDate).Seconds()
	}
	if pid, err := strconv.Atoi(strings.TrimPrefix(t.Handle, "pid:")); err == nil && t.Executor == "local" {
		m["pid"] = pid
	}
	return m
}

// tiKey is the task instance a request names: the path's map_index, or
// the query's, -1 without either.
func tiKey(r *http.Request) (store.TIKey, error) {
	k := store.Unmapped(param(r, "dag_id"), param(r, "dag_run_id"), param(r, "task_id"))
	loc, v := "path", param(r, "map_index")
	if v == "" {
		loc, v = "query", r.URL.Query().Get("map_index")
	}
	if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < -1 {
			return k, invalid{{Type: "int_parsing", Loc: []any{loc, "map_index"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: v}}
		}
		k.MapIndex = n
	}
	return k, nil
}

func (a *api) writeTIs(w http.ResponseWriter, r *http.Request, f store.TIFilter, p ops.Page) error {
	views, total, err := a.ops.TaskInstances(r.Context(), f, p)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, v := range views {
		out = append(out, a.tiResponse(r.Context(), v))
	}
	return collection(w, "task_instances", out, total)
}

func tiStates(list []string) []dags.TaskState {
	var out []dags.TaskState
	for _, st := range list {
		if st == "none" || st == "null" {
			st = ""
		}
		out = append(out, dags.TaskState(st))
	}
	return out
}

func (a *api) listTIs(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p := q.page()
	f := store.TIFilter{States: tiStates(q.list("state")), Pools: q.list("pool"), DagIDPattern: q.str("dag_id_pattern"), RunIDPattern: q.str("run_id_pattern")}
	if id := param(r, "dag_id"); id != "~" {
		f.DagIDs = []string{id}
	}
	if id := param(r, "dag_run_id"); id != "~" {
		f.RunID = id
	}
	if id := q.str("task_id"); id != "" {
		f.TaskIDs = []string{id}
	}
	if mi := q.list("map_index"); len(mi) == 1 {
		n := q.integer("map_index", -1)
		f.MapIndex = &n
	} else if len(mi) > 1 {
		return ops.Invalid("updraft filters on one map_index at a time")
	}
	f.LogicalGTE, f.LogicalLTE = q.rangeOf("logical_date")
	f.StartGTE, f.StartLTE = q.rangeOf("start_date")
	f.EndGTE, f.EndLTE = q.rangeOf("end_date")
	order := q.orderBy()
	if err := q.err(); err != nil {
		return err
	}
	if err := refuse(q, "run_after_gte", "run_after_gt", "run_after_lte", "run_after_lt", "updated_at_gte", "updated_at_gt", "updated_at_lte",
		"updated_at_lt", "duration_gte", "duration_gt", "duration_lte", "duration_lt", "task_display_name_pattern", "task_group_id",
		"pool_name_pattern", "queue", "queue_name_pattern", "executor", "version_number", "try_number", "operator", "operator_name_pattern"); err != nil {
		return err
	}
	if len(order) > 1 {
		return ops.Invalid("task instances are ordered by one field; got %d", len(order))
	}
	if len(order) == 1 {
		f.OrderBy = order[0]
	}
	if f.RunID != "" && len(f.DagIDs) == 1 {
		if _, err := a.ops.Store.Run(r.Context(), f.DagIDs[0], f.RunID); err != nil {
			return err
		}
	}
	return a.writeTIs(w, r, f, p)
}

// listTIsBatch is POST .../taskInstances/list (TaskInstancesBatchBody).
func (a *api) listTIsBatch(w http.ResponseWriter, r *http.Request, c call) error {
	var body struct {
		DagIDs    []string  `json:"dag_ids"`
		DagRunIDs []string  `json:"dag_run_ids"`
		TaskIDs   []string  `json:"task_ids"`
		State     []*string `json:"state"`
		Pool      []string  `json:"pool"`
		Queue     []string  `json:"queue"`
		Executor  []string  `json:"executor"`
		batchDates
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if len(body.Queue) > 0 || len(body.Executor) > 0 {
		return ops.Invalid("the queue and executor filters are not supported by updraft")
	}
	p, err := body.page()
	if err != nil {
		return err
	}
	rg, err := body.ranges()
	if err != nil {
		return err
	}
	f := store.TIFilter{DagIDs: body.DagIDs, RunIDs: body.DagRunIDs, TaskIDs: body.TaskIDs, Pools: body.Pool,
		LogicalGTE: rg[0], LogicalLTE: rg[1], StartGTE: rg[2], StartLTE: rg[3], EndGTE: rg[4], EndLTE: rg[5]}
	if id := param(r, "dag_id"); id != "~" {
		f.DagIDs = []string{id}
	}
	if id := param(r, "dag_run_id"); id != "~" {
		f.RunID = id
	}
	for _, st := range body.State {
		if st == nil {
			f.States = append(f.States, dags.StateNone)
		} else {
			f.States = append(f.States, tiStates([]string{*st})...)
		}
	}
	if body.OrderBy != nil {
		f.OrderBy = *body.OrderBy
	}
	return a.writeTIs(w, r, f, p)
}

func (a *api) getTI(w http.ResponseWriter, r *http.Request, c call) error {
	k, err := tiKey(r)
	if err != nil {
		return err
	}
	v, err := a.ops.TaskInstance(r.Context(), k)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.tiResponse(r.Context(), v))
	return nil
}

func (a *api) listMapped(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p := q.page()
	if err := q.err(); err != nil {
		return err
	}
	dagID, taskID := param(r, "dag_id"), param(r, "task_id")
	if d, err := a.ops.CurrentDAG(dagID); err == nil {
		if t := d.Task(taskID); t == nil || !t.Mapped() {
			return fmt.Errorf("task %q of dag %q is not mapped: %w", taskID, dagID, store.ErrNotFound)
		}
	}
	f := store.TIFilter{DagIDs: []string{dagID}, RunID: param(r, "dag_run_id"), TaskIDs: []string{taskID}, Mapped: true, OrderBy: "map_index"}
	return a.writeTIs(w, r, f, p)
}

// patchTI marks a task instance (and its relatives, on request) success,
// failed or skipped; dry lists what would change.
func (a *api) patchTI(dry bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		k, err := tiKey(r)
		if err != nil {
			return err
		}
		var body struct {
			NewState          *string `json:"new_state"`
			Note              *string `json:"note"`
			IncludeUpstream   bool    `json:"include_upstream"`
			IncludeDownstream bool    `json:"include_downstream"`
			IncludeFuture     bool    `json:"include_future"`
			IncludePast       bool    `json:"include_past"`
		}
		if err := readBody(r, &body); err != nil {
			return err
		}
		if body.Note != nil {
			return ops.Invalid("task instance notes are not supported by updraft")
		}
		if body.NewState == nil {
			return required("new_state")
		}
		if k.MapIndex >= 0 {
			return ops.Invalid("updraft marks a mapped task as a whole; leave map_index out")
		}
		if _, err := a.ops.Store.TaskInstance(r.Context(), k); err != nil {
			return err
		}
		marked, err := a.ops.Mark(r.Context(), ops.MarkRequest{DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, Past: body.IncludePast,
			Future: body.IncludeFuture, State: dags.TaskState(*body.NewState),
			Options: scheduler.MarkOptions{Upstream: body.IncludeUpstream, Downstream: body.IncludeDownstream, DryRun: dry, Actor: c.actor}})
		if err != nil {
			return err
		}
		out := []map[string]any{}
		for _, m := range marked {
			v := ops.TIView{}
			if dry { // what it would become
				v = a.ops.View(r.Context(), m.TI, m.Run, false)
			} else if v, err = a.ops.TaskInstance(r.Context(), m.TI.Key()); err != nil { // as it is now
				return err
			}
			out = append(out, a.tiResponse(r.Context(), v))
		}
		return collection(w, "task_instances", out, len(out))
	}
}

// clearTIs is POST /dags/{dag_id}/clearTaskInstances.
func (a *api) clearTIs(w http.ResponseWriter, r *http.Request, c call) error {
	var body struct {
		DryRun             *bool             `json:"dry_run"`
		TaskIDs            []json.RawMessage `json:"task_ids"`
		StartDate          *string           `json:"start_date"`
		EndDate            *string           `json:"end_date"`
		OnlyFailed         *bool             `json:"only_failed"`
		OnlyRunning        bool              `json:"only_running"`
		ResetDagRuns       *bool             `json:"reset_dag_runs"`
		DagRunID           *string           `json:"dag_run_id"`
		IncludeUpstream    bool              `json:"include_upstream"`
		IncludeDownstream  bool              `json:"include_downstream"`
		IncludeFuture      bool              `json:"include_future"`
		IncludePast        bool              `json:"include_past"`
		RunOnLatestVersion bool              `json:"run_on_latest_version"`
		PreventRunningTask bool              `json:"prevent_running_task"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	from, err := bodyTime("start_date", body.StartDate)
	if err != nil {
		return err
	}
	to, err := bodyTime("end_date", body.EndDate)
	if err != nil {
		return err
	}
	req := ops.ClearRequest{DagID: param(r, "dag_id"), From: from, To: to, Past: body.IncludePast, Future: body.IncludeFuture,
		Options: scheduler.ClearOptions{Upstream: body.IncludeUpstream, Downstream: body.IncludeDownstream,
			OnlyFailed: body.OnlyFailed == nil || *body.OnlyFailed, OnlyRunning: body.OnlyRunning,
			DryRun: body.DryRun == nil || *body.DryRun, Actor: c.actor}}
	if body.DagRunID != nil {
		req.RunID = *body.DagRunID
	}
	// A task id, or [task id, map index].
	for i, raw := range body.TaskIDs {
		var id string
		var pair []json.RawMessage
		switch {
		case json.Unmarshal(raw, &id) == nil:
		case json.Unmarshal(raw, &pair) == nil && len(pair) == 2 && json.Unmarshal(pair[0], &id) == nil:
			var n int
			if json.Unmarshal(pair[1], &n) != nil {
				return invalid{{Type: "int_type", Loc: []any{"body", "task_ids", i, 1}, Msg: "Input should be a valid integer", Input: noInput}}
			}
			req.MapIndexes = append(req.MapIndexes, n)
		default:
			return invalid{{Type: "string_type", Loc: []any{"body", "task_ids", i}, Msg: "Input should be a valid string or a [task_id, map_index] pair", Input: noInput}}
		}
		req.TaskIDs = append(req.TaskIDs, id)
	}
	cleared, err := a.ops.Clear(r.Context(), req)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, cl := range cleared {
		out = append(out, a.tiResponse(r.Context(), a.ops.View(r.Context(), cl.TI, cl.Run, false)))
	}
	return collection(w, "task_instances", out, len(out))
}

func (a *api) listTries(w http.ResponseWriter, r *http.Request, c call) error {
	k, err := tiKey(r)
	if err != nil {
		return err
	}
	v, err := a.ops.TaskInstance(r.Context(), k)
	if err != nil {
		return err
	}
	tries, err := a.ops.Store.Tries(r.Context(), k)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, t := range tries {
		out = append(out, a.tryResponse(r.Context(), v.TI, v.Run, t))
	}
	return collection(w, "task_instances", out, len(out))
}

func (a *api) getTry(w http.ResponseWriter, r *http.Request, c call) error {
	k, err := tiKey(r)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(param(r, "task_try_number"))
	if err != nil {
		return invalid{{Type: "int_parsing", Loc: []any{"path", "task_try_number"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: param(r, "task_try_number")}}
	}
	v, err := a.ops.TaskInstance(r.Context(), k)
	if err != nil {
		return err
	}
	t, err := a.ops.Try(r.Context(), k, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.tryResponse(r.Context(), v.TI, v.Run, t))
	return nil
}

// dependencies are what keeps a task instance from running, in words.
func (a *api) dependencies(w http.ResponseWriter, r *http.Request, c call) error {
	k, err := tiKey(r)
	if err != nil {
		return err
	}
	ti, err := a.ops.Store.TaskInstance(r.Context(), k)
	if err != nil {
		return err
	}
	why, err := a.ops.WaitingFor(r.Context(), ti)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, reason := range why {
		name, _, _ := strings.Cut(reason, ":")
		out = append(out, map[string]any{"name": name, "reason": reason})
	}
	writeJSON(w, http.StatusOK, map[string]any{"dependencies": out})
	return nil
}

// getLog is one try's log: JSON (TaskInstancesLogResponse, the content
// as lines), NDJSON (one {"event": line} per line) or, as v1 clients
// ask, text/plain.
func (a *api) getLog(w http.ResponseWriter, r *http.Request, c call) error {
	k, err := tiKey(r)
	if err != nil {
		return err
	}
	try, err := strconv.Atoi(param(r, "try_number"))
	if err != nil || try < 1 {
		return invalid{{Type: "int_parsing", Loc: []any{"path", "try_number"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: param(r, "try_number")}}
	}
	q := queryOf(r)
	full := q.boolean("full_content")
	if err := q.err(); err != nil {
		return err
	}
	var offset int64
	if tok := q.str("token"); tok != "" && (full == nil || !*full) {
		if offset, err = ops.ParseLogToken(tok); err != nil {
			return err
		}
	}
	if _, err := a.ops.Store.TaskInstance(r.Context(), k); err != nil {
		return err
	}
	content, next, err := a.ops.ReadLog(r.Context(), k, try, offset, full != nil && *full)
	if err != nil {
		return err
	}
	token := ops.LogToken(next)
	lines := strings.SplitAfter(content, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	switch accepts(r, "application/json", "application/x-ndjson", "text/plain") {
	case "application/x-ndjson":
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, l := range lines {
			_ = enc.Encode(map[string]any{"event": strings.TrimSuffix(l, "\n")})
		}
	case "text/plain":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Continuation-Token", token)
		_, _ = w.Write([]byte(content))
	case "":
		detail(w, http.StatusNotAcceptable, "Only application/json, application/x-ndjson or text/plain is supported")
	default:
		events := []map[string]any{}
		for _, l := range lines {
			events = append(events, map[string]any{"event": strings.TrimSuffix(l, "\n")})
		}
		writeJSON(w, http.StatusOK, map[string]any{"content": events, "continuation_token": token})
	}
	return nil
}

// --- XCom ---

func (a *api) xcomResponse(x ops.XComEntry, withValue bool) map[string]any {
	m := map[string]any{"key": x.Key, "timestamp": apiTime(x.CreatedAt), "logical_date": apiTime(x.LogicalDate),
		"run_after": apiTime(x.LogicalDate), "map_index": x.MapIndex, "task_id": x.TaskID, "task_display_name": x.TaskID,
		"dag_id": x.DagID, "dag_display_name": a.dagName(x.DagID), "run_id": x.RunID}
	if withValue {
		m["value"] = x.Text
	}
	return m
}

func (a *api) xcomFilter(r *http.Request, q *query) store.XComFilter {
	f := store.XComFilter{Key: q.str("xcom_key")}
	if v := param(r, "dag_id"); v != "~" {
		f.DagID = v
	}
	if v := param(r, "dag_run_id"); v != "~" {
		f.RunID = v
	}
	if v := param(r, "task_id"); v != "~" {
		f.TaskIDs = []string{v}
	}
	f.MapIndex = q.intPtr("map_index")
	return f
}

func (a *api) listXComs(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, f := q.page(), a.xcomFilter(r, q)
	if err := q.err(); err != nil {
		return err
	}
	if err := refuse(q, "xcom_key_pattern", "dag_display_name_pattern", "run_id_pattern", "task_id_pattern", "map_index_filter",
		"logical_date_gte", "logical_date_gt", "logical_date_lte", "logical_date_lt", "run_after_gte", "run_after_gt", "run_after_lte", "run_after_lt"); err != nil {
		return err
	}
	xs, err := a.ops.XComs(r.Context(), f)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, x := range ops.Slice(xs, p) {
		out = append(out, a.xcomResponse(x, false))
	}
	return collection(w, "xcom_entries", out, len(xs))
}

// getXCom is one entry with its value: as JSON (deserialize=true, the
// native form) or as text (a string as it is, anything else as JSON).
func (a *api) getXCom(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	f := a.xcomFilter(r, q)
	deserialize := q.boolean("deserialize")
	if err := q.err(); err != nil {
		return err
	}
	f.Key = param(r, "xcom_key")
	if f.MapIndex == nil {
		n := -1
		f.MapIndex = &n
	}
	xs, err := a.ops.XComs(r.Context(), f)
	if err != nil {
		return err
	}
	if len(xs) == 0 {
		return fmt.Errorf("XCom entry with key %q: %w", f.Key, store.ErrNotFound)
	}
	m := a.xcomResponse(xs[0], true)
	if deserialize != nil && *deserialize {
		m["value"] = xs[0].Native
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// extraLinks answers for a task instance that exists: updraft's operators
// have no extra links.
func (a *api) extraLinks(w http.ResponseWriter, r *http.Request, c call) error {
	k, err := tiKey(r)
	if err != nil {
		return err
	}
	if _, err := a.ops.TaskInstance(r.Context(), k); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"extra_links": map[string]any{}, "total_entries": 0})
	return nil
}
