package web

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"updraft/gitsync"
)

// maxWebhookBody bounds a push payload (GitHub caps them at 25 MB; a push
// to a DAG repository is far smaller).
const maxWebhookBody = 5 << 20

func accepted(w http.ResponseWriter, status string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]string{"status": status})
}

// readSecret reads a secret file; it is re-read at every request.
func readSecret(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("not configured")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret file unreadable")
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) == 0 {
		return nil, errors.New("secret file is empty")
	}
	return b, nil
}

// gitSyncNow is POST /api/v1/git/sync: an authenticated request for an
// immediate sync (Authorization: Bearer <token>).
func (s *Server) gitSyncNow(w http.ResponseWriter, r *http.Request) {
	if s.git == nil {
		problem(w, http.StatusNotFound, "DAGs come from a local folder, not git")
		return
	}
	// A user allowed to trigger runs may also ask for a sync.
	if p := principalOf(r); p != nil {
		if !p.role.can(permAct) {
			problem(w, http.StatusForbidden, "your role ("+string(p.role)+") may not do this")
			return
		}
		if !csrfOK(r, p) {
			problem(w, http.StatusForbidden, "CSRF token missing or wrong")
			return
		}
		s.git.Trigger()
		s.log.Info("git sync requested through the API", "user", p.user.Username)
		accepted(w, "sync requested")
		return
	}
	if r.Header.Get("Authorization") == "" {
		problem(w, http.StatusUnauthorized, "authentication required: a user allowed to trigger runs, or the sync bearer token")
		return
	}
	token, err := readSecret(s.gitOpt.TokenFile)
	if err != nil {
		s.log.Warn("git sync request refused: no usable token", "err", err)
		problem(w, http.StatusForbidden, "triggering a sync needs --git-sync-token-file")
		return
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), token) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="updraft"`)
		problem(w, http.StatusUnauthorized, "a user allowed to trigger runs, or a valid bearer token, is required")
		return
	}
	s.git.Trigger()
	s.log.Info("git sync requested through the API", "remote", r.RemoteAddr)
	accepted(w, "sync requested")
}

// gitWebhook is POST /api/v1/git/webhook: a push webhook from GitHub,
// GitLab or Gitea, verified against the shared secret. A push to another
// branch is acknowledged and ignored.
func (s *Server) gitWebhook(w http.ResponseWriter, r *http.Request) {
	if s.git == nil {
		problem(w, http.StatusNotFound, "DAGs come from a local folder, not git")
		return
	}
	secret, err := readSecret(s.gitOpt.WebhookSecretFile)
	if err != nil {
		s.log.Warn("git webhook refused: no usable secret", "err", err)
		problem(w, http.StatusForbidden, "webhooks need --git-webhook-secret-file")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxWebhookBody))
	if err != nil {
		problem(w, http.StatusRequestEntityTooLarge, "webhook body too large")
		return
	}
	push, err := gitsync.VerifyWebhook(r.Header, body, secret)
	if errors.Is(err, gitsync.ErrSignature) {
		s.log.Warn("git webhook with a bad signature", "remote", r.RemoteAddr, "provider", push.Provider)
		problem(w, http.StatusUnauthorized, err.Error())
		return
	}
	if err != nil {
		problem(w, http.StatusBadRequest, err.Error())
		return
	}
	if push.Ref != "" && push.Ref != "refs/heads/"+s.git.Branch() {
		accepted(w, "ignored: not the followed branch")
		return
	}
	s.git.Trigger()
	s.log.Info("git sync requested by a webhook", "provider", push.Provider, "ref", push.Ref)
	accepted(w, "sync requested")
}
