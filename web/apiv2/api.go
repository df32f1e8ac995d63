// Package apiv2 serves Airflow 3's public REST API (/api/v2, the OpenAPI
// document of Airflow 3.2) over the shared operations of package ops: the
// same paths, parameters, field names, enum values and error bodies
// (HTTPExceptionResponse, and FastAPI's HTTPValidationError with 422), so
// Airflow 3 clients and tools work against updraft. It translates; the
// rules are in ops and the scheduler.
package apiv2

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"updraft/scheduler"
	"updraft/store"
	"updraft/web/ops"
)

// Access is what a route needs of its caller.
type Access int

const (
	Read   Access = iota // Viewer and above
	Act                  // trigger, clear, mark, pause: User and above
	Op                   // pools, connections: Op and Admin
	Admin                // variables, configuration: Admin
	Public               // health, version: anyone
)

// Options configure the API.
type Options struct {
	Ops *ops.Service
	// Authorize says who calls and whether they may do what a route
	// needs; when not, it returns the status (401 or 403) and why.
	Authorize func(r *http.Request, need Access) (actor string, status int, detail string)
	// Health is the body of /monitor/health.
	Health      func(r *http.Request) map[string]any
	Version     string
	Connections ops.Connections // nil: none
	// Config is the server's configuration by section (secrets masked),
	// nil when exposing it is off (Airflow's [api] expose_config).
	Config func() []ConfigSection
	// Bundle names the DAG bundle (Airflow 3's DAG source): the git
	// remote's branch, or "dags-folder" when nil or empty.
	Bundle func() string
	// Jobs lists the scheduler replicas as Airflow's SchedulerJobs.
	Jobs func(r *http.Request) ([]Job, error)
	Log  *slog.Logger
}

// ConfigSection is one section of the configuration.
type ConfigSection struct {
	Name    string
	Options [][2]string // key, value
}

// Job is a scheduler process as Airflow's jobs endpoint shows it.
type Job struct {
	ID            int64
	Hostname      string
	State         string
	Start         time.Time
	LastHeartbeat time.Time
}

type api struct {
	opt Options
	ops *ops.Service
	log *slog.Logger
}

// New returns the API's handler, to be mounted at /api/v2.
func New(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	a := &api{opt: o, ops: o.Ops, log: o.Log}
	r := chi.NewRouter()
	a.routes(r)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		detail(w, http.StatusNotFound, "Not Found")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		detail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	})
	return r
}

// bundle is the name of the DAG bundle.
func (a *api) bundle() string {
	if a.opt.Bundle != nil {
		if b := a.opt.Bundle(); b != "" {
			return b
		}
	}
	return "dags-folder"
}

// handler is a route's body: it answers, or returns an error fail writes.
type handler func(w http.ResponseWriter, r *http.Request, c call) error

// call is what a handler knows of its request beyond it.
type call struct {
	actor string
}

// with wraps a handler: the caller must be allowed need.
func (a *api) with(need Access, h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		actor, status, why := a.opt.Authorize(r, need)
		if status != 0 {
			detail(w, status, why)
			return
		}
		if err := h(w, r, call{actor: actor}); err != nil {
			a.fail(w, r, err)
		}
	}
}

// public wraps a handler that needs no caller (health, version).
func (a *api) public(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r, call{}); err != nil {
			a.fail(w, r, err)
		}
	}
}

// detail writes an HTTPExceptionResponse.
func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"detail": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fieldError is one entry of FastAPI's HTTPValidationError.
type fieldError struct {
	Type  string `json:"type"`
	Loc   []any  `json:"loc"`
	Msg   string `json:"msg"`
	Input any    `json:"input"`
}

// noInput is the input of a problem whose value is not at hand (an
// absent field): an empty object, as pydantic reports a missing field's
// (the document does not allow null there).
var noInput = map[string]any{}

// invalid is a request that fails validation: 422 with every problem.
type invalid []fieldError

func (v invalid) Error() string {
	parts := make([]string, len(v))
	for i, e := range v {
		parts[i] = fmt.Sprint(e.Loc...) + ": " + e.Msg
	}
	return strings.Join(parts, "; ")
}

// fail writes err: validation as 422, the operations' errors by kind,
// anything else as a logged 500.
func (a *api) fail(w http.ResponseWriter, r *http.Request, err error) {
	var v invalid
	switch {
	case errors.As(err, &v):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": []fieldError(v)})
	case errors.Is(err, store.ErrNotFound):
		detail(w, http.StatusNotFound, clean(err))
	case errors.Is(err, errForbidden):
		detail(w, http.StatusForbidden, clean(err))
	case errors.Is(err, errUnsupported):
		detail(w, http.StatusNotImplemented, clean(err))
	case errors.Is(err, store.ErrConflict):
		detail(w, http.StatusConflict, clean(err))
	case errors.Is(err, ops.ErrInvalid), errors.Is(err, scheduler.ErrInvalid), errors.Is(err, store.ErrInvalidFilter):
		detail(w, http.StatusBadRequest, clean(err))
	default:
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		detail(w, http.StatusInternalServerError, "internal error; see the server log")
	}
}

var (
	errForbidden   = errors.New("forbidden")
	errUnsupported = errors.New("not supported by updraft")
)

// clean drops the error kinds' own words from a message.
func clean(err error) string {
	msg := err.Error()
	for _, kind := range []error{ops.ErrInvalid, scheduler.ErrInvalid, store.ErrInvalidFilter, store.ErrConflict, errForbidden, errUnsupported} {
		msg = strings.TrimSuffix(msg, ": "+kind.Error())
	}
	// "dag \"x\": not found" keeps its last words unless it says so already.
	if bare := strings.TrimSuffix(msg, ": "+store.ErrNotFound.Error()); bare != msg && strings.Contains(bare, "not found") {
		msg = bare
	}
	return msg
}

