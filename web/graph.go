package web

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// graphSVG is a DAG drawn left to right: a column per depth (the longest
// path from a root), tasks in file order within a column. A collapsed task
// group is one node (its tasks' states summed up); an expanded one is a box
// around its tasks. The template draws it; every string in it is escaped
// there.
type graphSVG struct {
	Width, Height int
	Nodes         []graphNode
	Edges         []graphEdge
	Boxes         []graphBox
}

type graphNode struct {
	ID, Label, State, URL, Operator string
	X, Y, W, H                      int
	Group                           bool // a collapsed task group
}

type graphEdge struct {
	Path string
}

// graphBox is an expanded task group: a box behind its tasks, with a link
// that collapses it.
type graphBox struct {
	Label, URL string
	X, Y, W, H int
}

const (
	nodeW, nodeH   = 180, 34
	colGap, rowGap = 70, 16
	graphMargin    = 16
	boxPad         = 8
	maxLabelRunes  = 24
	ganttRowH      = 22
	ganttLabelW    = 200
	ganttW         = 760
)

// groupState sums up the states of a group's tasks as one: running or
// failed first, then waiting, success only when all succeeded.
func groupState(states []string) string {
	counts := map[string]int{}
	for _, st := range states {
		counts[st]++
	}
	for _, st := range []string{"running", "failed", "upstream_failed", "up_for_retry", "queued", "scheduled", "restarting", "none", "absent"} {
		if counts[st] > 0 {
			return st
		}
	}
	if counts["success"] > 0 {
		return "success"
	}
	if len(states) > 0 {
		return states[0]
	}
	return "absent"
}

// layoutGraph draws d; the groups in collapsed are drawn as one node each,
// linked to groupLink(group, false) to expand; the others as boxes linked
// to groupLink(group, true) to collapse.
func layoutGraph(d *dags.DAG, states map[string]string, link func(task string) string, collapsed map[string]bool,
	groupLink func(group string, collapse bool) string) *graphSVG {
	groups := map[string]*dags.TaskGroup{}
	for _, g := range d.Groups {
		groups[g.ID] = g
	}
	// ancestors lists a group and its parents, outermost first.
	ancestors := func(gid string) []string {
		var out []string
		for gid != "" && len(out) < 64 {
			out = append([]string{gid}, out...)
			if g := groups[gid]; g != nil {
				gid = g.Parent
			} else {
				gid = ""
			}
		}
		return out
	}
	// rep is the node a task is drawn as: itself, or its outermost
	// collapsed group.
	rep := func(t *dags.Task) string {
		for _, gid := range ancestors(t.Group) {
			if collapsed[gid] {
				return "group:" + gid
			}
		}
		return t.ID
	}
	depth := map[string]int{}
	var order []string
	members := map[string][]*dags.Task{}
	for _, t := range d.Tasks { // topological order
		n := rep(t)
		if _, seen := members[n]; !seen {
			order = append(order, n)
		}
		members[n] = append(members[n], t)
		for _, u := range t.Upstream {
			if m := rep(d.Task(u)); m != n {
				depth[n] = max(depth[n], depth[m]+1)
			}
		}
	}
	cols := map[int][]string{}
	maxDepth, maxRows := 0, 0
	for _, n := range order {
		c := depth[n]
		cols[c] = append(cols[c], n)
		maxDepth = max(maxDepth, c)
		maxRows = max(maxRows, len(cols[c]))
	}
	g := &graphSVG{Width: 2*graphMargin + (maxDepth+1)*nodeW + maxDepth*colGap, Height: 2*graphMargin + maxRows*nodeH + (maxRows-1)*rowGap}
	if len(d.Groups) > 0 {
		g.Height += 2 * boxPad
	}
	pos := map[string]graphNode{}
	for c := 0; c <= maxDepth; c++ {
		// Centre shorter columns vertically.
		offset := (maxRows - len(cols[c])) * (nodeH + rowGap) / 2
		for i, id := range cols[c] {
			n := graphNode{ID: id, X: graphMargin + c*(nodeW+colGap), Y: graphMargin + boxPad*min(1, len(d.Groups)) + offset + i*(nodeH+rowGap), W: nodeW, H: nodeH}
			if gid, ok := strings.CutPrefix(id, "group:"); ok {
				var sts []string
				for _, t := range members[id] {
					sts = append(sts, cmp.Or(states[t.ID], "absent"))
				}
				n.ID, n.Group, n.State, n.URL = gid, true, groupState(sts), groupLink(gid, false)
				n.Label, n.Operator = shorten("▸ "+gid+fmt.Sprintf(" (%d)", len(members[id]))), fmt.Sprintf("task group of %d tasks", len(members[id]))
			} else {
				t := members[id][0]
				n.Label, n.State, n.URL, n.Operator = shorten(t.ID), cmp.Or(states[t.ID], "absent"), link(t.ID), t.Operator
			}
			pos[id] = n
			g.Nodes = append(g.Nodes, n)
		}
	}
	drawn := map[string]bool{}
	for _, t := range d.Tasks {
		toKey := rep(t)
		to := pos[toKey]
		for _, u := range t.Upstream {
			fromKey := rep(d.Task(u))
			from := pos[fromKey]
			key := fromKey + "\x00" + toKey
			if fromKey == toKey || drawn[key] {
				continue
			}
			drawn[key] = true
			x1, y1 := from.X+from.W, from.Y+from.H/2
			x2, y2 := to.X, to.Y+to.H/2
			mid := (x1 + x2) / 2
			g.Edges = append(g.Edges, graphEdge{Path: fmt.Sprintf("M%d %d C%d %d, %d %d, %d %d", x1, y1, mid, y1, mid, y2, x2-6, y2)})
		}
	}
	// Expanded groups: a box around every node drawn inside them.
	for _, grp := range d.Groups {
		if slices.ContainsFunc(ancestors(grp.ID), func(a string) bool { return collapsed[a] }) {
			continue // it, or a group around it, is drawn as one node
		}
		x1, y1, x2, y2, any := 0, 0, 0, 0, false
		for _, t := range d.Tasks {
			if !slices.Contains(ancestors(t.Group), grp.ID) {
				continue
			}
			n, ok := pos[rep(t)]
			if !ok || n.Group && n.ID == grp.ID {
				continue
			}
			if !any {
				x1, y1, x2, y2, any = n.X, n.Y, n.X+n.W, n.Y+n.H, true
			}
			x1, y1, x2, y2 = min(x1, n.X), min(y1, n.Y), max(x2, n.X+n.W), max(y2, n.Y+n.H)
		}
		if any {
			g.Boxes = append(g.Boxes, graphBox{Label: "▾ " + grp.ID, URL: groupLink(grp.ID, true),
				X: x1 - boxPad, Y: y1 - boxPad - 4, W: x2 - x1 + 2*boxPad, H: y2 - y1 + 2*boxPad + 4})
		}
	}
	return g
}

