package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"updraft/dags"
	"updraft/store"
)

// The Execution API is what a running Python callable reaches the server
// through (Airflow 3's Task Execution API plays the same part): the
// Variables, connections and XComs its code reads, the DAG files of its
// run's revision (a pod fetches them), and its result (a pod reports it).
// It accepts only a try's own credential, and only while that try is
// queued or running: the credential dies with the try.

// ExecutionOptions configure the Execution API.
type ExecutionOptions struct {
	Store *store.Store
	// Verify returns the task instance and try a credential names.
	Verify func(token string) (store.TIKey, int, error)
	// Connection returns a connection by id (store.ErrNotFound when
	// there is none).
	Connection func(id string) (ExecConnection, error)
	// Bundle writes the DAG files (and the runner) a pod needs for the
	// try as a gzipped tar.
	Bundle func(w io.Writer, k store.TIKey, try int) error
	// Mask learns the secrets handed out (connection passwords), so that
	// a log that prints them is masked.
	Mask *dags.Masker
	Log  *slog.Logger
	Now  func() time.Time
}

// ExecConnection is a connection as a callable's BaseHook.get_connection
// sees it.
type ExecConnection struct {
	ConnID   string  `json:"conn_id"`
	ConnType string  `json:"conn_type"`
	Host     string  `json:"host"`
	Schema   string  `json:"schema"`
	Login    string  `json:"login"`
	Password string  `json:"password"`
	Port     *int    `json:"port"`
	Extra    *string `json:"extra"`
}

// maxResultBytes bounds a reported result (XComs have their own limit,
// checked by the scheduler).
const maxResultBytes = 16 << 20

type execAPI struct {
	o ExecutionOptions
}

type tryKeyCtx struct{}

type execTry struct {
	key store.TIKey
	try int
}

// NewExecutionAPI returns the Execution API's handler, to mount at
// /execution.
func NewExecutionAPI(o ExecutionOptions) http.Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	a := &execAPI{o: o}
	r := chi.NewRouter()
	r.Use(a.authenticate)
	r.Get("/variables/{key}", a.variable)
	r.Get("/connections/{id}", a.connection)
	r.Get("/xcoms/{dag}/{run}/{task}/{key}", a.xcom)
	r.Get("/bundle", a.bundle)
	r.Post("/result", a.result)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
	})
	return r
}

func (a *execAPI) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || a.o.Verify == nil {
			problem(w, http.StatusUnauthorized, "the Execution API needs a try's credential (Authorization: Bearer)")
			return
		}
		key, try, err := a.o.Verify(strings.TrimSpace(token))
		if err != nil {
			problem(w, http.StatusUnauthorized, "not a valid try credential")
			return
		}
		ti, err := a.o.Store.TaskInstance(r.Context(), key)
		if err != nil || ti.TryNumber != try || (ti.State != dags.StateQueued && ti.State != dags.StateRunning) {
			problem(w, http.StatusForbidden, "the try this credential names has ended")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tryKeyCtx{}, execTry{key, try})))
	})
}

// pathParam is a path parameter unescaped (chi routes on the escaped
// path when the request has one: a run id's "+" and ":" come escaped).
func pathParam(r *http.Request, name string) string {
	v := chi.URLParam(r, name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

func tryOf(r *http.Request) execTry { t, _ := r.Context().Value(tryKeyCtx{}).(execTry); return t }

func (a *execAPI) variable(w http.ResponseWriter, r *http.Request) {
	key := pathParam(r, "key")
	v, err := a.o.Store.Variable(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		problem(w, http.StatusNotFound, "Variable "+key+" does not exist")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": key, "value": v.Value})
}

func (a *execAPI) connection(w http.ResponseWriter, r *http.Request) {
	id := pathParam(r, "id")
	if a.o.Connection == nil {
		problem(w, http.StatusNotFound, "The conn_id `"+id+"` isn't defined")
		return
	}
	c, err := a.o.Connection(id)
	if errors.Is(err, store.ErrNotFound) {
		problem(w, http.StatusNotFound, "The conn_id `"+id+"` isn't defined")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.o.Mask != nil && c.Password != "" {
		a.o.Mask.Add(c.Password)
	}
	writeJSON(w, http.StatusOK, c)
}

// xcom answers one XCom of a task of the try's own DAG: of one map index,
// or without map_index the unmapped value or a mapped task's values in
// map-index order. include_prior_dates also looks at earlier runs.
func (a *execAPI) xcom(w http.ResponseWriter, r *http.Request) {
	t := tryOf(r)
	dagID, runID, taskID, key := pathParam(r, "dag"), pathParam(r, "run"), pathParam(r, "task"), pathParam(r, "key")
	if dagID != t.key.DagID {
		problem(w, http.StatusForbidden, "a task reads the XComs of its own DAG only")
		return
	}
	f := store.XComFilter{DagID: dagID, RunID: runID, TaskIDs: []string{taskID}, Key: key}
	if s := r.URL.Query().Get("map_index"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			problem(w, http.StatusBadRequest, "map_index must be a number")
			return
		}
		f.MapIndex = &n
	}
	if r.URL.Query().Get("include_prior_dates") == "true" {
		run, err := a.o.Store.Run(r.Context(), dagID, runID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		f.IncludePrior, f.Before = true, run.LogicalDate
	}
	rows, err := a.o.Store.XComs(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if len(rows) == 0 {
		problem(w, http.StatusNotFound, "XCom "+key+" of task "+taskID+" not found")
		return
	}
	// The newest run's rows come first; a mapped task's are by map index.
	newest := rows[0].RunID
	var values []json.RawMessage
	mapped := false
	for _, x := range rows {
		if x.RunID != newest {
			break
		}
		mapped = mapped || x.MapIndex >= 0
		values = append(values, x.Value)
	}
	value := values[0]
	if mapped && f.MapIndex == nil {
		var b bytes.Buffer
		b.WriteByte('[')
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(v)
		}
		b.WriteByte(']')
		value = b.Bytes()
	}
	writeJSON(w, http.StatusOK, map[string]any{"key": key, "value": value})
}

func (a *execAPI) bundle(w http.ResponseWriter, r *http.Request) {
	t := tryOf(r)
	if a.o.Bundle == nil {
		problem(w, http.StatusNotFound, "this server hands out no DAG files")
		return
	}
	var buf bytes.Buffer
	if err := a.o.Bundle(&buf, t.key, t.try); err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	_, _ = w.Write(buf.Bytes())
}

func (a *execAPI) result(w http.ResponseWriter, r *http.Request) {
	t := tryOf(r)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxResultBytes+1))
	if err != nil || len(body) > maxResultBytes || !json.Valid(body) {
		problem(w, http.StatusBadRequest, "the result must be JSON of at most 16 MiB")
		return
	}
	err = a.o.Store.PutTryResult(r.Context(), t.key, t.try, body, a.o.Now())
	if errors.Is(err, store.ErrReported) {
		problem(w, http.StatusConflict, err.Error())
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *execAPI) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, store.ErrNotFound) {
		problem(w, http.StatusNotFound, err.Error())
		return
	}
	a.o.Log.Error("execution API", "path", r.URL.Path, "err", err)
	problem(w, http.StatusInternalServerError, "internal error; see the server log")
}
