package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web/ops"
)

// --- DAG runs ---

func apiRun(r store.Run) map[string]any {
	conf := r.Conf
	if conf == nil {
		conf = map[string]any{}
	}
	return map[string]any{
		"dag_run_id": r.RunID, "dag_id": r.DagID, "logical_date": apiTime(r.LogicalDate), "execution_date": apiTime(r.LogicalDate),
		"start_date": apiTimePtr(r.StartDate), "end_date": apiTimePtr(r.EndDate),
		"data_interval_start": apiTime(r.Interval.Start), "data_interval_end": apiTime(r.Interval.End),
		"last_scheduling_decision": nil, "run_type": r.RunType, "state": string(r.State),
		"external_trigger": r.ExternalTrigger, "conf": conf, "note": nullable(r.Note),
	}
}

// runFilterFromQuery reads the list filters of GET .../dagRuns.
func runFilterFromQuery(r *http.Request, dagID string) (store.RunFilter, error) {
	f := store.RunFilter{OrderBy: r.URL.Query().Get("order_by")}
	if f.OrderBy == "" {
		f.OrderBy = "id" // Airflow's default order
	}
	if dagID != "~" {
		f.DagID = dagID
	}
	rg, err := dateRanges(r)
	if err != nil {
		return f, err
	}
	f.LogicalGTE, f.LogicalLTE, f.StartGTE, f.StartLTE, f.EndGTE, f.EndLTE = rg[0], rg[1], rg[2], rg[3], rg[4], rg[5]
	for _, st := range multi(r, "state") {
		f.States = append(f.States, dags.RunState(st))
	}
	return f, nil
}

func (s *Server) listRuns(w http.ResponseWriter, r *http.Request, f store.RunFilter, p page) {
	runs, total, err := s.ops.Runs(r.Context(), f, ops.Page{Limit: p.limit, Offset: p.offset})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, run := range runs {
		out = append(out, apiRun(run))
	}
	writeJSON(w, http.StatusOK, map[string]any{"dag_runs": out, "total_entries": total})
}

