package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web/ops"
)

// The REST API is Airflow's stable API v1 (the OpenAPI document shipped
// with Airflow 2.5 and its official clients): same paths, parameters, field
// names, enum values, paging and RFC 7807 errors.

const (
	defaultPageLimit = 100 // Airflow's [api] fallback_page_limit
	maxPageLimit     = 100 // Airflow's [api] maximum_page_limit
	maxRequestBody   = 1 << 20
)

func (s *Server) apiRoutes(r chi.Router) {
	read, act, admin := s.need(permRead), s.need(permAct), s.need(permAdmin)
	r.Post("/git/sync", s.gitSyncNow)
	r.Post("/git/webhook", s.gitWebhook)

	r.With(read).Get("/dags", s.apiListDAGs)
	r.With(act).Patch("/dags", s.apiPatchDAGs)
	r.With(read).Get("/dags/{dag_id}", s.apiGetDAG)
	r.With(act).Patch("/dags/{dag_id}", s.apiPatchDAG)
	r.With(read).Get("/dags/{dag_id}/details", s.apiGetDAGDetails)
	r.With(read).Get("/dags/{dag_id}/tasks", s.apiListTasks)
	r.With(read).Get("/dags/{dag_id}/tasks/{task_id}", s.apiGetTask)

	r.With(read).Get("/dags/{dag_id}/dagRuns", s.apiListRuns)
	r.With(read).Post("/dags/~/dagRuns/list", s.apiListRunsBatch)
	r.With(act).Post("/dags/{dag_id}/dagRuns", s.apiTrigger)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}", s.apiGetRun)
	r.With(act).Patch("/dags/{dag_id}/dagRuns/{run_id}", s.apiPatchRun)
	r.With(act).Post("/dags/{dag_id}/dagRuns/{run_id}/clear", s.apiClearRun)

	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances", s.apiListTIs)
	r.With(read).Post("/dags/~/dagRuns/~/taskInstances/list", s.apiListTIsBatch)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", s.apiGetTI)
	r.With(act).Patch("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}", s.apiPatchTI)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try}", s.apiLog)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/listMapped", s.apiListMapped)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}", s.apiGetTI)
	r.With(act).Patch("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}", s.apiPatchTI)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/logs/{try}", s.apiLog)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/xcomEntries", s.apiListXComs)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/xcomEntries/{xcom_key}", s.apiGetXCom)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries", s.apiListXComs)
	r.With(read).Get("/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{xcom_key}", s.apiGetXCom)
	r.With(act).Post("/dags/{dag_id}/clearTaskInstances", s.apiClearTIs)
	r.With(act).Post("/dags/{dag_id}/updateTaskInstancesState", s.apiUpdateTIsState)

	r.With(read).Get("/importErrors", s.apiListImportErrors)
	r.With(read).Get("/importErrors/{id}", s.apiGetImportError)
	r.With(read).Get("/eventLogs", s.apiListEventLogs)
	r.With(read).Get("/slaMisses", s.apiDeadlineMisses)

	r.With(admin).Get("/variables", s.apiListVariables)
	r.With(admin).Post("/variables", s.apiCreateVariable)
	r.With(admin).Get("/variables/{key}", s.apiGetVariable)
	r.With(admin).Patch("/variables/{key}", s.apiPatchVariable)
	r.With(admin).Delete("/variables/{key}", s.apiDeleteVariable)

	op := s.need(permOp)
	r.With(read).Get("/pools", s.apiListPools)
	r.With(op).Post("/pools", s.apiCreatePool)
	r.With(read).Get("/pools/{pool_name}", s.apiGetPool)
	r.With(op).Patch("/pools/{pool_name}", s.apiPatchPool)
	r.With(op).Delete("/pools/{pool_name}", s.apiDeletePool)

	r.With(op).Get("/connections", s.apiListConnections)
	r.With(op).Get("/connections/{connection_id}", s.apiGetConnection)

	r.With(admin).Get("/users", s.apiListUsers)
	r.With(admin).Post("/users", s.apiCreateUser)
	r.With(admin).Get("/users/{username}", s.apiGetUser)
	r.With(admin).Patch("/users/{username}", s.apiPatchUser)
	r.With(admin).Delete("/users/{username}", s.apiDeleteUser)
	r.With(admin).Get("/roles", s.apiListRoles)
	r.With(admin).Get("/roles/{role_name}", s.apiGetRole)

	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})
}

