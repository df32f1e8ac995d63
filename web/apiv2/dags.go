package apiv2

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
	"updraft/web/ops"
)

// displayName is a DAG's dag_display_name (its id when it has none).
func displayName(d *dags.DAG, id string) string {
	if d != nil && d.DisplayName != "" {
		return d.DisplayName
	}
	return id
}

func (a *api) dagName(id string) string {
	d, _ := a.ops.CurrentDAG(id)
	return displayName(d, id)
}

func fileToken(file string) string { return base64.RawURLEncoding.EncodeToString([]byte(file)) }

// isoDuration is a duration as pydantic writes a timedelta.
func isoDuration(d time.Duration) string {
	return "PT" + strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S"
}

func timeDelta(d time.Duration) map[string]any {
	days := int64(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	return map[string]any{"__type": "TimeDelta", "days": days, "seconds": int64(d / time.Second), "microseconds": int64(d % time.Second / time.Microsecond)}
}

func tagList(id string, d *dags.DAG) []map[string]any {
	out := []map[string]any{}
	if d == nil {
		return out
	}
	for _, t := range d.Tags {
		out = append(out, map[string]any{"name": t, "dag_id": id, "dag_display_name": displayName(d, id)})
	}
	return out
}

// dagResponse is Airflow 3's DAGResponse.
func (a *api) dagResponse(v ops.DAGView) map[string]any {
	d, id := v.DAG, v.Row.ID
	m := map[string]any{
		"dag_id": id, "dag_display_name": displayName(d, id), "is_paused": v.Row.Paused, "is_stale": !v.Active(),
		"last_parsed_time": timePtr(&v.Row.LastParsed), "last_parse_duration": nil, "last_expired": nil,
		"bundle_name": a.bundle(), "bundle_version": nil, "relative_fileloc": v.Row.File, "fileloc": v.Row.File,
		"description": nil, "timetable_summary": nil, "timetable_description": nil, "timetable_partitioned": false,
		"tags": tagList(id, d), "max_active_tasks": 16, "max_active_runs": nil, "max_consecutive_failed_dag_runs": 0,
		"has_task_concurrency_limits": false, "has_import_errors": v.ImportErr, "next_dagrun_logical_date": nil,
		"next_dagrun_data_interval_start": nil, "next_dagrun_data_interval_end": nil, "next_dagrun_run_after": nil,
		"owners": v.Owners(), "file_token": fileToken(v.Row.File), "allowed_run_types": nil,
	}
	if d == nil {
		return m
	}
	if d.Revision != "" {
		m["bundle_version"] = d.Revision
	}
	m["description"] = nullable(d.Description)
	m["timetable_summary"] = d.Schedule.Summary()
	m["timetable_description"] = dags.Describe(d.Schedule)
	m["max_active_tasks"], m["max_active_runs"] = d.MaxActiveTasks, d.MaxActiveRuns
	m["has_task_concurrency_limits"] = v.HasTaskLimits()
	if v.Next != nil {
		m["next_dagrun_logical_date"] = apiTime(v.Next.Interval.Start)
		m["next_dagrun_data_interval_start"] = apiTime(v.Next.Interval.Start)
		m["next_dagrun_data_interval_end"] = apiTime(v.Next.Interval.End)
		m["next_dagrun_run_after"] = apiTime(v.Next.RunAfter)
	}
	return m
}

// dagDetails is Airflow 3's DAGDetailsResponse.
func (a *api) dagDetails(ctx context.Context, v ops.DAGView) (map[string]any, error) {
	m := a.dagResponse(v)
	m["catchup"], m["concurrency"], m["render_template_as_native_obj"] = false, m["max_active_tasks"], false
	m["dag_run_timeout"], m["doc_md"], m["start_date"], m["end_date"], m["params"], m["timezone"] = nil, nil, nil, nil, nil, nil
	m["is_paused_upon_creation"], m["last_parsed"], m["template_search_path"], m["default_args"] = nil, timePtr(&v.Row.LastParsed), nil, nil
	m["owner_links"], m["asset_expression"], m["is_favorite"], m["latest_dag_version"] = nil, nil, false, nil
	active, err := a.ops.Store.CountRuns(ctx, store.RunFilter{DagID: v.Row.ID, States: []dags.RunState{dags.RunRunning}})
	if err != nil {
		return nil, err
	}
	m["active_runs_count"] = active
	if vs, err := a.versions(ctx, v.Row.ID); err == nil && len(vs) > 0 {
		m["latest_dag_version"] = vs[len(vs)-1]
	}
	d := v.DAG
	if d == nil {
		return m, nil
	}
	m["catchup"], m["is_paused_upon_creation"] = d.Catchup, d.IsPausedUponCreation
	m["timezone"] = d.Location.String()
	m["start_date"], m["end_date"] = timePtr(d.StartDate), timePtr(d.EndDate)
	if d.DagrunTimeout > 0 {
		m["dag_run_timeout"] = isoDuration(d.DagrunTimeout)
	}
	m["doc_md"] = nullable(d.DocMD)
	if d.Params != nil {
		m["params"] = d.Params
	}
	return m, nil
}

// versionID is a stable UUID for a DAG version (Airflow's are random).
func versionID(dagID, version string) string {
	h := sha256.Sum256([]byte(dagID + "\x00" + version))
	h[6] = h[6]&0x0f | 0x50 // version 5 layout
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// versions are a DAG's versions as DagVersionResponses, oldest first.
func (a *api) versions(ctx context.Context, dagID string) ([]map[string]any, error) {
	vs, err := a.ops.Store.DAGVersions(ctx, dagID)
	if err != nil {
		return nil, err
	}
	name := a.dagName(dagID)
	out := make([]map[string]any, 0, len(vs))
	for _, v := range vs {
		out = append(out, map[string]any{"id": versionID(dagID, v.Version), "version_number": v.Number, "dag_id": dagID,
			"bundle_name": a.bundle(), "bundle_version": nullable(v.GitRevision), "bundle_url": nil,
			"created_at": apiTime(v.CreatedAt), "dag_display_name": name})
	}
	return out, nil
}

// versionOf is the DagVersionResponse of one version hash, nil when it is
// not stored.
func (a *api) versionOf(ctx context.Context, dagID, version string) map[string]any {
	vs, err := a.versions(ctx, dagID)
	if err != nil {
		return nil
	}
	for _, v := range vs {
		if v["id"] == versionID(dagID, version) {
			return v
		}
	}
	return nil
}

// dagQuery reads GET /dags's filters.
func dagQuery(q *query) ops.DAGQuery {
	dq := ops.DAGQuery{OnlyActive: true, Paused: q.boolean("paused"), IDPattern: q.str("dag_id_pattern"),
		NamePattern: q.str("dag_display_name_pattern"), Tags: q.list("tags"), Owners: q.list("owners"),
		HasImportErr: q.boolean("has_import_errors"), OrderBy: q.orderBy("dag_id")}
	if ex := q.boolean("exclude_stale"); ex != nil && !*ex {
		dq.OnlyActive = false
	}
	switch m := q.str("tags_match_mode"); m {
	case "", "any":
	case "all":
		dq.TagsMatchAll = true
	default:
		q.bad("tags_match_mode", "enum", "Input should be 'any' or 'all'", m)
	}
	if st := q.str("last_dag_run_state"); st != "" {
		dq.LastRunStates = []dags.RunState{dags.RunState(st)}
	}
	for _, st := range q.list("dag_run_state") {
		dq.LastRunStates = append(dq.LastRunStates, dags.RunState(st))
	}
	return dq
}

func (a *api) listDAGs(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, dq := q.page(), dagQuery(q)
	if err := q.err(); err != nil {
		return err
	}
	views, err := a.ops.DAGs(r.Context(), dq)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, v := range ops.Slice(views, p) {
		if v.DAG != nil {
			v.Next = a.ops.NextRun(r.Context(), v.DAG)
		}
		out = append(out, a.dagResponse(v))
	}
	return collection(w, "dags", out, len(views))
}

func (a *api) getDAG(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := a.ops.DAGView(r.Context(), param(r, "dag_id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.dagResponse(v))
	return nil
}

func (a *api) getDAGDetails(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := a.ops.DAGView(r.Context(), param(r, "dag_id"))
	if err != nil {
		return err
	}
	m, err := a.dagDetails(r.Context(), v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

// pausedBody reads DAGPatchBody; only is_paused can change.
func pausedBody(r *http.Request, q *query) (bool, error) {
	for _, f := range q.list("update_mask") {
		if f != "is_paused" {
			return false, ops.Invalid("only is_paused can be updated, not %q", f)
		}
	}
	var body struct {
		IsPaused *bool `json:"is_paused"`
	}
	if err := readBody(r, &body); err != nil {
		return false, err
	}
	if body.IsPaused == nil {
		return false, required("is_paused")
	}
	return *body.IsPaused, nil
}

func (a *api) patchDAG(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	paused, err := pausedBody(r, q)
	if err != nil {
		return err
	}
	v, err := a.ops.DAGView(r.Context(), param(r, "dag_id"))
	if err != nil {
		return err
	}
	done, err := a.ops.SetPaused(r.Context(), []ops.DAGView{v}, paused, c.actor)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.dagResponse(done[0]))
	return nil
}

// patchDAGs pauses or unpauses every DAG the filters select (one page).
func (a *api) patchDAGs(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, dq := q.page(), dagQuery(q)
	if err := q.err(); err != nil {
		return err
	}
	paused, err := pausedBody(r, q)
	if err != nil {
		return err
	}
	views, err := a.ops.DAGs(r.Context(), dq)
	if err != nil {
		return err
	}
	done, err := a.ops.SetPaused(r.Context(), ops.Slice(views, p), paused, c.actor)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, v := range done {
		out = append(out, a.dagResponse(v))
	}
	return collection(w, "dags", out, len(views))
}

// taskResponse is Airflow 3's TaskResponse.
func taskResponse(d *dags.DAG, t *dags.Task) map[string]any {
	m := map[string]any{
		"task_id": t.ID, "task_display_name": t.ID, "owner": t.Owner, "start_date": timePtr(t.StartDate), "end_date": timePtr(t.EndDate),
		"trigger_rule": string(t.TriggerRule), "depends_on_past": t.DependsOnPast, "wait_for_downstream": t.WaitForDownstream,
		"retries": t.Retries, "queue": t.Queue, "pool": t.Pool, "pool_slots": t.PoolSlots, "execution_timeout": nil,
		"retry_delay": timeDelta(t.RetryDelay), "retry_exponential_backoff": 0, "priority_weight": t.PriorityWeight,
		"weight_rule": t.WeightRule, "ui_color": "#fff", "ui_fgcolor": "#000", "template_fields": ops.TemplateFields(t),
		"downstream_task_ids": ops.NonNil(d.Downstream(t.ID)), "doc_md": nil, "operator_name": t.Operator, "params": map[string]any{},
		"class_ref": map[string]any{"module_path": ops.OperatorModule(t.Operator), "class_name": t.Operator},
		"is_mapped": t.Mapped(), "extra_links": []string{},
	}
	if t.RetryExponentialBackoff {
		m["retry_exponential_backoff"] = 2
	}
	if t.ExecutionTimeout > 0 {
		m["execution_timeout"] = timeDelta(t.ExecutionTimeout)
	}
	return m
}

func (a *api) listTasks(w http.ResponseWriter, r *http.Request, c call) error {
	d, err := a.ops.CurrentDAG(param(r, "dag_id"))
	if err != nil {
		return err
	}
	q := queryOf(r)
	tasks := slices.Clone(d.Tasks)
	if err := ops.SortBy(tasks, q.orderBy("task_id"), map[string]func(a, b *dags.Task) int{
		"task_id":    func(a, b *dags.Task) int { return strings.Compare(a.ID, b.ID) },
		"start_date": func(a, b *dags.Task) int { return cmpTime(a.StartDate, b.StartDate) },
	}); err != nil {
		return err
	}
	out := []map[string]any{}
	for _, t := range tasks {
		out = append(out, taskResponse(d, t))
	}
	return collection(w, "tasks", out, len(out))
}

func cmpTime(a, b *time.Time) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return a.Compare(*b)
}

func (a *api) getTask(w http.ResponseWriter, r *http.Request, c call) error {
	d, err := a.ops.CurrentDAG(param(r, "dag_id"))
	if err != nil {
		return err
	}
	t := d.Task(param(r, "task_id"))
	if t == nil {
		return fmt.Errorf("dag %q has no task %q: %w", d.ID, param(r, "task_id"), store.ErrNotFound)
	}
	writeJSON(w, http.StatusOK, taskResponse(d, t))
	return nil
}

// getDAGSource is the DAG's file as stored for a version (the latest by
// default); Accept: text/plain gets the text alone.
func (a *api) getDAGSource(w http.ResponseWriter, r *http.Request, c call) error {
	id := param(r, "dag_id")
	q := queryOf(r)
	number := q.intPtr("version_number")
	if err := q.err(); err != nil {
		return err
	}
	vs, err := a.ops.Store.DAGVersions(r.Context(), id)
	if err != nil {
		return err
	}
	if len(vs) == 0 {
		return fmt.Errorf("dag %q: %w", id, store.ErrNotFound)
	}
	v := vs[len(vs)-1]
	if number != nil {
		if *number < 1 || *number > len(vs) {
			return fmt.Errorf("dag %q has no version %d: %w", id, *number, store.ErrNotFound)
		}
		v = vs[*number-1]
	}
	// The current version is its file as it is; an older one, whose file
	// may have changed or gone since, is the definition updraft stored.
	var src string
	if v.Number == vs[len(vs)-1].Number {
		if d, err := a.ops.CurrentDAG(id); err == nil && d != nil {
			if b, _, err := a.ops.ReadSource(d.File); err == nil {
				src = string(b)
			}
		}
	}
	if src == "" {
		if src, err = a.ops.Store.DAGVersionSource(r.Context(), id, v.Version); err != nil {
			return err
		}
	}
	switch accepts(r, "application/json", "text/plain") {
	case "text/plain":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(src))
		return nil
	case "":
		detail(w, http.StatusNotAcceptable, "Only application/json or text/plain is supported")
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"content": src, "dag_id": id, "version_number": v.Number, "dag_display_name": a.dagName(id)})
	return nil
}

// accepts picks the first of offers the Accept header allows, in the
// header's order; no header or */* picks the first offer, and "" means
// none is acceptable.
func accepts(r *http.Request, offers ...string) string {
	h := r.Header.Get("Accept")
	if strings.TrimSpace(h) == "" {
		return offers[0]
	}
	for _, part := range strings.Split(h, ",") {
		mt := strings.TrimSpace(strings.SplitN(part, ";", 2)[0])
		if mt == "*/*" || mt == "application/*" && strings.HasPrefix(offers[0], "application/") {
			return offers[0]
		}
		if slices.Contains(offers, mt) {
			return mt
		}
	}
	return ""
}

func (a *api) dagStats(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	ids := q.list("dag_ids")
	counts, err := a.ops.Store.RunStateCounts(r.Context())
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		views, err := a.ops.DAGViews(r.Context(), false)
		if err != nil {
			return err
		}
		for _, v := range views {
			ids = append(ids, v.Row.ID)
		}
	}
	out := []map[string]any{}
	for _, id := range ids {
		stats := []map[string]any{}
		for _, st := range []string{"queued", "running", "success", "failed"} {
			stats = append(stats, map[string]any{"state": st, "count": counts[id][st]})
		}
		out = append(out, map[string]any{"dag_id": id, "dag_display_name": a.dagName(id), "stats": stats})
	}
	return collection(w, "dags", out, len(out))
}

func (a *api) dagTags(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, pattern, order := q.page(), q.str("tag_name_pattern"), q.orderBy("name")
	if err := q.err(); err != nil {
		return err
	}
	res, _ := a.ops.Bag.Current()
	seen := map[string]bool{}
	var tags []string
	for _, d := range res.DAGs {
		for _, t := range d.Tags {
			if !seen[t] && (pattern == "" || ops.Like(pattern, t)) {
				seen[t] = true
				tags = append(tags, t)
			}
		}
	}
	sort.Strings(tags)
	if err := ops.SortBy(tags, order, map[string]func(a, b string) int{"name": strings.Compare}); err != nil {
		return err
	}
	return collection(w, "tags", ops.NonNil(ops.Slice(tags, p)), len(tags))
}

// dagWarnings are Airflow's "non-existent pool" warnings: a task names a
// pool that does not exist (it waits until someone creates it).
func (a *api) dagWarnings(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, only, typ := q.page(), q.str("dag_id"), q.str("warning_type")
	if err := q.err(); err != nil {
		return err
	}
	pools, err := a.ops.Store.Pools(r.Context())
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, pl := range pools {
		have[pl.Name] = true
	}
	res, at := a.ops.Bag.Current()
	out := []map[string]any{}
	for _, d := range res.DAGs {
		if only != "" && d.ID != only || typ != "" && typ != "non-existent pool" {
			continue
		}
		var missing []string
		for _, t := range d.Tasks {
			if !have[t.Pool] && !slices.Contains(missing, t.Pool) {
				missing = append(missing, t.Pool)
			}
		}
		if len(missing) > 0 {
			out = append(out, map[string]any{"dag_id": d.ID, "dag_display_name": displayName(d, d.ID), "warning_type": "non-existent pool",
				"message": "Dag '" + d.ID + "' references non-existent pools: " + strings.Join(missing, ", "), "timestamp": apiTime(at)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["dag_id"].(string) < out[j]["dag_id"].(string) })
	return collection(w, "dag_warnings", ops.Slice(out, p), len(out))
}

func (a *api) listDAGVersions(w http.ResponseWriter, r *http.Request, c call) error {
	id := param(r, "dag_id")
	q := queryOf(r)
	p, number, bundleVersion := q.page(), q.intPtr("version_number"), q.str("bundle_version")
	order := q.orderBy("id")
	if err := q.err(); err != nil {
		return err
	}
	if _, err := a.ops.DAGView(r.Context(), id); err != nil {
		return err
	}
	vs, err := a.versions(r.Context(), id)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, v := range vs {
		if number != nil && v["version_number"] != *number || bundleVersion != "" && (v["bundle_version"] == nil || *v["bundle_version"].(*string) != bundleVersion) {
			continue
		}
		out = append(out, v)
	}
	byNumber := func(x, y map[string]any) int { return x["version_number"].(int) - y["version_number"].(int) }
	if err := ops.SortBy(out, order, map[string]func(a, b map[string]any) int{
		"id": byNumber, "version_number": byNumber, "created_at": byNumber,
		"bundle_name": func(x, y map[string]any) int { return 0 }, "bundle_version": byNumber,
	}); err != nil {
		return err
	}
	return collection(w, "dag_versions", ops.Slice(out, p), len(out))
}

func (a *api) getDAGVersion(w http.ResponseWriter, r *http.Request, c call) error {
	id := param(r, "dag_id")
	n, err := strconv.Atoi(param(r, "version_number"))
	if err != nil {
		return invalid{{Type: "int_parsing", Loc: []any{"path", "version_number"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: param(r, "version_number")}}
	}
	vs, err := a.versions(r.Context(), id)
	if err != nil {
		return err
	}
	if n < 1 || n > len(vs) {
		return fmt.Errorf("dag %q has no version %d: %w", id, n, store.ErrNotFound)
	}
	writeJSON(w, http.StatusOK, vs[n-1])
	return nil
}
