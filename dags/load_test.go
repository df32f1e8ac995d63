package dags

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// fixedNow anchors relative start dates ("2 days") in tests.
var fixedNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func loadGood(t *testing.T) *Result {
	t.Helper()
	res := Load(os.DirFS("testdata/good"), Options{Now: fixedNow})
	if ps := res.Problems(); len(ps) > 0 {
		t.Fatalf("good fixtures have problems:\n%v", ps)
	}
	return res
}

func mustDAG(t *testing.T, res *Result, id string) *DAG {
	t.Helper()
	d := res.DAG(id)
	if d == nil {
		t.Fatalf("DAG %q did not load", id)
	}
	return d
}

func taskIDs(d *DAG) []string {
	var out []string
	for _, t := range d.Tasks {
		out = append(out, t.ID)
	}
	return out
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestGoodFixturesLoadClean(t *testing.T) {
	res := loadGood(t)
	if got := len(res.DAGs); got != 30 {
		t.Errorf("loaded %d DAGs, want 30: %v", got, res.DAGs)
	}
	for _, f := range res.Files {
		if strings.Contains(f.Path, "ignored_") {
			t.Errorf(".airflowignore not honoured: %s was read", f.Path)
		}
	}
}

func TestTaskGroupsAndDependencies(t *testing.T) {
	res := loadGood(t)
	d := mustDAG(t, res, "list_form")
	eq(t, "task order", strings.Join(taskIDs(d), ","), "start,extract.users,extract.inner.orders,done")
	eq(t, "users upstream", strings.Join(d.Task("extract.users").Upstream, ","), "start")
	eq(t, "orders upstream", strings.Join(d.Task("extract.inner.orders").Upstream, ","), "start")
	eq(t, "done upstream", strings.Join(d.Task("done").Upstream, ","), "extract.inner.orders,extract.users")
	eq(t, "done trigger rule", d.Task("done").TriggerRule, AllDone)
	eq(t, "owner", d.Task("start").Owner, "data-eng")
	eq(t, "catchup", d.Catchup, false)
	eq(t, "tags", strings.Join(d.Tags, ","), "nightly,snowflake")
	eq(t, "group of orders", d.Task("extract.inner.orders").Group, "extract.inner")
	eq(t, "leaves", len(d.Leaves()), 1)

	d = mustDAG(t, res, "dict_form")
	eq(t, "dict order", strings.Join(taskIDs(d), ","), "first,second,third")
	eq(t, "second upstream", strings.Join(d.Task("second").Upstream, ","), "first")
	eq(t, "third upstream", strings.Join(d.Task("third").Upstream, ","), "second")
	eq(t, "dummy is empty", d.Task("first").Operator, "EmptyOperator")
}

func TestLegacyForms(t *testing.T) {
	d := mustDAG(t, loadGood(t), "legacy_0x")
	task := d.Task("load")
	eq(t, "retries", task.Retries, 2)
	eq(t, "retry_delay_sec", task.RetryDelay, time.Minute)
	eq(t, "execution_timeout_secs", task.ExecutionTimeout, time.Hour)
	eq(t, "dagrun_timeout_sec", d.DagrunTimeout, 2*time.Hour)
	eq(t, "concurrency", d.MaxActiveTasks, 4)
	eq(t, "max_active_runs", d.MaxActiveRuns, 1)
	eq(t, "schedule_interval", d.Schedule.Summary(), "0 7 * * *")
	pod := task.Spec.(PodSpec)
	eq(t, "is_delete_operator_pod: false", pod.OnFinishAction, KeepPod)
	eq(t, "volume claim", pod.Volumes[0].PersistentVolumeClaim.ClaimName, "warehouse-data")
	eq(t, "mount", pod.VolumeMounts[0].MountPath+" "+strconv.FormatBool(pod.VolumeMounts[0].ReadOnly), "/data true")
	eq(t, "env", pod.EnvVars[0].Name+"="+pod.EnvVars[0].Value, "CI_PROJECT_DIR=/analytics")
	eq(t, "cpu request", pod.Resources.Requests.Cpu().String(), "50m")
	eq(t, "memory limit", pod.Resources.Limits.Memory().String(), "500Mi")
	eq(t, "toleration", pod.Tolerations[0].Key, "dedicated")
	eq(t, "secret", fmt.Sprint(pod.Secrets[0]), "{env SNOWFLAKE_USER airflow2 SNOWFLAKE_USER []}")
}

func TestTypeObjects(t *testing.T) {
	d := mustDAG(t, loadGood(t), "types")
	eq(t, "start_date", d.StartDate.Format(time.RFC3339), "2024-03-01T06:00:00Z")
	eq(t, "dagrun_timeout", d.DagrunTimeout, 2*time.Hour)
	task := d.Task("pod")
	eq(t, "retry_delay", task.RetryDelay, 5*time.Minute)
	eq(t, "max_retry_delay", task.MaxRetryDelay, time.Hour)
	eq(t, "backoff", task.RetryExponentialBackoff, true)
	tt, ok := d.Schedule.(DeltaTimetable)
	if !ok || tt.Delta != 6*time.Hour {
		t.Errorf("schedule = %#v, want a 6h timedelta", d.Schedule)
	}
	pod := task.Spec.(PodSpec)
	eq(t, "cpu limit", pod.Resources.Limits.Cpu().String(), "1")
	eq(t, "memory request", pod.Resources.Requests.Memory().String(), "512Mi")
	eq(t, "secrets", len(pod.Secrets), 3)
	eq(t, "renamed secret env", pod.Secrets[0].DeployTarget+"<-"+pod.Secrets[0].Key, "PERMISSION_BOT_USER<-SNOWFLAKE_PERMISSION_USER")
	eq(t, "envFrom secret via __args__", pod.Secrets[1].Secret+" key="+pod.Secrets[1].Key, "airflow2 key=")
	eq(t, "volume secret", pod.Secrets[2].DeployType+" "+pod.Secrets[2].DeployTarget, "volume /etc/creds")
	eq(t, "port", pod.Ports[0].ContainerPort, int32(8080))
	eq(t, "init container from builtins.list", pod.InitContainers[0].Name, "init")
}

func TestDates(t *testing.T) {
	res := loadGood(t)
	d := mustDAG(t, res, "date_yaml")
	eq(t, "yaml date", d.StartDate.Format(time.RFC3339), "2024-01-01T00:00:00Z")
	d = mustDAG(t, res, "date_iso_zone")
	eq(t, "iso with zone", d.StartDate.Format(time.RFC3339), "2024-01-01T04:30:00Z")
	eq(t, "zone from start_date", d.Location.String(), "+02:00")
	d = mustDAG(t, res, "date_iso_naive_tz")
	eq(t, "naive in dag timezone", d.StartDate.Format(time.RFC3339), "2024-07-01T04:00:00Z")
	eq(t, "end_date in dag timezone", d.EndDate.Format(time.RFC3339), "2025-01-01T05:00:00Z")
	d = mustDAG(t, res, "date_relative")
	eq(t, "2 days before Paris midnight", d.StartDate.Format(time.RFC3339), "2026-11-23T23:00:00Z")
	eq(t, "default_args timezone", d.Location.String(), "Europe/Paris")
}

func TestYAML11AndShellVariables(t *testing.T) {
	d := mustDAG(t, loadGood(t), "yaml11")
	eq(t, "catchup: off", d.Catchup, false)
	eq(t, "is_paused_upon_creation: yes", d.IsPausedUponCreation, true)
	task := d.Task("shell")
	eq(t, "merge key owner", task.Owner, "analytics")
	eq(t, "depends_on_past: no", task.DependsOnPast, false)
	bash := task.Spec.(BashSpec)
	eq(t, "__join__ and $VAR untouched", bash.Command, "echo hello $HOME ${SNOWFLAKE_USER:-none}")
	eq(t, "env ${VAR} untouched", bash.Env["TARGET"], "${TARGET_DB}")
	eq(t, "bash skips on 99", fmt.Sprint(task.SkipOnExitCode()), "[99]")
}

func TestFullPodSpec(t *testing.T) {
	task := mustDAG(t, loadGood(t), "kpo_full").Task("load")
	pod := task.Spec.(PodSpec)
	eq(t, "name", pod.Name, "load-events")
	eq(t, "random suffix", pod.RandomNameSuffix, false)
	eq(t, "pull policy", string(pod.ImagePullPolicy), "Always")
	eq(t, "pull secrets", fmt.Sprint(pod.ImagePullSecrets), "[{regcred} {other}]")
	eq(t, "cmds", strings.Join(pod.Cmds, " "), "/bin/bash -c")
	eq(t, "env order", pod.EnvVars[0].Name+","+pod.EnvVars[1].Name, "EXECUTION_DATE,SNOWFLAKE_LOAD_DATABASE")
	eq(t, "env_from", pod.EnvFrom[0].ConfigMapRef.Name, "etl-settings")
	eq(t, "configmaps", strings.Join(pod.ConfigMaps, ","), "etl-extra")
	eq(t, "namespace", pod.Namespace, "airflow-dev")
	eq(t, "service account", pod.ServiceAccountName, "etl-runner")
	eq(t, "node selector", pod.NodeSelector["kubernetes.io/os"], "linux")
	eq(t, "affinity", pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Values[0], "eu-west-1a")
	eq(t, "label", pod.Labels["run"], "{{ ds_nodash }}")
	eq(t, "annotation", pod.Annotations["example.com/owner"], "data-eng")
	eq(t, "empty dir", pod.Volumes[0].EmptyDir.SizeLimit.String(), "1Gi")
	eq(t, "run as user", *pod.SecurityContext.RunAsUser, int64(65534))
	eq(t, "container security", *pod.ContainerSecurityContext.ReadOnlyRootFilesystem, true)
	eq(t, "init container", pod.InitContainers[0].Command[2], "sleep 1")
	eq(t, "grace", *pod.TerminationGracePeriod, int64(30))
	eq(t, "deadline", *pod.ActiveDeadlineSeconds, int64(9000))
	eq(t, "startup timeout", pod.StartupTimeout, 300*time.Second)
	eq(t, "on finish", pod.OnFinishAction, DeleteSucceededPod)
	eq(t, "skip codes", fmt.Sprint(task.SkipOnExitCode()), "[3 4]")
	eq(t, "execution timeout", task.ExecutionTimeout, 3*time.Hour)
}

func TestCallbacks(t *testing.T) {
	d := mustDAG(t, loadGood(t), "callbacks")
	cb := d.Callbacks["on_failure_callback"]
	eq(t, "notifier", cb.Notifier, "slack")
	eq(t, "channel", cb.Args["channel"], "#bizops")
}

func TestSchedules(t *testing.T) {
	res := loadGood(t)
	for id, want := range map[string]string{
		"sched_none": "None", "sched_null": "None", "sched_none_spaces": "None", "sched_default": "1 day, 0:00:00",
		"sched_once": "@once", "sched_daily": "@daily", "sched_quarterly": "@quarterly",
		"sched_names": "0 2 * * WED,SAT", "sched_steps": "20-59/30 */2 2-31 * *", "sched_nth": "0 9 * * MON#1",
		"sched_timedelta": "0:30:00", "sched_relative": "12:00:00", "sched_trigger": "0 1 * * 3",
	} {
		eq(t, id, mustDAG(t, res, id).Schedule.Summary(), want)
	}
	trig := mustDAG(t, res, "sched_trigger").Schedule.(*CronTimetable)
	eq(t, "trigger timetable", trig.Trigger, true)
	eq(t, "trigger zone", trig.Location.String(), "Europe/Amsterdam")
}

func TestDefaultsPrecedence(t *testing.T) {
	res := loadGood(t)
	a := mustDAG(t, res, "pipeline_a")
	eq(t, "tasks merged from the default block by id", strings.Join(taskIDs(a), ","), "extract,load")
	eq(t, "DAG overrides one field of a default task", a.Task("load").Spec.(BashSpec).Command, "echo load-a")
	eq(t, "and keeps the rest", strings.Join(a.Task("load").Upstream, ","), "extract")
	eq(t, "closest defaults file wins", a.Task("load").Owner, "team")
	eq(t, "file default beats folder defaults", a.Task("load").Retries, 1)
	eq(t, "outer defaults file still applies", a.Catchup, false)
	eq(t, "start_date from the outer defaults file", a.StartDate.Format("2006-01-02"), "2023-01-01")
	b := mustDAG(t, res, "pipeline_b")
	eq(t, "DAG block beats everything", b.Task("extract").Retries, 5)
	eq(t, "DAG-level key", b.Catchup, true)
	eq(t, "untouched default task", b.Task("load").Spec.(BashSpec).Command, "echo load")
}

var wantRE = regexp.MustCompile(`^# want( warning)?: (\d+):(\d+): (.*)$`)

type want struct {
	warning   bool
	line, col int
	text      string
}

func readWants(t *testing.T, path string) []want {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []want
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := wantRE.FindStringSubmatch(sc.Text()); m != nil {
			line, _ := strconv.Atoi(m[2])
			col, _ := strconv.Atoi(m[3])
			out = append(out, want{m[1] != "", line, col, m[4]})
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no # want: lines", path)
	}
	return out
}

// TestBadFixtures holds every testdata/bad/*.bad.yaml file to the problems
// its "# want: LINE:COL: text" comments name: each is reported at that
// position, and no error is reported that is not wanted.
func TestBadFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.bad.yaml")
	if len(files) < 15 {
		t.Fatalf("found %d bad fixtures", len(files))
	}
	for _, path := range files {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			wants := readWants(t, path)
			res := LoadFiles(os.DirFS("testdata/bad"), []string{name}, Options{Now: fixedNow})
			probs := res.Problems()
			matches := func(p Problem, w want) bool {
				return p.Line == w.line && p.Col == w.col && (p.Severity == SeverityWarning) == w.warning &&
					strings.Contains(p.Subject()+p.Msg, w.text)
			}
			for _, w := range wants {
				found := false
				for _, p := range probs {
					found = found || matches(p, w)
				}
				if !found {
					t.Errorf("missing problem %d:%d %q; got:\n%v", w.line, w.col, w.text, probs)
				}
			}
			for _, p := range probs {
				wanted := false
				for _, w := range wants {
					wanted = wanted || matches(p, w)
				}
				if !wanted {
					t.Errorf("unexpected problem: %v", p)
				}
				if p.File != name {
					t.Errorf("problem names file %q, want %q", p.File, name)
				}
			}
		})
	}
}

