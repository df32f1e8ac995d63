package dags

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// The dag-factory corpus (../shared/corpus/dag-factory) holds real files
// from dag-factory's repository with the outcome each must get (its
// MANIFEST.md). They are not ours, so they are read in place: the Makefile
// passes the path in UPDRAFT_DAG_FACTORY_CORPUS.
func corpus(t *testing.T) fs.FS {
	t.Helper()
	dir := os.Getenv("UPDRAFT_DAG_FACTORY_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "shared", "corpus", "dag-factory")
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST.md")); err != nil {
		t.Fatalf("dag-factory corpus not found at %s (set UPDRAFT_DAG_FACTORY_CORPUS): %v", dir, err)
	}
	return os.DirFS(dir)
}

var corpusGroups = map[string][]string{
	"plain": {
		"dev/dags/example_dag_factory.yml", "dev/dags/example_dag_factory_default_config_dict.yml",
		"dev/dags/example_dag_factory_tasks_taskgroups_as_dict_format.yml",
		"dev/dags/airflow2/example_dag_factory_default_args.yml", "dev/dags/airflow2/example_dag_factory_default_config.yml",
		"dev/dags/airflow2/example_task_group.yml", "dev/dags/airflow2/example_jinja2_template_dag.yml",
		"tests/fixtures/dag_factory_schedule_interval.yml", "tests/fixtures/dag_factory_no_or_none_string_schedule.yml",
		"tests/fixtures_without_default_yaml/dag_factory_timezone.yml", "tests/fixtures_without_default_yaml/dag_md_docs.yml",
		"tests/fixtures/dag_factory_variables_as_arguments.yml",
	},
	"kpo":       {"dev/dags/kpo.yml"},
	"http":      {"dev/dags/example_http_operator_task.yml", "dev/dags/example_simple_http_operator_task.yml", "tests/fixtures/dag_factory_http_operator_task.yml", "tests/fixtures/dag_factory_simple_http_operator_task.yml"},
	"timetable": {"dev/dags/example_timetable_schedule.yml"},
	"schedule":  {"tests/schedule/cron.yml", "tests/schedule/timedelta.yml", "tests/schedule/relativedelta.yml", "tests/schedule/timetable.yml"},
	"callbacks": {"dev/dags/example_callbacks.yml", "dev/dags/airflow2/example_dag_factory_multiple_config.yml"},
	"defaults":  {"dev/dags/defaults.yml", "tests/fixtures/defaults.yml"},
	"python": {
		"dev/dags/airflow2/example_taskflow.yml", "dev/dags/airflow2/example_dynamic_task_mapping.yml", "dev/dags/airflow2/example_params.yml",
		"dev/dags/airflow2/example_custom_py_object_dag.yml", "dev/dags/airflow2/example_user_defined_macros.yml",
		"dev/dags/airflow2/example_customize_operator.yml", "dev/dags/comparison/example_hackernews_dagfactory.yml",
		"dev/dags/comparison/example_pypi_stats_dagfactory.yml", "dev/dags/example_map_index_template.yml",
		"dev/dags/example_multiple_outputs_taskflow.yml", "dev/dags/example_object_storage.yml",
		"tests/fixtures/dag_factory.yml", "tests/fixtures/dag_factory_task_group.yml", "tests/fixtures_without_default_yaml/dag_factory.yml",
	},
	"datasets": {
		"dev/dags/asset_triggered_dags.yml", "dev/dags/datasets/example_config_datasets.yml", "dev/dags/datasets/example_dag_datasets.yml",
		"dev/dags/datasets/example_dag_datasets_outlet_inlet.yml", "dev/dags/datasets/example_dataset_condition_string.yml",
		"dev/dags/datasets/example_dataset_or_timetable_schedule.yml", "dev/dags/datasets/example_dataset_yaml_syntax.yml",
	},
	"dataset_schedules": {"tests/schedule/and_asset.yml", "tests/schedule/asset_with_watcher.yml", "tests/schedule/dataset_as_list.yml",
		"tests/schedule/dataset_object_as_list.yml", "tests/schedule/dataset_timetable.yml", "tests/schedule/list_asset.yml",
		"tests/schedule/nested_asset.yml", "tests/schedule/nested_dataset.yml", "tests/schedule/or_asset.yml"},
	"sensors": {"dev/dags/external_task_sensor.yml"},
	"invalid": {"dev/dags/invalid.yaml", "tests/fixtures/invalid_yaml.yml", "tests/fixtures_without_default_yaml/invalid_dag_factory.yml",
		"tests/fixtures/dag_factory_kubernetes_pod_operator.yml", "tests/fixtures/dag_factory_kubernetes_pod_operator_lt_2_7.yml"},
}

