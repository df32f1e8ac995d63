package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"updraft/dags"
	"updraft/store"
)

// Role is one of Airflow's roles. Each role can do what the one before it
// can, and more.
type Role string

const (
	RoleViewer Role = "Viewer" // reads everything but secret values
	RoleUser   Role = "User"   // and triggers, clears, marks, pauses
	RoleOp     Role = "Op"     // and manages pools
	RoleAdmin  Role = "Admin"  // and manages variables and users
)

// Roles lists the roles from least to most allowed.
var Roles = []Role{RoleViewer, RoleUser, RoleOp, RoleAdmin}

// ParseRole accepts a role name in any letter case.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if strings.EqualFold(s, string(r)) {
			return r, nil
		}
	}
	return "", fmt.Errorf("unknown role %q; use one of Viewer, User, Op, Admin", s)
}

// perm is what a route needs.
type perm int

const (
	permRead  perm = iota // Viewer and above
	permAct               // trigger, clear, mark, pause: User and above
	permOp                // pools: Op and Admin
	permAdmin             // variables, users: Admin
)

// role names the least role that has p.
func (p perm) role() string {
	switch p {
	case permAct:
		return string(RoleUser)
	case permOp:
		return string(RoleOp)
	case permAdmin:
		return string(RoleAdmin)
	}
	return string(RoleViewer)
}

func (r Role) can(p perm) bool {
	switch p {
	case permRead:
		return r == RoleViewer || r == RoleUser || r == RoleOp || r == RoleAdmin
	case permAct:
		return r == RoleUser || r == RoleOp || r == RoleAdmin
	case permOp:
		return r == RoleOp || r == RoleAdmin
	case permAdmin:
		return r == RoleAdmin
	}
	return false
}

// bcryptCost is the work factor of password hashes (about 0.1 s here).
const bcryptCost = 11

