package web

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"updraft/dags"
	"updraft/gitsync"
	"updraft/store"
	"updraft/web/ops"
)

//go:embed templates/*.html
var templateFS embed.FS

// Bag is the DAGs as loaded (see ops.Bag).
type Bag = ops.Bag

// Commands are the scheduler's commands (see ops.Commands).
type Commands = ops.Commands

// Options configure the web server.
type Options struct {
	Bag      Bag          // the DAGs as loaded
	Store    *store.Store // history, users, variables
	Commands Commands
	Log      *slog.Logger
	Now      func() time.Time // clock for "next run" times and sessions; time.Now if nil
	Auth     AuthOptions
	Version  string
	// Heartbeat reports when the scheduler loop last ran (for /health).
	Heartbeat func() time.Time
	// Metrics is the Prometheus registry /metrics serves (NewMetrics when nil).
	Metrics *Metrics
	// Connections lists and tests the operators' connections (none when nil).
	Connections Connections
	// Mask is the server's masker: it learns every secret set or used
	// here (secret variables, users' passwords) at once, and masks what
	// pages and the API show of logs. Nil: only the store's secret
	// variables are masked, when read.
	Mask *dags.Masker
	// APIConfig, when set, lets Admins read the configuration through
	// /api/v2/config.
	APIConfig APIConfig
	// Execution is the Execution API Python callables call (/execution);
	// nil serves none.
	Execution http.Handler
}

// Server is the HTTP handler for the UI and the REST API.
type Server struct {
	bag     Bag
	st      *store.Store
	cmd     Commands
	log     *slog.Logger
	now     func() time.Time
	pages   *template.Template
	router  chi.Router
	handler http.Handler
	auth    *auth
	opt     Options
	git     GitSync
	gitOpt  GitOptions
	alerts  bool // a webhook is configured
	metrics *Metrics
	ops     *ops.Service
	started time.Time
}

// recoverer turns a handler's panic into a 500 in the answer's format
// (RFC 7807 for the API) and logs it with its stack; an aborted handler
// (http.ErrAbortHandler) is let through.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			plainError(w, r, http.StatusInternalServerError, "internal error; see the server log")
		}()
		next.ServeHTTP(w, r)
	})
}

// isAPI says whether r is a REST API request (answered in JSON).
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// plainError answers an error without a page: RFC 7807 JSON for the API,
// plain text otherwise.
func plainError(w http.ResponseWriter, r *http.Request, status int, detail string) {
	if isAPI(r) {
		problem(w, status, detail)
		return
	}
	http.Error(w, detail, status)
}

// teach tells the server's masker about secret values set or used here.
func (s *Server) teach(values ...string) { s.ops.Teach(values...) }

// maskText masks the secrets in text (see ops.Service.MaskText).
func (s *Server) maskText(text string, secrets []string) string { return s.ops.MaskText(text, secrets) }

// WithAlerts says whether alerts go to a webhook (the alerts page and the
// health output mention it).
func (s *Server) WithAlerts(enabled bool) *Server {
	s.alerts = enabled
	return s
}

// GitSync is the git sync as the web server sees it; nil when DAGs come
// from a local folder.
type GitSync interface {
	Status() gitsync.Status
	Trigger()
	Branch() string
}

// GitOptions name the secrets guarding the endpoints that trigger a sync.
// Files are re-read at each request, so rotating a secret needs no restart.
type GitOptions struct {
	TokenFile         string // bearer token of POST /api/v1/git/sync
	WebhookSecretFile string // secret of POST /api/v1/git/webhook
}

// WithGit shows the git sync's state in the UI and /health and serves the
// endpoints that trigger an immediate sync.
func (s *Server) WithGit(g GitSync, opt GitOptions) *Server {
	s.git, s.gitOpt = g, opt
	return s
}

