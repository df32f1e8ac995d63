package scheduler

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"updraft/dags"
	"updraft/executor"
	"updraft/store"
)

// instances returns a task's instances in a run as "index=state", by index.
func (h *harness) instances(r store.Run, task string) []string {
	h.t.Helper()
	tis, err := h.st.TaskInstances(h.ctx, r.DagID, r.RunID)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, ti := range tis {
		if ti.TaskID == task {
			out = append(out, fmt.Sprintf("%d=%s", ti.MapIndex, ti.State))
		}
	}
	return out
}

// started returns the rendered specs of the tries of a task, by map index.
func (h *harness) startedSpecs(task string) map[int]dags.OperatorSpec {
	out := map[int]dags.OperatorSpec{}
	h.ex.mu.Lock()
	defer h.ex.mu.Unlock()
	for _, tr := range h.ex.started {
		if tr.Key.TaskID == task {
			out[tr.Key.MapIndex] = tr.Spec
		}
	}
	return out
}

// Dynamic task mapping: a literal list, a template over a Variable and an
// upstream task's XCom expand into instances with their own map index,
// state, tries and XCom; a mapped task over a mapped task pairs index by
// index (a short-circuit in one chain skips only that chain); an empty
// list skips; a downstream task waits for every instance.
func TestDynamicTaskMapping(t *testing.T) {
	h := newHarness(t, `
m:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    literal:
      operator: BashOperator
      expand: {bash_command: ["echo a", "echo b", "echo c"]}
    schemas:
      operator: KubernetesPodOperator
      partial: {image: busybox, cmds: [sh, -c], arguments: ["check $SCHEMA"], do_xcom_push: true}
      expand: {env_vars: "{{ var.json.schemas }}"}
      map_index_template: "{{ task.env_vars.SCHEMA }}"
    gate:
      operator: ShortCircuitOperator
      partial: {condition: "{% if op_kwargs.new_tables %}{{ op_kwargs | tojson }}{% endif %}"}
      expand: {op_kwargs: schemas.output}
    report:
      operator: BashOperator
      partial: {bash_command: "echo {{ params.new_tables | join(',') }} {{ ti.xcom_pull(task_ids='schemas', map_indexes=ti.map_index).new_tables | length }}"}
      expand: {params: gate.output}
    lister: {operator: BashOperator, bash_command: "echo"}
    from_xcom:
      operator: BashOperator
      expand: {bash_command: lister.output}
    empty:
      operator: BashOperator
      expand: {bash_command: "{{ [] }}"}
    after_empty: {operator: EmptyOperator, dependencies: [empty]}
    done: {operator: EmptyOperator, dependencies: [literal, report, from_xcom]}
`, utc("2024-01-01T00:00:00Z"), succeed)
	if err := h.st.SetVariable(h.ctx, store.Variable{Key: "schemas", Value: `[{"SCHEMA": "events"}, {"SCHEMA": "quiet"}]`}); err != nil {
		t.Fatal(err)
	}
	h.ex.push = func(tr executor.Try) map[string]json.RawMessage {
		switch {
		case tr.Key.TaskID == "schemas" && tr.Key.MapIndex == 0:
			return executor.ReturnValue(json.RawMessage(`{"new_tables": ["pages", "clicks"]}`))
		case tr.Key.TaskID == "schemas":
			return executor.ReturnValue(json.RawMessage(`{"new_tables": []}`))
		case tr.Key.TaskID == "lister":
			return executor.ReturnValue(json.RawMessage(`"[\"echo x\", \"echo y\"]"`))
		}
		return nil
	}
	r, _ := h.s.Trigger(h.ctx, "m", TriggerOptions{})
	h.settle()
	for task, want := range map[string]string{
		"literal":     "0=success 1=success 2=success",
		"schemas":     "0=success 1=success",
		"gate":        "0=success 1=success",
		"report":      "0=success 1=skipped",
		"from_xcom":   "0=success 1=success",
		"empty":       "-1=skipped",
		"after_empty": "-1=skipped",
		"done":        "-1=skipped", // one report instance was skipped: all_success skips, as in Airflow
	} {
		if got := strings.Join(h.instances(r, task), " "); got != want {
			t.Errorf("%s: %s, want %s (%v)", task, got, want, h.reasons(r, task, 0))
		}
	}
	if got := h.startedSpecs("literal"); got[2].(dags.BashSpec).Command != "echo c" {
		t.Errorf("literal[2] ran %+v", got[2])
	}
	pods := h.startedSpecs("schemas")
	if pods[1].(dags.PodSpec).EnvVars[0].Value != "quiet" || pods[1].(dags.PodSpec).Image != "busybox" {
		t.Errorf("schemas[1] ran %+v", pods[1])
	}
	if got := h.startedSpecs("report"); len(got) != 1 || got[0].(dags.BashSpec).Command != "echo pages,clicks 2" {
		t.Errorf("report ran %+v", got)
	}
	if got := h.startedSpecs("from_xcom"); got[1].(dags.BashSpec).Command != "echo y" {
		t.Errorf("from_xcom ran %+v", got)
	}
	labels := map[int]string{}
	tis, _ := h.st.TaskInstances(h.ctx, "m", r.RunID)
	for _, ti := range tis {
		if ti.TaskID == "schemas" {
			labels[ti.MapIndex] = ti.Label
		}
	}
	if labels[0] != "events" || labels[1] != "quiet" {
		t.Errorf("map_index_template labels: %v", labels)
	}
	// Each instance has its own tries and XCom.
	one := 1
	xs, _ := h.st.XComs(h.ctx, store.XComFilter{DagID: "m", RunID: r.RunID, TaskIDs: []string{"schemas"}, MapIndex: &one})
	if len(xs) != 1 || string(xs[0].Value) != `{"new_tables": []}` {
		t.Errorf("XCom of schemas[1]: %+v", xs)
	}
	tries, _ := h.st.Tries(h.ctx, store.TIKey{DagID: "m", RunID: r.RunID, TaskID: "literal", MapIndex: 1})
	if len(tries) != 1 {
		t.Errorf("tries of literal[1]: %+v", tries)
	}

	// Clearing one instance runs that instance again; clearing the task
	// expands it again from its current input.
	if _, err := h.s.Clear(h.ctx, "m", r.RunID, []string{"literal"}, ClearOptions{MapIndexes: []int{1}}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := strings.Join(h.instances(r, "literal"), " "); got != "0=success 1=success 2=success" {
		t.Errorf("after clearing literal[1]: %s", got)
	}
	tries, _ = h.st.Tries(h.ctx, store.TIKey{DagID: "m", RunID: r.RunID, TaskID: "literal", MapIndex: 1})
	tries0, _ := h.st.Tries(h.ctx, store.TIKey{DagID: "m", RunID: r.RunID, TaskID: "literal", MapIndex: 0})
	if len(tries) != 2 || len(tries0) != 1 {
		t.Errorf("after clearing literal[1]: %d tries, literal[0] %d", len(tries), len(tries0))
	}
	if err := h.st.SetVariable(h.ctx, store.Variable{Key: "schemas", Value: `[{"SCHEMA": "a"}, {"SCHEMA": "b"}, {"SCHEMA": "c"}]`}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.s.Clear(h.ctx, "m", r.RunID, []string{"schemas"}, ClearOptions{Downstream: true}); err != nil {
		t.Fatal(err)
	}
	h.settle()
	if got := strings.Join(h.instances(r, "schemas"), " "); got != "0=success 1=success 2=success" {
		t.Errorf("schemas after the variable grew and a clear: %s", got)
	}
	if got := h.instances(r, "gate"); len(got) != 3 {
		t.Errorf("gate after re-expansion: %v", got)
	}
}

// A list that cannot be mapped over fails the task with a reason; over the
// limit too.
func TestMappingOverWhatIsNotAList(t *testing.T) {
	h := newHarness(t, `
m:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    bad: {operator: BashOperator, expand: {bash_command: "{{ 7 }}"}}
    huge: {operator: BashOperator, expand: {bash_command: "{{ range(2000) | list }}"}}
`, utc("2024-01-01T00:00:00Z"), succeed)
	r, _ := h.s.Trigger(h.ctx, "m", TriggerOptions{})
	h.settle()
	if got := h.instances(r, "bad"); len(got) != 1 || got[0] != "-1=failed" {
		t.Errorf("bad: %v", got)
	}
	if got := h.instances(r, "huge"); len(got) != 1 || got[0] != "-1=failed" {
		t.Errorf("huge: %v", got)
	}
	alerts, _ := h.st.Alerts(h.ctx, 10)
	var details []string
	for _, a := range alerts {
		details = append(details, a.Detail)
	}
	sort.Strings(details)
	if len(details) < 2 || !strings.Contains(strings.Join(details, "\n"), "is not a list") || !strings.Contains(strings.Join(details, "\n"), "over the limit of 1024") {
		t.Errorf("alerts: %v", details)
	}
}

func (h *harness) reasons(r store.Run, task string, mapIndex int) []string {
	tries, _ := h.st.Tries(h.ctx, store.TIKey{DagID: r.DagID, RunID: r.RunID, TaskID: task, MapIndex: mapIndex})
	var out []string
	for _, t := range tries {
		out = append(out, t.Reason)
	}
	return out
}

// Each mapped instance retries on its own, with the task's retries and
// delay.
func TestMappedInstancesRetryAlone(t *testing.T) {
	failOnce := func(k executor.TryKey) (executor.State, int) {
		if k.MapIndex == 1 && k.TryNumber == 1 {
			return executor.Failed, 1
		}
		return executor.Succeeded, 0
	}
	h := newHarness(t, `
m:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    fan:
      operator: BashOperator
      retries: 1
      retry_delay: {__type__: datetime.timedelta, minutes: 5}
      max_active_tis_per_dag: 2
      expand: {bash_command: ["echo a", "echo b", "echo c"]}
`, utc("2024-01-01T00:00:00Z"), failOnce)
	r, _ := h.s.Trigger(h.ctx, "m", TriggerOptions{})
	h.settle()
	if got := strings.Join(h.instances(r, "fan"), " "); got != "0=success 1=up_for_retry 2=success" {
		t.Fatalf("after the first tries: %s", got)
	}
	h.at(utc("2024-01-01T00:06:00Z"))
	if got := strings.Join(h.instances(r, "fan"), " "); got != "0=success 1=success 2=success" {
		t.Fatalf("after the retry: %s", got)
	}
	if n := len(h.reasons(r, "fan", 1)); n != 2 {
		t.Errorf("instance 1 has %d tries, want 2", n)
	}
	if n := len(h.reasons(r, "fan", 0)); n != 1 {
		t.Errorf("instance 0 has %d tries, want 1", n)
	}
}
