package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"updraft/store"
	"updraft/store/pgtest"
	"updraft/web/apiv2"
	"updraft/web/apiv2/v2client"
)

// v2SpecPath is Airflow 3's OpenAPI document beside the repository (see
// ../shared/reference/airflow-api/MANIFEST.md), or UPDRAFT_AIRFLOW_V2_SPEC.
func v2SpecPath() string {
	if p := os.Getenv("UPDRAFT_AIRFLOW_V2_SPEC"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "..", "shared", "reference", "airflow-api", "v2.yaml")
}

// v2Spec loads Airflow 3's document with its server at baseURL. The tests
// fail without it: the API is held to it.
func v2Spec(t *testing.T, baseURL string) routers.Router {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(v2SpecPath())
	if err != nil {
		t.Fatalf("Airflow 3's OpenAPI document (set UPDRAFT_AIRFLOW_V2_SPEC): %v", err)
	}
	// The document's top-level security names schemes it never defines
	// ("Basic", "GoogleOpenID"...); every operation names its own, so the
	// top-level list goes.
	doc.Security = nil
	// The document is 3.1 but says "nullable: true" (3.0's word, which
	// 3.1 dropped) throughout: a nullable schema takes null as 3.1 says
	// it, with "null" among its types. Path parameters without a type
	// (dag_id) are strings.
	seen := map[*openapi3.Schema]bool{}
	var nullable func(*openapi3.SchemaRef)
	nullable = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		if s.Nullable && s.Type != nil && !s.Type.Includes(openapi3.TypeNull) {
			*s.Type = append(*s.Type, openapi3.TypeNull)
		}
		for _, list := range []openapi3.SchemaRefs{s.AnyOf, s.OneOf, s.AllOf} {
			for _, r := range list {
				nullable(r)
			}
		}
		nullable(s.Items)
		nullable(s.Not)
		for _, p := range s.Properties {
			nullable(p)
		}
		if s.AdditionalProperties.Schema != nil {
			nullable(s.AdditionalProperties.Schema)
		}
	}
	for _, sc := range doc.Components.Schemas {
		nullable(sc)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, p := range append(op.Parameters, item.Parameters...) {
				if s := p.Value.Schema; s != nil && s.Value != nil && s.Value.Type == nil && len(s.Value.AnyOf) == 0 {
					s.Value.Type = &openapi3.Types{openapi3.TypeString}
				}
			}
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for _, mt := range op.RequestBody.Value.Content {
					nullable(mt.Schema)
				}
			}
			for _, resp := range op.Responses.Map() {
				if resp.Value != nil {
					for _, mt := range resp.Value.Content {
						nullable(mt.Schema)
					}
				}
			}
		}
	}
	doc.Servers = openapi3.Servers{{URL: baseURL}}
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatal(err)
	}
	return router
}

func init() {
	// Streams of JSON lines are checked as the strings the document
	// declares them to be.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson",
		func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		})
}

// onPurpose marks a request the test makes invalid on purpose: only its
// answer is checked against the document.
const onPurpose = "X-Updraft-Test-Invalid"

// v2Caller sends requests to /api/v2 through the validating transport.
type v2Caller struct {
	t    *testing.T
	base string
	hc   *http.Client
}

// do sends a request with a bearer token (none when tok is "") and
// returns the status and body. hdr are header name, value pairs.
func (c *v2Caller) do(tok, method, path, body string, hdr ...string) (int, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// json sends a request that must answer want, and decodes its body.
func (c *v2Caller) json(tok, method, path, body string, want int, hdr ...string) map[string]any {
	c.t.Helper()
	status, b := c.do(tok, method, path, body, hdr...)
	if status != want {
		c.t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, truncate(b))
	}
	out := map[string]any{}
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
	return out
}

