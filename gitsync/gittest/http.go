package gittest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// HTTP serves base over git's smart HTTP protocol through git
// http-backend, behind basic auth, on a fixed loopback port so it can be
// stopped and started again.
type HTTP struct {
	tb       testing.TB
	port     int
	handler  http.Handler
	mu       sync.Mutex
	user     string
	password string
	srv      *http.Server
}

// StartHTTP serves base with basic auth user:password until the test ends.
func StartHTTP(tb testing.TB, base, user, password string) *HTTP {
	tb.Helper()
	backend := &cgi.Handler{Path: filepath.Join(Git(tb, base, "--exec-path"), "git-http-backend"),
		Env: []string{"GIT_PROJECT_ROOT=" + base, "GIT_HTTP_EXPORT_ALL=1"}}
	h := &HTTP{tb: tb, port: freePort(tb), user: user, password: password}
	h.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		wantUser, wantPass := h.user, h.password
		h.mu.Unlock()
		if u, p, ok := r.BasicAuth(); !ok || u != wantUser || p != wantPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	})
	h.Start()
	tb.Cleanup(h.Stop)
	return h
}

// SetPassword changes the password the server accepts (a rotation).
func (h *HTTP) SetPassword(p string) {
	h.mu.Lock()
	h.password = p
	h.mu.Unlock()
}

// Start starts serving.
func (h *HTTP) Start() {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", h.port))
	if err != nil {
		h.tb.Fatal(err)
	}
	h.srv = &http.Server{Handler: h.handler, ReadHeaderTimeout: 10 * time.Second}
	go h.srv.Serve(ln)
}

// Stop stops serving and closes open connections.
func (h *HTTP) Stop() {
	if h.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = h.srv.Shutdown(ctx)
		h.srv.Close()
		h.srv = nil
	}
}

// URL is the repository's address.
func (h *HTTP) URL() string { return fmt.Sprintf("http://127.0.0.1:%d/repo.git", h.port) }
