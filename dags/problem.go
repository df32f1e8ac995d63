package dags

import (
	"fmt"
	"sort"
	"strings"
)

// Severity says whether a problem stops a DAG from loading.
type Severity int

const (
	// SeverityError rejects the DAG (or the whole file for syntax errors).
	SeverityError Severity = iota
	// SeverityWarning is reported but the DAG still loads.
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Problem is one finding about a DAG file, pointing at the line and column
// of the YAML node it concerns. Line and Col are 1-based; 0 means unknown.
type Problem struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Col      int      `json:"col"`
	Severity Severity `json:"-"`
	DAG      string   `json:"dag_id,omitempty"`
	Task     string   `json:"task_id,omitempty"`
	Msg      string   `json:"message"`
}

// String formats the problem as "file:line:col: message", the form editors
// and CI annotations understand. Warnings carry a "warning: " prefix.
func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Severity == SeverityWarning {
		b.WriteString("warning: ")
	}
	b.WriteString(p.Subject())
	b.WriteString(p.Msg)
	return b.String()
}

// Subject is the "dag "x", task "y": " prefix naming what the problem is about.
func (p Problem) Subject() string {
	switch {
	case p.DAG != "" && p.Task != "":
		return fmt.Sprintf("dag %q, task %q: ", p.DAG, p.Task)
	case p.DAG != "":
		return fmt.Sprintf("dag %q: ", p.DAG)
	}
	return ""
}

// Problems is a list of findings, in file then position order once sorted.
type Problems []Problem

// Errors returns only the problems of error severity.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == SeverityError {
			out = append(out, p)
		}
	}
	return out
}

// HasErrors reports whether any problem is an error.
func (ps Problems) HasErrors() bool {
	for _, p := range ps {
		if p.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Sort orders problems by file, line, column, then message.
func (ps Problems) Sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Msg < b.Msg
	})
}

// Error makes Problems usable as an error value.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// suggest returns ` (did you mean "x"?)` when a known name is close to the
// unknown one, and "" otherwise.
func suggest(unknown string, known []string) string {
	best, bestDist := "", 1<<30
	for _, k := range known {
		d := editDistance(strings.ToLower(unknown), strings.ToLower(k))
		if d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	limit := len(unknown) / 3
	if limit < 2 {
		limit = 2
	}
	if best == "" || bestDist > limit {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
