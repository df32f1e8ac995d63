package builtin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Connection is an Airflow Connection: where a service is and how to log
// in. Password is secret: never logged or shown.
type Connection struct {
	ID       string            `json:"-"`
	Type     string            `json:"conn_type"`
	Host     string            `json:"host"`
	Login    string            `json:"login"`
	Password string            `json:"password"`
	Schema   string            `json:"schema"`
	Port     int               `json:"port"`
	Extra    map[string]string `json:"extra"`
	Source   string            `json:"-"` // where it was found: "env UPDRAFT_CONN_X" or a file path
}

// ErrNoConnection means no connection has the id.
var ErrNoConnection = errors.New("no such connection")

// Connections finds connections, Airflow style: the environment variable
// UPDRAFT_CONN_<ID> (or AIRFLOW_CONN_<ID>) holding a URI or JSON, or a file
// named <id> in Dir (a mounted Secret), holding the same. They are read at
// each use, so a rotated secret needs no restart.
type Connections struct {
	Dir     string
	Getenv  func(string) string
	Environ func() []string
}

// Get returns the connection with the id.
func (c Connections) Get(id string) (Connection, error) {
	getenv := c.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	name := strings.ToUpper(id)
	for _, prefix := range []string{"UPDRAFT_CONN_", "AIRFLOW_CONN_"} {
		if v := getenv(prefix + name); v != "" {
			conn, err := ParseConnection(id, v)
			conn.Source = "env " + prefix + name
			return conn, err
		}
	}
	if c.Dir != "" && validID(id) {
		for _, name := range []string{id, id + ".json", id + ".uri"} {
			b, err := os.ReadFile(filepath.Join(c.Dir, name))
			if err == nil {
				conn, err := ParseConnection(id, strings.TrimSpace(string(b)))
				conn.Source = filepath.Join(c.Dir, name)
				return conn, err
			}
		}
	}
	return Connection{ID: id}, fmt.Errorf("connection %q: %w (set UPDRAFT_CONN_%s, or put a file %q in the connections folder)", id, ErrNoConnection, name, id)
}

// List returns every connection found, by id.
func (c Connections) List() ([]Connection, error) {
	environ := c.Environ
	if environ == nil {
		environ = os.Environ
	}
	ids := map[string]bool{}
	for _, kv := range environ() {
		k, _, _ := strings.Cut(kv, "=")
		for _, prefix := range []string{"UPDRAFT_CONN_", "AIRFLOW_CONN_"} {
			if id, ok := strings.CutPrefix(k, prefix); ok && id != "" {
				ids[strings.ToLower(id)] = true
			}
		}
	}
	if c.Dir != "" {
		entries, err := os.ReadDir(c.Dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			name := strings.TrimSuffix(strings.TrimSuffix(e.Name(), ".json"), ".uri")
			if !e.IsDir() && validID(name) {
				ids[name] = true
			}
		}
	}
	var out []Connection
	keys := make([]string, 0, len(ids))
	for id := range ids {
		keys = append(keys, id)
	}
	sort.Strings(keys)
	for _, id := range keys {
		conn, err := c.Get(id)
		if err != nil {
			return nil, err
		}
		out = append(out, conn)
	}
	return out, nil
}

func validID(id string) bool {
	if id == "" || strings.HasPrefix(id, ".") {
		return false
	}
	for _, r := range id {
		if !(r == '_' || r == '-' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// ParseConnection reads Airflow's connection forms: a URI
// (type://login:password@host:port/schema?extra=value) or JSON with
// conn_type, host, login, password, schema, port and extra.
func ParseConnection(id, s string) (Connection, error) {
	conn := Connection{ID: id, Extra: map[string]string{}}
	if strings.HasPrefix(strings.TrimSpace(s), "{") {
		var raw struct {
			Type     string          `json:"conn_type"`
			Host     string          `json:"host"`
			Login    string          `json:"login"`
			Password string          `json:"password"`
			Schema   string          `json:"schema"`
			Port     int             `json:"port"`
			Extra    json.RawMessage `json:"extra"`
		}
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return conn, fmt.Errorf("connection %q: not valid JSON: %v", id, errors.Unwrap(err))
		}
		conn.Type, conn.Host, conn.Login, conn.Password, conn.Schema, conn.Port = raw.Type, raw.Host, raw.Login, raw.Password, raw.Schema, raw.Port
		if len(raw.Extra) > 0 {
			var extra map[string]any
			// extra may be an object or a string holding one, as in Airflow.
			var str string
			if json.Unmarshal(raw.Extra, &str) == nil {
				raw.Extra = []byte(str)
			}
			if str != "" || string(raw.Extra) != `""` {
				if err := json.Unmarshal(raw.Extra, &extra); err != nil {
					return conn, fmt.Errorf("connection %q: extra is not a JSON object", id)
				}
			}
			for k, v := range extra {
				conn.Extra[k] = fmt.Sprint(v)
			}
		}
		return conn, nil
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		// Never echo the value: it may hold a password.
		return conn, fmt.Errorf("connection %q: not a connection URI (type://login:password@host:port/schema?extra=...)", id)
	}
	conn.Type = strings.ReplaceAll(u.Scheme, "-", "_")
	conn.Host = u.Hostname()
	if p := u.Port(); p != "" {
		conn.Port, _ = strconv.Atoi(p)
	}
	if u.User != nil {
		conn.Login = u.User.Username()
		conn.Password, _ = u.User.Password()
	}
	conn.Schema = strings.TrimPrefix(u.Path, "/")
	for k, v := range u.Query() {
		if k == "__extra__" {
			var extra map[string]any
			if json.Unmarshal([]byte(v[0]), &extra) == nil {
				for ek, ev := range extra {
					conn.Extra[ek] = fmt.Sprint(ev)
				}
			}
			continue
		}
		conn.Extra[k] = v[0]
	}
	return conn, nil
}

// BaseURL is the address of an HTTP service: Airflow's HttpHook rule (a
// host with a scheme is taken as it is; otherwise http or https from the
// connection type, or the schema field), plus the port.
func (c Connection) BaseURL() string {
	host := c.Host
	if !strings.Contains(host, "://") {
		scheme := "http"
		switch {
		case c.Type == "https" || c.Schema == "https":
			scheme = "https"
		case c.Type == "mattermost":
			scheme = "https"
			if c.Extra["scheme"] != "" {
				scheme = c.Extra["scheme"]
			}
		}
		host = scheme + "://" + host
	}
	if c.Port != 0 {
		host += ":" + strconv.Itoa(c.Port)
	}
	return strings.TrimRight(host, "/")
}

// Masked describes a connection without its password.
func (c Connection) Masked() string {
	u := url.URL{Scheme: c.Type, Host: c.Host}
	if parsed, err := url.Parse(c.Host); err == nil && strings.Contains(c.Host, "://") {
		u = url.URL{Scheme: parsed.Scheme, Host: parsed.Host, Path: parsed.Path}
	}
	if c.Port != 0 {
		u.Host += ":" + strconv.Itoa(c.Port)
	}
	if c.Login != "" || c.Password != "" {
		if c.Password != "" {
			u.User = url.UserPassword(c.Login, "***")
		} else {
			u.User = url.User(c.Login)
		}
	}
	if c.Schema != "" {
		u.Path += "/" + c.Schema
	}
	return strings.Replace(u.String(), "%2A%2A%2A", "***", 1)
}