func loadCorpusFile(t *testing.T, fsys fs.FS, name string) *Result {
	t.Helper()
	return LoadFiles(fsys, []string{name}, Options{Now: fixedNow})
}

// Every YAML file of the corpus is held to an outcome: a file added to the
// corpus without one fails here.
func TestCorpusEveryFileHasAnOutcome(t *testing.T) {
	fsys := corpus(t)
	grouped := map[string]bool{}
	for _, files := range corpusGroups {
		for _, f := range files {
			grouped[f] = true
		}
	}
	n := 0
	_ = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			n++
			if !grouped[p] {
				t.Errorf("corpus file %s has no expected outcome", p)
			}
		}
		return nil
	})
	if n < 60 {
		t.Errorf("corpus has %d YAML files, want the 62 of the manifest", n)
	}
}

func TestCorpusPlainDAGsLoadClean(t *testing.T) {
	fsys := corpus(t)
	for _, name := range corpusGroups["plain"] {
		res := loadCorpusFile(t, fsys, name)
		if errs := res.Problems().Errors(); len(errs) > 0 || len(res.DAGs) == 0 {
			t.Errorf("%s: %d DAGs, errors:\n%v", name, len(res.DAGs), errs)
		}
	}
	// The template DAG pattern: tasks in the default block merge by task_id.
	res := loadCorpusFile(t, fsys, "dev/dags/airflow2/example_dag_factory_default_config.yml")
	ml := mustDAG(t, res, "machine_learning")
	eq(t, "machine_learning tasks", strings.Join(taskIDs(ml), ","), "extract,transform,load")
	eq(t, "inherited operator", ml.Task("load").Operator, "BashOperator")
	eq(t, "own command", ml.Task("load").Spec.(BashSpec).Command, "echo machine_larning")
	// variables_as_arguments reads the Variable when the task runs.
	res = loadCorpusFile(t, fsys, "tests/fixtures/dag_factory_variables_as_arguments.yml")
	eq(t, "variables_as_arguments", mustDAG(t, res, "example_dag").Task("task_3").Spec.(BashSpec).Command, "{{ var.value.var1 }}")
	// Task groups prefix their tasks' ids, as in Airflow.
	res = loadCorpusFile(t, fsys, "dev/dags/airflow2/example_task_group.yml")
	eq(t, "nested group task id", strings.Join(taskIDs(mustDAG(t, res, "example_task_group")), ","),
		"task_1,task_group_1.task_2,task_group_1.task_group_2.task_4")
	// dag-factory's timezone key localises the start date.
	res = loadCorpusFile(t, fsys, "tests/fixtures_without_default_yaml/dag_factory_timezone.yml")
	eq(t, "Paris start", mustDAG(t, res, "timezone_dag_level").StartDate.Format(time.RFC3339), "2024-06-14T22:00:00Z")
	eq(t, "New York start", mustDAG(t, res, "timezone_default_args").StartDate.Format(time.RFC3339), "2024-07-01T04:00:00Z")
	// " none " is no schedule; no schedule at all is Airflow 2's daily timedelta.
	res = loadCorpusFile(t, fsys, "tests/fixtures/dag_factory_no_or_none_string_schedule.yml")
	eq(t, "none string", mustDAG(t, res, "example_dag_none_string_schedule").Schedule.Summary(), "None")
	eq(t, "omitted", mustDAG(t, res, "example_dag_no_schedule").Schedule.Summary(), "1 day, 0:00:00")
}

