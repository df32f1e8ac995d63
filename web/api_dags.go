package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"time"

	"updraft/dags"
	"updraft/store"
	"updraft/web/ops"
)

// dagView is one DAG as the API and the pages show it.
type dagView = ops.DAGView

func (s *Server) dagViews(ctx context.Context, withNext bool) ([]dagView, error) {
	return s.ops.DAGViews(ctx, withNext)
}

func (s *Server) dagView(ctx context.Context, id string) (dagView, error) {
	return s.ops.DAGView(ctx, id)
}

// scheduleInterval is the DAG's schedule as Airflow's ScheduleInterval
// union (null for None).
func scheduleInterval(tt dags.Timetable) any {
	switch t := tt.(type) {
	case nil, dags.NullTimetable:
		return nil
	case dags.DeltaTimetable:
		d := t.Delta
		days := int64(d / (24 * time.Hour))
		d -= time.Duration(days) * 24 * time.Hour
		return map[string]any{"__type": "TimeDelta", "days": days, "seconds": int64(d / time.Second),
			"microseconds": int64(d % time.Second / time.Microsecond)}
	}
	if tt.Summary() == "None" {
		return nil
	}
	return map[string]any{"__type": "CronExpression", "value": tt.Summary()}
}

func fileToken(file string) string { return base64.RawURLEncoding.EncodeToString([]byte(file)) }

func tagList(tags []string) []map[string]string {
	out := []map[string]string{}
	for _, t := range tags {
		out = append(out, map[string]string{"name": t})
	}
	return out
}

// apiDAG is Airflow's DAG object.
func apiDAG(v dagView) map[string]any {
	m := map[string]any{
		"dag_id": v.Row.ID, "root_dag_id": nil, "is_paused": v.Row.Paused, "is_active": v.Row.Active && v.DAG != nil,
		"is_subdag": false, "last_parsed_time": apiTimePtr(&v.Row.LastParsed), "last_pickled": nil, "last_expired": nil,
		"scheduler_lock": nil, "pickle_id": nil, "default_view": "grid", "fileloc": v.Row.File, "file_token": fileToken(v.Row.File),
		"owners": []string{}, "description": nil, "schedule_interval": nil, "timetable_description": nil, "tags": []map[string]string{},
		"max_active_tasks": nil, "max_active_runs": nil, "has_task_concurrency_limits": false, "has_import_errors": v.ImportErr,
		"next_dagrun": nil, "next_dagrun_data_interval_start": nil, "next_dagrun_data_interval_end": nil, "next_dagrun_create_after": nil,
	}
	d := v.DAG
	if d == nil {
		return m
	}
	m["owners"] = v.Owners()
	if d.Description != "" {
		m["description"] = d.Description
	}
	if d.DefaultView != "" {
		m["default_view"] = d.DefaultView
	}
	m["schedule_interval"] = scheduleInterval(d.Schedule)
	m["timetable_description"] = dags.Describe(d.Schedule)
	m["tags"] = tagList(d.Tags)
	m["max_active_tasks"], m["max_active_runs"] = d.MaxActiveTasks, d.MaxActiveRuns
	m["has_task_concurrency_limits"] = v.HasTaskLimits()
	if v.Next != nil {
		m["next_dagrun"] = apiTime(v.Next.Interval.Start)
		m["next_dagrun_data_interval_start"] = apiTime(v.Next.Interval.Start)
		m["next_dagrun_data_interval_end"] = apiTime(v.Next.Interval.End)
		m["next_dagrun_create_after"] = apiTime(v.Next.RunAfter)
	}
	return m
}

// apiDAGDetail adds DAGDetail's fields.
func apiDAGDetail(v dagView) map[string]any {
	m := apiDAG(v)
	m["timezone"], m["catchup"], m["orientation"], m["concurrency"] = nil, nil, "LR", nil
	m["start_date"], m["end_date"], m["dag_run_timeout"], m["doc_md"], m["default_view"] = nil, nil, nil, nil, m["default_view"]
	m["params"], m["is_paused_upon_creation"], m["last_parsed"], m["template_search_path"], m["render_template_as_native_obj"] = map[string]any{}, nil, nil, nil, false
	d := v.DAG
	if d == nil {
		return m
	}
	m["timezone"], m["catchup"], m["concurrency"] = d.Location.String(), d.Catchup, d.MaxActiveTasks
	m["start_date"], m["end_date"] = apiTimePtr(d.StartDate), apiTimePtr(d.EndDate)
	if d.DagrunTimeout > 0 {
		m["dag_run_timeout"] = timeDelta(d.DagrunTimeout)
	}
	if d.DocMD != "" {
		m["doc_md"] = d.DocMD
	}
	if d.Params != nil {
		m["params"] = d.Params
	}
	m["is_paused_upon_creation"] = d.IsPausedUponCreation
	m["last_parsed"] = apiTimePtr(&v.Row.LastParsed)
	return m
}

