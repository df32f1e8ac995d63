package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"updraft/dags"
	"updraft/store"
)

// BenchmarkServerRSS reports the peak resident memory (VmHWM) of
// "updraft server" with 1,000 DAGs of 10 tasks loaded and 100,000 task
// instances of history (10,000 finished runs), after it has loaded the
// folder, synced it, scheduled and served the DAG page. Target: 150 MB.
func BenchmarkServerRSS(b *testing.B) {
	bin := buildBinaryB(b)
	dir := b.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	for i := 0; i < 1000; i++ {
		var sb strings.Builder
		fmt.Fprintf(&sb, "dag_%04d:\n  start_date: 2024-01-01\n  schedule: \"%d 3 * * *\"\n  catchup: false\n  tasks:\n", i, i%60)
		for j := 0; j < 10; j++ {
			fmt.Fprintf(&sb, "    - {task_id: t%d, operator: KubernetesPodOperator, image: \"etl:1\", cmds: [sh, -c], arguments: [\"run {{ ds }}\"]", j)
			if j > 0 {
				fmt.Fprintf(&sb, ", dependencies: [t%d]", j-1)
			}
			sb.WriteString("}\n")
		}
		os.WriteFile(filepath.Join(dagDir, fmt.Sprintf("dag_%04d.yaml", i)), []byte(sb.String()), 0o644)
	}
	ctx := context.Background()
	st, err := openStore(ctx, "sqlite:"+filepath.Join(dir, "u.db"))
	if err != nil {
		b.Fatal(err)
	}
	res := dags.Load(os.DirFS(dagDir), dags.Options{})
	err = st.InTx(ctx, func(tx *store.Store) error {
		for i := 0; i < 10_000; i++ {
			d := res.DAGs[i%1000]
			logical := time.Date(2024, 1, 1, 3, 0, 0, 0, time.UTC).AddDate(0, 0, i/1000)
			end := logical.Add(time.Hour)
			r := store.Run{DagID: d.ID, RunID: dags.RunID(dags.RunTypeScheduled, logical), RunType: dags.RunTypeScheduled,
				LogicalDate: logical, Interval: dags.DataInterval{Start: logical, End: logical.AddDate(0, 0, 1)},
				State: dags.RunSuccess, QueuedAt: logical, StartDate: &logical, EndDate: &end, DAGVersion: d.Hash}
			var tis []store.TaskInstance
			for _, t := range d.Tasks {
				tis = append(tis, store.TaskInstance{DagID: d.ID, RunID: r.RunID, TaskID: t.ID, MapIndex: -1, State: dags.StateSuccess, TryNumber: 1,
					Operator: t.Operator, Pool: t.Pool, PoolSlots: 1, PriorityWeight: 1, StartDate: &logical, EndDate: &end})
			}
			if err := tx.CreateRun(ctx, r, tis); err != nil {
				return err
			}
		}
		return nil
	})
	st.Close()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		var out syncBuffer
		cmd, url := startAdminServer(b, bin, &out, "--dags", dagDir, "--db", "sqlite:"+filepath.Join(dir, "u.db"), "--logs", filepath.Join(dir, "logs"))
		// Every DAG synced (the API counts them), a few scheduling steps,
		// then the DAG page (its first page of 100).
		for i := 0; ; i++ {
			resp, err := adminGet(url + "/api/v1/dags?limit=1")
			if err != nil {
				b.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), `"total_entries":1000`) {
				break
			}
			if i == 600 {
				b.Fatalf("the DAGs were not all synced: %s", body)
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		resp, err := adminGet(url + "/")
		if err != nil {
			b.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), "dag_0000") || !strings.Contains(string(page), "dag_0099") {
			b.Fatalf("the DAG page lacks the first 100 DAGs")
		}
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		cmd.Process.Kill()
		cmd.Wait()
		m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(status)
		if m == nil {
			b.Fatalf("no VmHWM in /proc status")
		}
		kb, _ := strconv.Atoi(string(m[1]))
		b.ReportMetric(float64(kb)/1024, "peak-RSS-MB")
		// What the resident memory is at the end: heap and other anonymous
		// memory, and pages of the executable and other files.
		for _, field := range []string{"RssAnon", "RssFile"} {
			if m := regexp.MustCompile(field + `:\s+(\d+) kB`).FindSubmatch(status); m != nil {
				kb, _ := strconv.Atoi(string(m[1]))
				b.ReportMetric(float64(kb)/1024, field+"-MB")
			}
		}
	}
}
