package apiv2

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web/ops"
)

// runAfter is when a run could start: the end of its data interval for a
// scheduled run (Airflow 3's run_after), its logical date otherwise.
func runAfter(r store.Run) time.Time {
	if r.RunType == "scheduled" && !r.Interval.End.IsZero() {
		return r.Interval.End
	}
	return r.LogicalDate
}

// runResponse is Airflow 3's DAGRunResponse.
func (a *api) runResponse(ctx context.Context, r store.Run) map[string]any {
	conf := r.Conf
	if conf == nil {
		conf = map[string]any{}
	}
	versions := []map[string]any{}
	if v := a.versionOf(ctx, r.DagID, r.DAGVersion); v != nil {
		versions = append(versions, v)
	}
	m := map[string]any{
		"dag_run_id": r.RunID, "dag_id": r.DagID, "dag_display_name": a.dagName(r.DagID), "logical_date": apiTime(r.LogicalDate),
		"queued_at": timePtr(&r.QueuedAt), "start_date": timePtr(r.StartDate), "end_date": timePtr(r.EndDate), "duration": nil,
		"data_interval_start": timePtr(&r.Interval.Start), "data_interval_end": timePtr(&r.Interval.End),
		"run_after": apiTime(runAfter(r)), "last_scheduling_decision": nil, "run_type": r.RunType, "state": string(r.State),
		"triggered_by": nil, "triggering_user_name": nil, "conf": conf, "note": nullable(r.Note), "dag_versions": versions,
		"bundle_version": nullable(r.GitRevision), "partition_key": nil,
	}
	if r.RunType == "scheduled" {
		m["triggered_by"] = "timetable"
	}
	if r.StartDate != nil && r.EndDate != nil {
		m["duration"] = r.EndDate.Sub(*r.StartDate).Seconds()
	}
	return m
}

// refuse answers 422 for filters updraft does not apply (a filter
// silently ignored would return the wrong items); 422 is the answer the
// document allows every list.
func refuse(q *query, names ...string) error {
	var errs invalid
	for _, n := range names {
		if q.v.Has(n) {
			errs = append(errs, fieldError{Type: "value_error", Loc: []any{"query", n},
				Msg: "Value error, the " + n + " filter is not supported by updraft", Input: q.v.Get(n)})
		}
	}
	if errs == nil {
		return nil
	}
	return errs
}

var runOrder = map[string]string{"run_after": "logical_date"} // run_after follows the logical date

func runOrderBy(list []string) (string, error) {
	if len(list) > 1 {
		return "", ops.Invalid("runs are ordered by one field; got %d", len(list))
	}
	if len(list) == 0 {
		return "id", nil
	}
	ob := list[0]
	desc := ob != "" && ob[0] == '-'
	name := ob
	if desc {
		name = ob[1:]
	}
	if col, ok := runOrder[name]; ok {
		name = col
	}
	if desc {
		return "-" + name, nil
	}
	return name, nil
}

func (a *api) listRuns(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p := q.page()
	f := store.RunFilter{RunTypes: q.list("run_type"), RunIDPattern: q.str("run_id_pattern"), DagIDPattern: q.str("dag_id_pattern")}
	if id := param(r, "dag_id"); id != "~" {
		f.DagID = id
	}
	f.LogicalGTE, f.LogicalLTE = q.rangeOf("logical_date")
	f.StartGTE, f.StartLTE = q.rangeOf("start_date")
	f.EndGTE, f.EndLTE = q.rangeOf("end_date")
	for _, st := range q.list("state") {
		f.States = append(f.States, dags.RunState(st))
	}
	order := q.orderBy("id")
	if err := q.err(); err != nil {
		return err
	}
	if err := refuse(q, "run_after_gte", "run_after_gt", "run_after_lte", "run_after_lt", "duration_gte", "duration_gt", "duration_lte",
		"duration_lt", "updated_at_gte", "updated_at_gt", "updated_at_lte", "updated_at_lt", "conf_contains", "dag_version",
		"bundle_version", "triggering_user_name_pattern", "partition_key_pattern"); err != nil {
		return err
	}
	var err error
	if f.OrderBy, err = runOrderBy(order); err != nil {
		return err
	}
	if f.DagID != "" {
		if _, err := a.ops.DAGView(r.Context(), f.DagID); err != nil {
			return err
		}
	}
	return a.writeRuns(w, r, f, p)
}

