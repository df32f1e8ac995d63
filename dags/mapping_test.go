package dags

import (
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func mappedDAG(t *testing.T, tasks string) (*DAG, Problems) {
	t.Helper()
	src := "m:\n  start_date: 2024-01-01\n  schedule: null\n  tasks:\n" + tasks
	res := Load(fstest.MapFS{"m.yaml": {Data: []byte(src)}}, Options{})
	return res.DAG("m"), res.Problems()
}

func TestMappedTasksLoad(t *testing.T) {
	d, probs := mappedDAG(t, `
    list: {operator: BashOperator, bash_command: "echo '[1, 2]'"}
    literal:
      operator: BashOperator
      partial: {env: {MODE: full}}
      expand: {bash_command: ["echo a", "echo b"]}
    pods:
      operator: KubernetesPodOperator
      partial: {image: busybox, cmds: [sh, -c], arguments: ["echo $SCHEMA"]}
      expand: {env_vars: "{{ var.json.schemas }}"}
      map_index_template: "{{ task.env_vars.SCHEMA }}"
    zipped:
      operator: BashOperator
      partial: {bash_command: "echo $X"}
      expand: {env: list.output}
    kwargs:
      operator: BashOperator
      expand_kwargs: [{bash_command: "echo 1"}, {bash_command: "echo 2", env: {A: b}}]
`)
	if probs.HasErrors() {
		t.Fatal(probs)
	}
	lit := d.Task("literal")
	if !lit.Mapped() || len(lit.Expand.Fields) != 1 || !reflect.DeepEqual(lit.Expand.Fields[0].Source.Literal, []any{"echo a", "echo b"}) {
		t.Fatalf("literal: %+v", lit.Expand)
	}
	if d.Task("pods").Expand.Fields[0].Source.Template != "{{ var.json.schemas }}" || d.Task("pods").Expand.MapIndexTemplate == "" {
		t.Fatalf("pods: %+v", d.Task("pods").Expand)
	}
	z := d.Task("zipped")
	if z.Expand.Fields[0].Source.Task != "list" || !reflect.DeepEqual(z.Upstream, []string{"list"}) || !z.Expand.Zipped("list") {
		t.Fatalf("zipped: %+v upstream %v", z.Expand, z.Upstream)
	}
	// Each instance decodes with its value over the shared fields.
	spec, err := lit.ExpandedSpec(d, map[string]any{"bash_command": "echo b"})
	if err != nil || spec.(BashSpec).Command != "echo b" || spec.(BashSpec).Env["MODE"] != "full" {
		t.Fatalf("instance spec: %+v %v", spec, err)
	}
	spec, err = d.Task("pods").ExpandedSpec(d, map[string]any{"env_vars": map[string]any{"SCHEMA": "events"}})
	if err != nil || spec.(PodSpec).EnvVars[0].Value != "events" || spec.(PodSpec).Image != "busybox" {
		t.Fatalf("pod instance: %+v %v", spec, err)
	}
	if _, err := d.Task("pods").ExpandedSpec(d, map[string]any{"env_vars": "not a mapping"}); err == nil || !strings.Contains(err.Error(), "env_vars") {
		t.Fatalf("a value of the wrong type: %v", err)
	}
	inputs, err := d.Task("kwargs").Expand.MapInputs([][]any{d.Task("kwargs").Expand.Kwargs.Literal})
	if err != nil || len(inputs) != 2 || inputs[1]["bash_command"] != "echo 2" {
		t.Fatalf("expand_kwargs inputs: %v %v", inputs, err)
	}
	cross := &Expand{Fields: []ExpandField{{Name: "a"}, {Name: "b"}}}
	got, _ := cross.MapInputs([][]any{{1, 2}, {"x", "y"}})
	if len(got) != 4 || got[1]["a"] != 1 || got[1]["b"] != "y" || got[2]["a"] != 2 {
		t.Fatalf("cross product: %v", got)
	}

	for src, want := range map[string]string{
		"    x: {operator: BashOperator, expand: {bash_command: 7}}\n":                                        "map over a list",
		"    x: {operator: BashOperator, expand: {bash_command: [1, [2]]}}\n":                                 "mapped instance 1",
		"    x: {operator: BashOperator, partial: {bash_command: a}, expand: {bash_command: [b]}}\n":          "both expanded and set",
		"    x: {operator: BashOperator, partial: {bash_command: a}}\n":                                       "partial needs expand",
		"    x: {operator: BashOperator, bash_command: a, expand: {task_id: [b]}}\n":                          "not a field of BashOperator",
		"    x: {operator: BashOperator, expand: {bash_command: ['{{ ds']}}}\n":                               "",
		"    x: {operator: BashOperator, expand: {bash_command: a}, expand_kwargs: [{}]}\n":                   "not both",
		"    x: {operator: BashOperator, expand_kwargs: [{bash_command: a}, 3]}\n":                            "each item is a mapping",
		"    x: {operator: BashOperator, bash_command: a, map_index_template: '{{ x', expand: {env: [{}]}}\n": "map_index_template",
	} {
		_, probs := mappedDAG(t, src)
		if !probs.HasErrors() || !strings.Contains(probs.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", src, probs, want)
		}
	}
}

func TestListOf(t *testing.T) {
	for in, want := range map[string]int{`["a", "b"]`: 2, `[]`: 0, `{"a": 1, "b": 2}`: 2, "['x']": 1} {
		l, err := ListOf(in)
		if err != nil || len(l) != want {
			t.Errorf("ListOf(%s) = %v %v", in, l, err)
		}
	}
	for _, in := range []any{"7", nil, int64(3), "text"} {
		if _, err := ListOf(in); err == nil {
			t.Errorf("ListOf(%v) took it for a list", in)
		}
	}
}
