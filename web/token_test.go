package web

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"updraft/store"
)

func tokenStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "u.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestTokensExpire(t *testing.T) {
	ctx := context.Background()
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	tokens := NewTokens(tokenStore(t), time.Hour, "", c.now)
	tok, err := tokens.Issue(ctx, "ann", 0)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := tokens.Verify(ctx, tok); err != nil || who != "ann" {
		t.Fatalf("fresh token: %q %v", who, err)
	}
	c.t = c.t.Add(59 * time.Minute)
	if _, err := tokens.Verify(ctx, tok); err != nil {
		t.Fatalf("a token within its hour: %v", err)
	}
	c.t = c.t.Add(2 * time.Minute)
	if _, err := tokens.Verify(ctx, tok); !errors.Is(err, errBadToken) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired token: %v", err)
	}
	// A token of its own lifetime (the CLI's --expires).
	long, _ := tokens.Issue(ctx, "ann", 48*time.Hour)
	if _, err := tokens.Verify(ctx, long); err != nil {
		t.Fatalf("a two-day token: %v", err)
	}
}

func TestTokensRefuseTampering(t *testing.T) {
	ctx := context.Background()
	st := tokenStore(t)
	tokens := NewTokens(st, 0, "", nil)
	tok, _ := tokens.Issue(ctx, "ann", 0)
	parts := strings.Split(tok, ".")
	for name, bad := range map[string]string{
		"another signature": parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"no signature":      parts[0] + "." + parts[1] + ".",
		"alg none":          "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + parts[1] + ".",
		"not a token":       "hello",
	} {
		if _, err := tokens.Verify(ctx, bad); !errors.Is(err, errBadToken) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Another installation's key signs tokens this one refuses.
	other := NewTokens(tokenStore(t), 0, "", nil)
	foreign, _ := other.Issue(ctx, "ann", 0)
	if _, err := tokens.Verify(ctx, foreign); !errors.Is(err, errBadToken) {
		t.Errorf("a foreign token: %v", err)
	}
}

// Replicas share the database's keys: a token one issues, another
// accepts; a rotation on one (or from the CLI) signs new tokens with the
// new key on every replica and logs no one out.
func TestTokenKeysRotateAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	st := tokenStore(t)
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	a, b := NewTokens(st, time.Hour, "", c.now), NewTokens(st, time.Hour, "", c.now)
	before, err := a.Issue(ctx, "ann", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Verify(ctx, before); err != nil {
		t.Fatalf("replica b refuses replica a's token: %v", err)
	}
	c.t = c.t.Add(time.Minute)
	cli := NewTokens(st, time.Hour, "", c.now)
	if _, err := cli.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	// A replica started after the rotation signs with the new key at
	// once; the others, whose caches are fresh, take its tokens.
	c.t = c.t.Add(200 * time.Millisecond)
	fresh, _ := NewTokens(st, time.Hour, "", c.now).Issue(ctx, "ann", 0)
	if _, err := a.Verify(ctx, fresh); err != nil {
		t.Errorf("a token of the new key, moments after the rotation: %v", err)
	}
	c.t = c.t.Add(time.Minute) // past the replicas' key cache
	after, _ := b.Issue(ctx, "ann", 0)
	if kidOf(t, after) == kidOf(t, before) {
		t.Error("b still signs with the old key after the rotation")
	}
	for name, tok := range map[string]string{"before": before, "after": after} {
		for rep, tokens := range map[string]*Tokens{"a": a, "b": b} {
			if _, err := tokens.Verify(ctx, tok); err != nil {
				t.Errorf("replica %s, token from %s the rotation: %v", rep, name, err)
			}
		}
	}
	// Once the old key's tokens have all expired, the next rotation
	// drops it.
	c.t = c.t.Add(2 * time.Hour)
	if _, err := cli.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	keys, _ := st.SigningKeys(ctx, tokenKeySet)
	if len(keys) != 2 {
		t.Errorf("keys after the second rotation: %d, want the newest two", len(keys))
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	return parts[0]
}

// With a key file, the first line signs and every line verifies; the file
// is rotated by editing it, without a restart.
func TestTokenKeyFile(t *testing.T) {
	ctx := context.Background()
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "keys")
	old := strings.Repeat("o", 40)
	if err := os.WriteFile(path, []byte("# the API's keys\n"+old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := NewTokens(tokenStore(t), time.Hour, path, c.now)
	before, err := tokens.Issue(ctx, "ann", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.Rotate(ctx); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("rotating a key file: %v", err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("n", 40)+"\n"+old+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(time.Minute)
	after, _ := tokens.Issue(ctx, "ann", 0)
	if kidOf(t, after) == kidOf(t, before) {
		t.Error("the new first line does not sign")
	}
	for _, tok := range []string{before, after} {
		if _, err := tokens.Verify(ctx, tok); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
	// A short secret is refused, with where it is.
	os.WriteFile(path, []byte("short\n"), 0o600)
	c.t = c.t.Add(time.Minute)
	if _, err := tokens.Issue(ctx, "ann", 0); err == nil || !strings.Contains(err.Error(), "32") {
		t.Errorf("a short key: %v", err)
	}
}
