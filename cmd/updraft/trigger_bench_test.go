package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// BenchmarkTriggerWhileRunning measures how long an API write (a trigger)
// takes on the real server while 100 DAG runs execute on the local
// executor (tries starting and ending all the time): no try start, file
// creation or process start may hold the lock a write needs.
func BenchmarkTriggerWhileRunning(b *testing.B) {
	bin := buildBinaryB(b)
	dir := b.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	var sb strings.Builder
	sb.WriteString("busy:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  max_active_runs: 100\n  max_active_tasks: 200\n  tasks:\n")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&sb, "    - {task_id: t%d, operator: BashOperator, bash_command: 'sleep 0.1'", i)
		if i > 0 {
			fmt.Fprintf(&sb, ", dependencies: [t%d]", i-1)
		}
		sb.WriteString("}\n")
	}
	os.WriteFile(filepath.Join(dagDir, "busy.yaml"), []byte(sb.String()), 0o644)
	os.WriteFile(filepath.Join(dagDir, "probe.yaml"), []byte("probe:\n  start_date: 2024-01-01\n  schedule: null\n  tasks: [{task_id: t, operator: EmptyOperator}]\n"), 0o644)
	var out syncBuffer
	_, url := startAdminServer(b, bin, &out, "--dags", dagDir, "--db", "sqlite:"+filepath.Join(dir, "u.db"), "--logs", filepath.Join(dir, "logs"),
		"--local-slots", "100", "--parallelism", "200")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	post := func(path, body string) (time.Duration, int) {
		req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(body))
		req.SetBasicAuth("admin", adminPassword)
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start), resp.StatusCode
	}
	// Wait for the DAGs, then set 100 runs going.
	for i := 0; ; i++ {
		if _, code := post("/api/v1/dags/probe/dagRuns", `{"dag_run_id": "warm"}`); code == 200 {
			break
		}
		if i == 200 {
			b.Fatalf("probe never loaded:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	n := 0
	for b.Loop() {
		b.StopTimer()
		for i := 0; i < 100; i++ {
			if _, code := post("/api/v1/dags/busy/dagRuns", fmt.Sprintf(`{"dag_run_id": "busy_%d_%d"}`, n, i)); code != 200 {
				b.Fatalf("trigger busy: %d\n%s", code, out.String()[max(0, len(out.String())-3000):])
			}
		}
		time.Sleep(500 * time.Millisecond) // tries are starting and ending
		var lat []time.Duration
		for i := 0; i < 200; i++ {
			d, code := post("/api/v1/dags/probe/dagRuns", fmt.Sprintf(`{"dag_run_id": "probe_%d_%d"}`, n, i))
			if code != 200 {
				b.Fatalf("trigger probe: %d", code)
			}
			lat = append(lat, d)
			time.Sleep(5 * time.Millisecond)
		}
		n++
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		b.StartTimer()
	}
}
