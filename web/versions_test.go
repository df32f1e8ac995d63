package web

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"updraft/dags"
	"updraft/store"
)

// swapBag is a DAG folder the test rewrites.
type swapBag struct {
	mu  sync.Mutex
	res *dags.Result
	at  time.Time
}

func (b *swapBag) Current() (*dags.Result, time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.res, b.at
}

func (b *swapBag) set(t *testing.T, yaml string) {
	t.Helper()
	res := dags.Load(fstest.MapFS{"v.yaml": {Data: []byte(yaml)}}, dags.Options{})
	if len(res.DAGs) != 1 {
		t.Fatalf("fixture: %v", res.Problems())
	}
	b.mu.Lock()
	b.res, b.at = res, b.at.Add(time.Second)
	b.mu.Unlock()
}

// The versions tab lists a DAG's versions and shows what changed between
// two of them, without the noise of where things stand in the file.
func TestVersionsTab(t *testing.T) {
	bag := &swapBag{at: time.Now()}
	bag.set(t, `
versioned:
  start_date: 2024-01-01
  schedule: "@daily"
  tasks:
    - {task_id: extract, operator: BashOperator, bash_command: "echo one"}
`)
	e := newEnv(t, bag)
	_, page := e.call("GET", "/dags/versioned?tab=versions", "", "viewer")
	if !strings.Contains(page, "One version so far") {
		t.Fatalf("one version:\n%s", page)
	}
	// The DAG moves down its file (no change) and changes: a new version.
	bag.set(t, `

versioned:
  start_date: 2024-01-01
  schedule: "@daily"
  tasks:
    - {task_id: extract, operator: BashOperator, bash_command: "echo one", retries: 3}
    - {task_id: load, operator: BashOperator, bash_command: "echo two", dependencies: [extract]}
`)
	if _, err := e.sched.Tick(e.ctx); err != nil {
		t.Fatal(err)
	}
	_, page = e.call("GET", "/dags/versioned?tab=versions", "", "viewer")
	for _, want := range []string{`id="version-diff"`, `<span class="diff-add">&#43;        &#34;retries&#34;: 3,</span>`,
		`<span class="diff-del">-        &#34;retries&#34;: 0,</span>`, `&#34;task_id&#34;: &#34;load&#34;`, "versioned version 1", "versioned version 2"} {
		if !strings.Contains(page, want) {
			t.Errorf("the diff lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "&#34;line&#34;") {
		t.Errorf("line numbers in the diff:\n%s", page)
	}
	if _, page = e.call("GET", "/dags/versioned?tab=versions&from=2&to=2", "", "viewer"); !strings.Contains(page, `id="version-same"`) {
		t.Errorf("a version against itself:\n%s", page)
	}
	if _, page = e.call("GET", "/dags/versioned?tab=versions&from=1&to=9", "", "viewer"); !strings.Contains(page, "has no version 9") {
		t.Errorf("an unknown version:\n%s", page)
	}
}

// The Gantt's time labels stay inside the chart: the first starts at its
// tick, the last ends at its.
func TestGanttLabelsStayInside(t *testing.T) {
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(time.Minute)
	tis := []store.TaskInstance{{DagID: "d", RunID: "r", TaskID: "a", MapIndex: -1, State: dags.StateSuccess, StartDate: &start, EndDate: &end}}
	tries := []store.Try{{TIKey: store.TIKey{DagID: "d", RunID: "r", TaskID: "a", MapIndex: -1}, TryNumber: 1, State: dags.StateSuccess, StartDate: start, EndDate: &end}}
	g := layoutGantt(tis, tries, func(string) string { return "" })
	if g == nil || len(g.Ticks) != 5 || g.Ticks[0].Anchor != "start" || g.Ticks[4].Anchor != "end" || g.Ticks[2].Anchor != "middle" || g.Ticks[4].X > g.Width {
		t.Fatalf("ticks: %+v (width %d)", g, g.Width)
	}
}

// doc_md is rendered as Markdown and sanitised: what a committer writes
// cannot run in a viewer's browser.
func TestDocMDRendered(t *testing.T) {
	got := string(renderDoc("# Loads\n\nThe **orders** table, see [the wiki](https://wiki.example.com).\n\n" +
		"<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3))\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"))
	for _, want := range []string{"<h1>Loads</h1>", "<strong>orders</strong>", `href="https://wiki.example.com"`, "<table>"} {
		if !strings.Contains(got, want) {
			t.Errorf("rendered doc lacks %s:\n%s", want, got)
		}
	}
	for _, bad := range []string{"<script", "onerror", "javascript:"} {
		if strings.Contains(got, bad) {
			t.Errorf("rendered doc keeps %s:\n%s", bad, got)
		}
	}
}

// Task groups in the graph: boxes around their tasks, and a collapsed one
// is a single node whose state sums up its tasks', with its edges.
func TestGraphTaskGroups(t *testing.T) {
	res := dags.Load(fstest.MapFS{"g.yaml": {Data: []byte(`
grouped:
  start_date: 2024-01-01
  schedule: null
  task_groups:
    - {group_name: extract}
    - {group_name: inner, parent_group_name: extract}
  tasks:
    - {task_id: start, operator: EmptyOperator}
    - {task_id: users, operator: EmptyOperator, task_group_name: extract, dependencies: [start]}
    - {task_id: orders, operator: EmptyOperator, task_group_name: inner, dependencies: [start]}
    - {task_id: done, operator: EmptyOperator, dependencies: [extract]}
`)}}, dags.Options{})
	if errs := res.Problems().Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	d := res.DAG("grouped")
	states := map[string]string{"start": "success", "extract.users": "success", "extract.inner.orders": "failed", "done": "upstream_failed"}
	link := func(task string) string { return "/t/" + task }
	groupLink := func(g string, collapse bool) string { return fmt.Sprintf("/g/%s/%v", g, collapse) }
	open := layoutGraph(d, states, link, map[string]bool{}, groupLink)
	if len(open.Nodes) != 4 || len(open.Boxes) != 2 || open.Boxes[0].URL != "/g/extract/true" {
		t.Fatalf("expanded: %d nodes, boxes %+v", len(open.Nodes), open.Boxes)
	}
	// The outer box holds the inner one.
	outer, inner := open.Boxes[0], open.Boxes[1]
	if inner.X < outer.X || inner.Y < outer.Y || inner.X+inner.W > outer.X+outer.W || inner.Y+inner.H > outer.Y+outer.H {
		t.Errorf("the inner group is not inside the outer one: %+v %+v", outer, inner)
	}
	shut := layoutGraph(d, states, link, map[string]bool{"extract": true}, groupLink)
	var group *graphNode
	for i, n := range shut.Nodes {
		if n.Group {
			group = &shut.Nodes[i]
		}
	}
	if len(shut.Nodes) != 3 || group == nil || group.ID != "extract" || group.State != "failed" || group.URL != "/g/extract/false" ||
		!strings.Contains(group.Label, "(2)") || len(shut.Boxes) != 0 || len(shut.Edges) != 2 {
		t.Fatalf("collapsed: %+v, boxes %v, %d edges", shut.Nodes, shut.Boxes, len(shut.Edges))
	}
	e := newEnv(t, fixedBag{res, time.Now()})
	_, page := e.call("GET", "/dags/grouped?tab=graph&collapse=extract", "", "viewer")
	if !strings.Contains(page, "▸ extract (2)") || !strings.Contains(page, `id="expand-all"`) {
		t.Errorf("the graph page does not show the collapsed group:\n%s", page)
	}
}