// token asks POST /auth/token for a bearer token.
func v2Token(t *testing.T, base, username, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	resp, err := http.Post(base+"/auth/token", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated ||
		out.AccessToken == "" || out.TokenType != "bearer" || out.ExpiresIn != 86400 {
		t.Fatalf("POST /auth/token as %s: %d %+v %v", username, resp.StatusCode, out, err)
	}
	return out.AccessToken
}

// v2DAGs are the DAG files of the v2 tests: api_demo (its second task
// fails until cleared, see apiDAGs), a mapped task, a task in a pool that
// does not exist, and a broken file.
func v2DAGs(marker string) map[string]string {
	return map[string]string{
		"api_demo.yaml": strings.ReplaceAll(apiDAGs["api_demo.yaml"], "MARKER_PATH", marker),
		"broken.yaml":   apiDAGs["broken.yaml"],
		"mapped.yaml": `
mapped_demo:
  start_date: 2024-01-01
  schedule: null
  tasks:
    fan:
      operator: BashOperator
      expand: {bash_command: ["echo zero", "echo one"]}
    after: {operator: EmptyOperator, dependencies: [fan]}
`,
		"pooled.yaml": `
pooled:
  start_date: 2024-01-01
  schedule: null
  tasks:
    only: {operator: EmptyOperator, pool: nowhere}
`,
	}
}

// Airflow 3's REST API over SQLite: every implemented operation, with
// every request and answer checked against the document.
func TestAPIv2AgainstTheDocumentSQLite(t *testing.T) {
	apiV2(t, "", false)
}

// The same over PostgreSQL, with the configuration exposed.
func TestAPIv2AgainstTheDocumentPostgreSQL(t *testing.T) {
	pg := pgtest.Start(t)
	apiV2(t, pg.CreateDB(t, "apiv2"), true)
}

func apiV2(t *testing.T, db string, exposeConfig bool) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	for name, body := range v2DAGs(filepath.Join(dir, "marker")) {
		writeFile(t, filepath.Join(dagDir, name), body)
	}
	if db == "" {
		db = "sqlite:" + filepath.Join(dir, "u.db")
	}
	connDir := filepath.Join(dir, "connections")
	os.MkdirAll(connDir, 0o755)
	writeFile(t, filepath.Join(connDir, "warehouse_pg"), "postgresql://loader:pg-pass@127.0.0.1:1/dw")
	env := map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": db, "UPDRAFT_DAGS_INTERVAL": "200ms", "UPDRAFT_CONNECTIONS_DIR": connDir,
		"UPDRAFT_MATTERMOST_WEBHOOK_URL": "http://127.0.0.1:1/hooks/secret-hook-id"}
	if exposeConfig {
		env["UPDRAFT_API_EXPOSE_CONFIG"] = "true"
	}
	base, logs := startInProcess(t, env)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	if code, _, errOut := runWithInput(t, nil, "viewer-password\n", "users", "create", "vera", "--role", "Viewer", "--password-stdin", "--db", db); code != 0 {
		t.Fatalf("users create: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "variables", "set", "snowflake_password", "hunter2-value", "--db", db); code != 0 {
		t.Fatalf("variables set: %d %s", code, errOut)
	}
	vt := &validatingTransport{t: t, router: v2Spec(t, base), seen: map[string]int{}, requests: true}
	hc := &http.Client{Transport: vt, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	c := &v2Caller{t: t, base: base, hc: hc}
	admin, viewer := v2Token(t, base, "admin", adminPassword), v2Token(t, base, "vera", "viewer-password")
	client, err := v2client.NewClientWithResponses(base, v2client.WithHTTPClient(hc),
		v2client.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+admin)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("auth", func(t *testing.T) {
		c.t = t
		for _, tc := range []struct{ tok, basic, want string }{
			{"", "", "Not authenticated"},
			{"not-a-jwt", "", "Invalid JWT token"},
			{admin[:len(admin)-3] + "abc", "", "Invalid JWT token"},
			{"", "admin:" + adminPassword, "basic authentication is not accepted"},
		} {
			hdr := []string{}
			if tc.basic != "" {
				u, p, _ := strings.Cut(tc.basic, ":")
				req, _ := http.NewRequest("GET", "/", nil)
				req.SetBasicAuth(u, p)
				hdr = []string{"Authorization", req.Header.Get("Authorization")}
			}
			body := c.json(tc.tok, "GET", "/api/v2/dags", "", 401, hdr...)
			if d, _ := body["detail"].(string); !strings.Contains(d, tc.want) {
				t.Errorf("token %q: detail %q, want %q", tc.tok, d, tc.want)
			}
		}
		// A wrong password gets no token, and says so in Airflow's words.
		resp, err := http.Post(base+"/auth/token", "application/json", strings.NewReader(`{"username": "admin", "password": "wrong"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 401 || !strings.Contains(string(b), `"detail":"Invalid credentials"`) {
			t.Errorf("wrong password: %d %s", resp.StatusCode, b)
		}
		// A Viewer reads but may not trigger, nor read variables.
		c.json(viewer, "GET", "/api/v2/dags", "", 200)
		if d := c.json(viewer, "POST", "/api/v2/dags/api_demo/dagRuns", `{"logical_date": null}`, 403)["detail"]; !strings.Contains(fmt.Sprint(d), "Viewer") {
			t.Errorf("403 detail: %v", d)
		}
		c.json(viewer, "GET", "/api/v2/variables", "", 403)
		c.json(viewer, "GET", "/api/v2/connections", "", 403)
		// Health and version need no token.
		if h := c.json("", "GET", "/api/v2/monitor/health", "", 200); fmt.Sprint(h["metadatabase"]) != "map[status:healthy]" {
			t.Errorf("health: %v", h)
		}
		c.json("", "GET", "/api/v2/version", "", 200)
		status, _ := c.do("", "GET", "/api/v2/auth/login?next=/dags", "")
		if status != http.StatusTemporaryRedirect {
			t.Errorf("auth/login: %d", status)
		}
	})
	c.t = t

	// The DAGs, once the folder is loaded.
	waitFor(t, "the DAGs to be listed", time.Minute, func() bool {
		return c.json(admin, "GET", "/api/v2/dags", "", 200)["total_entries"] == 3.0
	})
	t.Run("dags", func(t *testing.T) {
		c.t = t
		list := c.json(admin, "GET", "/api/v2/dags?dag_id_pattern=api%25demo&tags=api&tags=demo&tags_match_mode=all&order_by=-dag_id", "", 200)
		dagsOf := list["dags"].([]any)
		if len(dagsOf) != 1 {
			t.Fatalf("filtered DAGs: %v", list)
		}
		d := dagsOf[0].(map[string]any)
		if d["dag_id"] != "api_demo" || d["is_paused"] != true || d["dag_display_name"] != "api_demo" || d["bundle_name"] != "dags-folder" ||
			fmt.Sprint(d["owners"]) != "[data]" || d["timetable_summary"] != "0 3 * * *" || d["next_dagrun_logical_date"] == nil {
			t.Errorf("DAG: %v", d)
		}
		body := c.json(admin, "GET", "/api/v2/dags?limit=abc", "", 422, onPurpose, "1")
		if e := body["detail"].([]any)[0].(map[string]any); fmt.Sprint(e["loc"]) != "[query limit]" || e["type"] != "int_parsing" {
			t.Errorf("422: %v", body)
		}
		c.json(admin, "GET", "/api/v2/dags/api_demo", "", 200)
		c.json(admin, "GET", "/api/v2/dags/nope", "", 404)
		details := c.json(admin, "GET", "/api/v2/dags/api_demo/details", "", 200)
		if fmt.Sprint(details["params"]) == "" || details["fileloc"] != "api_demo.yaml" {
			t.Errorf("details: %v", details)
		}
		if tasks := c.json(admin, "GET", "/api/v2/dags/api_demo/tasks?order_by=task_id", "", 200); tasks["total_entries"] != 2.0 {
			t.Errorf("tasks: %v", tasks)
		}
		if task := c.json(admin, "GET", "/api/v2/dags/api_demo/tasks/flaky", "", 200); fmt.Sprint(task["downstream_task_ids"]) != "[]" {
			t.Errorf("task: %v", task)
		}
		if src := c.json(admin, "GET", "/api/v2/dagSources/api_demo", "", 200); !strings.Contains(fmt.Sprint(src["content"]), "api_demo:") {
			t.Errorf("source: %v", src)
		}
		if status, b := c.do(admin, "GET", "/api/v2/dagSources/api_demo", "", "Accept", "text/plain"); status != 200 || !strings.HasPrefix(strings.TrimSpace(string(b)), "api_demo:") {
			t.Errorf("source as text: %d %s", status, b)
		}
		if tags := c.json(admin, "GET", "/api/v2/dagTags?tag_name_pattern=de", "", 200); fmt.Sprint(tags["tags"]) != "[demo]" {
			t.Errorf("tags: %v", tags)
		}
		warn := c.json(admin, "GET", "/api/v2/dagWarnings", "", 200)
		if !strings.Contains(fmt.Sprint(warn), "nowhere") {
			t.Errorf("warnings: %v", warn)
		}
		vs := c.json(admin, "GET", "/api/v2/dags/api_demo/dagVersions", "", 200)
		if vs["total_entries"] != 1.0 {
			t.Fatalf("versions: %v", vs)
		}
		c.json(admin, "GET", "/api/v2/dags/api_demo/dagVersions/1", "", 200)
		if p := c.json(admin, "PATCH", "/api/v2/dags/api_demo?update_mask=is_paused", `{"is_paused": false}`, 200); p["is_paused"] != false {
			t.Errorf("unpause: %v", p)
		}
		if p := c.json(admin, "PATCH", "/api/v2/dags?dag_id_pattern=mapped", `{"is_paused": false}`, 200); p["total_entries"] != 1.0 {
			t.Errorf("bulk unpause: %v", p)
		}
		body = c.json(admin, "PATCH", "/api/v2/dags/api_demo", `{"is_paused": false, "owner": "x"}`, 422, onPurpose, "1")
		if e := body["detail"].([]any)[0].(map[string]any); e["type"] != "extra_forbidden" {
			t.Errorf("extra field: %v", body)
		}
	})
	c.t = t

	// Trigger → run → logs → clear → XCom, with the generated client.
	t.Run("run", func(t *testing.T) {
		c.t = t
		trig, err := client.TriggerDagRunWithBodyWithResponse(ctx, "api_demo", "application/json",
			strings.NewReader(`{"dag_run_id": "v2_run_1", "logical_date": null, "conf": {"table": "orders"}, "note": "from the v2 test"}`))
		if err != nil || trig.JSON200 == nil {
			t.Fatalf("trigger: %v %s", err, trig.Body)
		}
		// updraft gives every run a logical date: null is the time of the
		// trigger, which is also the run's run_after.
		if r := trig.JSON200; r.LogicalDate == nil || !r.LogicalDate.Equal(r.RunAfter) || r.State != "queued" || r.RunType != "manual" || (*r.Conf)["table"] != "orders" {
			t.Fatalf("triggered run: %+v", r)
		}
		again, _ := client.TriggerDagRunWithBodyWithResponse(ctx, "api_demo", "application/json", strings.NewReader(`{"dag_run_id": "v2_run_1", "logical_date": null}`))
		if again.StatusCode() != http.StatusConflict {
			t.Errorf("the same run id again: %d", again.StatusCode())
		}
		// wait streams the state until the run ends, with the XComs asked for.
		status, b := c.do(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/wait?interval=0.2&result=extract", "")
		last := lastLine(b)
		if status != 200 || last["state"] != "failed" || fmt.Sprint(last["results"]) != "map[extract:loading orders with ***]" {
			t.Fatalf("wait: %d %s", status, b)
		}
		run, err := client.GetDagRunWithResponse(ctx, "api_demo", "v2_run_1")
		if err != nil || run.JSON200 == nil || run.JSON200.State != "failed" || run.JSON200.EndDate == nil || len(run.JSON200.DagVersions) != 1 {
			t.Fatalf("run: %v %s", err, run.Body)
		}
		tis, err := client.GetTaskInstancesWithResponse(ctx, "api_demo", "v2_run_1", nil)
		if err != nil || tis.JSON200 == nil || tis.JSON200.TotalEntries != 2 {
			t.Fatalf("task instances: %v %s", err, tis.Body)
		}
		states := map[string]string{}
		for _, ti := range tis.JSON200.TaskInstances {
			states[ti.TaskId] = fmt.Sprint(*ti.State)
		}
		if states["extract"] != "success" || states["flaky"] != "failed" {
			t.Fatalf("states: %v", states)
		}
		// Logs: structured JSON, a continuation token, JSON lines, text.
		full := true
		lg, err := client.GetLogWithResponse(ctx, "api_demo", "v2_run_1", "extract", 1, &v2client.GetLogParams{FullContent: &full})
		if err != nil || lg.JSON200 == nil {
			t.Fatalf("log: %v %s", err, lg.Body)
		}
		msgs, err := lg.JSON200.Content.AsTaskInstancesLogResponseContent0()
		var events []string
		for _, m := range msgs {
			events = append(events, m.Event)
		}
		if err != nil || !strings.Contains(strings.Join(events, "\n"), "loading orders with ***") || strings.Contains(string(lg.Body), "hunter2") ||
			lg.JSON200.ContinuationToken == nil {
			t.Fatalf("log: %v %s", err, lg.Body)
		}
		more, err := client.GetLogWithResponse(ctx, "api_demo", "v2_run_1", "extract", 1, &v2client.GetLogParams{Token: lg.JSON200.ContinuationToken})
		if err != nil || more.JSON200 == nil {
			t.Fatalf("log continued: %v", err)
		}
		if rest, _ := more.JSON200.Content.AsTaskInstancesLogResponseContent0(); len(rest) != 0 {
			t.Errorf("a finished log continues with %v", rest)
		}
		status, b = c.do(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/extract/logs/1", "", "Accept", "application/x-ndjson")
		if status != 200 || !strings.Contains(string(b), `"event":"loading orders with ***"`) {
			t.Errorf("log as JSON lines: %d %s", status, b)
		}
		// text/plain is not in the document (Airflow 3.2 dropped it); it
		// is served for curl users, so it goes around the checks.
		req, _ := http.NewRequest("GET", base+"/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/extract/logs/1", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Accept", "text/plain")
		if resp, err := http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), "loading orders with ***") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("log as text: %d %s", resp.StatusCode, b)
			}
		}
		// Clear the failed task: the run goes again and succeeds.
		clearBody := `{"dag_run_id": "v2_run_1", "task_ids": ["flaky"], "dry_run": false, "only_failed": true, "reset_dag_runs": true}`
		cleared, err := client.PostClearTaskInstancesWithBodyWithResponse(ctx, "api_demo", "application/json", strings.NewReader(clearBody))
		if err != nil || cleared.JSON200 == nil || cleared.JSON200.TotalEntries != 1 || cleared.JSON200.TaskInstances[0].TaskId != "flaky" {
			t.Fatalf("clear: %v %s", err, cleared.Body)
		}
		if _, b := c.do(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/wait?interval=0.2", ""); lastLine(b)["state"] != "success" {
			t.Fatalf("after the clear: %s", b)
		}
		xs, err := client.GetXcomEntriesWithResponse(ctx, "api_demo", "v2_run_1", "extract", nil)
		if err != nil || xs.JSON200 == nil || xs.JSON200.TotalEntries != 1 || xs.JSON200.XcomEntries[0].Key != "return_value" {
			t.Fatalf("XCom entries: %v %s", err, xs.Body)
		}
		deser := true
		x, err := client.GetXcomEntryWithResponse(ctx, "api_demo", "v2_run_1", "extract", "return_value", &v2client.GetXcomEntryParams{Deserialize: &deser})
		if err != nil || x.JSON200 == nil {
			t.Fatalf("XCom entry: %v", err)
		}
		if native, err := x.JSON200.AsXComResponseNative(); err != nil || native.Value != "loading orders with ***" {
			t.Fatalf("XCom entry: %v %s", err, x.Body)
		}
		c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/extract/xcomEntries/nope", "", 404)
		// Tries and what a task waited for.
		tries := c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/flaky/tries", "", 200)
		if tries["total_entries"] != 2.0 {
			t.Errorf("flaky's tries: %v", tries)
		}
		if try := c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/flaky/tries/1", "", 200); try["state"] != "failed" {
			t.Errorf("first try: %v", try)
		}
		c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/flaky/dependencies", "", 200)
		c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/extract/links", "", 200)
	})
	c.t = t

	t.Run("runs and task instances", func(t *testing.T) {
		c.t = t
		runs := c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns?state=success&state=failed&run_type=manual&order_by=-start_date&run_id_pattern=v2", "", 200)
		if runs["total_entries"] != 1.0 {
			t.Errorf("runs: %v", runs)
		}
		// Unpausing api_demo started its latest scheduled run too.
		if all := c.json(admin, "GET", "/api/v2/dags/~/dagRuns?dag_id_pattern=api", "", 200); all["total_entries"] != 2.0 {
			t.Errorf("runs of every DAG: %v", all)
		}
		refused := c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns?run_after_gte=2024-01-01T00:00:00Z", "", 422)
		if !strings.Contains(fmt.Sprint(refused), "run_after_gte filter is not supported") {
			t.Errorf("a filter updraft does not apply: %v", refused)
		}
		if b := c.json(admin, "POST", "/api/v2/dags/~/dagRuns/list", `{"dag_ids": ["api_demo"], "states": ["success"], "page_limit": 10}`, 200); b["total_entries"] != 2.0 {
			t.Errorf("runs batch: %v", b)
		}
		if p := c.json(admin, "PATCH", "/api/v2/dags/api_demo/dagRuns/v2_run_1?update_mask=note", `{"note": "checked"}`, 200); p["note"] != "checked" {
			t.Errorf("note: %v", p)
		}
		if dry := c.json(admin, "POST", "/api/v2/dags/api_demo/dagRuns/v2_run_1/clear", `{"dry_run": true}`, 200); dry["total_entries"] != 2.0 {
			t.Errorf("clear dry run: %v", dry)
		}
		c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_1", "", 200)
		if tis := c.json(admin, "GET", "/api/v2/dags/~/dagRuns/~/taskInstances?state=success&dag_id_pattern=api&order_by=-start_date", "", 200); tis["total_entries"] != 4.0 {
			t.Errorf("task instances everywhere: %v", tis)
		}
		if tis := c.json(admin, "POST", "/api/v2/dags/~/dagRuns/~/taskInstances/list", `{"dag_ids": ["api_demo"], "task_ids": ["extract"]}`, 200); tis["total_entries"] != 2.0 {
			t.Errorf("task instances batch: %v", tis)
		}
		ti := "/api/v2/dags/api_demo/dagRuns/v2_run_1/taskInstances/extract"
		if got := c.json(admin, "GET", ti, "", 200); got["state"] != "success" || got["dag_version"] == nil {
			t.Errorf("task instance: %v", got)
		}
		if dry := c.json(admin, "PATCH", ti+"/dry_run", `{"new_state": "failed"}`, 200); dry["total_entries"] != 1.0 {
			t.Errorf("patch dry run: %v", dry)
		}
		if got := c.json(admin, "GET", ti, "", 200); got["state"] != "success" {
			t.Errorf("a dry run changed the state: %v", got)
		}
		if p := c.json(admin, "PATCH", ti, `{"new_state": "failed"}`, 200); fmt.Sprint(p["task_instances"].([]any)[0].(map[string]any)["state"]) != "failed" {
			t.Errorf("patch: %v", p)
		}
		// A second run, deleted.
		c.json(admin, "POST", "/api/v2/dags/api_demo/dagRuns", `{"dag_run_id": "v2_run_2", "logical_date": "2025-01-01T00:00:00Z"}`, 200)
		c.do(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_2/wait?interval=0.2", "")
		c.json(admin, "DELETE", "/api/v2/dags/api_demo/dagRuns/v2_run_2", "", 204)
		c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns/v2_run_2", "", 404)
		// dagStats count the runs by state.
		if st := c.json(admin, "GET", "/api/v2/dagStats?dag_ids=api_demo", "", 200); !strings.Contains(fmt.Sprint(st), "count:2 state:success") {
			t.Errorf("dag stats: %v", st)
		}
	})
	c.t = t

	t.Run("mapped", func(t *testing.T) {
		c.t = t
		c.json(admin, "POST", "/api/v2/dags/mapped_demo/dagRuns", `{"dag_run_id": "m1", "logical_date": null}`, 200)
		if _, b := c.do(admin, "GET", "/api/v2/dags/mapped_demo/dagRuns/m1/wait?interval=0.2", ""); lastLine(b)["state"] != "success" {
			t.Fatalf("mapped run: %s", b)
		}
		fan := "/api/v2/dags/mapped_demo/dagRuns/m1/taskInstances/fan"
		if m := c.json(admin, "GET", fan+"/listMapped", "", 200); m["total_entries"] != 2.0 {
			t.Errorf("mapped instances: %v", m)
		}
		if one := c.json(admin, "GET", fan+"/1", "", 200); one["map_index"] != 1.0 || one["state"] != "success" {
			t.Errorf("map index 1: %v", one)
		}
		c.json(admin, "GET", fan+"/1/dependencies", "", 200)
		if tr := c.json(admin, "GET", fan+"/1/tries", "", 200); tr["total_entries"] != 1.0 {
			t.Errorf("tries of map index 1: %v", tr)
		}
		c.json(admin, "GET", fan+"/1/tries/1", "", 200)
		// updraft marks a mapped task as a whole, and says so.
		c.json(admin, "PATCH", fan+"/1/dry_run", `{"new_state": "skipped"}`, 400)
		if p := c.json(admin, "PATCH", fan+"/1", `{"new_state": "skipped"}`, 400); !strings.Contains(fmt.Sprint(p["detail"]), "as a whole") {
			t.Errorf("marking one mapped instance: %v", p)
		}
	})
	c.t = t

	// A backfill of the three days before yesterday: previewed, created,
	// paused and unpaused, and run to completion by the scheduler.
	t.Run("backfill", func(t *testing.T) {
		c.t = t
		day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -4)
		body := fmt.Sprintf(`{"dag_id": "api_demo", "from_date": %q, "to_date": %q, "max_active_runs": 2, "dag_run_conf": {"table": "orders_backfill"}}`,
			day.Format(time.RFC3339), day.AddDate(0, 0, 2).Add(12*time.Hour).Format(time.RFC3339))
		dry := c.json(admin, "POST", "/api/v2/backfills/dry_run", body, 200)
		if dry["total_entries"] != 3.0 {
			t.Fatalf("dry run: %v", dry)
		}
		c.json(viewer, "POST", "/api/v2/backfills", body, 403)
		bad := c.json(admin, "POST", "/api/v2/backfills", `{"dag_id": "api_demo", "from_date": "2030-01-01T00:00:00Z", "to_date": "2030-01-02T00:00:00Z"}`, 422)
		if !strings.Contains(fmt.Sprint(bad), "future") {
			t.Errorf("a future backfill: %v", bad)
		}
		b := c.json(admin, "POST", "/api/v2/backfills", body, 200)
		id := fmt.Sprint(b["id"])
		if b["max_active_runs"] != 2.0 || b["reprocess_behavior"] != "none" || b["completed_at"] != nil {
			t.Fatalf("backfill: %v", b)
		}
		c.json(admin, "POST", "/api/v2/backfills", body, 409)
		c.json(admin, "PUT", "/api/v2/backfills/"+id+"/pause", "", 200)
		if p := c.json(admin, "PUT", "/api/v2/backfills/"+id+"/unpause", "", 200); p["is_paused"] != false {
			t.Errorf("unpaused: %v", p)
		}
		waitFor(t, "the backfill to complete", time.Minute, func() bool {
			return c.json(viewer, "GET", "/api/v2/backfills/"+id, "", 200)["completed_at"] != nil
		})
		if l := c.json(viewer, "GET", "/api/v2/backfills?dag_id=api_demo", "", 200); l["total_entries"] != 1.0 {
			t.Errorf("backfills: %v", l)
		}
		runs := c.json(admin, "GET", "/api/v2/dags/api_demo/dagRuns?run_type=backfill&state=success", "", 200)
		if runs["total_entries"] != 3.0 || !strings.Contains(fmt.Sprint(runs), "table:orders_backfill") {
			t.Errorf("the backfill's runs: %v", runs)
		}
		c.json(admin, "PUT", "/api/v2/backfills/"+id+"/cancel", "", 409)
		c.json(admin, "GET", "/api/v2/backfills/999", "", 404)
	})
	c.t = t

	t.Run("variables pools connections", func(t *testing.T) {
		c.t = t
		if v := c.json(admin, "POST", "/api/v2/variables", `{"key": "v2_var", "value": {"a": 1}, "description": "set by the test"}`, 201); v["value"] != `{"a":1}` {
			t.Errorf("created variable: %v", v)
		}
		c.json(admin, "POST", "/api/v2/variables", `{"key": "v2_var", "value": "again"}`, 409)
		vars := c.json(admin, "GET", "/api/v2/variables?variable_key_pattern=%25&order_by=key", "", 200)
		if !strings.Contains(fmt.Sprint(vars), "is_encrypted:true key:snowflake_password team_name:<nil> value:***]") || strings.Contains(fmt.Sprint(vars), "hunter2") {
			t.Errorf("variables: %v", vars)
		}
		if v := c.json(admin, "PATCH", "/api/v2/variables/v2_var?update_mask=description", `{"key": "v2_var", "value": "ignored", "description": "new"}`, 200); v["value"] != `{"a":1}` || v["description"] != "new" {
			t.Errorf("patched variable: %v", v)
		}
		c.json(admin, "GET", "/api/v2/variables/v2_var", "", 200)
		bulk := c.json(admin, "PATCH", "/api/v2/variables", `{"actions": [
			{"action": "create", "entities": [{"key": "b1", "value": "1"}, {"key": "v2_var", "value": "x"}], "action_on_existence": "fail"},
			{"action": "update", "entities": [{"key": "b1", "value": "2"}]},
			{"action": "delete", "entities": ["b1", "missing"], "action_on_non_existence": "fail"}]}`, 200)
		if fmt.Sprint(bulk["create"].(map[string]any)["success"]) != "[b1]" || len(bulk["create"].(map[string]any)["errors"].([]any)) != 1 ||
			fmt.Sprint(bulk["update"].(map[string]any)["success"]) != "[b1]" || fmt.Sprint(bulk["delete"].(map[string]any)["success"]) != "[b1]" {
			t.Errorf("bulk variables: %v", bulk)
		}
		c.json(admin, "DELETE", "/api/v2/variables/v2_var", "", 204)
		c.json(admin, "GET", "/api/v2/variables/v2_var", "", 404)

		if p := c.json(admin, "POST", "/api/v2/pools", `{"name": "snowflake", "slots": 2, "description": "warehouse"}`, 201); p["open_slots"] != 2.0 {
			t.Errorf("created pool: %v", p)
		}
		c.json(admin, "POST", "/api/v2/pools", `{"name": "snowflake", "slots": 2}`, 409)
		if p := c.json(admin, "PATCH", "/api/v2/pools/snowflake?update_mask=slots", `{"slots": 4}`, 200); p["slots"] != 4.0 {
			t.Errorf("patched pool: %v", p)
		}
		if l := c.json(viewer, "GET", "/api/v2/pools?pool_name_pattern=snow", "", 200); l["total_entries"] != 1.0 {
			t.Errorf("pools: %v", l)
		}
		c.json(admin, "GET", "/api/v2/pools/default_pool", "", 200)
		bulk = c.json(admin, "PATCH", "/api/v2/pools", `{"actions": [{"action": "create", "entities": [{"name": "p2", "slots": 1}]},
			{"action": "delete", "entities": ["p2", "default_pool"]}]}`, 200)
		if fmt.Sprint(bulk["delete"].(map[string]any)["success"]) != "[p2]" || len(bulk["delete"].(map[string]any)["errors"].([]any)) != 1 {
			t.Errorf("bulk pools: %v", bulk)
		}
		c.json(admin, "DELETE", "/api/v2/pools/snowflake", "", 204)
		c.json(admin, "DELETE", "/api/v2/pools/default_pool", "", 400)

		conns := c.json(admin, "GET", "/api/v2/connections?connection_id_pattern=warehouse", "", 200)
		if conns["total_entries"] != 1.0 || strings.Contains(fmt.Sprint(conns), "pg-pass") {
			t.Errorf("connections: %v", conns)
		}
		if conn := c.json(admin, "GET", "/api/v2/connections/warehouse_pg", "", 200); conn["password"] != nil || conn["host"] != "127.0.0.1" {
			t.Errorf("connection: %v", conn)
		}
		if res := c.json(admin, "POST", "/api/v2/connections/test", `{"connection_id": "warehouse_pg", "conn_type": "postgres"}`, 200); res["status"] != false || res["message"] == "" {
			t.Errorf("connection test: %v", res)
		}
	})
	c.t = t

	t.Run("server", func(t *testing.T) {
		c.t = t
		ie := c.json(admin, "GET", "/api/v2/importErrors?filename_pattern=broken", "", 200)
		if ie["total_entries"] != 1.0 {
			t.Fatalf("import errors: %v", ie)
		}
		id := ie["import_errors"].([]any)[0].(map[string]any)["import_error_id"]
		if e := c.json(admin, "GET", fmt.Sprintf("/api/v2/importErrors/%v", id), "", 200); !strings.Contains(fmt.Sprint(e["stack_trace"]), "broken.yaml:2") {
			t.Errorf("import error: %v", e)
		}
		ev := c.json(admin, "GET", "/api/v2/eventLogs?dag_id=api_demo&included_events=trigger&owner=admin&order_by=-when", "", 200)
		if ev["total_entries"] != 2.0 {
			t.Fatalf("event log: %v", ev)
		}
		eid := ev["event_logs"].([]any)[0].(map[string]any)["event_log_id"]
		c.json(admin, "GET", fmt.Sprintf("/api/v2/eventLogs/%v", eid), "", 200)
		if jobs := c.json(viewer, "GET", "/api/v2/jobs?is_alive=true&job_type=SchedulerJob", "", 200); jobs["total_entries"] != 1.0 {
			t.Errorf("jobs: %v", jobs)
		}
		for _, p := range []string{"/api/v2/plugins", "/api/v2/plugins/importErrors", "/api/v2/providers"} {
			c.json(viewer, "GET", p, "", 200)
		}
		if !exposeConfig {
			c.json(admin, "GET", "/api/v2/config", "", 403)
			c.json(admin, "GET", "/api/v2/config/section/core/option/executor", "", 403)
			return
		}
		c.json(viewer, "GET", "/api/v2/config", "", 403)
		cfg := c.json(admin, "GET", "/api/v2/config", "", 200)
		if s := fmt.Sprint(cfg); !strings.Contains(s, "key:executor value:local") || strings.Contains(s, "secret-hook-id") || strings.Contains(s, "pg-pass") {
			t.Errorf("config: %v", cfg)
		}
		if status, b := c.do(admin, "GET", "/api/v2/config/section/core/option/executor", "", "Accept", "text/plain"); status != 200 || string(b) != "[core]\nexecutor = local\n\n" {
			t.Errorf("config option as text: %d %q", status, b)
		}
		c.json(admin, "GET", "/api/v2/config?section=nope", "", 404)
	})
	c.t = t

	// A key rotated from the command line: tokens signed before stay
	// valid, new ones are signed with the new key.
	t.Run("rotation", func(t *testing.T) {
		c.t = t
		code, out, errOut := run(t, nil, "api", "rotate-key", "--db", db)
		if code != 0 || !strings.Contains(out, "new signing key") {
			t.Fatalf("rotate-key: %d %s %s", code, out, errOut)
		}
		if st, err := store.Open(ctx, db); err == nil {
			keys, _ := st.SigningKeys(ctx, "jwt")
			for _, k := range keys {
				t.Logf("key after the rotation: %s, %s", k.ID, k.CreatedAt)
			}
			hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(admin, ".")[0])
			t.Logf("the admin's token: %s", hdr)
			st.Close()
		}
		c.json(admin, "GET", "/api/v2/dags", "", 200)
		code, out, errOut = run(t, nil, "api", "token", "vera", "--expires", "1h", "--db", db)
		if code != 0 {
			t.Fatalf("api token: %d %s", code, errOut)
		}
		if c.json(strings.TrimSpace(out), "GET", "/api/v2/dags", "", 200)["total_entries"] != 3.0 {
			t.Error("a token from the command line")
		}
		if code, _, errOut := run(t, nil, "api", "token", "nobody", "--db", db); code == 0 || !strings.Contains(errOut, "nobody") {
			t.Errorf("a token for no user: %d %s", code, errOut)
		}
	})
	c.t = t

	// Operations updraft does not have say so, and why.
	// (501 is not among the document's answers: this goes around the checks.)
	req, _ := http.NewRequest("GET", base+"/api/v2/assets", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 501 || !strings.Contains(string(b), "no assets") {
			t.Errorf("assets: %d %s", resp.StatusCode, b)
		}
	}

	// Every implemented operation was called, and answered as the document says.
	seen := map[string]bool{}
	for k := range vt.seen {
		f := strings.Fields(k)
		seen[f[0]+" "+f[1]] = true
	}
	var missing []string
	for _, op := range apiv2.Operations() {
		if op.Implemented && !seen[op.Method+" /api/v2"+op.Path] {
			missing = append(missing, op.Method+" "+op.Path)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("implemented operations this test never called:\n%s", strings.Join(missing, "\n"))
	}
}

// lastLine decodes the last line of a JSON lines body.
func lastLine(b []byte) map[string]any {
	var last map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			last = map[string]any{}
			_ = json.Unmarshal(sc.Bytes(), &last)
		}
	}
	return last
}