func (a *api) writeRuns(w http.ResponseWriter, r *http.Request, f store.RunFilter, p ops.Page) error {
	runs, total, err := a.ops.Runs(r.Context(), f, p)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, run := range runs {
		out = append(out, a.runResponse(r.Context(), run))
	}
	return collection(w, "dag_runs", out, total)
}

// batchDates are the date ranges of the batch list bodies.
type batchDates struct {
	LogicalDateGTE *string `json:"logical_date_gte"`
	LogicalDateGT  *string `json:"logical_date_gt"`
	LogicalDateLTE *string `json:"logical_date_lte"`
	LogicalDateLT  *string `json:"logical_date_lt"`
	StartDateGTE   *string `json:"start_date_gte"`
	StartDateGT    *string `json:"start_date_gt"`
	StartDateLTE   *string `json:"start_date_lte"`
	StartDateLT    *string `json:"start_date_lt"`
	EndDateGTE     *string `json:"end_date_gte"`
	EndDateGT      *string `json:"end_date_gt"`
	EndDateLTE     *string `json:"end_date_lte"`
	EndDateLT      *string `json:"end_date_lt"`
	// Accepted for the document's sake; any value is refused.
	RunAfterGTE *string  `json:"run_after_gte"`
	RunAfterGT  *string  `json:"run_after_gt"`
	RunAfterLTE *string  `json:"run_after_lte"`
	RunAfterLT  *string  `json:"run_after_lt"`
	DurationGTE *float64 `json:"duration_gte"`
	DurationGT  *float64 `json:"duration_gt"`
	DurationLTE *float64 `json:"duration_lte"`
	DurationLT  *float64 `json:"duration_lt"`
	PageOffset  *int     `json:"page_offset"`
	PageLimit   *int     `json:"page_limit"`
	OrderBy     *string  `json:"order_by"`
}

// ranges returns the logical, start and end ranges, inclusive.
func (b batchDates) ranges() (out [6]*time.Time, err error) {
	for i, set := range [][4]*string{
		{b.LogicalDateGTE, b.LogicalDateGT, b.LogicalDateLTE, b.LogicalDateLT},
		{b.StartDateGTE, b.StartDateGT, b.StartDateLTE, b.StartDateLT},
		{b.EndDateGTE, b.EndDateGT, b.EndDateLTE, b.EndDateLT},
	} {
		name := [3]string{"logical_date", "start_date", "end_date"}[i]
		var t [4]*time.Time
		for j, suffix := range []string{"_gte", "_gt", "_lte", "_lt"} {
			if t[j], err = bodyTime(name+suffix, set[j]); err != nil {
				return out, err
			}
		}
		out[2*i], out[2*i+1] = t[0], t[2]
		if t[1] != nil {
			x := t[1].Add(time.Microsecond)
			if out[2*i] == nil || x.After(*out[2*i]) {
				out[2*i] = &x
			}
		}
		if t[3] != nil {
			x := t[3].Add(-time.Microsecond)
			if out[2*i+1] == nil || x.Before(*out[2*i+1]) {
				out[2*i+1] = &x
			}
		}
	}
	for name, v := range map[string]bool{"run_after": b.RunAfterGTE != nil || b.RunAfterGT != nil || b.RunAfterLTE != nil || b.RunAfterLT != nil,
		"duration": b.DurationGTE != nil || b.DurationGT != nil || b.DurationLTE != nil || b.DurationLT != nil} {
		if v {
			return out, ops.Invalid("the %s filters are not supported by updraft", name)
		}
	}
	return out, nil
}

func (b batchDates) page() (ops.Page, error) {
	p := ops.Page{Limit: maxLimit}
	if b.PageLimit != nil {
		if *b.PageLimit < 0 {
			return p, invalid{{Type: "greater_than_equal", Loc: []any{"body", "page_limit"}, Msg: "Input should be greater than or equal to 0", Input: *b.PageLimit}}
		}
		p.Limit = min(*b.PageLimit, maxLimit)
	}
	if b.PageOffset != nil {
		if *b.PageOffset < 0 {
			return p, invalid{{Type: "greater_than_equal", Loc: []any{"body", "page_offset"}, Msg: "Input should be greater than or equal to 0", Input: *b.PageOffset}}
		}
		p.Offset = *b.PageOffset
	}
	return p, nil
}

