package dags

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// xcomRows is an XComSource over a fixed set of rows (the store's own
// query is tested in the store's conformance suite).
type xcomRows []XComValue

func (rows xcomRows) PullXCom(q XComQuery) ([]XComValue, error) {
	var out []XComValue
	for _, x := range rows {
		if (len(q.TaskIDs) == 0 || slices.Contains(q.TaskIDs, x.TaskID)) && (q.IncludePrior || x.RunID == q.RunID) &&
			(q.MapIndexes == nil || slices.Contains(q.MapIndexes, x.MapIndex)) && (q.Key == "" || q.Key == "return_value") {
			out = append(out, x)
		}
	}
	return out, nil
}

func TestXComPull(t *testing.T) {
	d := templateDAG(t)
	rc := scheduledContext(d)
	rc.Now = time.Date(2024, 1, 9, 12, 0, 0, 0, time.UTC)
	rc.XCom = xcomRows{
		{TaskID: "check", MapIndex: -1, RunID: rc.RunID, Value: json.RawMessage(`"{\"new_tables\": [\"a\", \"b\"]}"`)},
		{TaskID: "count", MapIndex: -1, RunID: rc.RunID, Value: json.RawMessage(`7`)},
		{TaskID: "shard", MapIndex: 0, RunID: rc.RunID, Value: json.RawMessage(`"s0"`)},
		{TaskID: "shard", MapIndex: 1, RunID: rc.RunID, Value: json.RawMessage(`"s1"`)},
		{TaskID: "count", MapIndex: -1, RunID: "older", Value: json.RawMessage(`3`)},
		{TaskID: "print_task", MapIndex: -1, RunID: rc.RunID, Value: json.RawMessage(`"mine"`)},
	}
	r := NewRenderer(d.Task("print_task"), rc, nil)
	for src, want := range map[string]string{
		`{{ ti.xcom_pull(task_ids='count') }}`:                                         "7",
		`{{ ti.xcom_pull('count') + 1 }}`:                                              "8",
		`{{ task_instance.xcom_pull(task_ids="count", key="return_value") }}`:          "7",
		`{{ (ti.xcom_pull(task_ids='check') | fromjson).new_tables | join(',') }}`:     "a,b",
		`{{ (ti.xcom_pull(task_ids='check') | fromjson).new_tables | length > 0 }}`:    "True",
		`{{ ti.xcom_pull(task_ids=['count', 'shard']) | length }}`:                     "3",
		`{{ ti.xcom_pull(task_ids='shard') | join(' ') }}`:                             "s0 s1",
		`{{ ti.xcom_pull(task_ids='shard', map_indexes=1) }}`:                          "s1",
		`{{ ti.xcom_pull(task_ids='shard', map_indexes=[1, 0]) | join(' ') }}`:         "s1 s0",
		`{{ ti.xcom_pull(task_ids='missing') is none }}`:                               "True",
		`{{ ti.xcom_pull(task_ids='missing', default='none yet') }}`:                   "none yet",
		`{{ ti.xcom_pull(task_ids='count', include_prior_dates=True) }}`:               "7",
		`{{ ti.xcom_pull(task_ids=['count'], include_prior_dates=True) | join(',') }}`: "7,3",
		`{{ ti.xcom_pull() }}`: "mine",
	} {
		got, err := r.RenderString(src)
		if err != nil || got != want {
			t.Errorf("%s = %q, %v; want %q", src, got, err, want)
		}
	}
	if _, err := r.RenderString(`{{ "not json" | fromjson }}`); err == nil || !strings.Contains(err.Error(), "fromjson") {
		t.Errorf("fromjson of text that is not JSON: %v", err)
	}
	// A missing key inside a list literal is an error, not an empty dict.
	if got, err := r.RenderString(`{{ [{"k": params.nope}] | tojson }}`); err == nil {
		t.Errorf("tojson of a list with a failed element gave %q", got)
	}
	// No XCom source (dags test without a store): pulls give None.
	rc.XCom = nil
	if got, err := NewRenderer(d.Task("print_task"), rc, nil).RenderString(`{{ ti.xcom_pull('count') is none }}`); got != "True" || err != nil {
		t.Errorf("without a source: %q %v", got, err)
	}
}

