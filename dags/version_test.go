package dags

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// Every DAG of the good fixtures and the examples survives the trip through
// its stored form: same hash (which covers every field that affects a run,
// the time zone and the schedule as written), same tasks and specs.
func TestVersionRoundTrip(t *testing.T) {
	var all []*DAG
	for _, dir := range []string{"testdata/good", "examples"} {
		all = append(all, Load(os.DirFS(dir), Options{Now: fixedNow}).DAGs...)
	}
	if len(all) < 15 {
		t.Fatalf("only %d DAGs loaded", len(all))
	}
	kinds := map[string]bool{}
	for _, d := range all {
		data, err := EncodeVersion(d)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeVersion(data)
		if err != nil {
			t.Fatalf("%s: %v", d.ID, err)
		}
		if got, want := hashDAG(back), hashDAG(d); got != want {
			t.Errorf("%s: hash %s after the round trip, want %s", d.ID, got, want)
		}
		if back.Location.String() != d.Location.String() || back.Schedule.Summary() != d.Schedule.Summary() {
			t.Errorf("%s: zone/schedule %s %q, want %s %q", d.ID, back.Location, back.Schedule.Summary(), d.Location, d.Schedule.Summary())
		}
		for _, task := range d.Tasks {
			got := back.Task(task.ID)
			if got == nil {
				t.Fatalf("%s: task %s lost", d.ID, task.ID)
			}
			kinds[task.Operator] = true
			if reflect.TypeOf(got.Spec) != reflect.TypeOf(task.Spec) {
				t.Errorf("%s.%s: spec %T, want %T", d.ID, task.ID, got.Spec, task.Spec)
			}
		}
		if _, ok := back.Schedule.Next(nil, Restriction{Earliest: d.StartDate}, fixedNow); ok {
			t.Errorf("%s: a restored version schedules runs", d.ID)
		}
	}
	for _, k := range []string{"BashOperator", "KubernetesPodOperator", "EmptyOperator"} {
		if !kinds[k] {
			t.Errorf("no %s among the fixtures: the round trip of its spec is untested", k)
		}
	}
}

func TestDecodeVersionRejectsJunk(t *testing.T) {
	for _, in := range []string{``, `{}`, `{"dag_id":"x"}`, `{"dag":{"dag_id":"x","tasks":[{"task_id":"a","operator":"NoSuchOperator"}]},"timezone":"UTC"}`,
		`{"dag":{"dag_id":"x","tasks":[{"task_id":"a","operator":"EmptyOperator"}]},"timezone":"Mars/Olympus"}`,
		`{"dag":{"dag_id":"x","tasks":[{"task_id":"a","operator":"EmptyOperator"}]},"timezone":"*01:00"}`} {
		if _, err := DecodeVersion([]byte(in)); err == nil || !strings.Contains(err.Error(), "decode dag version") {
			t.Errorf("DecodeVersion(%s) = %v", in, err)
		}
	}
}

func TestSensitiveNamesAndVariableKeys(t *testing.T) {
	for key, want := range map[string]bool{"snowflake_password": true, "API_KEY": true, "mattermost_webhook_token": true,
		"table": false, "bizops_channel": false} {
		if got := SensitiveName(key); got != want {
			t.Errorf("SensitiveName(%q) = %v", key, got)
		}
	}
	for key, want := range map[string]bool{"a.b-c_d": true, "": false, "<script>": false, strings.Repeat("k", 251): false} {
		if got := ValidVariableKey(key); got != want {
			t.Errorf("ValidVariableKey(%q) = %v", key, got)
		}
	}
}