func TestCorpusKubernetesPodOperator(t *testing.T) {
	res := loadCorpusFile(t, corpus(t), "dev/dags/kpo.yml")
	d := mustDAG(t, res, "kubernetes_pod_dag")
	pod := d.Task("hello-world-pod").Spec.(PodSpec)
	eq(t, "image", pod.Image, "python:3.12-slim")
	eq(t, "cmds", strings.Join(pod.Cmds, " "), "python -c")
	eq(t, "arguments", strings.Join(pod.Arguments, " "), "print('Hello from KubernetesPodOperator!')")
	eq(t, "namespace", pod.Namespace, "default")
	eq(t, "name", pod.Name, "example-pod-task")
	eq(t, "cpu limit", pod.Resources.Limits.Cpu().String(), "1")
	eq(t, "memory limit", pod.Resources.Limits.Memory().String(), "1Gi")
	eq(t, "cpu request", pod.Resources.Requests.Cpu().String(), "500m")
	eq(t, "memory request", pod.Resources.Requests.Memory().String(), "512Mi")
	eq(t, "schedule_interval", d.Schedule.Summary(), "@daily")
}

// The HTTP examples load: a mapping sent as JSON when the headers say
// so, else as a form.
func TestCorpusHTTP(t *testing.T) {
	fsys := corpus(t)
	for _, name := range corpusGroups["http"] {
		res := loadCorpusFile(t, fsys, name)
		if errs := res.Problems().Errors(); len(errs) != 0 || len(res.DAGs) != 1 {
			t.Fatalf("%s: %v", name, errs)
		}
		d := res.DAGs[0]
		js := d.Task("send_request_json").Spec.(HttpSpec)
		eq(t, name+" conn", js.ConnID, "example_host")
		eq(t, name+" method", js.Method, "POST")
		eq(t, name+" endpoint", js.Endpoint, "/run_test")
		eq(t, name+" json body", js.Body, `{"data":"fake_data","format":"json"}`)
		eq(t, name+" log_response", js.LogResponse, true)
		plain := d.Task("send_request_plain_text").Spec.(HttpSpec)
		eq(t, name+" form", plain.Form["test"], "plain_text")
		eq(t, name+" content type", plain.Headers["Content-Type"], "text/plain")
	}
}

