package dags

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"
)

// FuzzLoad: no input makes the loader panic, hang or report a problem
// without a position in the file it names.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			if data, err := os.ReadFile(file); err == nil {
				f.Add(data)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"dags/f.yaml": {Data: data}}
		res := Load(fsys, Options{Now: fixedNow, Limits: Limits{MaxFileBytes: 1 << 16, MaxNodes: 20_000, MaxDepth: 32}})
		for _, p := range res.Problems() {
			if p.File != "dags/f.yaml" || p.Msg == "" {
				t.Fatalf("bad problem %#v", p)
			}
		}
		for _, d := range res.DAGs {
			if d.Schedule == nil || d.Hash == "" || len(d.Tasks) == 0 {
				t.Fatalf("incomplete DAG %#v", d)
			}
		}
	})
}

// FuzzCron: for any valid expression and instant, next is after it, prev
// is before it, and nothing lies between prev and next but the instant.
func FuzzCron(f *testing.F) {
	for _, s := range []string{"0 3 * * *", "*/5 * * * *", "0 2 * * WED,SAT", "20-59/30 */2 2-31 * *", "0 9 * * MON#1",
		"@hourly", "@quarterly", "0 0 29 2 *", "30 2 * * *", "0 0,12 1 */2 *"} {
		f.Add(s, int64(1710000000), "America/New_York")
		f.Add(s, int64(1730600000), "Europe/Paris")
	}
	f.Fuzz(func(t *testing.T, expr string, unix int64, zone string) {
		loc, err := time.LoadLocation(zone)
		if err != nil || zone == "" || zone == "Local" {
			loc = time.UTC
		}
		c, err := NewCronTimetable(expr, loc)
		if err != nil {
			return
		}
		at := time.Unix(unix%4_000_000_000, 0).UTC()
		n, p := c.next(at), c.prev(at)
		if n.IsZero() || p.IsZero() {
			return // beyond the parser's five-year horizon
		}
		if !n.After(at) || !p.Before(at) {
			t.Fatalf("%q at %v: prev %v next %v", expr, at, p, n)
		}
		if after := c.next(p); after.Before(at) {
			t.Fatalf("%q at %v: tick %v between prev %v and the instant", expr, at, after, p)
		}
		info, ok := c.Next(nil, Restriction{Earliest: &at, Catchup: true}, at)
		if ok && !info.Interval.End.After(info.Interval.Start) {
			t.Fatalf("%q: empty interval %v", expr, info)
		}
	})
}

// FuzzTemplate: checking and rendering any template never panics.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"{{ ds }}", "{{ ds ", "{% if x %}", "{{ macros.ds_add(ds, 7) }}", "{{ var.value.x }}",
		"{{ dag_run.conf.x | default('n') }}", "${HOME} {{ ts_nodash }}", "{{ logical_date.strftime('%Y') }}", "{# c #}"} {
		f.Add(s)
	}
	task := &Task{ID: "t", Operator: "BashOperator"}
	rc := RunContext{DAG: &DAG{ID: "d", Schedule: NullTimetable{}}, RunType: RunTypeManual, LogicalDate: fixedNow}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 2000 {
			return
		}
		_ = CheckTemplate(src)
		_, _ = NewRenderer(task, rc, map[string]string{"x": "1"}).RenderString(src)
	})
}
