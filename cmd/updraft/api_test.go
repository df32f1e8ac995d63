package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/airflow-client-go/airflow"
)

// apiDAGs are the DAG files of the API test: a DAG whose second task fails
// on its first try and succeeds when cleared, and a broken file.
var apiDAGs = map[string]string{
	"api_demo.yaml": `
api_demo:
  default_args: {owner: data, start_date: 2024-01-01}
  description: "Loads <b>orders</b>"
  schedule: "0 3 * * *"
  catchup: false
  tags: [api, demo]
  params: {table: events}
  tasks:
    - task_id: extract
      operator: BashOperator
      bash_command: 'echo "loading {{ dag_run.conf.table | default(params.table) }} with {{ var.value.snowflake_password }}"'
    - task_id: flaky
      operator: BashOperator
      bash_command: 'if [ "{{ dag_run.conf.table | default(params.table) }}" != orders ] || [ -f "$MARKER" ]; then echo recovered; else touch "$MARKER"; echo failing; exit 1; fi'
      env: {MARKER: "MARKER_PATH"}
      dependencies: [extract]
`,
	"broken.yaml": "broken:\n  schedule: \"0 25 * * *\"\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n",
}

// The official Airflow Go client, unmodified, drives a running server, and
// every response it gets is checked against the OpenAPI document shipped in
// the client's module.
func TestOfficialClientDrivesServer(t *testing.T) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	for name, body := range apiDAGs {
		body = strings.ReplaceAll(body, "MARKER_PATH", filepath.Join(dir, "marker"))
		if err := os.WriteFile(filepath.Join(dagDir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db := "sqlite:" + filepath.Join(dir, "u.db")
	connDir := filepath.Join(dir, "connections")
	os.MkdirAll(connDir, 0o755)
	os.WriteFile(filepath.Join(connDir, "warehouse_pg"), []byte("postgresql://loader:pg-pass@db.example.com:5432/dw"), 0o600)
	url, _ := startInProcess(t, map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": db, "UPDRAFT_DAGS_INTERVAL": "200ms", "UPDRAFT_CONNECTIONS_DIR": connDir})
	if code, _, errOut := runWithInput(t, nil, "viewer-password\n", "users", "create", "vera", "--role", "Viewer", "--password-stdin", "--db", db); code != 0 {
		t.Fatalf("users create: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, nil, "variables", "set", "snowflake_password", "hunter2-value", "--db", db); code != 0 {
		t.Fatalf("variables set: %d %s", code, errOut)
	}
	vt := &validatingTransport{t: t, router: airflowSpec(t, url), seen: map[string]int{}}
	cfg := airflow.NewConfiguration()
	cfg.Servers = airflow.ServerConfigurations{{URL: url + "/api/v1"}}
	cfg.HTTPClient = &http.Client{Transport: vt, Timeout: 30 * time.Second}
	client := airflow.NewAPIClient(cfg)
	ctx := context.WithValue(context.Background(), airflow.ContextBasicAuth, airflow.BasicAuth{UserName: "admin", Password: adminPassword})
	viewer := context.WithValue(context.Background(), airflow.ContextBasicAuth, airflow.BasicAuth{UserName: "vera", Password: "viewer-password"})
	must := func(what string, resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			body := ""
			var oe airflow.GenericOpenAPIError
			if errors.As(err, &oe) {
				body = string(oe.Body())
			}
			t.Fatalf("%s: %v %s", what, err, body)
		}
	}

	// List DAGs (the scheduler records them once the folder is loaded).
	var dagList airflow.DAGCollection
	waitFor(t, "the DAG to be listed", time.Minute, func() bool {
		var err error
		var resp *http.Response
		dagList, resp, err = client.DAGApi.GetDags(ctx).Execute()
		must("list DAGs", resp, err)
		return dagList.GetTotalEntries() == 1
	})
	d := dagList.GetDags()[0]
	if d.GetDagId() != "api_demo" || !d.GetIsPaused() || d.GetDescription() != "Loads <b>orders</b>" || len(d.GetTags()) != 2 ||
		d.GetScheduleInterval().CronExpression == nil || d.GetScheduleInterval().CronExpression.GetValue() != "0 3 * * *" ||
		d.GetTimetableDescription() != "At 03:00" || !d.HasNextDagrun() {
		t.Fatalf("DAG = %+v", d)
	}

	// Unpause; then trigger with conf and follow the run.
	patch := airflow.DAG{}
	patch.SetIsPaused(false)
	d, resp, err := client.DAGApi.PatchDag(ctx, "api_demo").DAG(patch).UpdateMask([]string{"is_paused"}).Execute()
	must("unpause", resp, err)
	if d.GetIsPaused() {
		t.Fatal("still paused")
	}
	run := airflow.DAGRun{}
	run.SetDagRunId("api_run_1")
	run.SetConf(map[string]interface{}{"table": "orders"})
	created, resp, err := client.DAGRunApi.PostDagRun(ctx, "api_demo").DAGRun(run).Execute()
	must("trigger", resp, err)
	if created.GetState() != airflow.DAGSTATE_QUEUED || created.GetRunType() != "manual" || created.GetConf()["table"] != "orders" {
		t.Fatalf("created run = %+v", created)
	}
	if _, resp, err := client.DAGRunApi.PostDagRun(ctx, "api_demo").DAGRun(run).Execute(); err == nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("same run id again: %v %v", resp, err)
	}
	followRun(t, client, ctx, "api_run_1", airflow.DAGSTATE_FAILED)

	// Task instances and logs.
	tis, resp, err := client.TaskInstanceApi.GetTaskInstances(ctx, "api_demo", "api_run_1").Execute()
	must("list task instances", resp, err)
	states := map[string]airflow.TaskState{}
	for _, ti := range tis.GetTaskInstances() {
		states[ti.GetTaskId()] = ti.GetState()
	}
	if tis.GetTotalEntries() != 2 || states["extract"] != airflow.TASKSTATE_SUCCESS || states["flaky"] != airflow.TASKSTATE_FAILED {
		t.Fatalf("task instances: %v", states)
	}
	log, resp, err := client.TaskInstanceApi.GetLog(ctx, "api_demo", "api_run_1", "extract", 1).Execute()
	must("log", resp, err)
	if !strings.Contains(log.GetContent(), "loading orders with ***") || log.GetContinuationToken() == "" {
		t.Fatalf("log = %q", log.GetContent())
	}
	more, resp, err := client.TaskInstanceApi.GetLog(ctx, "api_demo", "api_run_1", "extract", 1).Token(log.GetContinuationToken()).Execute()
	must("log continuation", resp, err)
	if more.GetContent() != "" {
		t.Fatalf("a finished log continues with %q", more.GetContent())
	}

	// XCom: a BashOperator pushes its last line; a Viewer reads it, masked.
	xcoms, resp, err := client.XComApi.GetXcomEntries(viewer, "api_demo", "api_run_1", "extract").Execute()
	must("list XCom entries", resp, err)
	if xcoms.GetTotalEntries() != 1 || xcoms.GetXcomEntries()[0].GetKey() != "return_value" || xcoms.GetXcomEntries()[0].GetTaskId() != "extract" {
		t.Fatalf("XCom entries: %+v", xcoms)
	}
	xcom, resp, err := client.XComApi.GetXcomEntry(viewer, "api_demo", "api_run_1", "extract", "return_value").Execute()
	must("get XCom entry", resp, err)
	if xcom.GetValue() != "loading orders with ***" || xcom.GetExecutionDate() == "" {
		t.Fatalf("XCom entry: %+v", xcom)
	}
	if _, resp, err := client.XComApi.GetXcomEntry(viewer, "api_demo", "api_run_1", "extract", "nope").Execute(); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("an unknown XCom key: %v %v", resp, err)
	}

	// A viewer can read but not clear.
	clear := airflow.ClearTaskInstances{}
	clear.SetDryRun(false)
	clear.SetTaskIds([]string{"flaky"})
	clear.SetDagRunId("api_run_1")
	clear.SetOnlyFailed(true)
	if _, resp, err := client.DAGApi.PostClearTaskInstances(viewer, "api_demo").ClearTaskInstances(clear).Execute(); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer clears: %v %v", resp, err)
	}
	if _, resp, err := client.DAGApi.GetDag(viewer, "api_demo").Execute(); err != nil {
		t.Fatalf("viewer reads: %v %v", resp, err)
	}

	// Clear the failed task and see it run again.
	refs, resp, err := client.DAGApi.PostClearTaskInstances(ctx, "api_demo").ClearTaskInstances(clear).Execute()
	must("clear", resp, err)
	if got := refs.GetTaskInstances(); len(got) != 1 || got[0].GetTaskId() != "flaky" {
		t.Fatalf("cleared %+v", got)
	}
	followRun(t, client, ctx, "api_run_1", airflow.DAGSTATE_SUCCESS)
	ti, resp, err := client.TaskInstanceApi.GetTaskInstance(ctx, "api_demo", "api_run_1", "flaky").Execute()
	must("task instance", resp, err)
	if ti.GetState() != airflow.TASKSTATE_SUCCESS || ti.GetTryNumber() != 2 || ti.GetHostname() == "" {
		t.Fatalf("flaky after clear: %+v", ti)
	}
	log, resp, err = client.TaskInstanceApi.GetLog(ctx, "api_demo", "api_run_1", "flaky", 2).Execute()
	must("log of try 2", resp, err)
	if !strings.Contains(log.GetContent(), "recovered") {
		t.Fatalf("try 2 log = %q", log.GetContent())
	}

	// Runs list, import errors, variables, health, version, errors.
	// With catchup off, unpausing also created the latest scheduled run.
	runs, resp, err := client.DAGRunApi.GetDagRuns(ctx, "~").Limit(1000).OrderBy("-execution_date").Execute()
	must("list runs", resp, err)
	if runs.GetTotalEntries() != 2 || len(runs.GetDagRuns()) != 2 || runs.GetDagRuns()[0].GetDagRunId() != "api_run_1" ||
		runs.GetDagRuns()[1].GetRunType() != "scheduled" {
		t.Fatalf("runs: total %d, %+v", runs.GetTotalEntries(), runs.GetDagRuns())
	}
	manual, resp, err := client.DAGRunApi.GetDagRuns(ctx, "api_demo").State([]string{"success"}).ExecutionDateGte(created.GetLogicalDate()).Execute()
	must("filtered runs", resp, err)
	if manual.GetTotalEntries() != 1 || manual.GetDagRuns()[0].GetDagRunId() != "api_run_1" {
		t.Fatalf("filtered runs: %+v", manual.GetDagRuns())
	}
	ies, resp, err := client.ImportErrorApi.GetImportErrors(ctx).Execute()
	must("import errors", resp, err)
	if ies.GetTotalEntries() != 1 || ies.GetImportErrors()[0].GetFilename() != "broken.yaml" ||
		!strings.Contains(ies.GetImportErrors()[0].GetStackTrace(), "broken.yaml:2") {
		t.Fatalf("import errors = %+v", ies)
	}
	ie, resp, err := client.ImportErrorApi.GetImportError(ctx, ies.GetImportErrors()[0].GetImportErrorId()).Execute()
	must("import error", resp, err)
	if ie.GetFilename() != "broken.yaml" {
		t.Fatalf("import error = %+v", ie)
	}
	got, resp, err := client.VariableApi.GetVariable(ctx, "snowflake_password").Execute()
	must("secret variable", resp, err)
	if got.GetValue() != "***" {
		t.Fatalf("a secret variable's value was returned")
	}
	v := airflow.Variable{}
	v.SetKey("bizops_channel")
	v.SetValue("#bizops")
	if _, resp, err := client.VariableApi.PostVariables(ctx).Variable(v).Execute(); err != nil {
		must("create variable", resp, err)
	}
	vars, resp, err := client.VariableApi.GetVariables(ctx).Execute()
	must("list variables", resp, err)
	if vars.GetTotalEntries() != 2 {
		t.Fatalf("variables = %+v", vars)
	}
	if _, resp, err := client.VariableApi.GetVariables(viewer).Execute(); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer lists variables: %v %v", resp, err)
	}
	// Users and roles: an Admin creates a user with Airflow's role list,
	// the new user gets in, a patch demotes them, a delete removes them.
	nu := airflow.User{}
	nu.SetUsername("otto")
	nu.SetPassword("otto-password")
	nu.SetEmail("otto@example.com")
	nu.SetRoles([]airflow.UserCollectionItemRoles{{Name: airflow.PtrString("Op")}})
	newUser, resp, err := client.UserApi.PostUser(ctx).User(nu).Execute()
	must("create user", resp, err)
	if newUser.GetUsername() != "otto" || len(newUser.GetRoles()) != 1 || newUser.GetRoles()[0].GetName() != "Op" || newUser.Password != nil {
		t.Fatalf("created user = %+v", newUser)
	}
	otto := context.WithValue(context.Background(), airflow.ContextBasicAuth, airflow.BasicAuth{UserName: "otto", Password: "otto-password"})
	if _, resp, err := client.DAGApi.GetDags(otto).Execute(); err != nil {
		must("the new user lists DAGs", resp, err)
	}
	demote := airflow.User{}
	demote.SetRoles([]airflow.UserCollectionItemRoles{{Name: airflow.PtrString("Viewer")}})
	if _, resp, err := client.UserApi.PatchUser(ctx, "otto").User(demote).UpdateMask([]string{"roles"}).Execute(); err != nil {
		must("patch user", resp, err)
	}
	users, resp, err := client.UserApi.GetUsers(ctx).OrderBy("username").Execute()
	must("list users", resp, err)
	roleOf := map[string]string{}
	for _, u := range users.GetUsers() {
		roleOf[u.GetUsername()] = u.GetRoles()[0].GetName()
	}
	if users.GetTotalEntries() != 3 || roleOf["otto"] != "Viewer" || roleOf["admin"] != "Admin" {
		t.Fatalf("users = %v", roleOf)
	}
	if one, resp, err := client.UserApi.GetUser(ctx, "otto").Execute(); err != nil || one.GetEmail() != "otto@example.com" {
		must("get user", resp, err)
		t.Fatalf("user = %+v", one)
	}
	roles, resp, err := client.RoleApi.GetRoles(ctx).Execute()
	must("list roles", resp, err)
	if roles.GetTotalEntries() != 4 || roles.GetRoles()[3].GetName() != "Admin" {
		t.Fatalf("roles = %+v", roles)
	}
	if role, resp, err := client.RoleApi.GetRole(ctx, "Viewer").Execute(); err != nil || len(role.GetActions()) == 0 {
		must("get role", resp, err)
		t.Fatalf("role = %+v", role)
	}
	if _, resp, err := client.UserApi.GetUsers(otto).Execute(); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a Viewer lists users: %v %v", resp, err)
	}
	if resp, err := client.UserApi.DeleteUser(ctx, "otto").Execute(); err != nil {
		must("delete user", resp, err)
	}
	if _, resp, err := client.DAGApi.GetDags(otto).Execute(); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a deleted user: %v %v", resp, err)
	}
	// Connections are listed and read, never with their password.
	conns, resp, err := client.ConnectionApi.GetConnections(ctx).Execute()
	must("list connections", resp, err)
	if conns.GetTotalEntries() != 1 || conns.GetConnections()[0].GetConnectionId() != "warehouse_pg" || conns.GetConnections()[0].GetPort() != 5432 {
		t.Fatalf("connections = %+v", conns)
	}
	if c, resp, err := client.ConnectionApi.GetConnection(ctx, "warehouse_pg").Execute(); err != nil || c.GetHost() != "db.example.com" || c.GetPassword() != "" {
		must("get connection", resp, err)
		t.Fatalf("connection = %+v", c)
	}
	if _, resp, err := client.ConnectionApi.GetConnections(viewer).Execute(); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a Viewer lists connections: %v %v", resp, err)
	}
	// Pools: an Admin creates one, resizes it, lists and deletes it.
	pool := airflow.Pool{}
	pool.SetName("snowflake")
	pool.SetSlots(2)
	if got, resp, err := client.PoolApi.PostPool(ctx).Pool(pool).Execute(); err != nil || got.GetSlots() != 2 || got.GetOpenSlots() != 2 {
		must("create pool", resp, err)
		t.Fatalf("pool = %+v", got)
	}
	pool.SetSlots(5)
	if got, resp, err := client.PoolApi.PatchPool(ctx, "snowflake").Pool(pool).UpdateMask([]string{"slots"}).Execute(); err != nil || got.GetSlots() != 5 {
		must("patch pool", resp, err)
		t.Fatalf("pool = %+v", got)
	}
	pools, resp, err := client.PoolApi.GetPools(viewer).Execute()
	must("list pools", resp, err)
	if pools.GetTotalEntries() != 2 || pools.GetPools()[0].GetName() != "default_pool" {
		t.Fatalf("pools = %+v", pools)
	}
	if got, resp, err := client.PoolApi.GetPool(viewer, "default_pool").Execute(); err != nil || got.GetSlots() != 128 {
		must("get pool", resp, err)
	}
	if resp, err := client.PoolApi.DeletePool(viewer, "snowflake").Execute(); err == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a Viewer deletes a pool: %v %v", resp, err)
	}
	if resp, err := client.PoolApi.DeletePool(ctx, "snowflake").Execute(); err != nil {
		must("delete pool", resp, err)
	}
	health, resp, err := client.MonitoringApi.GetHealth(ctx).Execute()
	must("health", resp, err)
	if health.GetMetadatabase().Status == nil || *health.GetMetadatabase().Status != airflow.HEALTHSTATUS_HEALTHY || *health.GetScheduler().Status != airflow.HEALTHSTATUS_HEALTHY {
		t.Fatalf("health = %+v", health)
	}
	if ver, resp, err := client.MonitoringApi.GetVersion(ctx).Execute(); err != nil || ver.GetVersion() == "" {
		must("version", resp, err)
	}
	if _, resp, err := client.DAGApi.GetDag(ctx, "nope").Execute(); err == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown DAG: %v %v", resp, err)
	}
	anonymous := context.Background()
	if _, resp, err := client.DAGApi.GetDags(anonymous).Execute(); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous: %v %v", resp, err)
	}
	patch.SetIsPaused(true)
	if d, resp, err = client.DAGApi.PatchDag(ctx, "api_demo").DAG(patch).UpdateMask([]string{"is_paused"}).Execute(); err != nil || !d.GetIsPaused() {
		must("pause", resp, err)
		t.Fatal("not paused")
	}
	t.Logf("validated responses: %v", vt.seen)
}

// followRun polls a run until it reaches want (or fails the test after a
// minute, or when it ends in another state).
func followRun(t *testing.T, client *airflow.APIClient, ctx context.Context, runID string, want airflow.DagState) {
	t.Helper()
	var last airflow.DAGRun
	waitFor(t, "run "+runID+" to be "+string(want), time.Minute, func() bool {
		r, _, err := client.DAGRunApi.GetDagRun(ctx, "api_demo", runID).Execute()
		if err != nil {
			t.Fatalf("get run: %v", err)
		}
		last = r
		return r.GetState() == want
	})
	_ = last
}