func TestCorpusSchedules(t *testing.T) {
	fsys := corpus(t)
	res := loadCorpusFile(t, fsys, "dev/dags/example_timetable_schedule.yml")
	tt := mustDAG(t, res, "timetable_schedule").Schedule.(*CronTimetable)
	eq(t, "CronTriggerTimetable", tt.Trigger, true)
	eq(t, "cron", tt.Expr, "0 1 * * 3")

	read := func(name string) []byte {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	cron, err := ParseScheduleYAML(read("tests/schedule/cron.yml"), time.UTC)
	if c, ok := cron.(*CronTimetable); err != nil || !ok || c.Expr != "@daily" || c.Trigger {
		t.Errorf("cron.yml: %#v, %v", cron, err)
	}
	delta, err := ParseScheduleYAML(read("tests/schedule/timedelta.yml"), time.UTC)
	if d, ok := delta.(DeltaTimetable); err != nil || !ok || d.Delta != 30*time.Second {
		t.Errorf("timedelta.yml: %#v, %v", delta, err)
	}
	trig, err := ParseScheduleYAML(read("tests/schedule/timetable.yml"), time.Local)
	if c, ok := trig.(*CronTimetable); err != nil || !ok || !c.Trigger || c.Expr != "* * * * *" || c.Location != time.UTC {
		t.Errorf("timetable.yml: %#v, %v", trig, err)
	}
	// relativedelta(hour=18) sets the hour rather than advancing time: it is
	// not an interval, and the error says which cron to write instead.
	if _, err := ParseScheduleYAML(read("tests/schedule/relativedelta.yml"), time.UTC); err == nil || !strings.Contains(err.Error(), `"0 18 * * *"`) {
		t.Errorf("relativedelta.yml: %v", err)
	}
	for _, name := range corpusGroups["dataset_schedules"] {
		if _, err := ParseScheduleYAML(read(name), time.UTC); err == nil || !strings.Contains(err.Error(), "data-aware scheduling") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestCorpusCallbacks(t *testing.T) {
	fsys := corpus(t)
	res := loadCorpusFile(t, fsys, "dev/dags/example_callbacks.yml")
	d := mustDAG(t, res, "callbacks")
	cb := d.Task("task_1").Callbacks["on_failure_callback"]
	eq(t, "slack notifier maps to webhook alerts", cb.Notifier, "slack")
	eq(t, "channel", cb.Args["channel"], "#channel")
	eq(t, "group task id", d.Task("task_group_1.task_3").Upstream[0], "task_1")
	warned := map[int]bool{}
	for _, p := range res.Problems() {
		if p.Severity == SeverityWarning && strings.Contains(p.Msg, "Python function") {
			warned[p.Line] = true
		}
	}
	for _, line := range []int{6, 19, 22, 28, 33} { // Python callbacks are reported, not ignored silently
		if !warned[line] {
			t.Errorf("no warning for the Python callback on line %d: %v", line, res.Problems())
		}
	}
	res = loadCorpusFile(t, fsys, "dev/dags/airflow2/example_dag_factory_multiple_config.yml")
	var ids []string
	for _, d := range res.DAGs {
		ids = append(ids, d.ID)
	}
	eq(t, "DAGs without Python load", strings.Join(ids, ","), "example_dag2,example_dag3")
	eq(t, "default_args timezone", mustDAG(t, res, "example_dag2").Location.String(), "Europe/Amsterdam")
}

func TestCorpusDefaultsChains(t *testing.T) {
	fsys := corpus(t)
	d := mustDAG(t, loadCorpusFile(t, fsys, "dev/dags/example_dag_factory_default_config_dict.yml"), "daily_etl")
	eq(t, "owner from dev/dags/defaults.yml", d.Task("extract").Owner, "global_owner")
	eq(t, "start from dev/dags/defaults.yml", d.StartDate.Format("2006-01-02"), "2025-01-01")
	d = mustDAG(t, loadCorpusFile(t, fsys, "dev/dags/airflow2/example_task_group.yml"), "example_task_group")
	eq(t, "file default beats the folder's", d.Task("task_1").Owner, "default_owner")
	d = mustDAG(t, loadCorpusFile(t, fsys, "tests/fixtures/dag_factory_schedule_interval.yml"), "example_dag_schedule_interval")
	eq(t, "depends_on_past from tests/fixtures/defaults.yml", d.Task("task_1").DependsOnPast, true)
	eq(t, "DAG default_args beat the folder's", d.Task("task_1").Owner, "custom_owner")
}

func TestCorpusRejections(t *testing.T) {
	fsys := corpus(t)
	expect := func(group, text string) {
		for _, name := range corpusGroups[group] {
			errs := loadCorpusFile(t, fsys, name).Problems().Errors()
			found := false
			for _, p := range errs {
				found = found || (strings.Contains(p.Msg, text) && p.Line > 0)
			}
			if !found {
				t.Errorf("%s (%s): no error containing %q with a line: %v", name, group, text, errs)
			}
		}
	}
	expect("datasets", "data-aware scheduling")
	// The external-task sensor exists: the file's first DAG loads, the
	// second names a Python function, the third has a bad task id.
	sensors := loadCorpusFile(t, fsys, "dev/dags/external_task_sensor.yml")
	wait := mustDAG(t, sensors, "example_external_task_sensor_dag_factory_consumer").Task("wait_for_producer_task")
	if spec, ok := wait.Spec.(ExternalTaskSpec); !ok || spec.ExternalDagID != "example_external_task_sensor_dag_factory_producer" ||
		strings.Join(spec.ExternalTaskIDs, ",") != "producer_task" || spec.Sensor.Timeout != 300*time.Second || spec.Sensor.PokeInterval != 30*time.Second {
		t.Errorf("consumer's sensor: %#v", wait.Spec)
	}
	var sensorErrs []string
	for _, p := range sensors.Problems().Errors() {
		sensorErrs = append(sensorErrs, fmt.Sprintf("%d:%s:%s", p.Line, p.DAG, p.Msg))
	}
	got := strings.Join(sensorErrs, "\n")
	if len(sensorErrs) != 2 || !strings.Contains(got, "consumer2:execution_date_fn needs a Python runtime") || !strings.Contains(got, "consumer3:invalid task id") {
		t.Errorf("external_task_sensor.yml errors:\n%s", got)
	}
	// Python callables run in a process of their own: a file loads, or
	// its errors name what is missing (the callable's file, which the
	// corpus does not carry) or what still needs Python in the server.
	loadedPython := 0
	for _, name := range corpusGroups["python"] {
		res := loadCorpusFile(t, fsys, name)
		for _, d := range res.DAGs {
			for _, task := range d.Tasks {
				if _, ok := task.Spec.(PythonSpec); ok {
					loadedPython++
				}
			}
		}
		errs := res.Problems().Errors()
		if len(res.DAGs) == 0 && len(errs) == 0 {
			t.Errorf("%s: neither DAGs nor errors", name)
		}
		for _, p := range errs {
			if p.Line == 0 || !(strings.Contains(p.Msg, "python_callable_file") || strings.Contains(p.Msg, "Python") ||
				strings.Contains(p.Msg, "mapped instance") || strings.Contains(p.Msg, "not supported") ||
				strings.Contains(p.Msg, "doc_md_file_path") || strings.Contains(p.Msg, "no tasks")) {
				t.Errorf("%s: an error that names no Python feature or missing file: %v", name, p)
			}
		}
	}
	if loadedPython < 10 {
		t.Errorf("only %d Python tasks of the corpus load", loadedPython)
	}
	// Rejected DAGs leave the rest of their folder alone.
	var folder []string
	for _, d := range Load(mustSub(t, fsys, "dev/dags"), Options{Now: fixedNow}).DAGs {
		folder = append(folder, d.ID)
	}
	sort.Strings(folder)
	for _, id := range []string{"basic_example_dag", "daily_etl", "etl", "example_jinja2_template_dag", "example_task_group", "kubernetes_pod_dag", "machine_learning", "callbacks"} {
		if sort.SearchStrings(folder, id) == len(folder) || folder[sort.SearchStrings(folder, id)] != id {
			t.Errorf("loading dev/dags as one folder lost %s: %v", id, folder)
		}
	}
}

func mustSub(t *testing.T, fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

func TestCorpusInvalidFilesPointAtTheProblem(t *testing.T) {
	fsys := corpus(t)
	for name, wants := range map[string][][2]int{
		"dev/dags/invalid.yaml":                                         {{7, 3}},
		"tests/fixtures/invalid_yaml.yml":                               {{15, 5}},
		"tests/fixtures_without_default_yaml/invalid_dag_factory.yml":   {{4, 17}},
		"tests/fixtures/dag_factory_kubernetes_pod_operator.yml":        {{39, 27}, {42, 27}, {48, 22}, {66, 23}, {73, 19}, {74, 22}},
		"tests/fixtures/dag_factory_kubernetes_pod_operator_lt_2_7.yml": {{39, 27}, {48, 22}, {73, 19}},
	} {
		errs := loadCorpusFile(t, fsys, name).Problems().Errors()
		for _, w := range wants {
			found := false
			for _, p := range errs {
				found = found || (p.Line == w[0] && p.Col == w[1])
			}
			if !found {
				t.Errorf("%s: no error at %d:%d: %v", name, w[0], w[1], errs)
			}
		}
	}
}
