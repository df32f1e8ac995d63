package main

import (
	"context"
	"log/slog"
	"net/url"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"updraft/dags"
	"updraft/executor/builtin"
	"updraft/store"
)

// secretSources are the places the server's secrets come from: each value
// found there is taught to the server's masker, which never forgets one.
type secretSources struct {
	st    *store.Store
	conns builtin.Connections
	// values known at start: the admin's password, the database URL's
	// password, the webhook URL given in the environment.
	fixed []string
	// files re-read on each refresh: the webhook URL file, the git
	// password, sync token and webhook secret files.
	files []string
}

// serverSecrets gathers the secret sources of a server's configuration.
func (m Main) serverSecrets(cfg serverConfig, st *store.Store) secretSources {
	s := secretSources{st: st, conns: m.connections()}
	s.fixed = append(s.fixed, cfg.Auth.AdminPassword, store.DSNPassword(cfg.DB))
	s.fixed = append(s.fixed, webhookSecrets(cfg.Alerts.WebhookURL)...)
	s.files = []string{cfg.Alerts.WebhookURLFile, cfg.Git.Auth.PasswordFile, cfg.Git.Endpoints.TokenFile, cfg.Git.Endpoints.WebhookSecretFile}
	return s
}

// webhookSecrets are the forms a webhook URL leaks in: whole, and its key
// (the last path segment of a Mattermost incoming webhook, /hooks/KEY).
func webhookSecrets(raw string) []string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil
	}
	out := []string{raw}
	if u, err := url.Parse(raw); err == nil {
		if key := path.Base(u.Path); key != "" && key != "/" && key != "." && key != "hooks" {
			out = append(out, key)
		}
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	return out
}

// teach adds every current secret value to m: the fixed ones, the files'
// contents, connection passwords and secret extras, secret variables.
func (s secretSources) teach(ctx context.Context, m *dags.Masker) error {
	m.Add(s.fixed...)
	for i, f := range s.files {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			continue // its user reports that
		}
		v := strings.TrimSpace(string(data))
		if i == 0 {
			m.Add(webhookSecrets(v)...)
		} else {
			m.Add(v)
		}
	}
	if conns, err := s.conns.List(); err == nil {
		for _, c := range conns {
			m.Add(connectionSecrets(c)...)
		}
	}
	if s.st == nil {
		return nil
	}
	vals, err := s.st.SecretValues(ctx)
	m.Add(vals...)
	return err
}

// connectionSecrets are a connection's password and the values of its
// extras named like secrets (Airflow's rule, as for variables).
func connectionSecrets(c builtin.Connection) []string {
	out := []string{c.Password}
	for k, v := range c.Extra {
		if dags.SensitiveName(k) {
			out = append(out, v)
		}
	}
	return out
}

// keepTeaching refreshes the masker until ctx ends, so that secrets added
// elsewhere (a variable set through another replica, a rotated file) are
// masked within a few seconds; the scheduler also teaches the masker the
// variables it renders before a try starts.
func (s secretSources) keepTeaching(ctx context.Context, m *dags.Masker, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.teach(ctx, m); err != nil && ctx.Err() == nil {
				log.Warn("reading secret values to mask failed", "err", err)
			}
		}
	}
}

// hideProcess makes the server's /proc entries (environment, memory, open
// files) unreadable to processes of the same user, such as the local
// executor's tasks: the kernel then treats it as not dumpable. Tasks exec
// a new program and are dumpable again.
func hideProcess(log *slog.Logger) {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		log.Warn("cannot hide the server's process details from its tasks", "err", err)
	}
}