// problem writes an RFC 7807 error as Airflow does.
func problem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/json") // as Airflow's OpenAPI document declares for errors
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "title": http.StatusText(status), "detail": detail,
		"type": "https://airflow.apache.org/docs/apache-airflow/2.5.1/stable-rest-api-ref.html#section/Errors/" + errorType(status)})
}

func errorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequest"
	case http.StatusUnauthorized:
		return "Unauthenticated"
	case http.StatusForbidden:
		return "PermissionDenied"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusMethodNotAllowed:
		return "MethodNotAllowed"
	case http.StatusConflict:
		return "AlreadyExists"
	}
	return "Unknown"
}

// errBadRequest marks a request the API refuses for its content.
var errBadRequest = ops.ErrInvalid

func badRequest(format string, args ...any) error { return ops.Invalid(format, args...) }

// statusOf is the one place errors become HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, errBadRequest), errors.Is(err, scheduler.ErrInvalid), errors.Is(err, store.ErrInvalidFilter):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// fail writes err as an API error; server errors are logged, not shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	detail := err.Error()
	if status == http.StatusInternalServerError {
		s.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		detail = "internal error; see the server log"
	} else {
		detail = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(detail, ": "+errBadRequest.Error()), ": "+scheduler.ErrInvalid.Error()), ": "+store.ErrInvalidFilter.Error())
	}
	problem(w, status, detail)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// readJSON decodes a request body, refusing unknown fields only where
// Airflow does (it ignores them): decoding is lenient, types are strict.
func readJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	if err != nil {
		return badRequest("cannot read the body: %v", err)
	}
	if len(body) > maxRequestBody {
		return badRequest("body larger than %d bytes", maxRequestBody)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %v", err)
	}
	// One JSON value and nothing after it: "{...}{...}" or "{...}x" is
	// a client bug, not something to half-read.
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid JSON body: data after the JSON value")
	}
	return nil
}

// page is limit and offset from the query, Airflow's way: limit defaults to
// 100 and is clamped to 100.
type page struct{ limit, offset int }

func pageOf(r *http.Request) (page, error) {
	p := page{limit: defaultPageLimit}
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return p, badRequest("limit must be a positive integer, not %q", v)
		}
		p.limit = min(n, maxPageLimit)
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, badRequest("offset must be a non-negative integer, not %q", v)
		}
		p.offset = n
	}
	return p, nil
}

// slice returns one page of items.
func slice[T any](items []T, p page) []T {
	if p.offset >= len(items) {
		return []T{}
	}
	return items[p.offset:min(len(items), p.offset+p.limit)]
}

// apiTime formats a time as Airflow does: ISO 8601 with a numeric offset.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.999999-07:00") }

func apiTimePtr(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := apiTime(*t)
	return &s
}

func parseAPITime(name, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, badRequest("%s: %q is not an ISO 8601 date-time with a time zone", name, v)
	}
	return &t, checkYear(name, &t)
}

func checkYear(name string, t *time.Time) error { return ops.CheckYear(name, t) }

// parseOptTime parses an optional time field of a request body.
func parseOptTime(name string, v *string) (*time.Time, error) {
	if v == nil {
		return nil, nil
	}
	return parseAPITime(name, *v)
}

// timeRange reads name_gte and name_lte from the query.
func timeRange(r *http.Request, name string) (gte, lte *time.Time, err error) {
	q := r.URL.Query()
	if gte, err = parseAPITime(name+"_gte", q.Get(name+"_gte")); err != nil {
		return
	}
	lte, err = parseAPITime(name+"_lte", q.Get(name+"_lte"))
	return
}