func shorten(s string) string {
	r := []rune(s)
	if len(r) <= maxLabelRunes {
		return s
	}
	return string(r[:maxLabelRunes-1]) + "…"
}

// ganttSVG is a run's tries on a time axis, a row per task.
type ganttSVG struct {
	Width, Height int
	Rows          []ganttRow
	Bars          []ganttBar
	Ticks         []ganttTick
	Span          string
}

type ganttRow struct {
	Label, URL string
	Y          int
}

type ganttBar struct {
	X, Y, W, H int
	State      string
	Title      string
	URL        string
}

type ganttTick struct {
	X      int
	Label  string
	Anchor string // the label's text-anchor: the last ends at its tick, so it stays inside the chart
}

func layoutGantt(tis []store.TaskInstance, tries []store.Try, link func(task string) string) *ganttSVG {
	var start, end time.Time
	now := time.Now()
	for _, t := range tries {
		if start.IsZero() || t.StartDate.Before(start) {
			start = t.StartDate
		}
		e := now
		if t.EndDate != nil {
			e = *t.EndDate
		}
		if e.After(end) {
			end = e
		}
	}
	if len(tries) == 0 {
		return nil
	}
	span := end.Sub(start)
	if span <= 0 {
		span = time.Second
	}
	row := map[string]int{}
	g := &ganttSVG{Width: ganttLabelW + ganttW + 2*graphMargin, Span: span.Round(time.Second).String()}
	for i, ti := range tis {
		row[ti.TaskID] = i
		g.Rows = append(g.Rows, ganttRow{Label: shorten(ti.TaskID), URL: link(ti.TaskID), Y: graphMargin + 20 + i*ganttRowH})
	}
	g.Height = graphMargin*2 + 20 + len(tis)*ganttRowH
	scale := func(t time.Time) int { return ganttLabelW + int(float64(ganttW)*float64(t.Sub(start))/float64(span)) }
	sort.SliceStable(tries, func(i, j int) bool { return tries[i].TryNumber < tries[j].TryNumber })
	for _, t := range tries {
		i, ok := row[t.TaskID]
		if !ok {
			continue
		}
		e := now
		if t.EndDate != nil {
			e = *t.EndDate
		}
		x := scale(t.StartDate)
		w := max(2, scale(e)-x)
		state := string(t.State)
		title := fmt.Sprintf("%s try %d · %s\n%s → %s (%s)", t.TaskID, t.TryNumber, state, t.StartDate.UTC().Format("15:04:05"),
			e.UTC().Format("15:04:05"), e.Sub(t.StartDate).Round(time.Second))
		if t.Reason != "" {
			title += "\n" + t.Reason
		}
		g.Bars = append(g.Bars, ganttBar{X: x, Y: graphMargin + 20 + i*ganttRowH + 3, W: w, H: ganttRowH - 6, State: strings.ReplaceAll(state, " ", "_"),
			Title: title, URL: link(t.TaskID)})
	}
	for i := 0; i <= 4; i++ {
		at := start.Add(span * time.Duration(i) / 4)
		anchor := "middle"
		switch i {
		case 0:
			anchor = "start"
		case 4:
			anchor = "end"
		}
		g.Ticks = append(g.Ticks, ganttTick{X: scale(at), Label: at.UTC().Format("15:04:05"), Anchor: anchor})
	}
	return g
}
