package builtin

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConnection(t *testing.T) {
	for _, c := range []struct {
		in, base, masked string
		login, password  string
		extra            map[string]string
	}{
		{"https://bot:s3cret@api.example.com:8443/v1?Authorization=Bearer%20x", "https://api.example.com:8443", "https://bot:***@api.example.com:8443/v1", "bot", "s3cret", map[string]string{"Authorization": "Bearer x"}},
		{"http://localhost:8080", "http://localhost:8080", "http://localhost:8080", "", "", nil},
		{"mattermost://:hookid123@chat.example.com", "https://chat.example.com", "mattermost://:***@chat.example.com", "", "hookid123", nil},
		{`{"conn_type": "http", "host": "https://hooks.example.com", "password": "pw", "extra": "{\"X-Team\": \"data\"}"}`, "https://hooks.example.com", "https://:***@hooks.example.com", "", "pw", map[string]string{"X-Team": "data"}},
		{`{"conn_type": "mattermost", "host": "chat.internal", "password": "abc", "extra": {"scheme": "http"}}`, "http://chat.internal", "", "", "abc", map[string]string{"scheme": "http"}},
	} {
		conn, err := ParseConnection("x", c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if got := conn.BaseURL(); got != c.base {
			t.Errorf("%s: base %q, want %q", c.in, got, c.base)
		}
		if conn.Login != c.login || conn.Password != c.password {
			t.Errorf("%s: login %q password %q", c.in, conn.Login, conn.Password)
		}
		for k, v := range c.extra {
			if conn.Extra[k] != v {
				t.Errorf("%s: extra %s = %q", c.in, k, conn.Extra[k])
			}
		}
		if m := conn.Masked(); (c.password != "" && strings.Contains(m, c.password)) || (c.masked != "" && m != c.masked) {
			t.Errorf("%s: masked %q, want %q", c.in, m, c.masked)
		}
	}
	for _, bad := range []string{"not a uri", `{"conn_type": 1}`, `{"conn_type": "http", "extra": "[1]"}`} {
		_, err := ParseConnection("bad", bad+"hunter2")
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestConnectionsFromEnvAndFolder(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "stitch"), []byte("https://:tok@api.stitchdata.com\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "mattermost.json"), []byte(`{"conn_type": "mattermost", "host": "chat.example.com", "password": "hook"}`), 0o600)
	env := map[string]string{"UPDRAFT_CONN_HIGHTOUCH": "https://api.hightouch.com", "AIRFLOW_CONN_LEGACY": "http://old.example.com"}
	c := Connections{Dir: dir, Getenv: func(k string) string { return env[k] }, Environ: func() []string {
		var out []string
		for k, v := range env {
			out = append(out, k+"="+v)
		}
		return out
	}}
	for id, base := range map[string]string{"hightouch": "https://api.hightouch.com", "legacy": "http://old.example.com",
		"stitch": "https://api.stitchdata.com", "mattermost": "https://chat.example.com"} {
		conn, err := c.Get(id)
		if err != nil || conn.BaseURL() != base {
			t.Errorf("%s: %q %v", id, conn.BaseURL(), err)
		}
	}
	if _, err := c.Get("nope"); !errors.Is(err, ErrNoConnection) || !strings.Contains(err.Error(), "UPDRAFT_CONN_NOPE") {
		t.Errorf("missing: %v", err)
	}
	if _, err := c.Get("../etc/passwd"); !errors.Is(err, ErrNoConnection) {
		t.Errorf("a path as id: %v", err)
	}
	list, err := c.List()
	if err != nil || len(list) != 4 || list[0].ID != "hightouch" {
		t.Fatalf("list: %+v %v", list, err)
	}
}