// listRunsBatch is POST /dags/{dag_id}/dagRuns/list (DAGRunsBatchBody).
func (a *api) listRunsBatch(w http.ResponseWriter, r *http.Request, c call) error {
	var body struct {
		DagIDs       []string  `json:"dag_ids"`
		States       []*string `json:"states"`
		ConfContains *string   `json:"conf_contains"`
		batchDates
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if body.ConfContains != nil {
		return ops.Invalid("the conf_contains filter is not supported by updraft")
	}
	p, err := body.page()
	if err != nil {
		return err
	}
	rg, err := body.ranges()
	if err != nil {
		return err
	}
	f := store.RunFilter{DagIDs: body.DagIDs, LogicalGTE: rg[0], LogicalLTE: rg[1], StartGTE: rg[2], StartLTE: rg[3], EndGTE: rg[4], EndLTE: rg[5]}
	if id := param(r, "dag_id"); id != "~" {
		f.DagID = id
	}
	for _, st := range body.States {
		if st != nil {
			f.States = append(f.States, dags.RunState(*st))
		}
	}
	var order []string
	if body.OrderBy != nil {
		order = []string{*body.OrderBy}
	}
	if f.OrderBy, err = runOrderBy(order); err != nil {
		return err
	}
	return a.writeRuns(w, r, f, p)
}

func (a *api) getRun(w http.ResponseWriter, r *http.Request, c call) error {
	run, err := a.ops.Store.Run(r.Context(), param(r, "dag_id"), param(r, "dag_run_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.runResponse(r.Context(), run))
	return nil
}

// trigger is POST /dags/{dag_id}/dagRuns (TriggerDAGRunPostBody). A null
// or missing logical_date is the trigger's own time.
func (a *api) trigger(w http.ResponseWriter, r *http.Request, c call) error {
	var body struct {
		RunID             *string         `json:"dag_run_id"`
		LogicalDate       *string         `json:"logical_date"`
		DataIntervalStart *string         `json:"data_interval_start"`
		DataIntervalEnd   *string         `json:"data_interval_end"`
		RunAfter          *string         `json:"run_after"`
		Conf              json.RawMessage `json:"conf"`
		Note              *string         `json:"note"`
		PartitionKey      *string         `json:"partition_key"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	if body.DataIntervalStart != nil || body.DataIntervalEnd != nil {
		return ops.Invalid("updraft computes a run's data interval from the DAG's schedule; leave data_interval_start and data_interval_end out")
	}
	if body.RunAfter != nil || body.PartitionKey != nil {
		return ops.Invalid("run_after and partition_key are not supported by updraft")
	}
	o := scheduler.TriggerOptions{Actor: c.actor}
	if body.RunID != nil {
		o.RunID = *body.RunID
	}
	if body.Note != nil {
		o.Note = *body.Note
	}
	var err error
	if o.LogicalDate, err = bodyTime("logical_date", body.LogicalDate); err != nil {
		return err
	}
	if o.Conf, err = ops.DecodeConf(body.Conf); err != nil {
		return err
	}
	run, err := a.ops.Trigger(r.Context(), param(r, "dag_id"), o)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.runResponse(r.Context(), run))
	return nil
}

// patchRun sets a run's state (queued, success, failed) or note.
func (a *api) patchRun(w http.ResponseWriter, r *http.Request, c call) error {
	dagID, runID := param(r, "dag_id"), param(r, "dag_run_id")
	var body struct {
		State *string `json:"state"`
		Note  *string `json:"note"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	want, err := updateMask(queryOf(r), "state", "note")
	if err != nil {
		return err
	}
	run, err := a.ops.Store.Run(r.Context(), dagID, runID)
	if err != nil {
		return err
	}
	if want("state") && body.State != nil {
		st := dags.RunState(*body.State)
		if st != dags.RunQueued && st != dags.RunSuccess && st != dags.RunFailed {
			return invalid{{Type: "enum", Loc: []any{"body", "state"}, Msg: "Input should be 'queued', 'success' or 'failed'", Input: *body.State}}
		}
		if st == dags.RunQueued {
			if _, _, err := a.ops.ClearRun(r.Context(), dagID, runID, false, false, c.actor); err != nil {
				return err
			}
		} else if _, err := a.ops.Commands.SetRunState(r.Context(), dagID, runID, st, c.actor); err != nil {
			return err
		}
	}
	if want("note") && body.Note != nil {
		if err := a.ops.SetRunNote(r.Context(), dagID, runID, *body.Note, c.actor); err != nil {
			return err
		}
	}
	if run, err = a.ops.Store.Run(r.Context(), dagID, runID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.runResponse(r.Context(), run))
	return nil
}

// clearRun is POST .../clear (DAGRunClearBody): dry (the default) lists
// the task instances, otherwise they run again and the run is returned.
func (a *api) clearRun(w http.ResponseWriter, r *http.Request, c call) error {
	var body struct {
		DryRun             *bool `json:"dry_run"`
		OnlyFailed         bool  `json:"only_failed"`
		RunOnLatestVersion bool  `json:"run_on_latest_version"`
	}
	if err := readBody(r, &body); err != nil {
		return err
	}
	dry := body.DryRun == nil || *body.DryRun
	cleared, run, err := a.ops.ClearRun(r.Context(), param(r, "dag_id"), param(r, "dag_run_id"), dry, body.OnlyFailed, c.actor)
	if err != nil {
		return err
	}
	if !dry {
		writeJSON(w, http.StatusOK, a.runResponse(r.Context(), run))
		return nil
	}
	out := []map[string]any{}
	for _, ti := range cleared {
		out = append(out, a.tiResponse(r.Context(), a.ops.View(r.Context(), ti, run, false)))
	}
	return collection(w, "task_instances", out, len(out))
}

func (a *api) deleteRun(w http.ResponseWriter, r *http.Request, c call) error {
	if err := a.ops.DeleteRun(r.Context(), param(r, "dag_id"), param(r, "dag_run_id"), c.actor); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// waitRun streams the run's state as NDJSON every interval seconds until
// it ends; the last line carries the XComs ("return_value") of the tasks
// named by result.
func (a *api) waitRun(w http.ResponseWriter, r *http.Request, c call) error {
	dagID, runID := param(r, "dag_id"), param(r, "dag_run_id")
	q := queryOf(r)
	raw := q.str("interval")
	interval, err := strconv.ParseFloat(raw, 64)
	switch {
	case raw == "":
		return invalid{{Type: "missing", Loc: []any{"query", "interval"}, Msg: "Field required", Input: noInput}}
	case err != nil:
		return invalid{{Type: "float_parsing", Loc: []any{"query", "interval"}, Msg: "Input should be a valid number, unable to parse string as a number", Input: raw}}
	case interval <= 0:
		return invalid{{Type: "greater_than", Loc: []any{"query", "interval"}, Msg: "Input should be greater than 0", Input: raw}}
	}
	results := q.list("result")
	run, err := a.ops.Store.Run(r.Context(), dagID, runID)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	tick := time.Duration(interval * float64(time.Second))
	for {
		if run.State == dags.RunSuccess || run.State == dags.RunFailed {
			line := map[string]any{"state": string(run.State)}
			if len(results) > 0 {
				line["results"] = a.results(r.Context(), run, results)
			}
			return enc.Encode(line)
		}
		if err := enc.Encode(map[string]any{"state": string(run.State)}); err != nil {
			return nil // the client left
		}
		if flusher != nil {
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-time.After(tick):
		}
		if run, err = a.ops.Store.Run(r.Context(), dagID, runID); err != nil {
			a.log.Warn("wait for a run", "dag_id", dagID, "run_id", runID, "err", err)
			return nil // the header is sent: nothing more to say
		}
	}
}

// results are the return values of tasks of a run, by task id.
func (a *api) results(ctx context.Context, run store.Run, taskIDs []string) map[string]any {
	out := map[string]any{}
	xs, err := a.ops.XComs(ctx, store.XComFilter{DagID: run.DagID, RunID: run.RunID, TaskIDs: taskIDs, Key: "return_value"})
	if err != nil {
		a.log.Warn("the results of a run", "dag_id", run.DagID, "run_id", run.RunID, "err", err)
		return out
	}
	for _, x := range xs {
		out[x.TaskID] = x.Native
	}
	return out
}