// New builds the server.
func New(o Options) *Server {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Heartbeat == nil {
		o.Heartbeat = func() time.Time { return time.Time{} }
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	s := &Server{bag: o.Bag, st: o.Store, cmd: o.Commands, log: o.Log, now: o.Now, opt: o,
		auth: newAuth(o.Store, o.Auth, o.Now), metrics: o.Metrics, started: o.Now(),
		ops: &ops.Service{Store: o.Store, Bag: o.Bag, Commands: o.Commands, Mask: o.Mask, Now: o.Now, Log: o.Log}}
	s.auth.mask = o.Mask
	s.metrics.reg.MustRegister(stateCollector{s})
	s.pages = template.Must(template.New("").Funcs(templateFuncs).ParseFS(templateFS, "templates/*.html"))
	r := chi.NewRouter()
	r.Use(s.recoverer)
	r.Use(s.metrics.instrument)
	r.Use(securityHeaders)
	// Public: probes, metrics, the login form.
	r.Get("/health", s.health)
	r.Get("/health/live", s.live)
	r.Get("/health/ready", s.ready)
	r.Method(http.MethodGet, "/metrics", s.metricsHandler())
	r.Get("/api/v1/health", s.apiHealth)
	r.Get("/api/v1/version", s.apiVersion)
	r.Post("/auth/token", s.issueToken)
	r.Get("/login", s.loginPage)
	r.Post("/login", s.loginSubmit)
	r.Method(http.MethodGet, "/static/*", staticHandler())
	// Browsers ask for /favicon.ico whatever the page says.
	r.Get("/favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/static/favicon.svg", http.StatusMovedPermanently)
	})
	if o.Execution != nil {
		r.Mount("/execution", o.Execution) // a try's own credential, not a user's
	}
	r.Group(func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/logout", s.logoutSubmit)
		r.With(s.need(permRead)).Get("/dags.json", s.dagsJSON)
		r.Route("/api/v1", s.apiRoutes)
		r.Mount("/api/v2", s.apiV2())
		s.uiRoutes(r)
	})
	// Outside the routes: the API answers in its error format, pages with
	// the error page.
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if isAPI(r) {
			problem(w, http.StatusNotFound, "no such endpoint: "+r.URL.Path)
			return
		}
		s.render(w, r, http.StatusNotFound, "error.html", "Not Found", "", "There is no page at "+r.URL.Path+".")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		plainError(w, r, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path)
	})
	s.router = r
	// Browsers say where a request comes from: a state-changing request
	// from another site is refused before any handler runs, on top of the
	// CSRF tokens that session requests must carry.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusForbidden, "cross-origin request refused: a state-changing request must come from this site's own pages")
	}))
	s.handler = cop.Handler(r)
	return s
}

