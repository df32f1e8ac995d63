package web

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"updraft/dags"
	"updraft/gitsync"
	"updraft/gitsync/gittest"
)

// countingSync records triggers; the real Syncer behind these endpoints
// is exercised end to end in cmd/updraft's git test.
type countingSync struct {
	triggers atomic.Int32
	status   gitsync.Status
}

func (c *countingSync) Status() gitsync.Status { return c.status }
func (c *countingSync) Trigger()               { c.triggers.Add(1) }
func (c *countingSync) Branch() string         { return "master" }

func TestGitSyncEndpoints(t *testing.T) {
	dir := t.TempDir()
	tokenFile, secretFile := filepath.Join(dir, "token"), filepath.Join(dir, "secret")
	os.WriteFile(tokenFile, []byte("tok-1\n"), 0o600)
	os.WriteFile(secretFile, []byte("hook-1\n"), 0o600)
	gs := &countingSync{status: gitsync.Status{LastError: "list git://x: connection refused", ConsecutiveFailures: 3,
		Current: gitsync.Revision{Hash: "0123456789abcdef0123456789abcdef01234567"}}}
	e := newEnv(t, fixedBag{&dags.Result{}, time.Now()})
	e.web.WithGit(gs, GitOptions{TokenFile: tokenFile, WebhookSecretFile: secretFile})
	post := func(path string, body string, hdr ...string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(body))
		for i := 0; i < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	sign := func(body, secret string) string { return "sha256=" + gittest.Signature([]byte(body), secret) }
	push := `{"ref":"refs/heads/master"}`
	steps := []struct {
		name     string
		status   int
		triggers int32
		do       func() int
	}{
		{"sync without a token", 401, 0, func() int { return post("/api/v1/git/sync", "") }},
		{"sync with a wrong token", 401, 0, func() int { return post("/api/v1/git/sync", "", "Authorization", "Bearer nope") }},
		{"sync with the token", 202, 1, func() int { return post("/api/v1/git/sync", "", "Authorization", "Bearer tok-1") }},
		{"webhook unsigned", 401, 1, func() int { return post("/api/v1/git/webhook", push) }},
		{"webhook with a bad signature", 401, 1, func() int {
			return post("/api/v1/git/webhook", push, "X-Hub-Signature-256", sign(push, "other"))
		}},
		{"github push", 202, 2, func() int {
			return post("/api/v1/git/webhook", push, "X-Hub-Signature-256", sign(push, "hook-1"))
		}},
		{"gitlab push", 202, 3, func() int { return post("/api/v1/git/webhook", push, "X-Gitlab-Token", "hook-1") }},
		{"push to another branch", 202, 3, func() int {
			b := `{"ref":"refs/heads/feature"}`
			return post("/api/v1/git/webhook", b, "X-Gitea-Signature", strings.TrimPrefix(sign(b, "hook-1"), "sha256="))
		}},
		{"rotated secrets", 202, 4, func() int {
			os.WriteFile(tokenFile, []byte("tok-2"), 0o600)
			os.WriteFile(secretFile, []byte("hook-2"), 0o600)
			if post("/api/v1/git/sync", "", "Authorization", "Bearer tok-1") != 401 {
				return -1
			}
			return post("/api/v1/git/webhook", push, "X-Hub-Signature-256", sign(push, "hook-2"))
		}},
		{"GET is not allowed", 405, 4, func() int {
			resp, err := http.Get(e.srv.URL + "/api/v1/git/sync")
			if err != nil {
				return -1
			}
			resp.Body.Close()
			return resp.StatusCode
		}},
	}
	for _, s := range steps {
		if got := s.do(); got != s.status || gs.triggers.Load() != s.triggers {
			t.Fatalf("%s: status %d (want %d), triggers %d (want %d)", s.name, got, s.status, gs.triggers.Load(), s.triggers)
		}
	}
	// Health and the UI show the failing sync; the secrets never appear.
	_, body := get(t, e, "/health")
	if !strings.Contains(body, `"git_sync"`) || !strings.Contains(body, `"consecutive_failures":3`) || !strings.Contains(body, "unhealthy") {
		t.Fatalf("health: %s", body)
	}
	_, metrics := get(t, e, "/metrics")
	if !strings.Contains(metrics, "\nupdraft_git_sync_consecutive_failures 3\n") || !strings.Contains(metrics, "# TYPE updraft_git_sync_attempts_total counter") {
		t.Fatalf("metrics: %s", metrics)
	}
	_, page := get(t, e, "/")
	if !strings.Contains(page, "Git sync failing") || !strings.Contains(page, "0123456789ab") {
		t.Fatalf("page: %s", page)
	}
	for _, secret := range []string{"tok-1", "tok-2", "hook-1", "hook-2"} {
		if strings.Contains(body+page, secret) {
			t.Fatalf("a secret was rendered: %s", secret)
		}
	}
	// Without secret files the endpoints refuse.
	bare := newEnv(t, fixedBag{&dags.Result{}, time.Now()})
	bare.web.WithGit(gs, GitOptions{})
	for _, path := range []string{"/api/v1/git/sync", "/api/v1/git/webhook"} {
		req, _ := http.NewRequest("POST", bare.srv.URL+path, strings.NewReader(push))
		req.Header.Set("Authorization", "Bearer tok-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s without a secret: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
}