// HashPassword returns the bcrypt hash of a password; passwords shorter than
// 8 bytes are refused (and bcrypt refuses more than 72).
func HashPassword(password string) (string, error) {
	if len(password) < 8 {
		return "", errors.New("password too short: use at least 8 characters")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CreateUser validates and adds a user.
func CreateUser(ctx context.Context, st *store.Store, username, password string, role Role, now time.Time) error {
	if !validUsername(username) {
		return fmt.Errorf("username %q: use 1-64 letters, digits, '.', '_', '-' or '@'", username)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return st.CreateUser(ctx, store.User{Username: username, PasswordHash: hash, Role: string(role), CreatedAt: now})
}

func validUsername(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@", c)) {
			return false
		}
	}
	return true
}

// EnsureAdmin creates the bootstrap admin when it does not exist yet. An
// existing user is left alone: its password may have been changed since.
// It reports whether it created the user.
func EnsureAdmin(ctx context.Context, st *store.Store, username, password string, now time.Time) (bool, error) {
	if _, err := st.User(ctx, username); err == nil {
		return false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, err
	}
	err := CreateUser(ctx, st, username, password, RoleAdmin, now)
	if errors.Is(err, store.ErrConflict) { // another replica was first
		return false, nil
	}
	return err == nil, err
}

// AuthOptions configure how requests are authenticated.
type AuthOptions struct {
	// SessionTTL is how long a browser login lasts (default 12 h).
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure even on plain HTTP (set it when
	// TLS ends at a proxy). Requests that arrive over TLS always get them.
	SecureCookies bool
	// ProxyHeader names a header carrying the user name set by an
	// authenticating proxy (e.g. X-Forwarded-User from oauth2-proxy). It is
	// trusted only from ProxyFrom; unknown users are created with ProxyRole.
	ProxyHeader string
	ProxyFrom   []netip.Prefix
	ProxyRole   Role
	// TokenTTL is how long an API token from POST /auth/token lasts
	// (default 24 h, Airflow's jwt_expiration_time).
	TokenTTL time.Duration
	// TokenKeyFile holds the tokens' signing keys, one per line, the
	// first signing; empty keeps them in the database.
	TokenKeyFile string
}

// principal is the authenticated caller of a request.
type principal struct {
	user    store.User
	role    Role
	session *store.Session // nil unless via a session cookie
	via     string         // "session", "basic", "token" or "proxy"
}

// tokenProblem is a bearer token that did not verify: the request goes on
// as anonymous (an endpoint with a secret of its own, such as the git
// sync trigger, reads the header itself) and a route that needs a user
// says why it got none.
type tokenProblem struct{ err error }

type problemKey struct{}

type ctxKey struct{}

func contextWith(r *http.Request, p *principal) context.Context {
	return context.WithValue(r.Context(), ctxKey{}, p)
}

func principalOf(r *http.Request) *principal {
	p, _ := r.Context().Value(ctxKey{}).(*principal)
	return p
}

// actor names the caller in the audit log.
func actor(r *http.Request) string {
	if p := principalOf(r); p != nil {
		return p.user.Username
	}
	return "anonymous"
}

const sessionCookie = "updraft_session"

// auth authenticates requests: a session cookie, HTTP basic auth (for API
// clients), or a trusted proxy's header. It is safe for concurrent use.
type auth struct {
	st      *store.Store
	opt     AuthOptions
	now     func() time.Time
	limiter loginLimiter
	basic   *basicCache
	mask    *dags.Masker // learns the passwords of users who log in
	tokens  *Tokens
}

func newAuth(st *store.Store, opt AuthOptions, now func() time.Time) *auth {
	if opt.SessionTTL <= 0 {
		opt.SessionTTL = 12 * time.Hour
	}
	if opt.ProxyRole == "" {
		opt.ProxyRole = RoleViewer
	}
	return &auth{st: st, opt: opt, now: now, limiter: loginLimiter{st}, basic: &basicCache{m: map[[32]byte]basicEntry{}},
		tokens: NewTokens(st, opt.TokenTTL, opt.TokenKeyFile, now)}
}

var errBadCredentials = errors.New("wrong username or password")

// errTooMany carries how long a client must wait before trying again.
type errTooMany struct{ wait time.Duration }

func (e errTooMany) Error() string {
	return fmt.Sprintf("too many failed logins; try again in %s", e.wait.Round(time.Second))
}

// check verifies a username and password, counting failures per user
// and address, and per address. The limiter comes first: while an address
// is locked out for a user, not even the right password gets in from it.
func (a *auth) check(ctx context.Context, username, password, client string) (store.User, error) {
	now := a.now()
	wait, err := a.limiter.blocked(ctx, now, username, client)
	if err != nil {
		return store.User{}, err
	}
	if wait > 0 {
		return store.User{}, errTooMany{wait}
	}
	u, err := a.st.User(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return u, err
	}
	// A password verified moments ago passes without bcrypt: API clients
	// send it with every request.
	if err == nil && a.basic.ok(u, password, now) {
		return u, nil
	}
	hash := []byte(u.PasswordHash)
	if err != nil {
		hash = dummyHash() // same work for unknown users: no user enumeration by timing
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil || err != nil {
		if err := a.limiter.fail(ctx, now, username, client); err != nil {
			return store.User{}, err
		}
		return store.User{}, errBadCredentials
	}
	if err := a.limiter.reset(ctx, now, username, client); err != nil {
		return store.User{}, err
	}
	a.basic.remember(u, password, now)
	if a.mask != nil {
		a.mask.Add(password)
	}
	return u, nil
}

// dummyHash is computed on first use, not when the program starts: every
// command would otherwise pay for a bcrypt hash it never needs.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such user, no such password"), bcryptCost)
	return h
})

// identify returns the caller of r, nil when there is none. Wrong basic
// credentials are an error (the request must not go on as anonymous).
func (a *auth) identify(r *http.Request) (*principal, error) {
	ctx := r.Context()
	if a.opt.ProxyHeader != "" {
		if name := r.Header.Get(a.opt.ProxyHeader); name != "" && a.fromProxy(r) {
			return a.proxyUser(ctx, name)
		}
	}
	if username, password, ok := r.BasicAuth(); ok {
		u, err := a.check(ctx, username, password, clientIP(r))
		if err != nil {
			return nil, err
		}
		return &principal{user: u, role: Role(u.Role), via: "basic"}, nil
	}
	if tok, ok := bearer(r); ok {
		return a.fromToken(ctx, tok)
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	se, err := a.st.Session(ctx, tokenHash(c.Value), a.now())
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	u, err := a.st.User(ctx, se.Username)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &principal{user: u, role: Role(u.Role), session: &se, via: "session"}, nil
}

// fromToken returns the user a bearer token names; a token that does not
// verify, or names a user who no longer exists, is a tokenProblem.
func (a *auth) fromToken(ctx context.Context, tok string) (*principal, error) {
	name, err := a.tokens.Verify(ctx, tok)
	if err != nil {
		if errors.Is(err, errBadToken) {
			return nil, tokenProblem{err}
		}
		return nil, err
	}
	u, err := a.st.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, tokenProblem{fmt.Errorf("%w: the user %q no longer exists", errBadToken, name)}
	}
	if err != nil {
		return nil, err
	}
	return &principal{user: u, role: Role(u.Role), via: "token"}, nil
}

func (p tokenProblem) Error() string { return p.err.Error() }

func (a *auth) fromProxy(r *http.Request) bool {
	addr, err := netip.ParseAddr(clientIP(r))
	if err != nil {
		return false
	}
	for _, p := range a.opt.ProxyFrom {
		if p.Contains(addr.Unmap()) {
			return true
		}
	}
	return false
}

// proxyUser returns the user a trusted proxy named, creating it with the
// proxy role on first sight (it has no password: it can only come in
// through the proxy).
func (a *auth) proxyUser(ctx context.Context, name string) (*principal, error) {
	u, err := a.st.User(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		if !validUsername(name) {
			return nil, errBadCredentials
		}
		u = store.User{Username: name, PasswordHash: "!proxy", Role: string(a.opt.ProxyRole), CreatedAt: a.now()}
		if err := a.st.CreateUser(ctx, u); err != nil && !errors.Is(err, store.ErrConflict) {
			return nil, err
		}
		u, err = a.st.User(ctx, name)
	}
	if err != nil {
		return nil, err
	}
	return &principal{user: u, role: Role(u.Role), via: "proxy"}, nil
}

// login starts a session and sets its cookie.
func (a *auth) login(w http.ResponseWriter, r *http.Request, u store.User) error {
	token, csrf := randomToken(), randomToken()
	now := a.now()
	se := store.Session{TokenHash: tokenHash(token), Username: u.Username, CSRFToken: csrf, CreatedAt: now, ExpiresAt: now.Add(a.opt.SessionTTL)}
	if err := a.st.CreateSession(r.Context(), se); err != nil {
		return err
	}
	_ = a.st.DeleteExpiredSessions(r.Context(), now)
	http.SetCookie(w, a.cookie(r, token, se.ExpiresAt))
	return nil
}

func (a *auth) cookie(r *http.Request, value string, expires time.Time) *http.Cookie {
	c := a.baseCookie(r, sessionCookie, value)
	if value == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
	}
	return c
}

