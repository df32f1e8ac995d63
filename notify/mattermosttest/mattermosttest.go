// Package mattermosttest is a stand-in for a Mattermost server's incoming
// webhooks, for tests: Mattermost itself cannot run here. It speaks the
// same contract as Mattermost's /hooks/{id} endpoint: a JSON POST with
// text, channel, username, icon_url and attachments; 200 "ok" when taken;
// 400 when the body is not a JSON payload or has neither text nor
// attachments; 404 for an unknown hook id. Tests script other answers
// (400, 429 with Retry-After, 500, a hang) and can take it down and bring
// it back on the same port.
package mattermosttest

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// Post is a message the server took.
type Post struct {
	Text        string           `json:"text"`
	Channel     string           `json:"channel"`
	Username    string           `json:"username"`
	IconURL     string           `json:"icon_url"`
	IconEmoji   string           `json:"icon_emoji"`
	Attachments []map[string]any `json:"attachments"`
	Raw         string           `json:"-"`
}

// Answer scripts one response: "ok" (take the post), "400", "429", "500",
// "hang" (never answer until the client gives up or Close), or "slow"
// (take the post, then answer only after the client gave up: a
// Mattermost under load that posted the message but answers too late).
type Answer string

// Server is a fake Mattermost with one incoming webhook.
type Server struct {
	HookID string

	mu       sync.Mutex
	addr     string
	srv      *http.Server
	posts    []Post
	script   []Answer
	attempts int
	hang     chan struct{}
}

// Start serves on a free loopback port; the hook URL is URL().
func Start(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{HookID: "x3k9f7bqjfn8zcpd1htwo1ybsc", hang: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.addr = ln.Addr().String()
	s.serve(ln)
	tb.Cleanup(s.Close)
	return s
}

// URL is the incoming webhook's URL.
func (s *Server) URL() string { return "http://" + s.addr + "/hooks/" + s.HookID }

// Script sets the answers of the next attempts, in order; after them every
// attempt is taken.
func (s *Server) Script(answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append([]Answer(nil), answers...)
}

// Posts returns what was taken so far.
func (s *Server) Posts() []Post {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Post(nil), s.posts...)
}

// Attempts counts every request, taken or not.
func (s *Server) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Stop takes the server down (connections refused) until Restart.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Restart serves again on the same port.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatal(err)
	}
	s.serve(ln)
}

// Close stops the server and releases hung requests.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.hang:
	default:
		close(s.hang)
	}
	s.mu.Unlock()
	s.Stop()
}

func (s *Server) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(s.handle)}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.attempts++
	var answer Answer = "ok"
	if len(s.script) > 0 {
		answer, s.script = s.script[0], s.script[1:]
	}
	hang := s.hang
	s.mu.Unlock()
	if r.Method != http.MethodPost || r.URL.Path != "/hooks/"+s.HookID {
		http.Error(w, `{"id":"web.incoming_webhook.invalid.app_error","message":"Invalid webhook.","status_code":404}`, http.StatusNotFound)
		return
	}
	switch answer {
	case "hang":
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	case "400":
		http.Error(w, `{"id":"api.webhook.incoming.error","status_code":400}`, http.StatusBadRequest)
		return
	case "429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"message":"too many requests","status_code":429}`, http.StatusTooManyRequests)
		return
	case "500":
		http.Error(w, `{"message":"internal error","status_code":500}`, http.StatusInternalServerError)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		http.Error(w, `{"id":"api.webhook.incoming.error","message":"Unable to parse incoming data","status_code":400}`, http.StatusBadRequest)
		return
	}
	var p Post
	if err := json.Unmarshal(body, &p); err != nil || (p.Text == "" && len(p.Attachments) == 0) {
		http.Error(w, `{"id":"web.incoming_webhook.text.app_error","message":"No text specified.","status_code":400}`, http.StatusBadRequest)
		return
	}
	p.Raw = string(body)
	s.mu.Lock()
	s.posts = append(s.posts, p)
	s.mu.Unlock()
	if answer == "slow" {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}
