package dags

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The example DAGs validate without a single problem, and every task runs
// with bash and POSIX tools only, rendered for a real run.
func TestExamplesValidateAndRun(t *testing.T) {
	res := Load(os.DirFS("examples"), Options{})
	if ps := res.Problems(); len(ps) > 0 {
		t.Fatalf("examples have problems:\n%v", ps)
	}
	want := []string{"cicd", "daily_extracts", "dbt", "dbt_nightly", "event_table_monitoring", "manual_deferred_merge", "monitoring", "python_monitoring", "snowflake_permissions"}
	if len(res.DAGs) != len(want) {
		t.Fatalf("examples define %d DAGs, want %v", len(res.DAGs), want)
	}
	for _, d := range res.DAGs {
		rc := RunContext{DAG: d, RunType: RunTypeManual, LogicalDate: utc("2024-06-01T00:00:00Z"), TryNumber: 1}
		rc.DataInterval = d.Schedule.InferManual(rc.LogicalDate)
		if runs := RunsBetween(d, utc("2024-06-01T00:00:00Z"), utc("2024-06-03T00:00:00Z"), 1); len(runs) == 1 {
			rc.RunType, rc.LogicalDate, rc.DataInterval = RunTypeScheduled, runs[0].Interval.Start, runs[0].Interval
		}
		rc.RunID = RunID(rc.RunType, rc.LogicalDate)
		vars := map[string]string{"stitch_extractions_endpoint": "/e", "stitch_loads_endpoint": "/l", "stitch_secret": "s",
			"hightouch_syncs_endpoint": "/s", "hightouch_secret": "h"}
		for _, task := range d.Tasks {
			if (len(task.Upstream) > 0 && d.ID == "monitoring") || task.Mapped() {
				continue // reads XCom, or expands at run time: cmd/updraft's tests run them
			}
			spec, err := Render(task, rc, vars)
			if err != nil {
				t.Fatalf("%s.%s: %v", d.ID, task.ID, err)
			}
			bash, ok := spec.(BashSpec)
			if !ok {
				continue // in-process operators run in the server (cmd/updraft's tests run them)
			}
			if strings.Contains(bash.Command, "{{") {
				t.Errorf("%s.%s: unrendered template: %s", d.ID, task.ID, bash.Command)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, "bash", "-c", bash.Command)
			cmd.Dir = t.TempDir()
			cmd.Env = []string{"PATH=/usr/bin:/bin"}
			for k, v := range bash.Env {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
			out, err := cmd.CombinedOutput()
			cancel()
			if err != nil || len(out) == 0 {
				t.Errorf("%s.%s: %v, output %q", d.ID, task.ID, err, out)
			}
		}
	}
}