// apiTime formats a time as Airflow 3 does: RFC 3339 in UTC.
func apiTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.999999Z07:00") }

func timePtr(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := apiTime(*t)
	return &s
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
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

// --- query parameters, checked as FastAPI checks them ---

// query reads a request's query parameters, collecting every problem.
type query struct {
	v    url.Values
	errs invalid
}

func queryOf(r *http.Request) *query { return &query{v: r.URL.Query()} }

func (q *query) bad(name, typ, msg string, input any) {
	q.errs = append(q.errs, fieldError{Type: typ, Loc: []any{"query", name}, Msg: msg, Input: input})
}

// err is the collected problems, nil when there are none.
func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	return q.errs
}

func (q *query) str(name string) string { return q.v.Get(name) }

// list is an exploded list parameter (?state=a&state=b).
func (q *query) list(name string) []string { return q.v[name] }

func (q *query) integer(name string, def int) int {
	v := q.v.Get(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		q.bad(name, "int_parsing", "Input should be a valid integer, unable to parse string as an integer", v)
		return def
	}
	return n
}

func (q *query) intPtr(name string) *int {
	if q.v.Get(name) == "" {
		return nil
	}
	n := q.integer(name, 0)
	return &n
}

func (q *query) boolean(name string) *bool {
	v := q.v.Get(name)
	if v == "" {
		return nil
	}
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on", "t", "y":
		b := true
		return &b
	case "false", "0", "no", "off", "f", "n":
		b := false
		return &b
	}
	q.bad(name, "bool_parsing", "Input should be a valid boolean, unable to interpret input", v)
	return nil
}

func (q *query) time(name string) *time.Time {
	v := q.v.Get(name)
	if v == "" {
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.bad(name, "datetime_from_date_parsing", "Input should be a valid datetime", v)
		return nil
	}
	if err := ops.CheckYear(name, &t); err != nil {
		q.bad(name, "datetime_from_date_parsing", clean(err), v)
		return nil
	}
	return &t
}

// Airflow's [api] fallback_page_limit is 50 in v2, maximum_page_limit 100.
const (
	defaultLimit = 50
	maxLimit     = 100
)

// page reads limit and offset.
func (q *query) page() ops.Page {
	limit := q.integer("limit", defaultLimit)
	offset := q.integer("offset", 0)
	if limit < 0 {
		q.bad("limit", "greater_than_equal", "Input should be greater than or equal to 0", q.v.Get("limit"))
	}
	if offset < 0 {
		q.bad("offset", "greater_than_equal", "Input should be greater than or equal to 0", q.v.Get("offset"))
	}
	return ops.Page{Limit: min(max(limit, 0), maxLimit), Offset: max(offset, 0)}
}

// orderBy reads the order_by list, with a default.
func (q *query) orderBy(def ...string) []string {
	if v := q.list("order_by"); len(v) > 0 {
		return v
	}
	return def
}

// range4 reads name_gte, name_gt, name_lte and name_lt as an inclusive
// range (a strict bound moved by a microsecond: stored times have that
// precision).
func (q *query) rangeOf(name string) (gte, lte *time.Time) {
	gte, lte = q.time(name+"_gte"), q.time(name+"_lte")
	if gt := q.time(name + "_gt"); gt != nil {
		t := gt.Add(time.Microsecond)
		if gte == nil || t.After(*gte) {
			gte = &t
		}
	}
	if lt := q.time(name + "_lt"); lt != nil {
		t := lt.Add(-time.Microsecond)
		if lte == nil || t.Before(*lte) {
			lte = &t
		}
	}
	return gte, lte
}

// --- request bodies ---

const maxBody = 1 << 20

// readBody decodes a JSON body into v, strictly: unknown fields and wrong
// types are 422, as Airflow 3's models refuse them.
func readBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return ops.Invalid("cannot read the body: %v", err)
	}
	if len(body) > maxBody {
		return ops.Invalid("body larger than %d bytes", maxBody)
	}
	if strings.TrimSpace(string(body)) == "" {
		return invalid{{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: noInput}}
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			loc := []any{"body"}
			for _, p := range strings.Split(te.Field, ".") {
				if p != "" {
					loc = append(loc, p)
				}
			}
			return invalid{{Type: te.Value + "_type", Loc: loc, Msg: "Input should be a valid " + te.Type.String(), Input: noInput}}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return invalid{{Type: "extra_forbidden", Loc: []any{"body", name}, Msg: "Extra inputs are not permitted", Input: noInput}}
		}
		return invalid{{Type: "json_invalid", Loc: []any{"body"}, Msg: "JSON decode error: " + err.Error(), Input: noInput}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid{{Type: "json_invalid", Loc: []any{"body"}, Msg: "JSON decode error: data after the JSON value", Input: noInput}}
	}
	return nil
}

// required reports a missing body field.
func required(name string) error {
	return invalid{{Type: "missing", Loc: []any{"body", name}, Msg: "Field required", Input: noInput}}
}

// bodyTime parses an optional RFC 3339 field of a body.
func bodyTime(name string, v *string) (*time.Time, error) {
	if v == nil {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, *v)
	if err != nil {
		return nil, invalid{{Type: "datetime_from_date_parsing", Loc: []any{"body", name}, Msg: "Input should be a valid datetime", Input: *v}}
	}
	return &t, ops.CheckYear(name, &t)
}

// collection writes a list response: items under name, with the total.
func collection(w http.ResponseWriter, name string, items any, total int) error {
	writeJSON(w, http.StatusOK, map[string]any{name: items, "total_entries": total})
	return nil
}
