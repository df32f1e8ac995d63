package web

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"go.uber.org/goleak"

	"updraft/dags"
)

func hostileServer(t *testing.T) *env {
	t.Helper()
	fsys := fstest.MapFS{
		"ok.yaml": {Data: []byte(`hostile:
  description: "<script>alert('dag')</script>"
  tags: ["<b>tag</b>"]
  start_date: 2024-01-01
  schedule: "0 3 * * *"
  tasks: [{task_id: t, operator: EmptyOperator}]
`)},
		"bad.yaml": {Data: []byte("broken:\n  tasks:\n    - task_id: x\n      operator: \"<img src=x onerror=alert(1)>\"\n")},
	}
	res := dags.Load(fsys, dags.Options{})
	now := func() time.Time { return time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC) }
	return newEnv(t, fixedBag{res, now()}, func(o *Options) { o.Now = now })
}

// get fetches a page as the viewer.
func get(t *testing.T, e *env, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	req.SetBasicAuth("viewer", "viewer-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// Strings from DAG files are shown escaped, never executed. The next run of
// a catchup DAG without history is its first interval's end; paused, a
// next run in the past says it waits for the unpause.
func TestHomeEscapesHostileStrings(t *testing.T) {
	srv := hostileServer(t)
	if _, body := get(t, srv, "/"); !strings.Contains(body, "when unpaused") || strings.Contains(body, "2024-01-02 03:00 UTC") {
		t.Errorf("a paused DAG's next run:\n%s", body)
	}
	if err := srv.sched.SetPaused(srv.ctx, "hostile", false, "test"); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, srv, "/")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, raw := range []string{"<script>alert", "<img src=x", "<b>tag</b>"} {
		if strings.Contains(body, raw) {
			t.Errorf("page contains unescaped %q", raw)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#39;dag&#39;)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", "1 DAG file with import errors", "bad.yaml:4:17", "2024-01-02 03:00 UTC"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP = %q", csp)
	}
	_, body = get(t, srv, "/?q=nomatch")
	if !strings.Contains(body, "No DAG matches these filters") {
		t.Error("search does not filter")
	}
}

func TestHealthAndJSON(t *testing.T) {
	srv := hostileServer(t)
	resp, body := get(t, srv, "/health")
	if resp.StatusCode != 200 || !strings.Contains(body, `"healthy"`) {
		t.Fatalf("health: %d %s", resp.StatusCode, body)
	}
	_, body = get(t, srv, "/dags.json")
	var out struct {
		DAGs []struct {
			ID    string   `json:"dag_id"`
			Tasks []string `json:"tasks"`
		} `json:"dags"`
		Errors []dags.Problem `json:"import_errors"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.DAGs) != 1 || out.DAGs[0].ID != "hostile" || len(out.Errors) != 1 || out.Errors[0].Line != 4 {
		t.Fatalf("dags.json = %s", body)
	}
	// A folder that reports itself degraded (a file that cannot be read
	// in time) makes the DAG processor degraded, still serving.
	degraded := newEnv(t, degradedBag{fixedBag{&dags.Result{}, time.Now()}})
	if resp, body := get(t, degraded, "/health"); resp.StatusCode != 200 || !strings.Contains(body, `"status":"degraded"`) ||
		!strings.Contains(body, "slow.yaml could not be read in time") {
		t.Fatalf("health of a degraded folder: %d %s", resp.StatusCode, body)
	}
	// Before the first load the server is not healthy.
	empty := newEnv(t, fixedBag{&dags.Result{}, time.Time{}})
	if resp, _ := get(t, empty, "/health"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("health before load: %d", resp.StatusCode)
	}
	// Probes: ready once the DAGs have loaded; alive unless the loop is stuck.
	if resp, _ := get(t, empty, "/health/ready"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("ready before load: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv, "/health/ready"); resp.StatusCode != 200 {
		t.Fatalf("ready: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv, "/health/live"); resp.StatusCode != 200 {
		t.Fatalf("live: %d", resp.StatusCode)
	}
	stuck := newEnv(t, fixedBag{&dags.Result{}, time.Now()}, func(o *Options) {
		o.Heartbeat = func() time.Time { return time.Now().Add(-5 * time.Minute) }
	})
	if resp, _ := get(t, stuck, "/health/live"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("live with a stuck loop: %d", resp.StatusCode)
	}
	_, body = get(t, stuck, "/health")
	var h struct {
		DB    struct{ Status string } `json:"metadatabase"`
		Sched struct {
			Status    string  `json:"status"`
			Heartbeat *string `json:"latest_scheduler_heartbeat"`
		} `json:"scheduler"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.DB.Status != "healthy" || h.Sched.Status != "unhealthy" || h.Sched.Heartbeat == nil {
		t.Fatalf("airflow-shaped health: %s", body)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// degradedBag is a DAG folder whose last load could not read a file.
type degradedBag struct{ fixedBag }

func (degradedBag) Health() (bool, string) { return false, "slow.yaml could not be read in time" }