// dateRanges reads the list filters' three ranges, Airflow's
// execution_date_gte/lte, start_date_gte/lte and end_date_gte/lte, in that
// order.
func dateRanges(r *http.Request) ([6]*time.Time, error) {
	var out [6]*time.Time
	for i, name := range []string{"execution_date", "start_date", "end_date"} {
		gte, lte, err := timeRange(r, name)
		if err != nil {
			return out, err
		}
		out[2*i], out[2*i+1] = gte, lte
	}
	return out, nil
}

// multi reads a repeated query parameter, also accepting comma-separated
// values.
func multi(r *http.Request, name string) []string {
	var out []string
	for _, v := range r.URL.Query()[name] {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

func boolParam(r *http.Request, name string, def bool) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return def, badRequest("%s must be true or false, not %q", name, v)
	}
	return b, nil
}

// --- health and version ---

// apiHealth is Airflow's /api/v1/health: the metadatabase and the
// scheduler's heartbeat (unhealthy when older than 30 s, Airflow's
// scheduler_health_check_threshold).
func (s *Server) apiHealth(w http.ResponseWriter, r *http.Request) {
	db, sched := s.components(r)
	writeJSON(w, http.StatusOK, map[string]any{"metadatabase": db, "scheduler": sched})
}

func (s *Server) apiVersion(w http.ResponseWriter, r *http.Request) {
	v := s.opt.Version
	if v == "" {
		v = "dev"
	}
	writeJSON(w, http.StatusOK, map[string]any{"version": v, "git_version": nil})
}

// --- import errors ---

type apiImportError struct {
	ID         int64  `json:"import_error_id"`
	Timestamp  string `json:"timestamp"`
	Filename   string `json:"filename"`
	StackTrace string `json:"stack_trace"`
}

func toAPIImportError(e store.ImportError) apiImportError {
	trace := e.StackTrace
	if e.Revision != "" {
		trace += "\n(git revision " + e.Revision + ")"
	}
	return apiImportError{ID: e.ID, Timestamp: apiTime(e.Timestamp), Filename: e.File, StackTrace: trace}
}