// baseCookie is a cookie of this server as every one is set: site-wide,
// HttpOnly, SameSite=Lax, Secure over TLS or with SecureCookies.
func (a *auth) baseCookie(r *http.Request, name, value string) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: a.opt.SecureCookies || r.TLS != nil}
}

// logout ends the request's session and clears its cookie.
func (a *auth) logout(w http.ResponseWriter, r *http.Request) error {
	if c, err := r.Cookie(sessionCookie); err == nil {
		if err := a.st.DeleteSession(r.Context(), tokenHash(c.Value)); err != nil {
			return err
		}
	}
	http.SetCookie(w, a.cookie(r, "", time.Time{}))
	return nil
}

// csrfOK checks the CSRF token of a state-changing request made with a
// session cookie: the X-CSRF-Token header (scripts) or the csrf_token form
// field (forms). Basic auth and proxy requests carry no ambient browser
// credential of ours, so they need none.
func csrfOK(r *http.Request, p *principal) bool {
	if p == nil || p.session == nil {
		return true
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf_token")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(p.session.CSRFToken)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// clientIP is the address the request came from (the proxy's, behind one).
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// basicCache remembers verified basic-auth credentials for a few minutes so
// API clients, which send them with every request, do not pay for a
// bcrypt comparison each time. An entry is tied to the password hash it
// was checked against: a changed password invalidates it at once.
type basicCache struct {
	mu sync.Mutex
	m  map[[32]byte]basicEntry
}

type basicEntry struct {
	hash  string
	until time.Time
}

const basicCacheTTL = 5 * time.Minute

func basicKey(u store.User, password string) [32]byte {
	return sha256.Sum256([]byte(u.Username + "\x00" + password + "\x00" + u.PasswordHash))
}

func (c *basicCache) ok(u store.User, password string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, found := c.m[basicKey(u, password)]
	return found && e.hash == u.PasswordHash && now.Before(e.until)
}

func (c *basicCache) remember(u store.User, password string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 10_000 {
		clear(c.m)
	}
	c.m[basicKey(u, password)] = basicEntry{hash: u.PasswordHash, until: now.Add(basicCacheTTL)}
}

// loginLimiter slows password guessing: after maxUserFailures failed
// logins for one user name from one address, or maxIPFailures from one
// address for any names, within failureWindow, further attempts from that
// address are refused until the window ends, the right password included.
// The counts are in the store, so every replica and a restarted server
// enforce the same limits; and since they are per address, guessing from
// one address never locks the real user out from another.
type loginLimiter struct{ st *store.Store }

const (
	maxUserFailures = 5
	maxIPFailures   = 20
	failureWindow   = 5 * time.Minute
)

func limiterKeys(username, ip string) map[string]int {
	return map[string]int{userKey(username, ip): maxUserFailures, "ip:" + ip: maxIPFailures}
}

func userKey(username, ip string) string {
	if len(username) > 64 { // longer than any real user name: keep the key short
		username = username[:64]
	}
	return "user:" + strings.ToLower(username) + "@" + ip
}

func (l loginLimiter) blocked(ctx context.Context, now time.Time, username, ip string) (time.Duration, error) {
	var wait time.Duration
	for key, limit := range limiterKeys(username, ip) {
		n, first, err := l.st.LoginFailures(ctx, key, now.Add(-failureWindow))
		if err != nil {
			return 0, err
		}
		if n >= limit {
			wait = max(wait, first.Add(failureWindow).Sub(now))
		}
	}
	return wait, nil
}

func (l loginLimiter) fail(ctx context.Context, now time.Time, username, ip string) error {
	for key := range limiterKeys(username, ip) {
		if err := l.st.AddLoginFailure(ctx, key, now, now.Add(-failureWindow)); err != nil {
			return err
		}
	}
	return nil
}

// reset forgets a user's failures from the address that just logged in
// (the address's own count stays: one good account does not reset it).
func (l loginLimiter) reset(ctx context.Context, now time.Time, username, ip string) error {
	return l.st.ClearLoginFailures(ctx, userKey(username, ip), now.Add(-failureWindow))
}