func timeDelta(d time.Duration) map[string]any {
	days := int64(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	return map[string]any{"__type": "TimeDelta", "days": days, "seconds": int64(d / time.Second), "microseconds": int64(d % time.Second / time.Microsecond)}
}

// filteredDAGs returns the DAGs the request's list filters select.
func (s *Server) filteredDAGs(r *http.Request) ([]dagView, error) {
	q, err := dagQueryV1(r)
	if err != nil {
		return nil, err
	}
	return s.ops.DAGs(r.Context(), q)
}

// dagQueryV1 reads the list filters of GET /dags (and PATCH /dags).
func dagQueryV1(r *http.Request) (ops.DAGQuery, error) {
	onlyActive, err := boolParam(r, "only_active", true)
	if err != nil {
		return ops.DAGQuery{}, err
	}
	q := ops.DAGQuery{OnlyActive: onlyActive, IDPattern: r.URL.Query().Get("dag_id_pattern"), Tags: multi(r, "tags")}
	if r.URL.Query().Get("paused") != "" {
		p, err := boolParam(r, "paused", false)
		if err != nil {
			return q, err
		}
		q.Paused = &p
	}
	if ob := r.URL.Query().Get("order_by"); ob != "" {
		q.OrderBy = []string{ob}
	}
	return q, nil
}

// sortBy orders items by an API order_by value ("field" or "-field").
func sortBy[T any](items []T, orderBy string, fields map[string]func(a, b T) int) error {
	return ops.SortBy(items, []string{orderBy}, fields)
}

func (s *Server) apiListDAGs(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views, err := s.filteredDAGs(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, v := range slice(views, p) {
		if v.DAG != nil {
			v.Next = s.ops.NextRun(r.Context(), v.DAG)
		}
		out = append(out, apiDAG(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"dags": out, "total_entries": len(views)})
}

func (s *Server) apiGetDAG(w http.ResponseWriter, r *http.Request) {
	v, err := s.dagView(r.Context(), param(r, "dag_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiDAG(v))
}

func (s *Server) apiGetDAGDetails(w http.ResponseWriter, r *http.Request) {
	v, err := s.dagView(r.Context(), param(r, "dag_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiDAGDetail(v))
}

// pausedPatch reads the body of PATCH /dags and /dags/{id}: only is_paused
// can change.
func pausedPatch(r *http.Request) (bool, error) {
	for _, f := range multi(r, "update_mask") {
		if f != "is_paused" {
			return false, badRequest("update_mask: only is_paused can be changed, not %q", f)
		}
	}
	var body struct {
		IsPaused *bool `json:"is_paused"`
	}
	if err := readJSON(r, &body); err != nil {
		return false, err
	}
	if body.IsPaused == nil {
		return false, badRequest("is_paused is required")
	}
	return *body.IsPaused, nil
}

func (s *Server) apiPatchDAG(w http.ResponseWriter, r *http.Request) {
	id := param(r, "dag_id")
	paused, err := pausedPatch(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.cmd.SetPaused(r.Context(), id, paused, actor(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	s.apiGetDAG(w, r)
}

// apiPatchDAGs pauses or unpauses every DAG matching the list filters;
// Airflow requires dag_id_pattern.
func (s *Server) apiPatchDAGs(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("dag_id_pattern") == "" {
		s.fail(w, r, badRequest("dag_id_pattern is required (use ~ for every DAG)"))
		return
	}
	if r.URL.Query().Get("dag_id_pattern") == "~" {
		q := r.URL.Query()
		q.Del("dag_id_pattern")
		r.URL.RawQuery = q.Encode()
	}
	paused, err := pausedPatch(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views, err := s.filteredDAGs(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views, err = s.ops.SetPaused(r.Context(), views, paused, actor(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, v := range views {
		out = append(out, apiDAG(v))
	}
	writeJSON(w, http.StatusOK, map[string]any{"dags": out, "total_entries": len(out)})
}

// apiTask is Airflow's Task object.
func apiTask(d *dags.DAG, t *dags.Task) map[string]any {
	m := map[string]any{
		"class_ref": map[string]any{"module_path": ops.OperatorModule(t.Operator), "class_name": t.Operator},
		"task_id":   t.ID, "owner": t.Owner, "start_date": apiTimePtr(t.StartDate), "end_date": apiTimePtr(t.EndDate),
		"trigger_rule": string(t.TriggerRule), "extra_links": []any{}, "depends_on_past": t.DependsOnPast,
		"is_mapped": false, "wait_for_downstream": t.WaitForDownstream, "retries": t.Retries, "queue": t.Queue,
		"pool": t.Pool, "pool_slots": t.PoolSlots, "execution_timeout": nil, "retry_delay": timeDelta(t.RetryDelay),
		"retry_exponential_backoff": t.RetryExponentialBackoff, "priority_weight": t.PriorityWeight,
		"weight_rule": t.WeightRule, "ui_color": "#fff", "ui_fgcolor": "#000", "template_fields": ops.TemplateFields(t),
		"sub_dag": nil, "downstream_task_ids": ops.NonNil(d.Downstream(t.ID)),
	}
	if t.ExecutionTimeout > 0 {
		m["execution_timeout"] = timeDelta(t.ExecutionTimeout)
	}
	return m
}

func (s *Server) currentDAG(id string) (*dags.DAG, error) { return s.ops.CurrentDAG(id) }

func (s *Server) apiListTasks(w http.ResponseWriter, r *http.Request) {
	d, err := s.currentDAG(param(r, "dag_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, t := range d.Tasks {
		out = append(out, apiTask(d, t))
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": out, "total_entries": len(out)})
}

func (s *Server) apiGetTask(w http.ResponseWriter, r *http.Request) {
	d, err := s.currentDAG(param(r, "dag_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	t := d.Task(param(r, "task_id"))
	if t == nil {
		s.fail(w, r, fmt.Errorf("dag %q has no task %q: %w", d.ID, param(r, "task_id"), store.ErrNotFound))
		return
	}
	writeJSON(w, http.StatusOK, apiTask(d, t))
}
