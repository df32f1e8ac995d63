package gittest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Signature is the hex HMAC-SHA256 of body under secret, as GitHub
// (after "sha256=" in X-Hub-Signature-256) and Gitea sign push webhooks.
func Signature(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}
