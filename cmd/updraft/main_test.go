package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := Main{Stdout: &out, Stderr: &errOut, Env: func(k string) string { return env[k] }}
	code := m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// syncBuffer is a bytes.Buffer safe for a server goroutine writing while
// the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var problemLine = regexp.MustCompile(`^[^:]+\.yaml:\d+:\d+: (warning: )?\S`)

func TestDagsValidate(t *testing.T) {
	code, out, errOut := run(t, nil, "dags", "validate", "../../dags/examples")
	if code != 0 || out != "" || !strings.Contains(errOut, "6 DAGs in 6 files: 0 errors, 0 warnings") {
		t.Fatalf("examples: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = run(t, nil, "dags", "validate", "../../dags/testdata/bad/cycle.bad.yaml", "../../dags/testdata/bad/unknown_keys.bad.yaml")
	if code != 1 {
		t.Fatalf("bad files: exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 7 {
		t.Fatalf("want 7 problems, got:\n%s", out)
	}
	for _, l := range lines {
		if !problemLine.MatchString(l) {
			t.Errorf("not path:line:col: message: %q", l)
		}
	}
	if !strings.Contains(out, `../../dags/testdata/bad/cycle.bad.yaml:9:21: dag "cycle": dependency cycle: b -> c -> a -> b`) {
		t.Errorf("cycle not reported with its path:\n%s", out)
	}
	code, out, _ = run(t, nil, "dags", "validate", "-q", "../../dags/testdata/bad/unknown_keys.bad.yaml")
	if code != 1 || strings.Contains(out, "warning:") {
		t.Errorf("-q: exit %d, %s", code, out)
	}
	if code, _, _ := run(t, nil, "dags", "validate", "/no/such/path"); code != 2 {
		t.Errorf("missing path: exit %d", code)
	}
}

func TestDagsListJSON(t *testing.T) {
	code, out, _ := run(t, nil, "dags", "list", "--json", "../../dags/examples")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var list []dagSummary
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 6 || list[2].ID != "dbt" || list[2].Schedule != "5 * * * *" || list[2].Tasks[0] != "dbt-cloud-run" {
		t.Fatalf("list = %+v", list)
	}
	code, out, _ = run(t, nil, "dags", "list", "../../dags/examples")
	if code != 0 || !strings.Contains(out, "dbt_nightly") || !strings.Contains(out, "SCHEDULE") {
		t.Fatalf("table: %s", out)
	}
}

func TestDagsNextAndTasksRender(t *testing.T) {
	code, out, errOut := run(t, nil, "dags", "next", "-n", "2", "--after", "2024-03-01T00:00:00Z", "../../dags/examples", "dbt_nightly")
	if code != 0 || !strings.Contains(out, "2024-03-01T07:00:00Z  2024-02-29T07:00:00Z  2024-03-01T07:00:00Z") {
		t.Fatalf("next: %d %s %s", code, out, errOut)
	}
	code, out, errOut = run(t, nil, "tasks", "render", "../../dags/examples", "dbt_nightly", "dbt-cloud-run", "2024-01-01T07:00:00Z")
	if code != 0 || !strings.Contains(out, `"EXECUTION_DATE": "2024-01-02T07:00:00+00:00"`) || !strings.Contains(out, "dbt job nightly for 2024-01-01") {
		t.Fatalf("render: %d %s %s", code, out, errOut)
	}
	code, out, _ = run(t, nil, "tasks", "render", "../../dags/examples", "manual_deferred_merge", "deferred-merge", "2024-05-05", "--conf", `{"target_schema":"staging"}`)
	if code != 0 || !strings.Contains(out, "merge into staging (dry run: True) for 2024-05-05") {
		t.Fatalf("render with conf: %d %s", code, out)
	}
	if code, _, _ := run(t, nil, "tasks", "render", "../../dags/examples", "nope", "t", "2024-01-01"); code != 1 {
		t.Errorf("unknown DAG: exit %d", code)
	}
}

func TestServerServesAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncBuffer
	m := Main{Stdout: &syncBuffer{}, Stderr: &errOut, Env: func(k string) string {
		return map[string]string{"UPDRAFT_LISTEN": "127.0.0.1:0", "UPDRAFT_DAGS": "../../dags/examples"}[k]
	}}
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"server"}) }()
	url := ""
	re := regexp.MustCompile(`url=(http://\S+)`)
	for i := 0; i < 200 && url == ""; i++ {
		time.Sleep(10 * time.Millisecond)
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
		}
	}
	if url == "" {
		cancel()
		t.Fatalf("server did not start: %s", errOut.String())
	}
	resp, err := http.Get(url + "/health")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("server did not stop")
	}
	if code, _, _ := run(t, map[string]string{"UPDRAFT_DAGS": "/no/such"}, "server"); code != 2 {
		t.Errorf("missing folder: exit %d", code)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
