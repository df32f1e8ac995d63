package web

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// dagView is one DAG as the API and the pages show it: its stored row and,
// while its file loads, its current version.
type dagView struct {
	row       store.DAGRow
	dag       *dags.DAG // nil for a DAG whose file is gone
	importErr bool
	next      *dags.DagRunInfo
}

// dagViews returns every known DAG by id with what the API shows of it.
func (s *Server) dagViews(ctx context.Context, withNext bool) ([]dagView, error) {
	rows, err := s.st.DAGs(ctx)
	if err != nil {
		return nil, err
	}
	res, _ := s.bag.Current()
	byID := map[string]*dags.DAG{}
	for _, d := range res.DAGs {
		byID[d.ID] = d
	}
	bad := map[string]bool{}
	for _, f := range res.Files {
		if len(f.Problems.Errors()) > 0 {
			bad[f.Path] = true
		}
	}
	out := make([]dagView, 0, len(rows))
	seen := map[string]bool{}
	for _, row := range rows {
		v := dagView{row: row, dag: byID[row.ID], importErr: bad[row.File]}
		seen[row.ID] = true
		if withNext && v.dag != nil {
			v.next = s.nextRun(ctx, v.dag)
		}
		out = append(out, v)
	}
	// A DAG loaded but not yet recorded by the scheduler is shown too.
	for _, d := range res.DAGs {
		if !seen[d.ID] {
			v := dagView{row: store.DAGRow{ID: d.ID, File: d.File, Active: true, Paused: d.IsPausedUponCreation, Version: d.Hash}, dag: d, importErr: bad[d.File]}
			if withNext {
				v.next = s.nextRun(ctx, d)
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].row.ID < out[j].row.ID })
	return out, nil
}

// nextRun is the DAG's next scheduled run, nil when there is none.
func (s *Server) nextRun(ctx context.Context, d *dags.DAG) *dags.DagRunInfo {
	if !d.Schedule.Periodic() && d.Schedule.Summary() != "@once" {
		return nil
	}
	last, err := s.st.LastScheduledRun(ctx, d.ID)
	if err != nil {
		return nil
	}
	var iv *dags.DataInterval
	if last != nil {
		iv = &last.Interval
	}
	info, ok := dags.NextRun(d, iv, s.now())
	if !ok {
		return nil
	}
	return &info
}