// One bad DAG hides neither the good DAGs of its own file nor other files.
func TestBadDAGsDoNotHideGoodOnes(t *testing.T) {
	res := LoadFiles(os.DirFS("testdata/bad"), []string{"python.bad.yaml"}, Options{Now: fixedNow})
	if len(res.DAGs) != 1 || res.DAGs[0].ID != "still_good" {
		t.Fatalf("loaded %v, want only still_good", res.DAGs)
	}
	fsys := fstest.MapFS{
		"good.yaml":   {Data: []byte("g:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n")},
		"broken.yaml": {Data: []byte("b: [unclosed\n")},
		"cycle.yaml":  {Data: []byte("c:\n  tasks:\n    - {task_id: x, operator: EmptyOperator, dependencies: [x]}\n")},
	}
	res = Load(fsys, Options{Now: fixedNow})
	if len(res.DAGs) != 1 || res.DAGs[0].ID != "g" {
		t.Fatalf("loaded %v, want g", res.DAGs)
	}
	if n := len(res.Problems().Errors()); n != 2 {
		t.Fatalf("%d errors, want 2: %v", n, res.Problems())
	}
}

func TestFileSizeCap(t *testing.T) {
	big := "big:\n  description: \"" + strings.Repeat("x", 2000) + "\"\n"
	res := Load(fstest.MapFS{"big.yaml": {Data: []byte(big)}}, Options{Limits: Limits{MaxFileBytes: 1000, MaxNodes: 100, MaxDepth: 10}})
	ps := res.Problems()
	if len(ps) != 1 || !strings.Contains(ps[0].Msg, "over the 1000 byte limit") {
		t.Fatalf("problems = %v", ps)
	}
}

