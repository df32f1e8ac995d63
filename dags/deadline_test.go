package dags

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// A DAG's deadline in Airflow's words (and dag-factory's forms), a task's
// sla; mistakes are errors at their line.
func TestDeadlinesAndSLAs(t *testing.T) {
	res := Load(fstest.MapFS{"d.yaml": {Data: []byte(`
reports:
  start_date: 2024-01-01
  schedule: "@daily"
  deadline:
    - {reference: DeadlineReference.DAGRUN_LOGICAL_DATE, interval: {__type__: datetime.timedelta, hours: 8}, channel: bizops}
    - {reference: dagrun_queued_at, interval: 3600}
    - {reference: fixed_datetime, datetime: 2024-06-01T00:00:00Z, interval: 0}
  default_args: {sla: {__type__: datetime.timedelta, hours: 2}}
  tasks:
    - {task_id: a, operator: EmptyOperator}
    - {task_id: b, operator: EmptyOperator, sla_secs: 60, dependencies: [a]}
single:
  start_date: 2024-01-01
  deadline: {reference: dagrun_start, interval: "30 minutes"}
  tasks: [{task_id: a, operator: EmptyOperator}]
`)}}, Options{})
	if errs := res.Problems().Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	d := res.DAG("reports")
	if len(d.Deadlines) != 3 || d.Deadlines[0].Reference != DeadlineLogicalDate || d.Deadlines[0].Interval != 8*time.Hour ||
		d.Deadlines[0].Channel != "bizops" || d.Deadlines[1].Interval != time.Hour || d.Deadlines[2].At == nil {
		t.Fatalf("deadlines: %+v", d.Deadlines)
	}
	logical := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	if at, ok := d.Deadlines[0].For(logical, logical, nil); !ok || !at.Equal(logical.Add(8*time.Hour)) {
		t.Errorf("deadline 0 for a run: %v %v", at, ok)
	}
	if d.Task("a").SLA != 2*time.Hour || d.Task("b").SLA != time.Minute {
		t.Errorf("slas: %v %v", d.Task("a").SLA, d.Task("b").SLA)
	}
	s := res.DAG("single").Deadlines[0]
	if _, ok := s.For(logical, logical, nil); ok || s.Describe() != "start + 30m0s" {
		t.Errorf("a start deadline before the start: %v %q", ok, s.Describe())
	}

	bad := Load(fstest.MapFS{"b.yaml": {Data: []byte(`
bad:
  start_date: 2024-01-01
  deadline:
    - {reference: whenever, interval: 60}
    - {reference: dagrun_queued_at}
    - {reference: fixed_datetime, interval: 0}
    - {reference: dagrun_queued_at, interval: 60, notify: x}
    - {reference: dagrun_queued_at, interval: 60, callback: a.b, callback_kwargs: {x: 1}}
  tasks: [{task_id: a, operator: EmptyOperator, sla: soon}]
`)}}, Options{})
	got := bad.Problems().Error()
	for _, want := range []string{`b.yaml:5:19: dag "bad": deadline.reference "whenever"`, "b.yaml:6:7", "interval is required",
		"needs datetime", `unknown key "notify"`, "sla: expected a duration", "deadline.callback is not run", "deadline.callback_kwargs is not run"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}