func TestPythonValues(t *testing.T) {
	for in, want := range map[string]bool{
		"True": true, "False": false, "true": true, "0": false, "1": true, "0.0": false, "": false, "None": false,
		"[]": false, "['a']": true, "{}": false, "{'a': 1}": true, "()": false, "''": false, "'x'": true,
		"anything": true, " False \n": false, `""`: false,
	} {
		if got := Truthy(PythonValue(in)); got != want {
			t.Errorf("truthy(%q) = %v, want %v (value %#v)", in, got, want, PythonValue(in))
		}
	}
	for in, want := range map[string][]string{
		"a":                {"a"},
		"a, b":             {"a", "b"},
		"['a', 'b']":       {"a", "b"},
		`["a"]`:            {"a"},
		"None":             {},
		"[]":               {},
		"load_eu load_us ": {"load_eu", "load_us"},
	} {
		got, err := taskIDList(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("taskIDList(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := taskIDList("[1, 2]"); err == nil {
		t.Error("a list of numbers was taken for task ids")
	}
}

func branchDAG(t *testing.T) *DAG {
	t.Helper()
	src := `branching:
  start_date: 2024-01-01
  schedule: "@daily"
  timezone: Europe/Amsterdam
  tasks:
    gate:
      operator: airflow.operators.python.ShortCircuitOperator
      condition: "{{ params.go }}"
      ignore_downstream_trigger_rules: false
    pick:
      operator: BranchOperator
      follow_task_ids: "{{ 'weekend' if logical_date.weekday() >= 5 else 'weekday' }}"
    latest:
      operator: airflow.operators.latest_only.LatestOnlyOperator
    day:
      operator: airflow.operators.weekday.BranchDayOfWeekOperator
      follow_task_ids_if_true: weekend
      follow_task_ids_if_false: [weekday]
      week_day: [Saturday, sunday]
      use_task_logical_date: true
    window:
      operator: airflow.operators.datetime.BranchDateTimeOperator
      follow_task_ids_if_true: [weekday]
      follow_task_ids_if_false: [weekend]
      target_lower: "09:00"
      target_upper: "17:00"
    weekday: {operator: EmptyOperator, dependencies: [pick, day, window]}
    weekend: {operator: EmptyOperator, dependencies: [pick, day, window]}
`
	res := Load(fstest.MapFS{"b.yaml": {Data: []byte(src)}}, Options{})
	if ps := res.Problems(); len(ps) > 0 {
		t.Fatal(ps)
	}
	return res.DAG("branching")
}

func decide(t *testing.T, d *DAG, task string, rc RunContext) (*Branch, any) {
	t.Helper()
	spec, err := Render(d.Task(task), rc, nil)
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	b, v, err := spec.(Decider).Decide()
	if err != nil {
		t.Fatalf("%s: %v", task, err)
	}
	return b, v
}

func TestBranchOperatorsDecide(t *testing.T) {
	d := branchDAG(t)
	if d.Task("gate").PushesXCom() != true || d.Task("weekday").PushesXCom() {
		t.Error("do_xcom_push defaults: the short-circuit pushes, EmptyOperator does not")
	}
	saturday := time.Date(2024, 1, 6, 23, 0, 0, 0, time.UTC) // Sunday 00:00 in Amsterdam; the logical date is in UTC, as Airflow's
	info, _ := ScheduledRunAt(d, saturday)
	rc := RunContext{DAG: d, RunID: "scheduled__x", RunType: RunTypeScheduled, LogicalDate: saturday, DataInterval: info.Interval,
		Conf: map[string]any{"go": false}, Now: saturday.Add(36 * time.Hour)}
	if b, v := decide(t, d, "gate", rc); b == nil || len(b.Follow) != 0 || b.All || v != false {
		t.Errorf("short-circuit on False: %+v %v", b, v)
	}
	rc.Conf["go"] = "yes"
	if b, _ := decide(t, d, "gate", rc); b != nil {
		t.Errorf("short-circuit on a non-empty string skipped: %+v", b)
	}
	if b, v := decide(t, d, "pick", rc); !reflect.DeepEqual(b.Follow, []string{"weekend"}) || !reflect.DeepEqual(v, []string{"weekend"}) {
		t.Errorf("branch: %+v %v", b, v)
	}
	if b, _ := decide(t, d, "day", rc); !reflect.DeepEqual(b.Follow, []string{"weekend"}) {
		t.Errorf("day of week: %+v", b)
	}
	// LatestOnly: now (Sunday noon) is within the next run's interval (Sunday 00:00 to Monday 00:00).
	if b, _ := decide(t, d, "latest", rc); b != nil {
		t.Errorf("latest run skipped: %+v", b)
	}
	rc.Now = saturday.AddDate(0, 0, 5)
	if b, _ := decide(t, d, "latest", rc); b == nil || len(b.Follow) != 0 {
		t.Errorf("an old run was taken for the latest: %+v", b)
	}
	rc.RunType = RunTypeManual
	if b, _ := decide(t, d, "latest", rc); b != nil {
		t.Errorf("a manual run skipped: %+v", b)
	}
	// 10:30 in Amsterdam is 09:30 UTC: within 09:00 to 17:00 local.
	rc.Now = time.Date(2024, 1, 8, 9, 30, 0, 0, time.UTC)
	if b, _ := decide(t, d, "window", rc); !reflect.DeepEqual(b.Follow, []string{"weekday"}) {
		t.Errorf("within the window: %+v", b)
	}
	rc.Now = time.Date(2024, 1, 8, 16, 30, 0, 0, time.UTC)
	if b, _ := decide(t, d, "window", rc); !reflect.DeepEqual(b.Follow, []string{"weekend"}) {
		t.Errorf("after the window: %+v", b)
	}
}