func TestDuplicateDAGAcrossFiles(t *testing.T) {
	dag := []byte("same:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: EmptyOperator}]\n")
	res := Load(fstest.MapFS{"a.yaml": {Data: dag}, "b/c.yaml": {Data: dag}}, Options{})
	if len(res.DAGs) != 1 || res.DAGs[0].File != "a.yaml" {
		t.Fatalf("DAGs = %v", res.DAGs)
	}
	ps := res.Problems()
	if len(ps) != 1 || ps[0].File != "b/c.yaml" || !strings.Contains(ps[0].Msg, "already defined in a.yaml") {
		t.Fatalf("problems = %v", ps)
	}
}

// The hash is a version: equal for equal specs, different after a change
// that affects how the DAG runs.
func TestHashTracksChanges(t *testing.T) {
	load := func(cmd string) string {
		src := "h:\n  start_date: 2024-01-01\n  tasks: [{task_id: t, operator: BashOperator, bash_command: '" + cmd + "'}]\n"
		res := Load(fstest.MapFS{"h.yaml": {Data: []byte(src)}}, Options{})
		return mustDAG(t, res, "h").Hash
	}
	if load("echo 1") != load("echo 1") {
		t.Fatal("hash is not stable")
	}
	if load("echo 1") == load("echo 2") {
		t.Fatal("hash ignores a command change")
	}
}