func (s *Server) apiListImportErrors(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	errs, err := s.st.ImportErrors(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ob := r.URL.Query().Get("order_by"); ob != "" {
		if err := sortBy(errs, ob, map[string]func(a, b store.ImportError) int{
			"import_error_id": func(a, b store.ImportError) int { return cmpInt(a.ID, b.ID) },
			"id":              func(a, b store.ImportError) int { return cmpInt(a.ID, b.ID) },
			"filename":        func(a, b store.ImportError) int { return strings.Compare(a.File, b.File) },
			"timestamp":       func(a, b store.ImportError) int { return a.Timestamp.Compare(b.Timestamp) },
		}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	out := []apiImportError{}
	for _, e := range slice(errs, p) {
		out = append(out, toAPIImportError(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"import_errors": out, "total_entries": len(errs)})
}

func (s *Server) apiGetImportError(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(param(r, "id"), 10, 64)
	if err != nil {
		s.fail(w, r, badRequest("import error id must be an integer"))
		return
	}
	errs, err := s.st.ImportErrors(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	for _, e := range errs {
		if e.ID == id {
			writeJSON(w, http.StatusOK, toAPIImportError(e))
			return
		}
	}
	s.fail(w, r, fmt.Errorf("import error %d: %w", id, store.ErrNotFound))
}

// --- event logs (the audit log) ---

func (s *Server) apiListEventLogs(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	entries, err := s.st.AuditLog(r.Context(), p.offset+p.limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, e := range slice(entries, p) {
		item := map[string]any{"event_log_id": e.ID, "when": apiTime(e.At), "event": e.Action, "owner": e.Actor,
			"extra": nullable(e.Detail), "dag_id": nullable(e.DagID), "task_id": nullable(e.TaskID), "execution_date": nil}
		out = append(out, item)
	}
	total := len(entries)
	if last, err := s.st.LastAuditID(r.Context()); err == nil {
		total = int(last)
	}
	writeJSON(w, http.StatusOK, map[string]any{"event_logs": out, "total_entries": total})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// --- variables ---

type apiVariable struct {
	Key         string  `json:"key"`
	Value       string  `json:"value"`
	Description *string `json:"description"`
}

func (s *Server) apiListVariables(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	vars, err := s.st.Variables(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ob := r.URL.Query().Get("order_by"); ob != "" {
		if err := sortBy(vars, ob, map[string]func(a, b store.Variable) int{
			"key":         func(a, b store.Variable) int { return strings.Compare(a.Key, b.Key) },
			"description": func(a, b store.Variable) int { return strings.Compare(a.Description, b.Description) },
		}); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	out := []map[string]any{}
	for _, v := range slice(vars, p) {
		out = append(out, map[string]any{"key": v.Key, "description": nullable(v.Description)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"variables": out, "total_entries": len(vars)})
}

func (s *Server) apiGetVariable(w http.ResponseWriter, r *http.Request) {
	v, err := s.st.Variable(r.Context(), param(r, "key"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIVariable(v))
}

func toAPIVariable(v store.Variable) apiVariable {
	return apiVariable{Key: v.Key, Value: ops.VariableValue(v), Description: nullable(v.Description)}
}

type variableBody struct {
	Key         *string `json:"key"`
	Value       *string `json:"value"`
	Description *string `json:"description"`
}

func (s *Server) apiCreateVariable(w http.ResponseWriter, r *http.Request) {
	var b variableBody
	if err := readJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if b.Key == nil || b.Value == nil {
		s.fail(w, r, badRequest("key and value are required"))
		return
	}
	v := store.Variable{Key: *b.Key, Value: *b.Value, UpdatedAt: s.now()}
	if b.Description != nil {
		v.Description = *b.Description
	}
	if err := s.setVariable(r, v, "variable_create"); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIVariable(v))
}

func (s *Server) apiPatchVariable(w http.ResponseWriter, r *http.Request) {
	key := param(r, "key")
	old, err := s.st.Variable(r.Context(), key)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	var b variableBody
	if err := readJSON(r, &b); err != nil {
		s.fail(w, r, err)
		return
	}
	if b.Key != nil && *b.Key != key {
		s.fail(w, r, badRequest("the key in the body (%q) differs from the one in the path (%q)", *b.Key, key))
		return
	}
	mask := multi(r, "update_mask")
	v := old
	v.UpdatedAt = s.now()
	v.Secret = old.Secret || dags.SensitiveName(key)
	for _, field := range []string{"value", "description"} {
		if len(mask) > 0 && !contains(mask, field) {
			continue
		}
		switch {
		case field == "value" && b.Value != nil:
			v.Value = *b.Value
		case field == "description" && b.Description != nil:
			v.Description = *b.Description
		case field == "value" && len(mask) == 0:
			s.fail(w, r, badRequest("value is required"))
			return
		}
	}
	for _, f := range mask {
		if f != "value" && f != "description" {
			s.fail(w, r, badRequest("update_mask: unknown field %q", f))
			return
		}
	}
	if err := s.setVariable(r, v, "variable_edit"); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toAPIVariable(v))
}

func (s *Server) setVariable(r *http.Request, v store.Variable, action string) error {
	return s.ops.SetVariable(r.Context(), v, actor(r), action)
}

func (s *Server) apiDeleteVariable(w http.ResponseWriter, r *http.Request) {
	key := param(r, "key")
	if err := s.ops.DeleteVariable(r.Context(), key, actor(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// audit records an action the web server does itself (the scheduler
// audits its own commands).
func (s *Server) audit(r *http.Request, action, dagID, runID, taskID, detail string) {
	s.ops.Audit(r.Context(), actor(r), action, dagID, runID, taskID, detail)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func cmpInt[T int | int64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// param returns a path parameter, unescaped (chi leaves it escaped when
// the request path had escapes).
func param(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
