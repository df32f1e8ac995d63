package gitsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
)

// Push is what a verified push webhook said.
type Push struct {
	Provider string // github, gitea, gitlab
	Ref      string // e.g. refs/heads/master; "" for events without one (ping)
}

// ErrSignature is returned for a webhook whose signature or token does not
// match the secret, or that carries none.
var ErrSignature = errors.New("webhook signature missing or wrong")

// VerifyWebhook checks a push webhook from GitHub (X-Hub-Signature-256,
// HMAC-SHA256 of the body), Gitea or Gogs (X-Gitea-Signature /
// X-Gogs-Signature, the same HMAC in hex) or GitLab (X-Gitlab-Token, the
// secret itself), comparing in constant time, and reads the pushed ref.
func VerifyWebhook(h http.Header, body, secret []byte) (Push, error) {
	if len(secret) == 0 {
		return Push{}, errors.New("no webhook secret configured")
	}
	var p Push
	switch {
	case h.Get("X-Hub-Signature-256") != "":
		p.Provider = "github"
		sig, ok := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256=")
		if !ok || !hmacMatches(sig, body, secret) {
			return p, ErrSignature
		}
	case h.Get("X-Gitea-Signature") != "" || h.Get("X-Gogs-Signature") != "":
		p.Provider = "gitea"
		sig := h.Get("X-Gitea-Signature")
		if sig == "" {
			sig = h.Get("X-Gogs-Signature")
		}
		if !hmacMatches(sig, body, secret) {
			return p, ErrSignature
		}
	case h.Get("X-Gitlab-Token") != "":
		p.Provider = "gitlab"
		if subtle.ConstantTimeCompare([]byte(h.Get("X-Gitlab-Token")), secret) != 1 {
			return p, ErrSignature
		}
	default:
		return p, ErrSignature
	}
	var payload struct {
		Ref string `json:"ref"`
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &payload); err != nil {
			return p, errors.New("webhook body is not JSON")
		}
	}
	p.Ref = payload.Ref
	return p, nil
}

func hmacMatches(sigHex string, body, secret []byte) bool {
	got, err := hex.DecodeString(strings.TrimSpace(sigHex))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// Branch is the branch the Syncer follows.
func (s *Syncer) Branch() string { return s.opts.Branch }
