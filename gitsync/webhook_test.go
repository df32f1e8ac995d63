package gitsync

import (
	"errors"
	"net/http"
	"testing"

	"updraft/gitsync/gittest"
)

func sign(body, secret []byte) string { return gittest.Signature(body, string(secret)) }

func TestVerifyWebhook(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"ref":"refs/heads/master","after":"abc"}`)
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	good := []struct {
		name string
		h    http.Header
	}{
		{"github", hdr("X-Hub-Signature-256", "sha256="+sign(body, secret))},
		{"gitea", hdr("X-Gitea-Signature", sign(body, secret))},
		{"gitea", hdr("X-Gogs-Signature", sign(body, secret))},
		{"gitlab", hdr("X-Gitlab-Token", "s3cret")},
	}
	for _, c := range good {
		p, err := VerifyWebhook(c.h, body, secret)
		if err != nil || p.Provider != c.name || p.Ref != "refs/heads/master" {
			t.Errorf("%s: %+v %v", c.name, p, err)
		}
	}
	tampered := []byte(`{"ref":"refs/heads/evil","after":"abc"}`)
	bad := []http.Header{
		{},
		hdr("X-Hub-Signature-256", "sha256="+sign(body, []byte("other"))),
		hdr("X-Hub-Signature-256", sign(body, secret)), // no sha256= prefix
		hdr("X-Hub-Signature-256", "sha256=zz"),
		hdr("X-Gitea-Signature", sign(tampered, secret)),
		hdr("X-Gitlab-Token", "s3cret "),
	}
	for i, h := range bad {
		if _, err := VerifyWebhook(h, body, secret); !errors.Is(err, ErrSignature) {
			t.Errorf("bad case %d accepted: %v", i, err)
		}
	}
	if _, err := VerifyWebhook(good[0].h, body, nil); err == nil {
		t.Error("accepted with no secret configured")
	}
	if _, err := VerifyWebhook(hdr("X-Gitlab-Token", "s3cret"), []byte("not json"), secret); err == nil {
		t.Error("accepted a body that is not JSON")
	}
}
