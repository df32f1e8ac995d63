package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A consumer DAG's external-task sensor waits for the producer's task of
// the same logical date, through a real server and store; a sensor that
// times out fails at once, its retries unused, as in Airflow.
func TestExternalTaskSensorAcrossDAGs(t *testing.T) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	marker := filepath.Join(dir, "loaded")
	writeFile(t, filepath.Join(dagDir, "producer.yaml"), `producer:
  start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  is_paused_upon_creation: false
  tasks:
    - {task_id: load, operator: BashOperator, bash_command: "sleep 3; touch `+marker+`"}
`)
	writeFile(t, filepath.Join(dagDir, "consumer.yaml"), `consumer:
  start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  is_paused_upon_creation: false
  tasks:
    - task_id: wait_for_load
      operator: airflow.sensors.external_task.ExternalTaskSensor
      external_dag_id: producer
      external_task_id: load
      poke_interval: 1
      timeout: 120
    - {task_id: report, operator: BashOperator, bash_command: "test -f `+marker+`", dependencies: [wait_for_load]}
orphan:
  start_date: 2024-01-01
  schedule: "@daily"
  catchup: false
  is_paused_upon_creation: false
  tasks:
    - task_id: wait_for_nobody
      operator: ExternalTaskSensor
      external_dag_id: nobody
      poke_interval: 1
      timeout: 2
      retries: 3
      retry_delay: 0
`)
	db := "sqlite:" + filepath.Join(dir, "u.db")
	startInProcess(t, map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": db})
	waitFor(t, "the consumer's run to succeed", 60*time.Second, func() bool {
		return query(t, dir, `SELECT state FROM dag_runs WHERE dag_id = 'consumer'`) == "success"
	})
	// The sensor ended after the producer's task, which the report checked.
	if got := query(t, dir, `SELECT CASE WHEN s.end_date >= l.end_date THEN 'after' ELSE 'before' END
		FROM task_instances s, task_instances l WHERE s.dag_id = 'consumer' AND s.task_id = 'wait_for_load' AND l.dag_id = 'producer' AND l.task_id = 'load'
		AND s.run_id = l.run_id`); got != "after" {
		t.Errorf("the sensor ended %q the producer's task (same logical date, same run id)", got)
	}
	waitFor(t, "the orphan's sensor to time out", 60*time.Second, func() bool {
		return query(t, dir, `SELECT state FROM task_instances WHERE dag_id = 'orphan'`) == "failed"
	})
	if got := query(t, dir, `SELECT COUNT(*) || ' ' || MAX(reason) FROM task_tries WHERE dag_id = 'orphan'`); !strings.HasPrefix(got, "1 sensor timeout") {
		t.Errorf("orphan tries: %q, want one try that timed out", got)
	}
}

// A controller DAG starts another DAG's run with a conf and waits for it;
// a second task starts the same run id again with reset_dag_run, which
// clears it and runs it once more.
func TestTriggerDagRunAcrossDAGs(t *testing.T) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	record := filepath.Join(dir, "record")
	writeFile(t, filepath.Join(dagDir, "target.yaml"), `target:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: work, operator: BashOperator, bash_command: "sleep 1; echo '{{ dag_run.conf.table }} {{ run_id }}' >> `+record+`"}
`)
	writeFile(t, filepath.Join(dagDir, "controller.yaml"), `controller:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - task_id: start
      operator: airflow.operators.trigger_dagrun.TriggerDagRunOperator
      trigger_dag_id: target
      trigger_run_id: "from_{{ run_id }}"
      conf: {table: "orders_{{ ds_nodash }}"}
      wait_for_completion: true
      poke_interval: 1
    - task_id: again
      operator: TriggerDagRunOperator
      trigger_dag_id: target
      trigger_run_id: "from_{{ run_id }}"
      conf: {table: ignored}
      reset_dag_run: true
      wait_for_completion: true
      poke_interval: 1
      dependencies: [start]
`)
	db := "sqlite:" + filepath.Join(dir, "u.db")
	url, _ := startInProcess(t, map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": db})
	if status, body := adminPost(t, url+"/api/v1/dags/controller/dagRuns", `{"dag_run_id": "c1", "logical_date": "2024-05-01T00:00:00Z"}`); status != 200 {
		t.Fatalf("trigger: %d %s", status, body)
	}
	waitFor(t, "the controller's run to succeed", 60*time.Second, func() bool {
		return query(t, dir, `SELECT state FROM dag_runs WHERE dag_id = 'controller'`) == "success"
	})
	b, _ := os.ReadFile(record)
	if got := strings.TrimSpace(string(b)); got != "orders_20240501 from_c1\norders_20240501 from_c1" {
		t.Errorf("the target ran with:\n%s\nwant its conf twice (the reset keeps the run and its conf)", got)
	}
	if got := query(t, dir, `SELECT run_type || ' ' || state || ' ' || conf FROM dag_runs WHERE dag_id = 'target'`); got != `manual success {"table":"orders_20240501"}` {
		t.Errorf("target run: %q", got)
	}
	if got := query(t, dir, `SELECT actor FROM audit_log WHERE action = 'trigger' AND dag_id = 'target'`); got != "task controller.start" {
		t.Errorf("audit actor: %q", got)
	}
}
