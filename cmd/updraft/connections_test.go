package main

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Op and Admin see the server's connections on a page and through the API,
// never their passwords or extras, and test them from the page.
func TestConnectionsInTheUI(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer svc.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "svc"), []byte(strings.Replace(svc.URL, "http://", "http://api:s3cret-pass@", 1)), 0o600)
	os.WriteFile(filepath.Join(dir, "down"), []byte("http://api:s3cret-pass@127.0.0.1:1"), 0o600)
	os.WriteFile(filepath.Join(dir, "sf"), []byte(`{"conn_type": "snowflake", "login": "loader", "password": "s3cret-pass", "extra": {"account": "xy1", "private_key_content": "-----BEGIN PRIVATE KEY-----s3cret"}}`), 0o600)
	url0, _ := startInProcess(t, map[string]string{"UPDRAFT_CONNECTIONS_DIR": dir, "UPDRAFT_DAGS": t.TempDir()})
	get := func(path string) (int, string) {
		resp, err := adminGet(url0 + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status, page := get("/connections")
	if status != 200 || !strings.Contains(page, "<code>svc</code>") || !strings.Contains(page, "<code>sf</code>") {
		t.Fatalf("page: %d\n%s", status, page)
	}
	status, body := get("/api/v1/connections")
	var list struct {
		Connections []map[string]any
		Total       int `json:"total_entries"`
	}
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || list.Total != 3 {
		t.Fatalf("list: %d %s", status, body)
	}
	status, one := get("/api/v1/connections/sf")
	if status != 200 || !strings.Contains(one, `"conn_type":"snowflake"`) || !strings.Contains(one, `"extra":null`) {
		t.Fatalf("one: %d %s", status, one)
	}
	for _, text := range []string{page, body, one} {
		if strings.Contains(text, "s3cret") {
			t.Fatalf("a secret is shown:\n%s", text)
		}
	}
	if status, _ := get("/api/v1/connections/nope"); status != 404 {
		t.Errorf("unknown connection: %d", status)
	}
	test := func(id string) string {
		req, _ := http.NewRequest("POST", url0+"/connections/"+id+"/test", nil)
		req.SetBasicAuth("admin", adminPassword)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The outcome is in the flash cookie the server set (signed; the
		// message is its first part).
		loc := resp.Header.Get("Location")
		for _, c := range resp.Cookies() {
			if msg, _, ok := strings.Cut(c.Value, "."); ok && c.Name == "updraft_flash" {
				text, _ := base64.RawURLEncoding.DecodeString(msg)
				loc += " " + string(text)
			}
		}
		if strings.Contains(loc, "s3cret") {
			t.Fatalf("a secret in the outcome: %s", loc)
		}
		return loc
	}
	if got := test("svc"); !strings.Contains(got, "answered HTTP 200") {
		t.Errorf("test svc: %s", got)
	}
	if got := test("down"); !strings.Contains(got, "Error: connection down:") || !strings.Contains(got, "unreachable") {
		t.Errorf("test down: %s", got)
	}
	if got := test("nope"); !strings.Contains(got, "Error:") {
		t.Errorf("test nope: %s", got)
	}
}
