package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"updraft/dags"
	"updraft/notify/mattermosttest"
	"updraft/store"
	"updraft/store/pgtest"

	"go.uber.org/goleak"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	return runWithInput(t, env, "", args...)
}

func runWithInput(t *testing.T, env map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := Main{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut, Env: func(k string) string { return env[k] }}
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
	if code != 0 || out != "" || !strings.Contains(errOut, "9 DAGs in 9 files: 0 errors, 0 warnings") {
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
	if len(list) != 9 || list[2].ID != "dbt" || list[2].Schedule != "5 * * * *" || list[2].Tasks[0] != "dbt-cloud-run" {
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
	dir := t.TempDir()
	// A DAG that runs only when triggered: no task process may outlive the
	// server and write into the test's folder after it ends.
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	writeFile(t, filepath.Join(dir, "dags", "manual.yaml"), "manual:\n  start_date: 2024-01-01\n  schedule: null\n  tasks:\n    - {task_id: a, operator: BashOperator, bash_command: 'true'}\n")
	m := Main{Stdout: &syncBuffer{}, Stderr: &errOut, Env: func(k string) string {
		return map[string]string{"UPDRAFT_ADDR": "127.0.0.1:0", "UPDRAFT_DAGS": dir + "/dags",
			"UPDRAFT_DB": "sqlite:" + dir + "/u.db", "UPDRAFT_LOGS": dir + "/logs"}[k]
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

func TestDagsTestRunsEveryExample(t *testing.T) {
	for _, id := range []string{"cicd", "daily_extracts", "dbt", "dbt_nightly", "manual_deferred_merge", "snowflake_permissions"} {
		code, out, errOut := run(t, nil, "dags", "test", "--dags", "../../dags/examples", id, "2024-03-01")
		if code != 0 || !strings.Contains(out, "run manual__2024-03-01T00:00:00+00:00: success") {
			t.Errorf("%s: exit %d\n%s%s", id, code, out, errOut)
		}
	}
}

// monitoringServices stands in for Stitch's and Hightouch's APIs on
// loopback (their JSON shapes, a bearer token checked): what failed, and
// when, is up to the test.
func monitoringServices(t *testing.T, extractions, loads, syncs string) (*httptest.Server, func() []string) {
	var mu sync.Mutex
	var paths []string
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		want := "Bearer stitch-token"
		if strings.HasPrefix(r.URL.Path, "/api/v1/") {
			want = "Bearer hightouch-token"
		}
		if r.Header.Get("Authorization") != want {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v4/42/extractions":
			io.WriteString(w, extractions)
		case "/v4/42/loads":
			io.WriteString(w, loads)
		case "/api/v1/syncs":
			io.WriteString(w, syncs)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(svc.Close)
	return svc, func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(paths) }
}

// monitoringVars are the monitoring DAG's Variables for "dags test".
// monitoringEnv is the connections of the monitoring DAGs: the services at
// url and a capturing Mattermost.
func monitoringEnv(t *testing.T, url string) (*mattermosttest.Server, map[string]string) {
	mm := mattermosttest.Start(t)
	base, hook, _ := strings.Cut(mm.URL(), "/hooks/")
	return mm, map[string]string{
		"UPDRAFT_CONN_STITCH":     url,
		"UPDRAFT_CONN_HIGHTOUCH":  url,
		"UPDRAFT_CONN_MATTERMOST": `{"conn_type": "mattermost", "host": "` + base + `", "password": "` + hook + `"}`,
	}
}

func monitoringVars() []string {
	return []string{"--var", "stitch_extractions_endpoint=/v4/42/extractions", "--var", "stitch_loads_endpoint=/v4/42/loads",
		"--var", "stitch_secret=stitch-token", "--var", "hightouch_syncs_endpoint=/api/v1/syncs", "--var", "hightouch_secret=hightouch-token"}
}

// The port of the reference workload's monitoring DAG: its HTTP checks push
// the services' answers as XCom, the short-circuits keep what failed in the
// last hour and the posts list it; with nothing failed, the posts are skipped and the
// run succeeds.
func TestMonitoringExampleRuns(t *testing.T) {
	ago := func(d time.Duration) string { return time.Now().UTC().Add(-d).Format(time.RFC3339) }
	inHour, earlier := ago(30*time.Minute), ago(5*time.Hour)
	svc, paths := monitoringServices(t,
		`{"data": [{"source_id": 101, "tap_exit_status": 1, "tap_description": "tap-postgres crashed", "completion_time": "`+inHour+`"},
		           {"source_id": 102, "tap_exit_status": 1, "completion_time": "`+earlier+`"},
		           {"source_id": 103, "tap_exit_status": 0, "completion_time": "`+inHour+`"}]}`,
		`{"data": [{"source_name": "hubspot", "last_batch_loaded_at": "`+inHour+`", "error_state": {"notification_data": {"warehouse_message": "permission denied for schema raw"}}},
		           {"source_name": "zendesk", "last_batch_loaded_at": "`+inHour+`", "error_state": null}]}`,
		`{"data": [{"id": 7, "slug": "accounts-to-salesforce", "status": "failed", "lastRunAt": "`+inHour+`"},
		           {"id": 8, "slug": "leads", "status": "success", "lastRunAt": "`+inHour+`"},
		           {"id": 9, "slug": "old", "status": "failed", "lastRunAt": "`+earlier+`"}]}`)
	mm, env := monitoringEnv(t, svc.URL)
	args := append([]string{"dags", "test", "--dags", "../../dags/examples"}, monitoringVars()...)
	code, out, errOut := run(t, env, append(args, "monitoring", "2024-03-01")...)
	if code != 0 || !strings.Contains(out, ": success") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if got := paths(); len(got) != 3 || !slices.Contains(got, "/v4/42/extractions") || !slices.Contains(got, "/api/v1/syncs") {
		t.Fatalf("requests: %v", got)
	}
	posts := mm.Posts()
	if len(posts) != 2 {
		t.Fatalf("posts: %+v", posts)
	}
	texts := map[string]string{}
	for _, p := range posts {
		texts[strings.SplitN(p.Text, "\n", 2)[0]] = p.Text
		if p.Username != "Airflow" {
			t.Errorf("post as %q", p.Username)
		}
	}
	stitch, hightouch := texts["**STITCH**: :red_circle:"], texts["**HIGHTOUCH**: :red_circle:"]
	if !strings.Contains(stitch, "- extraction of `101` failed at "+inHour+": tap-postgres crashed") ||
		!strings.Contains(stitch, "- load of `hubspot` failed at "+inHour+": permission denied for schema raw") ||
		strings.Contains(stitch, "102") || strings.Contains(stitch, "zendesk") {
		t.Errorf("stitch post:\n%s", stitch)
	}
	if !strings.Contains(hightouch, "| [accounts-to-salesforce](https://app.hightouch.com/syncs/7) | "+inHour+" |") ||
		strings.Contains(hightouch, "leads") || strings.Contains(hightouch, "old") {
		t.Errorf("hightouch post:\n%s", hightouch)
	}
	if strings.Contains(out+errOut, "stitch-token") {
		t.Errorf("a token in the output:\n%s%s", out, errOut)
	}

	// Nothing failed in the last hour: both posts are skipped, the run succeeds.
	quiet, _ := monitoringServices(t, `{"data": [{"source_id": 102, "tap_exit_status": 1, "completion_time": "`+earlier+`"}]}`,
		`{"data": []}`, `{"data": [{"id": 8, "slug": "leads", "status": "success", "lastRunAt": "`+inHour+`"}]}`)
	env["UPDRAFT_CONN_STITCH"], env["UPDRAFT_CONN_HIGHTOUCH"] = quiet.URL, quiet.URL
	code, out, errOut = run(t, env, append(slices.Clone(args), "monitoring", "2024-03-01")...)
	if code != 0 || !strings.Contains(out, ": success") || !regexp.MustCompile(`notify_stitch\s+skipped`).MatchString(out) ||
		!regexp.MustCompile(`notify_hightouch\s+skipped`).MatchString(out) {
		t.Fatalf("nothing failed: exit %d\n%s%s", code, out, errOut)
	}
	if len(mm.Posts()) != 2 {
		t.Fatalf("a post with nothing to report: %+v", mm.Posts()[2:])
	}
	// Without its connections the same DAG fails with a clear reason.
	code, out, _ = run(t, nil, append(append([]string{"dags", "test", "--dags", "../../dags/examples"}, monitoringVars()...), "monitoring", "2024-03-01")...)
	if code != 1 || !regexp.MustCompile(`stitch_extractions\s+failed`).MatchString(out) {
		t.Fatalf("without connections: exit %d\n%s", code, out)
	}
}

func TestConnectionsCommand(t *testing.T) {
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer svc.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "files_conn"), []byte("https://user:filepass@files.example.com"), 0o600)
	env := map[string]string{"UPDRAFT_CONN_SVC": strings.Replace(svc.URL, "http://", "http://u:envpass@", 1), "UPDRAFT_CONNECTIONS_DIR": dir}
	var out, errOut bytes.Buffer
	m := Main{Stdout: &out, Stderr: &errOut, Env: func(k string) string { return env[k] },
		Environ: func() []string { return []string{"UPDRAFT_CONN_SVC=" + env["UPDRAFT_CONN_SVC"]} }}
	if code := m.Run(context.Background(), []string{"connections", "list"}); code != 0 || !strings.Contains(out.String(), "files_conn") ||
		!strings.Contains(out.String(), "svc") || strings.Contains(out.String(), "envpass") || strings.Contains(out.String(), "filepass") {
		t.Fatalf("list: %d %s %s", code, out.String(), errOut.String())
	}
	if code, out, _ := run(t, env, "connections", "test", "svc"); code != 0 || !strings.Contains(out, "answered HTTP 200") || strings.Contains(out, "envpass") {
		t.Fatalf("test: %d %s", code, out)
	}
	svc.Close()
	if code, out, _ := run(t, env, "connections", "test", "svc"); code != 1 || !strings.Contains(out, "unreachable") || strings.Contains(out, "envpass") {
		t.Fatalf("test down: %d %s", code, out)
	}
	if code, _, errOut := run(t, env, "connections", "test", "nope"); code != 1 || !strings.Contains(errOut, "UPDRAFT_CONN_NOPE") {
		t.Fatalf("missing: %d %s", code, errOut)
	}
	// A database connection is tested by logging in.
	pg := pgtest.Start(t)
	env["UPDRAFT_CONN_PG"] = pg.CreateDB(t, "w")
	env["UPDRAFT_CONN_PG_BAD"] = strings.Replace(env["UPDRAFT_CONN_PG"], "/w?", "/nope?", 1)
	if code, out, _ := run(t, env, "connections", "test", "pg"); code != 0 || !strings.Contains(out, "logged in") {
		t.Fatalf("postgres: %d %s", code, out)
	}
	if code, out, _ := run(t, env, "connections", "test", "pg_bad"); code != 1 || !strings.Contains(out, `database "nope" does not exist`) {
		t.Fatalf("postgres, no such database: %d %s", code, out)
	}
}

func TestDagsTestReportsFailure(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/f.yaml", "f:\n  start_date: 2024-01-01\n  tasks:\n    - {task_id: boom, operator: BashOperator, bash_command: 'echo oops; exit 3'}\n    - {task_id: after, operator: EmptyOperator, dependencies: [boom]}\n")
	code, out, _ := run(t, nil, "dags", "test", "--dags", dir, "f")
	if code != 1 || !strings.Contains(out, "boom   failed") || !strings.Contains(out, "after  upstream_failed") || !strings.Contains(out, ": failed") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// dags test removes its temporary folder (showing the failed tasks' logs
// first); --keep keeps it and says where.
func TestDagsTestCleansUp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dir := t.TempDir()
	writeFile(t, dir+"/f.yaml", "f:\n  start_date: 2024-01-01\n  tasks:\n    - {task_id: boom, operator: BashOperator, bash_command: 'echo oops-here; exit 3'}\n")
	code, out, errOut := run(t, nil, "dags", "test", "--dags", dir, "--parallelism", "2", "f")
	if left, _ := os.ReadDir(tmp); code != 1 || len(left) != 0 || !strings.Contains(errOut, "oops-here") || strings.Contains(out, "LOG") {
		t.Fatalf("exit %d, left %v\n%s%s", code, left, out, errOut)
	}
	code, out, errOut = run(t, nil, "dags", "test", "--dags", dir, "--keep", "f")
	left, _ := os.ReadDir(tmp)
	if code != 1 || len(left) != 1 || !strings.Contains(errOut, filepath.Join(tmp, left[0].Name())) || !strings.Contains(out, "LOG") {
		t.Fatalf("--keep: exit %d, left %v\n%s%s", code, left, out, errOut)
	}
	if code, _, _ := run(t, nil, "dags", "test", "--dags", dir, "--parallelism", "0", "f"); code != 2 {
		t.Fatalf("--parallelism 0: exit %d", code)
	}
	code, out, _ = run(t, nil, "tasks", "test", "--dags", dir, "f", "boom")
	if left, _ := os.ReadDir(tmp); code != 1 || len(left) != 1 || !strings.Contains(out, "oops-here") {
		t.Fatalf("tasks test: exit %d, left %v\n%s", code, left, out)
	}
}

func TestTriggerPauseVariables(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"UPDRAFT_DB": "sqlite:" + dir + "/u.db", "UPDRAFT_DAGS": "../../dags/examples"}
	if code, out, errOut := run(t, env, "dags", "trigger", "manual_deferred_merge", "--conf", `{"target_schema": "x"}`, "--logical-date", "2024-01-01"); code != 0 || !strings.Contains(out, "created run manual__2024-01-01T00:00:00+00:00") {
		t.Fatalf("trigger: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := run(t, env, "dags", "trigger", "manual_deferred_merge", "--logical-date", "2024-01-01"); code != 1 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("duplicate trigger: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, env, "dags", "pause", "nope"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("pause unknown: %d %s", code, errOut)
	}
	if code, out, _ := run(t, env, "dags", "pause", "cicd"); code != 0 || !strings.Contains(out, "cicd paused: true") {
		t.Fatalf("pause: %d %s", code, out)
	}
	run(t, env, "variables", "set", "tag", "v1")
	run(t, env, "variables", "set", "token", "s3cret", "--secret")
	if _, out, _ := run(t, env, "variables", "get", "tag"); out != "v1\n" {
		t.Fatalf("get: %q", out)
	}
	_, out, _ := run(t, env, "variables", "list")
	if !strings.Contains(out, "tag    v1") || strings.Contains(out, "s3cret") || !strings.Contains(out, "***") {
		t.Fatalf("list shows a secret or misses a value:\n%s", out)
	}
	if code, _, _ := run(t, env, "variables", "delete", "nope"); code != 1 {
		t.Fatalf("delete unknown: %d", code)
	}
	if code, out, _ := run(t, env, "db", "migrate"); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate: %d %s", code, out)
	}
}

func TestTasksTest(t *testing.T) {
	code, out, errOut := run(t, nil, "tasks", "test", "--dags", "../../dags/examples", "daily_extracts", "extract.licenses", "2024-01-01T03:00:00Z")
	if code != 0 || !strings.Contains(out, "licenses_job 2024-01-02") || !strings.Contains(out, "--- success") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPodDefaultsFlags(t *testing.T) {
	d, err := kubeConfig{Namespace: "etl", Image: "debian", Requests: "cpu=50m, memory=100Mi", Limits: "cpu=500m,memory=500Mi",
		Labels: "team=data", PullPolicy: "IfNotPresent", ServiceAccount: "runner"}.podDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if d.Resources.Requests.Cpu().String() != "50m" || d.Resources.Limits.Memory().String() != "500Mi" || d.Labels["team"] != "data" ||
		d.ImagePullPolicy != "IfNotPresent" || d.ServiceAccount != "runner" || d.Namespace != "etl" {
		t.Fatalf("defaults = %+v", d)
	}
	for _, bad := range []kubeConfig{{Requests: "cpu=lots"}, {Labels: "bad key!=x"}, {PullPolicy: "Sometimes"}, {Limits: "cpu"}} {
		if _, err := bad.podDefaults(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
}

func TestUsersCommand(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "u.db")
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte("a long password\n"), 0o600)
	steps := []struct {
		stdin string
		args  []string
		code  int
		out   string
	}{
		{"", []string{"users", "create", "ann", "--role", "op", "--password-file", pwFile, "--email", "ann@example.com"}, 0, "user ann created with role Op"},
		{"another long one\n", []string{"users", "create", "bob", "--role", "Viewer", "--password-stdin"}, 0, "created"},
		{"", []string{"users", "create", "ann", "--role", "Admin", "--password-file", pwFile}, 1, "already exists"},
		{"short\n", []string{"users", "create", "cy", "--role", "Viewer", "--password-stdin"}, 1, "too short"},
		{"", []string{"users", "create", "cy", "--role", "Root", "--password-file", pwFile}, 1, "unknown role"},
		{"", []string{"users", "create", "cy", "--role", "Viewer"}, 1, "--password-file or --password-stdin"},
		{"", []string{"users", "list"}, 0, "ann"},
		{"yet another password\n", []string{"users", "set-password", "bob", "--password-stdin"}, 0, "sessions ended"},
		{"", []string{"users", "delete", "bob"}, 0, "deleted"},
		{"", []string{"users", "delete", "bob"}, 1, "not found"},
	}
	for _, s := range steps {
		code, out, errOut := runWithInput(t, nil, s.stdin, append(s.args, "--db", db)...)
		if code != s.code || !strings.Contains(out+errOut, s.out) {
			t.Fatalf("%v: exit %d, %q %q; want %d and %q", s.args, code, out, errOut, s.code, s.out)
		}
		for _, pw := range []string{"a long password", "another long one", "yet another password"} {
			if strings.Contains(out+errOut, pw) {
				t.Fatalf("%v printed a password", s.args)
			}
		}
	}
	_, out, _ := run(t, nil, "users", "list", "--db", db)
	if !strings.Contains(out, "ann") || !strings.Contains(out, "Op") || !strings.Contains(out, "ann@example.com") || strings.Contains(out, "bob") {
		t.Fatalf("list: %s", out)
	}
}

func TestPoolsCommand(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "u.db")
	for _, s := range []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"pools", "set", "snowflake", "4", "--description", "warehouse sessions"}, 0, "pool snowflake has 4 slots"},
		{[]string{"pools", "set", "snowflake", "2"}, 0, "has 2 slots"},
		{[]string{"pools", "set", "bad name", "2"}, 1, "use letters, digits"},
		{[]string{"pools", "set", "x", "many"}, 1, "not a whole number"},
		{[]string{"pools", "delete", "default_pool"}, 1, "cannot be deleted"},
		{[]string{"pools", "delete", "nope"}, 1, "not found"},
		{[]string{"pools", "list"}, 0, "default_pool"},
		{[]string{"pools"}, 2, "usage"},
	} {
		code, out, errOut := run(t, nil, append(s.args, "--db", db)...)
		if code != s.code || !strings.Contains(out+errOut, s.out) {
			t.Fatalf("%v: exit %d, %q %q; want %d and %q", s.args, code, out, errOut, s.code, s.out)
		}
	}
	_, out, _ := run(t, nil, "pools", "list", "--db", db)
	if !regexp.MustCompile(`snowflake +2 +0 +0`).MatchString(out) {
		t.Fatalf("list: %s", out)
	}
	if code, out, _ := run(t, nil, "pools", "delete", "snowflake", "--db", db); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s", code, out)
	}
}

