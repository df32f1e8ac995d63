package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// authenticate identifies the caller of every request behind it. Wrong
// basic credentials end the request (401, or 429 while rate limited); no
// credentials at all go on as anonymous, for need to decide.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, basic := r.BasicAuth(); basic && isV2(r) {
			r = r.WithContext(context.WithValue(r.Context(), problemKey{}, basicOnV2))
			next.ServeHTTP(w, r)
			return
		}
		p, err := s.auth.identify(r)
		var tooMany errTooMany
		var badToken tokenProblem
		switch {
		case errors.As(err, &badToken):
			r = r.WithContext(context.WithValue(r.Context(), problemKey{}, badToken))
			next.ServeHTTP(w, r)
			return
		case errors.As(err, &tooMany):
			w.Header().Set("Retry-After", strconv.Itoa(int(tooMany.wait.Seconds())+1))
			problem(w, http.StatusTooManyRequests, err.Error())
			return
		case errors.Is(err, errBadCredentials):
			problem(w, http.StatusUnauthorized, err.Error())
			return
		case err != nil:
			s.log.Error("authentication failed", "err", err)
			problem(w, http.StatusInternalServerError, "authentication is unavailable; see the server log")
			return
		}
		if p != nil {
			r = r.WithContext(contextWith(r, p))
		}
		next.ServeHTTP(w, r)
	})
}

// need refuses requests whose caller may not do p: anonymous callers are
// sent to the login form (pages) or get 401 (API), others get 403. A
// state-changing request from a browser session must carry its CSRF token.
func (s *Server) need(p perm) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pr := principalOf(r)
			api := isAPI(r)
			switch {
			case pr == nil && api:
				msg := "authentication required: log in, or send basic auth credentials or a bearer token"
				if tp, ok := r.Context().Value(problemKey{}).(tokenProblem); ok {
					msg += " (the bearer token sent: " + tp.Error() + ")"
				}
				problem(w, http.StatusUnauthorized, msg)
				return
			case pr == nil:
				if r.Method == http.MethodGet {
					http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				} else {
					http.Error(w, "authentication required", http.StatusUnauthorized)
				}
				return
			case !pr.role.can(p):
				s.log.Warn("permission denied", "user", pr.user.Username, "role", pr.role, "method", r.Method, "path", r.URL.Path)
				if !api {
					// A page, with the navigation, rather than the API's JSON.
					s.render(w, r, http.StatusForbidden, "error.html", "Forbidden", "",
						"Your role ("+string(pr.role)+") may not see or do this; it needs "+p.role()+". An Admin can change your role on the Users page.")
					return
				}
				problem(w, http.StatusForbidden, "your role ("+string(pr.role)+") may not do this")
				return
			case !csrfOK(r, pr):
				if !api {
					s.render(w, r, http.StatusForbidden, "error.html", "Forbidden", "", "This form was older than your session (its CSRF token is missing or wrong): go back, reload the page and try again.")
					return
				}
				problem(w, http.StatusForbidden, "CSRF token missing or wrong; reload the page and try again")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

type loginPage struct {
	Next, Error, Username string
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, http.StatusOK, loginPage{Next: safeNext(r.URL.Query().Get("next"))})
}

func (s *Server) renderLogin(w http.ResponseWriter, status int, page loginPage) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := s.pages.ExecuteTemplate(w, "login.html", page); err != nil {
		s.log.Error("render login page", "err", err)
	}
}

// loginSubmit checks the form and starts a session. Failures are counted
// per user name and per address (see loginLimiter).
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	username, password := r.PostFormValue("username"), r.PostFormValue("password")
	next := safeNext(r.PostFormValue("next"))
	u, err := s.auth.check(r.Context(), username, password, clientIP(r))
	var tooMany errTooMany
	switch {
	case errors.As(err, &tooMany):
		w.Header().Set("Retry-After", strconv.Itoa(int(tooMany.wait.Seconds())+1))
		s.renderLogin(w, http.StatusTooManyRequests, loginPage{Next: next, Username: username, Error: err.Error()})
		return
	case errors.Is(err, errBadCredentials):
		s.log.Warn("failed login", "user", username, "remote", clientIP(r))
		s.renderLogin(w, http.StatusUnauthorized, loginPage{Next: next, Username: username, Error: "Wrong username or password."})
		return
	case err != nil:
		s.log.Error("login failed", "err", err)
		s.renderLogin(w, http.StatusInternalServerError, loginPage{Next: next, Username: username, Error: "Login is unavailable; see the server log."})
		return
	}
	if err := s.auth.login(w, r, u); err != nil {
		s.log.Error("start session", "err", err)
		s.renderLogin(w, http.StatusInternalServerError, loginPage{Next: next, Username: username, Error: "Login is unavailable; see the server log."})
		return
	}
	s.log.Info("login", "user", u.Username)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logoutSubmit(w http.ResponseWriter, r *http.Request) {
	if p := principalOf(r); p != nil && !csrfOK(r, p) {
		problem(w, http.StatusForbidden, "CSRF token missing or wrong")
		return
	}
	if err := s.auth.logout(w, r); err != nil {
		s.log.Error("logout", "err", err)
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a post-login redirect on this site: a local path only.
// It reads next as a browser would first (tabs and newlines removed,
// control characters and spaces at the ends stripped, backslashes taken
// as slashes), so "/\t/evil.example" or "/\\evil.example", which a
// browser sends to another site, become "/"; so does anything still
// holding a control character.
func safeNext(next string) string {
	next = strings.Map(func(r rune) rune {
		switch r {
		case '\t', '\n', '\r':
			return -1
		case '\\':
			return '/'
		}
		return r
	}, next)
	next = strings.TrimFunc(next, func(r rune) bool { return r <= ' ' })
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") ||
		strings.ContainsFunc(next, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return next
}
