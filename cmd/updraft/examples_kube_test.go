package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"updraft/notify/mattermosttest"
)

// The ports of the monitoring DAGs on a server with the Kubernetes
// executor and the simulated cluster, killed (SIGKILL) while the pods run:
// event_table_monitoring's mapped pod tasks' XComs come from their
// containers' return.json through the pod status (the simulated kubelet
// copies what the test says the container wrote), after the restart too,
// and the post lists the new tables of the one schema that has some;
// monitoring (no pods: HTTP and Mattermost in the server) posts what
// failed.
func TestMonitoringExamplesOnPods(t *testing.T) {
	ctx := context.Background()
	kube, bin, dir := kubeServerTest(t)
	src, err := os.ReadFile("../../dags/examples/event_table_monitoring.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// What each schema's container writes, and how long it runs, played
	// by the simulated cluster.
	dag := strings.Replace(string(src), "        do_xcom_push: true\n", `        do_xcom_push: true
        annotations:
          updraft.test/duration: 6s
          updraft.test/xcom: "{{ var.json.container_output[ti.map_index] | tojson }}"
`, 1)
	dag = strings.Replace(dag, "is_paused_upon_creation: true", "is_paused_upon_creation: false", 1)
	dag = strings.Replace(dag, `schedule: "0 12 * * *"`, "schedule: null", 1) // only the run the test triggers
	writeFile(t, filepath.Join(dir, "dags", "event_table_monitoring.yaml"), dag)
	defaults, err := os.ReadFile("../../dags/examples/defaults.yml") // the examples' shared start_date and catchup
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "dags", "defaults.yml"), string(defaults))
	monitoring, err := os.ReadFile("../../dags/examples/monitoring.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "dags", "monitoring.yaml"), strings.Replace(strings.Replace(string(monitoring),
		"is_paused_upon_creation: true", "is_paused_upon_creation: false", 1), `schedule: "0 10 * * *"`, "schedule: null", 1))
	recent := time.Now().UTC().Add(-20 * time.Minute).Format(time.RFC3339)
	svc, _ := monitoringServices(t, `{"data": [{"source_id": 5, "tap_exit_status": 1, "tap_description": "tap crashed", "completion_time": "`+recent+`"}]}`,
		`{"data": []}`, `{"data": []}`)
	t.Setenv("UPDRAFT_CONN_STITCH", svc.URL)
	t.Setenv("UPDRAFT_CONN_HIGHTOUCH", svc.URL)
	db := "sqlite:" + filepath.Join(dir, "u.db")
	mm := mattermosttest.Start(t)
	base, hook, _ := strings.Cut(mm.URL(), "/hooks/")
	t.Setenv("UPDRAFT_CONN_MATTERMOST", `{"conn_type": "mattermost", "host": "`+base+`", "password": "`+hook+`"}`)
	args := []string{"server", "--dags", filepath.Join(dir, "dags"), "--db", db, "--logs", filepath.Join(dir, "logs"), "--addr", "127.0.0.1:0",
		"--executor", "kubernetes", "--kubeconfig", kube.Kubeconfig, "--namespace", "default"}
	s := startCmd(t, bin, args...)
	env := map[string]string{"UPDRAFT_DB": db, "UPDRAFT_DAGS": filepath.Join(dir, "dags")}
	for k, v := range map[string]string{
		"rudder_schemas":              `["mattermost2", "portal_prod"]`,
		"rudder_max_age":              "7",
		"container_output":            `[{"new_tables": ["server_started", "plugin_enabled"]}, {"new_tables": []}]`,
		"stitch_extractions_endpoint": "/v4/42/extractions", "stitch_loads_endpoint": "/v4/42/loads", "stitch_secret": "stitch-token",
		"hightouch_syncs_endpoint": "/api/v1/syncs", "hightouch_secret": "hightouch-token",
	} {
		if code, _, errOut := run(t, env, "variables", "set", k, v, "--db", db); code != 0 {
			t.Fatalf("variables set %s: %s", k, errOut)
		}
	}
	waitFor(t, "the DAGs to be synced", 60*time.Second, func() bool {
		return query(t, dir, `SELECT COUNT(*) FROM dags WHERE dag_id IN ('event_table_monitoring', 'monitoring')`) == "2"
	}, s.out)
	for _, id := range []string{"event_table_monitoring", "monitoring"} {
		if code, out, errOut := run(t, env, "dags", "trigger", id, "--logical-date", "2024-03-01"); code != 0 {
			t.Fatalf("trigger %s: %s %s", id, out, errOut)
		}
	}
	pods := kube.Client.CoreV1().Pods("default")
	waitFor(t, "both check pods running", 60*time.Second, func() bool {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "task_id=check_new_tables"})
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == "Running" && p.Labels["map_index"] != "" {
				running++
			}
		}
		return err == nil && running == 2
	}, s.out)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	restarted := startCmd(t, bin, args...)
	waitFor(t, "the runs to finish", 120*time.Second, func() bool {
		return query(t, dir, `SELECT group_concat(state) FROM dag_runs`) == "success,success"
	}, restarted.out)
	if got := query(t, dir, `SELECT group_concat(task_id || '[' || map_index || ']=' || state, ' ') FROM (SELECT * FROM task_instances WHERE dag_id = 'event_table_monitoring' ORDER BY task_id, map_index)`); got !=
		"check_new_tables[0]=success check_new_tables[1]=success notify_new_tables[0]=success notify_new_tables[1]=skipped short_circuit[0]=success short_circuit[1]=success" {
		t.Fatalf("task instances: %s\n%s", got, restarted.out.String())
	}
	if got := query(t, dir, `SELECT group_concat(rendered_map_index, ',') FROM (SELECT * FROM task_instances WHERE task_id = 'check_new_tables' ORDER BY map_index)`); got != "mattermost2,portal_prod" {
		t.Errorf("labels: %s", got)
	}
	if got := query(t, dir, `SELECT value FROM xcom WHERE task_id = 'check_new_tables' AND map_index = 0`); got != `{"new_tables":["server_started","plugin_enabled"]}` {
		t.Errorf("XCom of check_new_tables[0]: %s", got)
	}
	var tables, stitch []mattermosttest.Post
	for _, p := range mm.Posts() {
		if len(p.Attachments) > 0 {
			tables = append(tables, p)
		} else {
			stitch = append(stitch, p)
		}
	}
	if len(tables) != 1 || len(tables[0].Attachments) != 1 || tables[0].Attachments[0]["title"] != "[Schema mattermost2] New tables created in the past 7 days" ||
		tables[0].Attachments[0]["text"] != " - server_started\n - plugin_enabled\n" {
		t.Fatalf("event table posts: %+v", tables)
	}
	if len(stitch) != 1 || !strings.Contains(stitch[0].Text, "- extraction of `5` failed at "+recent+": tap crashed") {
		t.Fatalf("monitoring posts: %+v", stitch)
	}
}
