package web

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"updraft/dags"
	"updraft/store"
)

// graphSVG is a DAG drawn left to right: a column per depth (the longest
// path from a root), tasks in file order within a column. The template
// draws it; every string in it is escaped there.
type graphSVG struct {
	Width, Height int
	Nodes         []graphNode
	Edges         []graphEdge
}

type graphNode struct {
	ID, Label, State, URL, Operator string
	X, Y, W, H                      int
}

type graphEdge struct {
	Path string
}

const (
	nodeW, nodeH   = 180, 34
	colGap, rowGap = 70, 16
	graphMargin    = 16
	maxLabelRunes  = 24
	ganttRowH      = 22
	ganttLabelW    = 200
	ganttW         = 760
)

func layoutGraph(d *dags.DAG, states map[string]string, link func(task string) string) *graphSVG {
	depth := map[string]int{}
	for _, t := range d.Tasks { // topological order
		for _, u := range t.Upstream {
			depth[t.ID] = max(depth[t.ID], depth[u]+1)
		}
	}
	cols := map[int][]*dags.Task{}
	maxDepth, maxRows := 0, 0
	for _, t := range d.Tasks {
		c := depth[t.ID]
		cols[c] = append(cols[c], t)
		maxDepth = max(maxDepth, c)
		maxRows = max(maxRows, len(cols[c]))
	}
	g := &graphSVG{Width: 2*graphMargin + (maxDepth+1)*nodeW + maxDepth*colGap, Height: 2*graphMargin + maxRows*nodeH + (maxRows-1)*rowGap}
	pos := map[string]graphNode{}
	for c := 0; c <= maxDepth; c++ {
		// Centre shorter columns vertically.
		offset := (maxRows - len(cols[c])) * (nodeH + rowGap) / 2
		for i, t := range cols[c] {
			n := graphNode{ID: t.ID, Label: shorten(t.ID), State: states[t.ID], URL: link(t.ID), Operator: t.Operator,
				X: graphMargin + c*(nodeW+colGap), Y: graphMargin + offset + i*(nodeH+rowGap), W: nodeW, H: nodeH}
			if n.State == "" {
				n.State = "absent"
			}
			pos[t.ID] = n
			g.Nodes = append(g.Nodes, n)
		}
	}
	for _, t := range d.Tasks {
		to := pos[t.ID]
		for _, u := range t.Upstream {
			from := pos[u]
			x1, y1 := from.X+from.W, from.Y+from.H/2
			x2, y2 := to.X, to.Y+to.H/2
			mid := (x1 + x2) / 2
			g.Edges = append(g.Edges, graphEdge{Path: fmt.Sprintf("M%d %d C%d %d, %d %d, %d %d", x1, y1, mid, y1, mid, y2, x2-6, y2)})
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