func (s *Server) apiListRuns(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, err := runFilterFromQuery(r, param(r, "dag_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.listRuns(w, r, f, p)
}

// batchForm is what the batch list forms (ListDagRunsForm,
// ListTaskInstanceForm) share: paging and the three date ranges.
type batchForm struct {
	PageOffset       *int       `json:"page_offset"`
	PageLimit        *int       `json:"page_limit"`
	ExecutionDateGTE *time.Time `json:"execution_date_gte"`
	ExecutionDateLTE *time.Time `json:"execution_date_lte"`
	StartDateGTE     *time.Time `json:"start_date_gte"`
	StartDateLTE     *time.Time `json:"start_date_lte"`
	EndDateGTE       *time.Time `json:"end_date_gte"`
	EndDateLTE       *time.Time `json:"end_date_lte"`
}

// check validates the form and returns its page.
func (f batchForm) check() (page, error) {
	p := page{limit: defaultPageLimit}
	if f.PageLimit != nil {
		if *f.PageLimit < 1 {
			return p, badRequest("page_limit must be positive")
		}
		p.limit = min(*f.PageLimit, maxPageLimit)
	}
	if f.PageOffset != nil {
		if *f.PageOffset < 0 {
			return p, badRequest("page_offset must not be negative")
		}
		p.offset = *f.PageOffset
	}
	for _, d := range []struct {
		name string
		t    *time.Time
	}{{"execution_date_gte", f.ExecutionDateGTE}, {"execution_date_lte", f.ExecutionDateLTE}, {"start_date_gte", f.StartDateGTE},
		{"start_date_lte", f.StartDateLTE}, {"end_date_gte", f.EndDateGTE}, {"end_date_lte", f.EndDateLTE}} {
		if err := checkYear(d.name, d.t); err != nil {
			return p, err
		}
	}
	return p, nil
}

// apiListRunsBatch is POST /dags/~/dagRuns/list (ListDagRunsForm).
func (s *Server) apiListRunsBatch(w http.ResponseWriter, r *http.Request) {
	var form struct {
		OrderBy string   `json:"order_by"`
		DagIDs  []string `json:"dag_ids"`
		States  []string `json:"states"`
		batchForm
	}
	if err := readJSON(r, &form); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := form.check()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := store.RunFilter{DagIDs: form.DagIDs, OrderBy: form.OrderBy, LogicalGTE: form.ExecutionDateGTE, LogicalLTE: form.ExecutionDateLTE,
		StartGTE: form.StartDateGTE, StartLTE: form.StartDateLTE, EndGTE: form.EndDateGTE, EndLTE: form.EndDateLTE}
	if f.OrderBy == "" {
		f.OrderBy = "id"
	}
	for _, st := range form.States {
		f.States = append(f.States, dags.RunState(st))
	}
	s.listRuns(w, r, f, p)
}

func (s *Server) apiGetRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.st.Run(r.Context(), param(r, "dag_id"), param(r, "run_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiRun(run))
}

// apiTrigger is POST /dags/{dag_id}/dagRuns: a manual run.
func (s *Server) apiTrigger(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RunID         *string         `json:"dag_run_id"`
		LogicalDate   *string         `json:"logical_date"`
		ExecutionDate *string         `json:"execution_date"`
		Conf          json.RawMessage `json:"conf"`
		Note          *string         `json:"note"`
		State         *string         `json:"state"`
	}
	if err := readJSON(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	var o scheduler.TriggerOptions
	o.Actor = actor(r)
	if body.RunID != nil {
		o.RunID = *body.RunID
	}
	if body.Note != nil {
		o.Note = *body.Note
	}
	if body.State != nil && *body.State != "queued" {
		s.fail(w, r, badRequest("a new run can only be queued, not %q", *body.State))
		return
	}
	logical, err1 := parseOptTime("logical_date", body.LogicalDate)
	exec, err2 := parseOptTime("execution_date", body.ExecutionDate)
	if err := errors.Join(err1, err2); err != nil {
		s.fail(w, r, err)
		return
	}
	switch {
	case logical != nil && exec != nil && !logical.Equal(*exec):
		s.fail(w, r, badRequest("logical_date and execution_date differ; send one of them"))
		return
	case logical != nil:
		o.LogicalDate = logical
	case exec != nil:
		o.LogicalDate = exec
	}
	conf, err := ops.DecodeConf(body.Conf)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	o.Conf = conf
	run, err := s.ops.Trigger(r.Context(), param(r, "dag_id"), o)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiRun(run))
}

func (s *Server) apiPatchRun(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State string `json:"state"`
	}
	if err := readJSON(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	run, err := s.cmd.SetRunState(r.Context(), param(r, "dag_id"), param(r, "run_id"), dags.RunState(body.State), actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiRun(run))
}

// apiClearRun is POST .../dagRuns/{run_id}/clear: every task instance of
// the run runs again. A dry run (the default) lists them instead.
func (s *Server) apiClearRun(w http.ResponseWriter, r *http.Request) {
	dagID, runID := param(r, "dag_id"), param(r, "run_id")
	body := struct {
		DryRun *bool `json:"dry_run"`
	}{}
	if err := readJSON(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	dry := body.DryRun == nil || *body.DryRun
	cleared, run, err := s.ops.ClearRun(r.Context(), dagID, runID, dry, false, actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if dry {
		out := []map[string]any{}
		for _, ti := range cleared {
			out = append(out, s.apiTI(s.ops.View(r.Context(), ti, run, false)))
		}
		writeJSON(w, http.StatusOK, map[string]any{"task_instances": out, "total_entries": len(out)})
		return
	}
	writeJSON(w, http.StatusOK, apiRun(run))
}

// --- task instances ---

// apiTI is Airflow's TaskInstance object.
func (s *Server) apiTI(v ops.TIView) map[string]any {
	ti, run := v.TI, v.Run
	m := map[string]any{
		"task_id": ti.TaskID, "dag_id": ti.DagID, "dag_run_id": ti.RunID, "execution_date": apiTime(run.LogicalDate),
		"start_date": apiTimePtr(ti.StartDate), "end_date": apiTimePtr(ti.EndDate), "duration": nil, "state": v.State(),
		"try_number": ti.TryNumber, "map_index": ti.MapIndex, "max_tries": ti.MaxTries, "hostname": "", "unixname": "updraft",
		"pool": ti.Pool, "pool_slots": ti.PoolSlots, "queue": v.Queue(), "priority_weight": ti.PriorityWeight,
		"operator": ti.Operator, "queued_when": apiTimePtr(ti.QueuedAt), "pid": v.PID, "executor_config": "{}",
		"rendered_fields": v.Rendered, "note": nil,
	}
	if ti.Label != "" {
		m["rendered_map_index"] = ti.Label
	}
	if ti.StartDate != nil && ti.EndDate != nil {
		m["duration"] = ti.EndDate.Sub(*ti.StartDate).Seconds()
	}
	if v.Last != nil {
		m["hostname"] = v.Last.Hostname
	}
	return m
}

// tiFilterFromQuery reads the list filters of GET .../taskInstances.
func tiFilterFromQuery(r *http.Request) (store.TIFilter, error) {
	var f store.TIFilter
	rg, err := dateRanges(r)
	if err != nil {
		return f, err
	}
	f.LogicalGTE, f.LogicalLTE, f.StartGTE, f.StartLTE, f.EndGTE, f.EndLTE = rg[0], rg[1], rg[2], rg[3], rg[4], rg[5]
	for _, st := range multi(r, "state") {
		if st == "none" {
			st = ""
		}
		f.States = append(f.States, dags.TaskState(st))
	}
	f.Pools = multi(r, "pool")
	return f, nil
}

func (s *Server) listTIs(w http.ResponseWriter, r *http.Request, f store.TIFilter, p page) {
	views, total, err := s.ops.TaskInstances(r.Context(), f, ops.Page{Limit: p.limit, Offset: p.offset})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, v := range views {
		out = append(out, s.apiTI(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"task_instances": out, "total_entries": total})
}

// tiListQuery reads the paging and filters of a task instance list; on a
// bad request it has answered and returns false.
func (s *Server) tiListQuery(w http.ResponseWriter, r *http.Request) (store.TIFilter, page, bool) {
	p, err := pageOf(r)
	if err == nil {
		var f store.TIFilter
		if f, err = tiFilterFromQuery(r); err == nil {
			return f, p, true
		}
	}
	s.fail(w, r, err)
	return store.TIFilter{}, p, false
}

func (s *Server) apiListTIs(w http.ResponseWriter, r *http.Request) {
	f, p, ok := s.tiListQuery(w, r)
	if !ok {
		return
	}
	if id := param(r, "dag_id"); id != "~" {
		f.DagIDs = []string{id}
	}
	if id := param(r, "run_id"); id != "~" {
		f.RunID = id
	}
	s.listTIs(w, r, f, p)
}

// apiListMapped is GET .../taskInstances/{task_id}/listMapped: the
// instances of a mapped task, by map index.
func (s *Server) apiListMapped(w http.ResponseWriter, r *http.Request) {
	f, p, ok := s.tiListQuery(w, r)
	if !ok {
		return
	}
	f.DagIDs, f.RunID, f.TaskIDs, f.Mapped = []string{param(r, "dag_id")}, param(r, "run_id"), []string{param(r, "task_id")}, true
	if d, err := s.currentDAG(param(r, "dag_id")); err == nil {
		if t := d.Task(param(r, "task_id")); t == nil || !t.Mapped() {
			s.fail(w, r, fmt.Errorf("task %q of dag %q is not mapped: %w", param(r, "task_id"), d.ID, store.ErrNotFound))
			return
		}
	}
	s.listTIs(w, r, f, p)
}

// apiListTIsBatch is POST /dags/~/dagRuns/~/taskInstances/list.
func (s *Server) apiListTIsBatch(w http.ResponseWriter, r *http.Request) {
	var form struct {
		DagIDs []string `json:"dag_ids"`
		State  []string `json:"state"`
		Pool   []string `json:"pool"`
		batchForm
	}
	if err := readJSON(r, &form); err != nil {
		s.fail(w, r, err)
		return
	}
	p, err := form.check()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := store.TIFilter{DagIDs: form.DagIDs, LogicalGTE: form.ExecutionDateGTE, LogicalLTE: form.ExecutionDateLTE,
		StartGTE: form.StartDateGTE, StartLTE: form.StartDateLTE, EndGTE: form.EndDateGTE, EndLTE: form.EndDateLTE, Pools: form.Pool}
	for _, st := range form.State {
		if st == "none" {
			st = ""
		}
		f.States = append(f.States, dags.TaskState(st))
	}
	s.listTIs(w, r, f, p)
}

func (s *Server) apiGetTI(w http.ResponseWriter, r *http.Request) {
	v, err := s.ops.TaskInstance(r.Context(), tiKeyParam(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.apiTI(v))
}

// checkNewState accepts the states the API lets a caller set on a task
// instance (the enum of Airflow's UpdateTaskInstance).
func checkNewState(st string) error {
	if st != "success" && st != "failed" {
		return badRequest("new_state must be success or failed")
	}
	return nil
}

func tiRef(ti store.TaskInstance, run store.Run) map[string]any {
	return map[string]any{"task_id": ti.TaskID, "dag_id": ti.DagID, "execution_date": apiTime(run.LogicalDate), "dag_run_id": ti.RunID}
}

// apiPatchTI is PATCH .../taskInstances/{task_id}: mark success or failed.
func (s *Server) apiPatchTI(w http.ResponseWriter, r *http.Request) {
	k := tiKeyParam(r)
	var body struct {
		DryRun   bool   `json:"dry_run"`
		NewState string `json:"new_state"`
	}
	if err := readJSON(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := checkNewState(body.NewState); err != nil {
		s.fail(w, r, err)
		return
	}
	ti, err := s.st.TaskInstance(r.Context(), k)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	run, err := s.st.Run(r.Context(), k.DagID, k.RunID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.ops.Mark(r.Context(), ops.MarkRequest{DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, State: dags.TaskState(body.NewState),
		Options: scheduler.MarkOptions{DryRun: body.DryRun, Actor: actor(r)}}); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tiRef(ti, run))
}

// apiClearTIs is POST /dags/{dag_id}/clearTaskInstances.
func (s *Server) apiClearTIs(w http.ResponseWriter, r *http.Request) {
	dagID := param(r, "dag_id")
	var body struct {
		DryRun            *bool    `json:"dry_run"`
		TaskIDs           []string `json:"task_ids"`
		StartDate         *string  `json:"start_date"`
		EndDate           *string  `json:"end_date"`
		OnlyFailed        *bool    `json:"only_failed"`
		OnlyRunning       bool     `json:"only_running"`
		IncludeSubdags    bool     `json:"include_subdags"`
		IncludeParentdag  bool     `json:"include_parentdag"`
		ResetDagRuns      bool     `json:"reset_dag_runs"`
		DagRunID          *string  `json:"dag_run_id"`
		IncludeUpstream   bool     `json:"include_upstream"`
		IncludeDownstream bool     `json:"include_downstream"`
		IncludeFuture     bool     `json:"include_future"`
		IncludePast       bool     `json:"include_past"`
	}
	if err := readJSON(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	from, err1 := parseOptTime("start_date", body.StartDate)
	to, err2 := parseOptTime("end_date", body.EndDate)
	if err := errors.Join(err1, err2); err != nil {
		s.fail(w, r, err)
		return
	}
	req := ops.ClearRequest{DagID: dagID, From: from, To: to, Past: body.IncludePast, Future: body.IncludeFuture, TaskIDs: body.TaskIDs,
		Options: scheduler.ClearOptions{Upstream: body.IncludeUpstream, Downstream: body.IncludeDownstream,
			OnlyFailed: body.OnlyFailed == nil || *body.OnlyFailed, OnlyRunning: body.OnlyRunning,
			DryRun: body.DryRun == nil || *body.DryRun, Actor: actor(r)}}
	if body.DagRunID != nil {
		req.RunID = *body.DagRunID
	}
	cleared, err := s.ops.Clear(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	refs := []map[string]any{}
	for _, c := range cleared {
		refs = append(refs, tiRef(c.TI, c.Run))
	}
	writeJSON(w, http.StatusOK, map[string]any{"task_instances": refs})
}

// apiUpdateTIsState is POST /dags/{dag_id}/updateTaskInstancesState.
func (s *Server) apiUpdateTIsState(w http.ResponseWriter, r *http.Request) {
	dagID := param(r, "dag_id")
	var body struct {
		DryRun            *bool   `json:"dry_run"`
		TaskID            string  `json:"task_id"`
		ExecutionDate     *string `json:"execution_date"`
		DagRunID          *string `json:"dag_run_id"`
		IncludeUpstream   bool    `json:"include_upstream"`
		IncludeDownstream bool    `json:"include_downstream"`
		IncludeFuture     bool    `json:"include_future"`
		IncludePast       bool    `json:"include_past"`
		NewState          string  `json:"new_state"`
	}
	if err := readJSON(r, &body); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := checkNewState(body.NewState); err != nil {
		s.fail(w, r, err)
		return
	}
	if body.TaskID == "" {
		s.fail(w, r, badRequest("task_id is required"))
		return
	}
	if (body.ExecutionDate == nil) == (body.DagRunID == nil) {
		s.fail(w, r, badRequest("send either execution_date or dag_run_id"))
		return
	}
	runID := ""
	if body.DagRunID != nil {
		runID = *body.DagRunID
	} else {
		at, err := parseAPITime("execution_date", *body.ExecutionDate)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		run, err := s.ops.RunAt(r.Context(), dagID, *at)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		runID = run.RunID
	}
	marked, err := s.ops.Mark(r.Context(), ops.MarkRequest{DagID: dagID, RunID: runID, TaskID: body.TaskID, Past: body.IncludePast,
		Future: body.IncludeFuture, State: dags.TaskState(body.NewState),
		Options: scheduler.MarkOptions{Upstream: body.IncludeUpstream, Downstream: body.IncludeDownstream,
			DryRun: body.DryRun == nil || *body.DryRun, Actor: actor(r)}})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	refs := []map[string]any{}
	for _, c := range marked {
		refs = append(refs, tiRef(c.TI, c.Run))
	}
	writeJSON(w, http.StatusOK, map[string]any{"task_instances": refs})
}

// --- logs ---

// logChunk bounds one log response; a client follows with the
// continuation token.
const logChunk = 1 << 20

// apiLog is GET .../taskInstances/{task_id}/logs/{try}: the try's log from
// the start, or from where a continuation token says the last read ended.
// Values of secret variables are masked. Accept: text/plain gets the text
// alone (the token is then in the Continuation-Token header).
func (s *Server) apiLog(w http.ResponseWriter, r *http.Request) {
	k := tiKeyParam(r)
	try, err := strconv.Atoi(param(r, "try"))
	if err != nil || try < 1 {
		s.fail(w, r, badRequest("task_try_number must be a positive integer"))
		return
	}
	full, err := boolParam(r, "full_content", false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var offset int64
	if tok := r.URL.Query().Get("token"); tok != "" && !full {
		if offset, err = ops.ParseLogToken(tok); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	content, next, err := s.ops.ReadLog(r.Context(), k, try, offset, full)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	token := ops.LogToken(next)
	if prefersText(r.Header.Get("Accept")) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Continuation-Token", token)
		_, _ = io.WriteString(w, content)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"continuation_token": token, "content": content})
}

// prefersText reports whether an Accept header asks for text/plain before
// (or instead of) JSON.
func prefersText(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		switch strings.TrimSpace(strings.SplitN(part, ";", 2)[0]) {
		case "text/plain":
			return true
		case "application/json", "*/*":
			return false
		}
	}
	return false
}
