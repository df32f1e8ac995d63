package web

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"updraft/dags"
	"updraft/store"
)

// wideDAG is one DAG of n tasks in a chain, scheduled daily.
func wideDAG(id string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:\n  start_date: 2021-01-01\n  schedule: \"@daily\"\n  catchup: false\n  tags: [bench]\n  tasks:\n", id)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "    - {task_id: task_%02d, operator: BashOperator, bash_command: \"echo {{ ds }}\"", i)
		if i > 0 {
			fmt.Fprintf(&b, ", dependencies: [task_%02d]", i-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// seedRuns records runs of a DAG with every task instance finished, as
// the scheduler would have left them.
func seedRuns(tb testing.TB, e *env, d *dags.DAG, runs int) {
	tb.Helper()
	start := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	err := e.st.InTx(e.ctx, func(tx *store.Store) error {
		for i := 0; i < runs; i++ {
			logical := start.AddDate(0, 0, i)
			end := logical.Add(time.Minute)
			state := dags.RunSuccess
			if i%17 == 0 {
				state = dags.RunFailed
			}
			r := store.Run{DagID: d.ID, RunID: dags.RunID(dags.RunTypeScheduled, logical), RunType: dags.RunTypeScheduled, LogicalDate: logical,
				Interval: dags.DataInterval{Start: logical, End: logical.AddDate(0, 0, 1)}, State: state, QueuedAt: logical,
				StartDate: &logical, EndDate: &end, DAGVersion: d.Hash}
			var tis []store.TaskInstance
			for j, t := range d.Tasks {
				st := dags.StateSuccess
				if state == dags.RunFailed && j == len(d.Tasks)-1 {
					st = dags.StateFailed
				}
				tis = append(tis, store.TaskInstance{DagID: d.ID, RunID: r.RunID, TaskID: t.ID, MapIndex: -1, State: st, TryNumber: 1, MaxTries: 0,
					Operator: t.Operator, Pool: "default_pool", PoolSlots: 1, PriorityWeight: 1, StartDate: &logical, EndDate: &end})
			}
			if err := tx.CreateRun(e.ctx, r, tis); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// serve measures the server's own time for one page: the handler called
// directly, no network.
func serve(b *testing.B, e *env, path string) {
	req := httptest.NewRequest("GET", path, nil)
	req.SetBasicAuth("viewer", "viewer-password")
	for b.Loop() {
		rec := httptest.NewRecorder()
		e.web.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String()[:min(300, rec.Body.Len())])
		}
	}
}

// BenchmarkGridPage is the DAG page's grid for a DAG with 1,000 runs of 50
// tasks: the default 25 runs, and a year of them.
func BenchmarkGridPage(b *testing.B) {
	e, folder := folderEnv(b, map[string]string{"big.yaml": wideDAG("big", 50)})
	res, _ := folder.Current()
	seedRuns(b, e, res.DAGs[0], 1000)
	b.Run("runs=25", func(b *testing.B) { serve(b, e, "/dags/big") })
	b.Run("runs=365", func(b *testing.B) { serve(b, e, "/dags/big?tab=grid&runs=365") })
	b.Run("graph", func(b *testing.B) { serve(b, e, "/dags/big?tab=graph") })
}

// BenchmarkDAGList is the DAG list with 1,000 DAGs, each with 10 runs.
func BenchmarkDAGList(b *testing.B) {
	var files = map[string]string{}
	for i := 0; i < 1000; i++ {
		id := fmt.Sprintf("dag_%04d", i)
		files[id+".yaml"] = wideDAG(id, 3)
	}
	e, folder := folderEnv(b, files)
	res, _ := folder.Current()
	if len(res.DAGs) != 1000 {
		b.Fatalf("%d DAGs loaded", len(res.DAGs))
	}
	for _, d := range res.DAGs {
		seedRuns(b, e, d, 10)
	}
	b.Run("page", func(b *testing.B) { serve(b, e, "/") })
	b.Run("api", func(b *testing.B) { serve(b, e, "/api/v1/dags?limit=100") })
}

// BenchmarkAPIUnderLoad has 4 clients per core on loopback call the list
// endpoints with basic auth (against a DAG with 1,000 runs of 50 tasks),
// and reports the latency percentiles the clients saw.
func BenchmarkAPIUnderLoad(b *testing.B) {
	e, folder := folderEnv(b, map[string]string{"big.yaml": wideDAG("big", 50)})
	res, _ := folder.Current()
	seedRuns(b, e, res.DAGs[0], 1000)
	run := dags.RunID(dags.RunTypeScheduled, time.Date(2022, 6, 1, 0, 0, 0, 0, time.UTC))
	for _, ep := range []struct{ name, path string }{
		{"dags", "/api/v1/dags"},
		{"dagRuns", "/api/v1/dags/big/dagRuns?limit=100&order_by=-execution_date"},
		{"taskInstances", "/api/v1/dags/big/dagRuns/" + run + "/taskInstances"},
		{"allTaskInstances", "/api/v1/dags/~/dagRuns/~/taskInstances?limit=100&state=failed"},
	} {
		b.Run(ep.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
			defer client.CloseIdleConnections()
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(4) // 4 clients per core: 8 on the 2-core CI machine
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				for pb.Next() {
					req, _ := http.NewRequest("GET", e.srv.URL+ep.path, nil)
					req.SetBasicAuth("viewer", "viewer-password")
					t0 := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					mine = append(mine, time.Since(t0))
					if resp.StatusCode != 200 {
						b.Errorf("%s: %d", ep.path, resp.StatusCode)
						return
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}
