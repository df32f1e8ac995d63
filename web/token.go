package web

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"updraft/store"
)

// The REST API v2 authenticates as Airflow 3 does: a JWT from POST
// /auth/token, sent as "Authorization: Bearer ...". Tokens are HS512,
// signed with the newest key of a set and verified with any key of it, so
// a rotation logs no one out: the old key verifies until the tokens it
// signed have expired. The set lives in the database (shared by every
// replica; `updraft api rotate-key` adds a key) or in a file
// (TokenKeyFile: one secret per line, the first signs).

const (
	tokenKeySet   = "jwt"            // the store's key set
	tokenIssuer   = "updraft"        // iss
	tokenAudience = "apache-airflow" // aud, Airflow's [api_auth] jwt_audience
	// DefaultTokenTTL is Airflow's [api_auth] jwt_expiration_time.
	DefaultTokenTTL = 24 * time.Hour
	tokenKeysFresh  = 10 * time.Second // how long loaded keys are trusted before a reload
	// tokenKeysGap is the least time between two reloads: a token naming
	// an unknown key reloads at once, but a stream of forged ones cannot
	// make every request read the database.
	tokenKeysGap = 100 * time.Millisecond
)

// errBadToken is a bearer token that does not verify.
var errBadToken = errors.New("invalid or expired token")

// Tokens issues and verifies the API's bearer tokens. It is safe for
// concurrent use.
type Tokens struct {
	st      *store.Store
	ttl     time.Duration
	keyFile string
	now     func() time.Time

	mu     sync.Mutex
	keys   []store.SigningKey // newest first
	loaded time.Time
}

// NewTokens returns the token issuer of a store; keyFile, when set, holds
// the keys instead of the store. A zero ttl is DefaultTokenTTL.
func NewTokens(st *store.Store, ttl time.Duration, keyFile string, now func() time.Time) *Tokens {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{st: st, ttl: ttl, keyFile: keyFile, now: now}
}

// TTL is how long a token lasts.
func (t *Tokens) TTL() time.Duration { return t.ttl }

// loadKeys reads the key set; force skips the cache (a token named a key
// this process has not seen: another replica may have rotated).
func (t *Tokens) loadKeys(ctx context.Context, force bool) ([]store.SigningKey, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if len(t.keys) > 0 && (now.Sub(t.loaded) < tokenKeysFresh && !force || now.Sub(t.loaded) < tokenKeysGap) {
		return t.keys, nil
	}
	var keys []store.SigningKey
	var err error
	if t.keyFile != "" {
		keys, err = readKeyFile(t.keyFile)
	} else {
		if _, err = t.st.EnsureSigningKey(ctx, tokenKeySet, now); err == nil {
			keys, err = t.st.SigningKeys(ctx, tokenKeySet)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("load the token keys: %w", err)
	}
	t.keys, t.loaded = keys, now
	return keys, nil
}

// readKeyFile reads one secret per line (blank lines and # comments
// skipped); each must be at least 32 bytes. A key's id is a hash of it.
func readKeyFile(path string) ([]store.SigningKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var keys []store.SigningKey
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if len(line) < 32 {
			return nil, fmt.Errorf("%s:%d: a token key must be at least 32 characters", path, n)
		}
		h := sha256.Sum256([]byte(line))
		keys = append(keys, store.SigningKey{ID: hex.EncodeToString(h[:8]), Secret: []byte(line)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no token key", path)
	}
	return keys, nil
}

// Issue returns a signed token for a user, valid for ttl (the
// configured lifetime when zero).
func (t *Tokens) Issue(ctx context.Context, username string, ttl time.Duration) (string, error) {
	keys, err := t.loadKeys(ctx, false)
	if err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = t.ttl
	}
	now := t.now()
	claims := jwt.RegisteredClaims{Issuer: tokenIssuer, Subject: username, Audience: jwt.ClaimStrings{tokenAudience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(ttl)), ID: randomToken()[:22]}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS512, claims)
	tok.Header["kid"] = keys[0].ID
	return tok.SignedString(keys[0].Secret)
}

// Verify checks a token and returns its user name.
func (t *Tokens) Verify(ctx context.Context, raw string) (string, error) {
	keys, err := t.loadKeys(ctx, false)
	if err != nil {
		return "", err
	}
	keyfunc := func(keys []store.SigningKey) jwt.Keyfunc {
		return func(tok *jwt.Token) (any, error) {
			kid, _ := tok.Header["kid"].(string)
			for _, k := range keys {
				if k.ID == kid {
					return k.Secret, nil
				}
			}
			return nil, errUnknownKey
		}
	}
	parse := func(keys []store.SigningKey) (*jwt.Token, error) {
		return jwt.ParseWithClaims(raw, &jwt.RegisteredClaims{}, keyfunc(keys), jwt.WithValidMethods([]string{"HS512"}),
			jwt.WithIssuer(tokenIssuer), jwt.WithAudience(tokenAudience), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
			jwt.WithTimeFunc(t.now), jwt.WithLeeway(5*time.Second))
	}
	tok, err := parse(keys)
	if errors.Is(err, errUnknownKey) {
		// A key rotated in by another replica since the last load.
		if keys, err = t.loadKeys(ctx, true); err != nil {
			return "", err
		}
		tok, err = parse(keys)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", errBadToken, err)
	}
	sub, err := tok.Claims.GetSubject()
	if err != nil || sub == "" {
		return "", fmt.Errorf("%w: no subject", errBadToken)
	}
	return sub, nil
}

var errUnknownKey = errors.New("signed with a key this server does not know")

// Rotate adds a new signing key to the store's set; keys superseded more
// than a token's lifetime ago are removed. A key file is rotated by
// editing the file instead.
func (t *Tokens) Rotate(ctx context.Context) (store.SigningKey, error) {
	if t.keyFile != "" {
		return store.SigningKey{}, fmt.Errorf("the token keys are in %s: add the new key as its first line, and remove the old one after %s", t.keyFile, t.ttl)
	}
	now := t.now()
	k, err := t.st.AddSigningKey(ctx, tokenKeySet, now, now.Add(-t.ttl))
	t.mu.Lock()
	t.loaded = time.Time{}
	t.mu.Unlock()
	return k, err
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