func TestDBCheckAndClean(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "u.db")
	if code, out, _ := run(t, nil, "db", "check", "--db", db); code != 1 || !strings.Contains(out, "run `updraft db migrate`") {
		t.Fatalf("check before migrating: %d %s", code, out)
	}
	if code, out, _ := run(t, nil, "db", "migrate", "--db", db); code != 0 {
		t.Fatalf("migrate: %d %s", code, out)
	}
	if code, out, _ := run(t, nil, "db", "check", "--db", db); code != 0 || !strings.Contains(out, "reachable, schema version") {
		t.Fatalf("check: %d %s", code, out)
	}
	if code, out, _ := run(t, nil, "db", "check", "--db", "postgres://updraft:hunter2@127.0.0.1:1/u?connect_timeout=2"); code != 1 || strings.Contains(out, "hunter2") {
		t.Fatalf("unreachable: %d %s", code, out)
	}
	// An old finished run with its log, and a recent one.
	ctx := context.Background()
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "logs", "dag_id=d", "run_id=old", "task_id=t", "attempt=1.log")
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	os.WriteFile(logPath, []byte("old\n"), 0o644)
	for i, day := range []string{"2023-01-01", "2026-01-01"} {
		logical, _ := time.Parse("2006-01-02", day)
		r := store.Run{DagID: "d", RunID: []string{"old", "new"}[i], RunType: "manual", LogicalDate: logical, State: dags.RunSuccess, QueuedAt: logical}
		if err := st.CreateRun(ctx, r, []store.TaskInstance{{DagID: "d", RunID: r.RunID, TaskID: "t", MapIndex: -1, State: dags.StateSuccess, Operator: "BashOperator", Pool: "default_pool", PoolSlots: 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.StartTry(ctx, store.Try{TIKey: store.TIKey{DagID: "d", RunID: "old", TaskID: "t", MapIndex: -1}, TryNumber: 1, StartDate: time.Now(), LogPath: logPath}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if code, out, _ := run(t, nil, "db", "clean", "--before", "2024-01-01", "--dry-run", "--db", db); code != 0 || !strings.Contains(out, "would remove history before 2024-01-01T00:00:00Z: 1 runs, 1 task instances, 1 tries") {
		t.Fatalf("dry run: %d %s", code, out)
	}
	if code, out, _ := run(t, nil, "db", "clean", "--before", "2024-01-01", "--db", db); code != 0 || !strings.Contains(out, "removed 1 log files") {
		t.Fatalf("clean: %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "logs", "dag_id=d")); !os.IsNotExist(err) {
		t.Fatalf("the emptied log folders are still there: %v", err)
	}
	if code, _, errOut := run(t, nil, "db", "clean", "--db", db); code != 2 || !strings.Contains(errOut, "usage") {
		t.Fatalf("no cut-off: %d %s", code, errOut)
	}
}

// rudderStandIn puts a stand-in for the warehouse image's rudder command on
// PATH: it prints the new tables of a schema as the real one does with
// --format-json (its argument order and flags are checked).
func rudderStandIn(t *testing.T) {
	dir := t.TempDir()
	script := `#!/bin/sh
# rudder list [DATABASE] SCHEMA -w WAREHOUSE -r ROLE --max-age DAYS --format-json
[ "$1" = list ] || { echo "usage: rudder list DB SCHEMA ..." >&2; exit 2; }
shift
pos= age= json=
while [ $# -gt 0 ]; do
  case "$1" in
    -w|-r) shift 2 ;;
    --max-age) age=$2; shift 2 ;;
    --format-json) json=1; shift ;;
    *) pos="$pos $1"; shift ;;
  esac
done
schema=${pos##* }
[ -n "$json" ] && [ -n "$age" ] && [ -n "$schema" ] || { echo "rudder: missing --format-json, --max-age or the schema" >&2; exit 2; }
case "$schema" in
  events) echo '{"new_tables": ["pages_v2", "clicks_'"$age"'d"]}' ;;
  *) echo '{"new_tables": []}' ;;
esac
`
	if err := os.WriteFile(filepath.Join(dir, "rudder"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
}

// The port of event_table_monitoring on the local executor: mapped over a
// JSON Variable, each pod task's command writes {"new_tables": [...]} to
// /airflow/xcom/return.json, the short-circuit skips the schema with
// nothing new, and one Mattermost post lists the tables of the other.
func TestEventTableMonitoringExampleRuns(t *testing.T) {
	rudderStandIn(t)
	mm := mattermosttest.Start(t)
	base, hook, _ := strings.Cut(mm.URL(), "/hooks/")
	env := map[string]string{"UPDRAFT_CONN_MATTERMOST": `{"conn_type": "mattermost", "host": "` + base + `", "password": "` + hook + `"}`}
	code, out, errOut := run(t, env, "dags", "test", "--dags", "../../dags/examples", "--var", `rudder_schemas=["quiet", "events", "empty_too"]`,
		"--var", "rudder_max_age=7", "event_table_monitoring", "2024-03-01")
	if code != 0 || !strings.Contains(out, ": success") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{`check_new_tables\[0\] quiet\s+success`, `check_new_tables\[1\] events\s+success`, `short_circuit\[1\]\s+success`,
		`notify_new_tables\[0\]\s+skipped`, `notify_new_tables\[1\]\s+success`, `notify_new_tables\[2\]\s+skipped`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("the summary lacks %s:\n%s", want, out)
		}
	}
	posts := mm.Posts()
	if len(posts) != 1 || posts[0].Username != "Airflow" || posts[0].IconEmoji != ":warning:" || len(posts[0].Attachments) != 1 {
		t.Fatalf("posts: %+v", posts)
	}
	a := posts[0].Attachments[0]
	if a["title"] != "[Schema events] New tables created in the past 7 days" || a["color"] != "#ffcc00" || a["text"] != " - pages_v2\n - clicks_7d\n" {
		t.Fatalf("attachment: %+v", a)
	}
	// No schema at all: every mapped task is skipped, the run succeeds.
	code, out, errOut = run(t, env, "dags", "test", "--dags", "../../dags/examples", "--var", `rudder_schemas=[]`,
		"--var", "rudder_max_age=7", "event_table_monitoring", "2024-03-02")
	if code != 0 || !regexp.MustCompile(`check_new_tables\s+skipped`).MatchString(out) || len(mm.Posts()) != 1 {
		t.Fatalf("no schemas: exit %d\n%s%s", code, out, errOut)
	}
}
