package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/airflow-client-go/airflow"
)

// A mapped task through the official client and the pages: its instances
// are listed and fetched by map index (responses checked against the
// OpenAPI document), each has its log and XCom, the grid shows one cell
// that lists them, and an instance's page is its own.
func TestMappedTaskThroughAPIAndPages(t *testing.T) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	writeFile(t, filepath.Join(dagDir, "m.yaml"), `
mapped:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    fan:
      operator: BashOperator
      expand: {bash_command: ["echo zero", "echo one"]}
      map_index_template: "{{ task.bash_command }}"
    after: {operator: EmptyOperator, dependencies: [fan]}
`)
	url, _ := startInProcess(t, map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DAGS_INTERVAL": "200ms"})
	vt := &validatingTransport{t: t, router: airflowSpec(t, url), seen: map[string]int{}}
	cfg := airflow.NewConfiguration()
	cfg.Servers = airflow.ServerConfigurations{{URL: url + "/api/v1"}}
	cfg.HTTPClient = &http.Client{Transport: vt, Timeout: 30 * time.Second}
	client := airflow.NewAPIClient(cfg)
	ctx := context.WithValue(context.Background(), airflow.ContextBasicAuth, airflow.BasicAuth{UserName: "admin", Password: adminPassword})
	waitFor(t, "the DAG", time.Minute, func() bool {
		dl, _, err := client.DAGApi.GetDags(ctx).Execute()
		return err == nil && dl.GetTotalEntries() == 1
	})
	run := airflow.DAGRun{}
	run.SetDagRunId("m1")
	if _, _, err := client.DAGRunApi.PostDagRun(ctx, "mapped").DAGRun(run).Execute(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the run to succeed", time.Minute, func() bool {
		r, _, err := client.DAGRunApi.GetDagRun(ctx, "mapped", "m1").Execute()
		return err == nil && r.GetState() == airflow.DAGSTATE_SUCCESS
	})
	list, _, err := client.TaskInstanceApi.GetMappedTaskInstances(ctx, "mapped", "m1", "fan").Execute()
	if err != nil {
		t.Fatal(err)
	}
	if list.GetTotalEntries() != 2 || list.GetTaskInstances()[1].GetMapIndex() != 1 || list.GetTaskInstances()[1].GetState() != airflow.TASKSTATE_SUCCESS {
		t.Fatalf("mapped instances: %+v", list)
	}
	one, _, err := client.TaskInstanceApi.GetMappedTaskInstance(ctx, "mapped", "m1", "fan", 1).Execute()
	if err != nil || one.GetMapIndex() != 1 || one.GetTryNumber() != 1 {
		t.Fatalf("instance 1: %+v %v", one, err)
	}
	if _, resp, err := client.TaskInstanceApi.GetTaskInstance(ctx, "mapped", "m1", "fan").Execute(); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the mapped task without a map index: %v", err)
	}
	if _, resp, err := client.TaskInstanceApi.GetMappedTaskInstances(ctx, "mapped", "m1", "after").Execute(); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("listMapped of a task that is not mapped: %v", err)
	}
	get := func(path string) string {
		t.Helper()
		resp, err := adminGet(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if log := get("/api/v1/dags/mapped/dagRuns/m1/taskInstances/fan/1/logs/1?full_content=true"); !strings.Contains(log, "one") || strings.Contains(log, "zero") {
		t.Errorf("log of instance 1: %s", log)
	}
	if x := get("/api/v1/dags/mapped/dagRuns/m1/taskInstances/fan/0/xcomEntries/return_value"); !strings.Contains(x, `"value":"zero"`) || !strings.Contains(x, `"map_index":0`) {
		t.Errorf("XCom of instance 0: %s", x)
	}
	grid := get("/dags/mapped?tab=grid&run=m1&task=fan")
	if !strings.Contains(grid, `id="mapped-instances"`) || !strings.Contains(grid, "fan [1] echo one") || !strings.Contains(grid, "2 mapped instances") {
		t.Errorf("grid panel of the mapped task:\n%s", grid)
	}
	page := get("/dags/mapped/runs/m1/tasks/fan?map_index=1")
	if !strings.Contains(page, "fan [1] echo one") || !strings.Contains(page, "/clear?map_index=1") || !strings.Contains(page, `echo one`) {
		t.Errorf("instance page:\n%s", page)
	}
	// The task's own page (the panel's heading links it) leads to its instances.
	if taskPage := get("/dags/mapped/runs/m1/tasks/fan"); !strings.Contains(taskPage, `id="mapped-instances"`) {
		t.Errorf("a mapped task's page without a map index:\n%s", taskPage)
	}
	if log := get("/api/v1/dags/mapped/dagRuns/m1/taskInstances/fan/0/logs/1?full_content=true"); !strings.Contains(log, "try 1 of mapped.fan[0]") {
		t.Errorf("the instance's log does not name it: %s", log)
	}
	if runPage := get("/dags/mapped/runs/m1"); !strings.Contains(runPage, "fan [0] echo zero") {
		t.Errorf("run page lacks the instances")
	}
	t.Logf("validated responses: %v", vt.seen)
}