var templateFuncs = template.FuncMap{
	"dagURL":    dagURL,
	"runURL":    runURL,
	"tiURL":     tiURL,
	"list":      func(s ...string) []string { return s },
	"tagLink":   tagLink,
	"add":       func(a, b int) int { return a + b },
	"mul":       func(a, b int) int { return a * b },
	"hasPrefix": strings.HasPrefix,
	"rfc3339":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"short": func(hash string) string {
		if len(hash) > 12 {
			return hash[:12]
		}
		return hash
	},
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

// Session is what every page knows about its viewer: who they are, what
// they may do, and the CSRF token their forms and scripts send back.
type Session struct {
	User   string
	Role   Role
	CanAct bool
	CanOp  bool // manage pools
	Admin  bool
	CSRF   string
}

func sessionOf(r *http.Request) Session {
	p := principalOf(r)
	if p == nil {
		return Session{}
	}
	out := Session{User: p.user.Username, Role: p.role, CanAct: p.role.can(permAct), CanOp: p.role.can(permOp), Admin: p.role.can(permAdmin)}
	if p.session != nil {
		out.CSRF = p.session.CSRFToken
	}
	return out
}

// components reports the metadatabase and the scheduler as Airflow's
// health endpoints do: the database answers; the scheduler's loop beat
// within the last 30 s (Airflow's scheduler_health_check_threshold).
func (s *Server) components(r *http.Request) (db, sched map[string]any) {
	db = map[string]any{"status": "healthy"}
	if _, err := s.st.LastAuditID(r.Context()); err != nil {
		db["status"] = "unhealthy"
	}
	sched = map[string]any{"status": "unhealthy", "latest_scheduler_heartbeat": nil}
	if hb := s.opt.Heartbeat(); !hb.IsZero() {
		sched["latest_scheduler_heartbeat"] = apiTime(hb)
		if s.now().Sub(hb) < 30*time.Second {
			sched["status"] = "healthy"
		}
	}
	return db, sched
}

// health is Airflow's /health (metadatabase, scheduler) plus the DAG
// folder and the git sync. It answers 503 until the DAGs have loaded once;
// a failing git sync is reported but keeps 200 (the last good revision
// serves).
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	_, at := s.bag.Current()
	w.Header().Set("Content-Type", "application/json")
	status := "healthy"
	if at.IsZero() {
		status = "unhealthy"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	db, sched := s.components(r)
	processor := map[string]any{"status": status, "latest_load": at.UTC().Format(time.RFC3339)}
	// A folder whose files cannot be read in time still serves the last
	// DAGs it loaded: degraded, not down.
	if h, ok := s.bag.(interface{ Health() (bool, string) }); ok && status == "healthy" {
		if ok, detail := h.Health(); !ok {
			processor["status"], processor["detail"] = "degraded", detail
		}
	}
	out := map[string]any{"metadatabase": db, "scheduler": sched, "dag_processor": processor}
	if s.git != nil {
		st := s.git.Status()
		git := map[string]any{"status": "healthy", "revision": st.Current.Hash,
			"consecutive_failures": st.ConsecutiveFailures, "syncs": st.Syncs, "changes": st.Changes}
		if st.LastError != "" || st.Current.Hash == "" {
			git["status"] = "unhealthy"
			git["last_error"] = st.LastError
		}
		if !st.LastSuccess.IsZero() {
			git["last_success"] = st.LastSuccess.UTC().Format(time.RFC3339)
		}
		out["git_sync"] = git
	}
	_ = json.NewEncoder(w).Encode(out)
}

// live is the liveness probe: 503 when the scheduling loop is stuck (no
// beat for 2 minutes), so the orchestrator restarts the process. A server
// whose loop has not started yet is alive.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	if hb := s.opt.Heartbeat(); !hb.IsZero() && s.now().Sub(hb) > 2*time.Minute {
		http.Error(w, "scheduler loop stuck since "+apiTime(hb), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// ready is the readiness probe: the database answers and the DAGs have
// loaded once.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if _, at := s.bag.Current(); at.IsZero() {
		http.Error(w, "DAGs not loaded yet", http.StatusServiceUnavailable)
		return
	}
	if db, _ := s.components(r); db["status"] != "healthy" {
		http.Error(w, "metadatabase unreachable", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

type dagJSON struct {
	ID       string   `json:"dag_id"`
	Schedule string   `json:"schedule"`
	File     string   `json:"fileloc"`
	Tasks    []string `json:"tasks"`
	Hash     string   `json:"hash"`
}

func (s *Server) dagsJSON(w http.ResponseWriter, r *http.Request) {
	res, _ := s.bag.Current()
	out := struct {
		Revision string        `json:"revision,omitempty"`
		DAGs     []dagJSON     `json:"dags"`
		Problems dags.Problems `json:"import_errors"`
	}{Revision: res.Revision, DAGs: []dagJSON{}, Problems: res.Problems().Errors()}
	for _, d := range res.DAGs {
		j := dagJSON{ID: d.ID, Schedule: d.Schedule.Summary(), File: d.File, Hash: d.Hash}
		for _, t := range d.Tasks {
			j.Tasks = append(j.Tasks, t.ID)
		}
		out.DAGs = append(out.DAGs, j)
	}
	sort.Slice(out.DAGs, func(i, j int) bool { return out.DAGs[i].ID < out.DAGs[j].ID })
	if out.Problems == nil {
		out.Problems = dags.Problems{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}
