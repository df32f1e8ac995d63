package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
)

// A flash message says what the last action did on the page it redirected
// to. Only the server writes one: it travels in a short-lived cookie signed
// with the session's own secret (the CSRF token, which another site or
// user cannot know), is shown once and then removed. A message in the URL
// (?flash=) is never shown, so a link cannot put words on a trusted page.
const (
	flashCookie = "updraft_flash"
	maxFlash    = 600 // bytes of message kept
)

// processKey signs the flash messages of callers without a session (basic
// auth, an authenticating proxy).
var processKey = func() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}()

func flashKey(r *http.Request) []byte {
	if p := principalOf(r); p != nil && p.session != nil {
		return []byte("flash\x00" + p.session.CSRFToken)
	}
	return processKey
}

func flashMAC(r *http.Request, msg string) []byte {
	m := hmac.New(sha256.New, flashKey(r))
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func (s *Server) setFlash(w http.ResponseWriter, r *http.Request, msg string) {
	if len(msg) > maxFlash {
		msg = strings.ToValidUTF8(msg[:maxFlash], "") + "…"
	}
	enc := base64.RawURLEncoding
	c := s.auth.baseCookie(r, flashCookie, enc.EncodeToString([]byte(msg))+"."+enc.EncodeToString(flashMAC(r, msg)))
	c.MaxAge = 60
	http.SetCookie(w, c)
}

// takeFlash returns the request's flash message if the server signed it
// for this caller, and removes the cookie.
func (s *Server) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	gone := s.auth.baseCookie(r, flashCookie, "")
	gone.MaxAge = -1
	http.SetCookie(w, gone)
	enc := base64.RawURLEncoding
	msgPart, macPart, ok := strings.Cut(c.Value, ".")
	msg, err1 := enc.DecodeString(msgPart)
	mac, err2 := enc.DecodeString(macPart)
	if !ok || err1 != nil || err2 != nil || !hmac.Equal(mac, flashMAC(r, string(msg))) {
		return ""
	}
	return string(msg)
}

// back redirects to the page a form came from, with a message.
func (s *Server) back(w http.ResponseWriter, r *http.Request, to, flash string) {
	u, err := url.Parse(to)
	if err != nil || u.IsAbs() || u.Host != "" {
		u = &url.URL{Path: "/"}
	}
	s.setFlash(w, r, flash)
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