func (s *Server) dagView(ctx context.Context, id string) (dagView, error) {
	views, err := s.dagViews(ctx, false)
	if err != nil {
		return dagView{}, err
	}
	for _, v := range views {
		if v.row.ID == id {
			if v.dag != nil {
				v.next = s.nextRun(ctx, v.dag)
			}
			return v, nil
		}
	}
	return dagView{}, fmt.Errorf("dag %q: %w", id, store.ErrNotFound)
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
func (v dagView) apiDAG() map[string]any {
	m := map[string]any{
		"dag_id": v.row.ID, "root_dag_id": nil, "is_paused": v.row.Paused, "is_active": v.row.Active && v.dag != nil,
		"is_subdag": false, "last_parsed_time": apiTimePtr(&v.row.LastParsed), "last_pickled": nil, "last_expired": nil,
		"scheduler_lock": nil, "pickle_id": nil, "default_view": "grid", "fileloc": v.row.File, "file_token": fileToken(v.row.File),
		"owners": []string{}, "description": nil, "schedule_interval": nil, "timetable_description": nil, "tags": []map[string]string{},
		"max_active_tasks": nil, "max_active_runs": nil, "has_task_concurrency_limits": false, "has_import_errors": v.importErr,
		"next_dagrun": nil, "next_dagrun_data_interval_start": nil, "next_dagrun_data_interval_end": nil, "next_dagrun_create_after": nil,
	}
	d := v.dag
	if d == nil {
		return m
	}
	if d.Owners != nil {
		m["owners"] = d.Owners
	}
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
	for _, t := range d.Tasks {
		if t.MaxActiveTisPerDag > 0 || t.MaxActiveTisPerDagrun > 0 {
			m["has_task_concurrency_limits"] = true
		}
	}
	if v.next != nil {
		m["next_dagrun"] = apiTime(v.next.Interval.Start)
		m["next_dagrun_data_interval_start"] = apiTime(v.next.Interval.Start)
		m["next_dagrun_data_interval_end"] = apiTime(v.next.Interval.End)
		m["next_dagrun_create_after"] = apiTime(v.next.RunAfter)
	}
	return m
}

// apiDAGDetail adds DAGDetail's fields.
func (v dagView) apiDAGDetail() map[string]any {
	m := v.apiDAG()
	m["timezone"], m["catchup"], m["orientation"], m["concurrency"] = nil, nil, "LR", nil
	m["start_date"], m["end_date"], m["dag_run_timeout"], m["doc_md"], m["default_view"] = nil, nil, nil, nil, m["default_view"]
	m["params"], m["is_paused_upon_creation"], m["last_parsed"], m["template_search_path"], m["render_template_as_native_obj"] = map[string]any{}, nil, nil, nil, false
	d := v.dag
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
	m["last_parsed"] = apiTimePtr(&v.row.LastParsed)
	return m
}

func timeDelta(d time.Duration) map[string]any {
	days := int64(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	return map[string]any{"__type": "TimeDelta", "days": days, "seconds": int64(d / time.Second), "microseconds": int64(d % time.Second / time.Microsecond)}
}

// filteredDAGs returns the DAGs the request's list filters select.
func (s *Server) filteredDAGs(r *http.Request) ([]dagView, error) {
	views, err := s.dagViews(r.Context(), false)
	if err != nil {
		return nil, err
	}
	return filterDAGs(r, views)
}

// filterDAGs applies the list filters of GET /dags (and PATCH /dags).
func filterDAGs(r *http.Request, views []dagView) ([]dagView, error) {
	onlyActive, err := boolParam(r, "only_active", true)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var paused *bool
	if q.Get("paused") != "" {
		p, err := boolParam(r, "paused", false)
		if err != nil {
			return nil, err
		}
		paused = &p
	}
	pattern := strings.ToLower(q.Get("dag_id_pattern"))
	tags := multi(r, "tags")
	var out []dagView
	for _, v := range views {
		active := v.row.Active && v.dag != nil
		if onlyActive && !active || paused != nil && v.row.Paused != *paused ||
			pattern != "" && !strings.Contains(strings.ToLower(v.row.ID), pattern) {
			continue
		}
		if len(tags) > 0 {
			if v.dag == nil || !slices.ContainsFunc(tags, func(t string) bool { return slices.Contains(v.dag.Tags, t) }) {
				continue
			}
		}
		out = append(out, v)
	}
	if ob := q.Get("order_by"); ob != "" {
		if err := sortBy(out, ob, map[string]func(a, b dagView) int{
			"dag_id":           func(a, b dagView) int { return strings.Compare(a.row.ID, b.row.ID) },
			"is_paused":        func(a, b dagView) int { return cmpBool(a.row.Paused, b.row.Paused) },
			"fileloc":          func(a, b dagView) int { return strings.Compare(a.row.File, b.row.File) },
			"last_parsed_time": func(a, b dagView) int { return a.row.LastParsed.Compare(b.row.LastParsed) },
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// sortBy orders items by an API order_by value ("field" or "-field").
func sortBy[T any](items []T, orderBy string, fields map[string]func(a, b T) int) error {
	desc := strings.HasPrefix(orderBy, "-")
	cmp, ok := fields[strings.TrimPrefix(orderBy, "-")]
	if !ok {
		names := make([]string, 0, len(fields))
		for k := range fields {
			names = append(names, k)
		}
		sort.Strings(names)
		return badRequest("cannot order by %q; use one of %s", orderBy, strings.Join(names, ", "))
	}
	slices.SortStableFunc(items, func(a, b T) int {
		if desc {
			return -cmp(a, b)
		}
		return cmp(a, b)
	})
	return nil
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
		if v.dag != nil {
			v.next = s.nextRun(r.Context(), v.dag)
		}
		out = append(out, v.apiDAG())
	}
	writeJSON(w, http.StatusOK, map[string]any{"dags": out, "total_entries": len(views)})
}

func (s *Server) apiGetDAG(w http.ResponseWriter, r *http.Request) {
	v, err := s.dagView(r.Context(), param(r, "dag_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v.apiDAG())
}

func (s *Server) apiGetDAGDetails(w http.ResponseWriter, r *http.Request) {
	v, err := s.dagView(r.Context(), param(r, "dag_id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, v.apiDAGDetail())
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
	out := []map[string]any{}
	for _, v := range views {
		if err := s.cmd.SetPaused(r.Context(), v.row.ID, paused, actor(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		v.row.Paused = paused
		out = append(out, v.apiDAG())
	}
	writeJSON(w, http.StatusOK, map[string]any{"dags": out, "total_entries": len(out)})
}

// apiTask is Airflow's Task object.
func apiTask(d *dags.DAG, t *dags.Task) map[string]any {
	m := map[string]any{
		"class_ref": map[string]any{"module_path": operatorModule(t.Operator), "class_name": t.Operator},
		"task_id":   t.ID, "owner": t.Owner, "start_date": apiTimePtr(t.StartDate), "end_date": apiTimePtr(t.EndDate),
		"trigger_rule": string(t.TriggerRule), "extra_links": []any{}, "depends_on_past": t.DependsOnPast,
		"is_mapped": false, "wait_for_downstream": t.WaitForDownstream, "retries": t.Retries, "queue": t.Queue,
		"pool": t.Pool, "pool_slots": t.PoolSlots, "execution_timeout": nil, "retry_delay": timeDelta(t.RetryDelay),
		"retry_exponential_backoff": t.RetryExponentialBackoff, "priority_weight": t.PriorityWeight,
		"weight_rule": t.WeightRule, "ui_color": "#fff", "ui_fgcolor": "#000", "template_fields": templateFields(t),
		"sub_dag": nil, "downstream_task_ids": nonNil(d.Downstream(t.ID)),
	}
	if t.ExecutionTimeout > 0 {
		m["execution_timeout"] = timeDelta(t.ExecutionTimeout)
	}
	return m
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func operatorModule(op string) string {
	switch op {
	case "BashOperator":
		return "airflow.operators.bash"
	case "EmptyOperator":
		return "airflow.operators.empty"
	case "KubernetesPodOperator":
		return "airflow.providers.cncf.kubernetes.operators.pod"
	}
	return "airflow.operators"
}

func templateFields(t *dags.Task) []string {
	switch t.Operator {
	case "BashOperator":
		return []string{"bash_command", "env", "cwd"}
	case "KubernetesPodOperator":
		return []string{"image", "cmds", "arguments", "env_vars", "labels", "config_file", "pod_template_file", "namespace", "container_resources", "volumes", "volume_mounts"}
	}
	return []string{}
}

func (s *Server) currentDAG(id string) (*dags.DAG, error) {
	res, _ := s.bag.Current()
	for _, d := range res.DAGs {
		if d.ID == id {
			return d, nil
		}
	}
	return nil, fmt.Errorf("dag %q: %w", id, store.ErrNotFound)
}

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
