package dags

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// benchFolder builds n DAG files of ten tasks each, shaped like the
// reference workload: pod tasks with resources, secrets and templates,
// chained with a fan-out.
func benchFolder(n int) fstest.MapFS {
	fsys := fstest.MapFS{}
	for i := 0; i < n; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "dag_%04d:\n  start_date: 2019-01-01\n  schedule: \"%d 3 * * *\"\n  catchup: false\n  max_active_runs: 1\n", i, i%60)
		b.WriteString("  default_args:\n    owner: airflow\n    retries: 0\n    retry_delay: {__type__: datetime.timedelta, minutes: 1}\n  tasks:\n")
		for j := 0; j < 10; j++ {
			fmt.Fprintf(&b, "    - task_id: task_%d\n", j)
			if j%3 == 0 {
				b.WriteString("      operator: BashOperator\n      bash_command: \"echo {{ ds }} && run --since {{ macros.ds_add(ds, -1) }}\"\n")
			} else {
				b.WriteString("      operator: airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator\n")
				b.WriteString("      image: mattermost/mattermost-data-warehouse:master\n      cmds: [\"/bin/bash\", \"-c\"]\n")
				b.WriteString("      arguments: [\"python -m extract.job {{ ds }} ${SNOWFLAKE_USER}\"]\n")
				b.WriteString("      env_vars: {EXECUTION_DATE: \"{{ next_execution_date }}\", SNOWFLAKE_LOAD_DATABASE: RAW}\n")
				b.WriteString("      secrets:\n        - {deploy_type: env, deploy_target: SNOWFLAKE_USER, secret: airflow2, key: SNOWFLAKE_USER}\n")
				b.WriteString("      container_resources: {requests: {cpu: 50m, memory: 100Mi}, limits: {cpu: 500m, memory: 500Mi}}\n")
			}
			if j > 0 {
				fmt.Fprintf(&b, "      dependencies: [task_%d]\n", (j-1)/2)
			}
		}
		fsys[fmt.Sprintf("team_%d/dag_%04d.yaml", i%10, i)] = &fstest.MapFile{Data: []byte(b.String())}
	}
	return fsys
}

// BenchmarkLoad1000 loads and validates 1,000 DAG files of 10 tasks each
// (target: under 1 s on the 2-core CI machine; see BENCHMARKS.md).
func BenchmarkLoad1000(b *testing.B) {
	fsys := benchFolder(1000)
	b.ReportAllocs()
	for b.Loop() {
		res := Load(fsys, Options{Now: fixedNow})
		if len(res.DAGs) != 1000 || res.Problems().HasErrors() {
			b.Fatalf("loaded %d DAGs: %v", len(res.DAGs), res.Problems())
		}
	}
}

// BenchmarkCronNext measures one scheduling decision on a DST-observing zone.
func BenchmarkCronNext(b *testing.B) {
	c, err := NewCronTimetable("*/5 * * * *", mustLoc("America/New_York"))
	if err != nil {
		b.Fatal(err)
	}
	start := fixedNow
	r := Restriction{Earliest: &start, Catchup: true}
	last := &DataInterval{Start: start, End: start}
	for b.Loop() {
		info, _ := c.Next(last, r, fixedNow)
		last = &info.Interval
	}
}

// BenchmarkRender renders a pod task's templated fields for one try.
func BenchmarkRender(b *testing.B) {
	res := Load(benchFolder(1), Options{Now: fixedNow})
	d := res.DAGs[0]
	task := d.Task("task_1")
	run, ok := ScheduledRunAt(d, utc("2024-01-01T03:00:00Z"))
	if !ok {
		b.Fatal("not on schedule")
	}
	info := run.Interval
	rc := RunContext{DAG: d, RunType: RunTypeScheduled, LogicalDate: info.Start, DataInterval: info, TryNumber: 1}
	for b.Loop() {
		if _, err := Render(task, rc, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}
