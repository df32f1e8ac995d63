package web

import (
	"net/http"
	"strconv"
	"strings"
)

// The DAG page's versions tab: every stored version of the DAG, and what
// changed between two of them (by default the last two).

type versionsTab struct {
	List     []versionRow
	From, To int
	Diff     []diffLine
	Same     bool
	Err      string
}

type versionRow struct {
	Number            int
	Created, Revision string
	Current           bool
}

type diffLine struct{ Class, Text string }

func (s *Server) fillVersions(r *http.Request, p *dagPage) error {
	vs, err := s.st.DAGVersions(r.Context(), p.ID)
	if err != nil {
		return err
	}
	tab := &versionsTab{}
	p.Versions = tab
	for _, v := range vs {
		tab.List = append(tab.List, versionRow{Number: v.Number, Created: v.CreatedAt.UTC().Format("2006-01-02 15:04 MST"),
			Revision: v.GitRevision, Current: v.Version == p.Version})
	}
	if len(vs) < 2 {
		return nil
	}
	tab.From, tab.To = len(vs)-1, len(vs)
	q := r.URL.Query()
	if n, err := strconv.Atoi(q.Get("from")); err == nil {
		tab.From = n
	}
	if n, err := strconv.Atoi(q.Get("to")); err == nil {
		tab.To = n
	}
	d, err := s.ops.DiffVersions(r.Context(), p.ID, tab.From, tab.To)
	if err != nil {
		tab.Err = cleanErr(err)
		return nil
	}
	tab.Same = d.Unified == ""
	for _, line := range strings.Split(strings.TrimSuffix(d.Unified, "\n"), "\n") {
		class := ""
		switch {
		case strings.HasPrefix(line, "+++"), strings.HasPrefix(line, "---"):
			class = "diff-file"
		case strings.HasPrefix(line, "@@"):
			class = "diff-hunk"
		case strings.HasPrefix(line, "+"):
			class = "diff-add"
		case strings.HasPrefix(line, "-"):
			class = "diff-del"
		}
		if line != "" || class != "" {
			tab.Diff = append(tab.Diff, diffLine{Class: class, Text: line})
		}
	}
	return nil
}
