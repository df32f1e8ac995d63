package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"updraft/web/apiv2"
)

// The REST API v2 (Airflow 3) is served by package apiv2; the server
// gives it its callers, its health and its scheduler replicas.

// APIConfig is the configuration GET /api/v2/config shows Admins (secrets
// masked); nil keeps it hidden, as Airflow's [api] expose_config = False.
type APIConfig func() []apiv2.ConfigSection

func (s *Server) apiV2() http.Handler {
	v := s.opt.Version
	if v == "" {
		v = "dev"
	}
	o := apiv2.Options{Ops: s.ops, Authorize: s.authorizeV2, Health: s.healthV2, Version: v,
		Bundle: s.bundle, Jobs: s.jobs, Log: s.log}
	if s.opt.Connections != nil {
		o.Connections = s.opt.Connections
	}
	if s.opt.APIConfig != nil {
		o.Config = s.opt.APIConfig
	}
	return apiv2.New(o)
}

// isV2 says whether r is a REST API v2 request.
func isV2(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/v2/") }

var v2Perm = map[apiv2.Access]perm{apiv2.Read: permRead, apiv2.Act: permAct, apiv2.Op: permOp, apiv2.Admin: permAdmin}

// authorizeV2 applies Airflow 3's rules: a bearer token (or the UI's
// session, with its CSRF token on changes; or the trusted proxy's
// header), 401 without one, 403 without the role.
func (s *Server) authorizeV2(r *http.Request, need apiv2.Access) (string, int, string) {
	p := principalOf(r)
	if p == nil {
		if tp, ok := r.Context().Value(problemKey{}).(tokenProblem); ok {
			if errors.Is(tp.err, errBadToken) {
				return "", http.StatusUnauthorized, "Invalid JWT token: " + strings.TrimPrefix(tp.Error(), errBadToken.Error()+": ")
			}
			return "", http.StatusUnauthorized, tp.Error()
		}
		return "", http.StatusUnauthorized, "Not authenticated: send Authorization: Bearer with a token from POST /auth/token"
	}
	if !p.role.can(v2Perm[need]) {
		s.log.Warn("permission denied", "user", p.user.Username, "role", p.role, "method", r.Method, "path", r.URL.Path)
		return "", http.StatusForbidden, "Forbidden: your role (" + string(p.role) + ") may not do this"
	}
	if !csrfOK(r, p) {
		return "", http.StatusForbidden, "CSRF token missing or wrong; reload the page and try again"
	}
	return p.user.Username, 0, ""
}

// basicOnV2 is why /api/v2 ignores basic credentials.
var basicOnV2 = tokenProblem{errors.New("basic authentication is not accepted by /api/v2 (Airflow 3's rule); get a bearer token from POST /auth/token")}

func (s *Server) healthV2(r *http.Request) map[string]any {
	db, sched := s.components(r)
	_, at := s.bag.Current()
	proc := map[string]any{"status": "unhealthy", "latest_dag_processor_heartbeat": nil}
	if !at.IsZero() {
		proc["status"], proc["latest_dag_processor_heartbeat"] = "healthy", apiTime(at)
	}
	return map[string]any{"metadatabase": db, "scheduler": sched, "dag_processor": proc}
}

// bundle names the DAG bundle as Airflow 3 would: the git branch the DAGs
// come from.
func (s *Server) bundle() string {
	if s.git != nil {
		return s.git.Branch()
	}
	return ""
}

// replicaAlive is how recent a replica's beat must be for it to count as
// running (it beats every few seconds).
const replicaAlive = time.Minute

// jobs are the scheduler replicas of the last day, as SchedulerJobs
// numbered by when they started.
func (s *Server) jobs(r *http.Request) ([]apiv2.Job, error) {
	now := s.now()
	reps, err := s.st.Replicas(r.Context(), now.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	if len(reps) == 0 {
		// A single server on SQLite records no replicas: it is the job.
		host, _ := os.Hostname()
		beat := s.opt.Heartbeat()
		st := "running"
		if beat.IsZero() || now.Sub(beat) > replicaAlive {
			st = "failed"
		}
		return []apiv2.Job{{ID: 1, Hostname: host, State: st, Start: s.started, LastHeartbeat: beat}}, nil
	}
	sort.SliceStable(reps, func(i, j int) bool { return reps[i].StartedAt.Before(reps[j].StartedAt) })
	out := make([]apiv2.Job, 0, len(reps))
	for i, rep := range reps {
		st := "running"
		if now.Sub(rep.BeatAt) > replicaAlive {
			st = "failed"
		}
		out = append(out, apiv2.Job{ID: int64(i + 1), Hostname: rep.Host, State: st, Start: rep.StartedAt, LastHeartbeat: rep.BeatAt})
	}
	return out, nil
}

// issueToken is Airflow 3's POST /auth/token: a username and password (a
// JSON body or a form) for a bearer token. Failures count toward the same
// lock-out as the login form.
func (s *Server) issueToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	var body struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			tokenError(w, http.StatusUnprocessableEntity, "the body must be JSON: {\"username\": ..., \"password\": ...}")
			return
		}
	} else {
		body.Username, body.Password = r.PostFormValue("username"), r.PostFormValue("password")
	}
	if body.Username == "" || body.Password == "" {
		tokenError(w, http.StatusUnprocessableEntity, "username and password are required")
		return
	}
	u, err := s.auth.check(r.Context(), body.Username, body.Password, clientIP(r))
	var tooMany errTooMany
	switch {
	case errors.As(err, &tooMany):
		w.Header().Set("Retry-After", strconv.Itoa(int(tooMany.wait.Seconds())+1))
		tokenError(w, http.StatusTooManyRequests, err.Error())
		return
	case errors.Is(err, errBadCredentials):
		s.log.Warn("failed token request", "user", body.Username, "remote", clientIP(r))
		tokenError(w, http.StatusUnauthorized, "Invalid credentials")
		return
	case err != nil:
		s.log.Error("token request failed", "err", err)
		tokenError(w, http.StatusInternalServerError, "tokens are unavailable; see the server log")
		return
	}
	tok, err := s.auth.tokens.Issue(r.Context(), u.Username, 0)
	if err != nil {
		s.log.Error("issue token", "err", err)
		tokenError(w, http.StatusInternalServerError, "tokens are unavailable; see the server log")
		return
	}
	s.log.Info("token issued", "user", u.Username)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer",
		"expires_in": int(s.auth.tokens.TTL().Seconds())})
}

func tokenError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"detail": msg})
}
