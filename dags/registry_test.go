package dags

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// minimalTask is, per operator, the fields that make a valid task.
var minimalTask = map[string]string{
	"EmptyOperator":                ``,
	"BashOperator":                 `bash_command: "echo hi"`,
	"KubernetesPodOperator":        `image: busybox`,
	"HttpOperator":                 `http_conn_id: api`,
	"MattermostOperator":           `mattermost_conn_id: mm, text: hi`,
	"SQLExecuteQueryOperator":      `conn_id: db, sql: "SELECT 1"`,
	"ExternalTaskSensor":           `external_dag_id: other`,
	"HttpSensor":                   `http_conn_id: api`,
	"SqlSensor":                    `conn_id: db, sql: "SELECT 1"`,
	"TriggerDagRunOperator":        `trigger_dag_id: other`,
	"ShortCircuitOperator":         `condition: "{{ true }}"`,
	"BranchOperator":               `follow_task_ids: a`,
	"LatestOnlyOperator":           ``,
	"BranchDayOfWeekOperator":      `follow_task_ids_if_true: a, follow_task_ids_if_false: a, week_day: Monday`,
	"BranchDateTimeOperator":       `follow_task_ids_if_true: a, follow_task_ids_if_false: a, target_upper: "12:00"`,
	"BranchSQLOperator":            `conn_id: db, sql: "SELECT 1", follow_task_ids_if_true: a, follow_task_ids_if_false: a`,
	"PythonOperator":               `python_callable: mod.f`,
	"ExternalPythonOperator":       `python_callable: mod.f, python: /usr/bin/python3`,
	"BranchPythonOperator":         `python_callable: mod.f`,
	"BranchExternalPythonOperator": `python_callable: mod.f, python: /usr/bin/python3`,
	"PythonSensor":                 `python_callable: mod.f`,
}

// candidates are values tried for a field, in order, until one loads.
var candidates = []string{`"x-value-7"`, `"{{ ds }}"`, `7`, `false`, `true`, `["a"]`, `{a: b}`, `"1h"`, `"02:00"`,
	`[{name: v, mount_path: /v}]`, `{__type__: datetime.timedelta, hours: 2}`, `[200]`, `"GET"`, `"Always"`, `"keep_pod"`,
	`[success]`, `[skipped]`, `[success, failed]`, `[queued]`, `"POST"`, `"reschedule"`, `"File"`, `[{key: k, operator: Exists}]`, `{requests: {cpu: 100m}}`, `"50Mi"`,
	`[{name: c, image: busybox}]`, `[{containerPort: 80}]`, `[{configMapRef: {name: c}}]`,
	`[{deploy_type: env, deploy_target: X, secret: s, key: k}]`, `[{name: N, field_path: status.podIP}]`,
	`[{name: v, emptyDir: {}}]`, `{runAsUser: 1000}`, `{nodeAffinity: {}}`, `{nameservers: [1.1.1.1]}`,
	`[{ip: 1.2.3.4, hostnames: [a]}]`, `"/usr/bin/python3.11"`}

// loadTaskWith loads a DAG with task t (operator op, extra fields) and
// returns the task's JSON and the problems.
func loadTaskWith(op, extra string) (string, Problems) {
	fields := minimalTask[op]
	if extra != "" {
		if fields != "" {
			fields += ", "
		}
		fields += extra
	}
	src := fmt.Sprintf("d:\n  start_date: 2024-01-01\n  schedule: null\n  tasks:\n    t: {operator: %s%s}\n    a: {operator: EmptyOperator, dependencies: [t]}\n",
		op, map[bool]string{true: ", " + fields, false: ""}[fields != ""])
	res := Load(fstest.MapFS{"d.yaml": {Data: []byte(src)}, "mod.py": {Data: []byte("def f():\n    return 1\n")}}, Options{})
	d := res.DAG("d")
	if d == nil {
		return "", res.Problems()
	}
	t := *d.Task("t")
	t.Line = 0
	b, _ := json.Marshal(t)
	return string(b), res.Problems()
}

// Every key an operator accepts either changes what the task does (its
// spec differs from the task without it) or loads with a warning that it
// is ignored: nothing is parsed and silently dropped.
func TestNoFieldIsSilentlyIgnored(t *testing.T) {
	for _, kind := range operators {
		base, probs := loadTaskWith(kind.class, "")
		if base == "" || len(probs) > 0 {
			t.Fatalf("%s: the minimal task does not load cleanly: %v", kind.class, probs)
		}
		for _, field := range kind.fields {
			if strings.Contains(minimalTask[kind.class], field+":") {
				continue // set by the minimal task: it changes the spec by construction
			}
			loaded, used, refused := false, false, true
			for _, v := range candidates {
				got, probs := loadTaskWith(kind.class, field+": "+v)
				if got == "" || probs.HasErrors() {
					// Refused with a reason that names it (a Python callable).
					refused = refused && strings.Contains(probs.Errors().Error(), field)
					continue
				}
				loaded = true
				if got != base || strings.Contains(probs.Error(), field) {
					used = true
					break
				}
			}
			switch {
			case !loaded && refused:
			case !loaded:
				t.Errorf("%s.%s: no candidate value loads; add one to the test", kind.class, field)
			case !used:
				t.Errorf("%s.%s is accepted, changes nothing and gets no warning", kind.class, field)
			}
		}
	}
}
