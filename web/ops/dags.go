package ops

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"updraft/dags"
	"updraft/store"
)

// DAGView is one DAG as the API and the pages show it: its stored row and,
// while its file loads, its current version.
type DAGView struct {
	Row       store.DAGRow
	DAG       *dags.DAG // nil for a DAG whose file is gone
	ImportErr bool      // its file has an import error
	Next      *dags.DagRunInfo
}

// Active says whether the DAG's file still defines it.
func (v DAGView) Active() bool { return v.Row.Active && v.DAG != nil }

// Owners are the DAG's owners: its own, else its tasks' (Airflow takes
// a DAG's owners from its tasks).
func (v DAGView) Owners() []string {
	if v.DAG == nil {
		return []string{}
	}
	if len(v.DAG.Owners) > 0 {
		return v.DAG.Owners
	}
	var out []string
	for _, t := range v.DAG.Tasks {
		if t.Owner != "" && !slices.Contains(out, t.Owner) {
			out = append(out, t.Owner)
		}
	}
	if out == nil {
		return []string{}
	}
	return out
}

// DAGViews returns every known DAG by id; withNext fills each one's next
// run (a store read per DAG).
func (s *Service) DAGViews(ctx context.Context, withNext bool) ([]DAGView, error) {
	rows, err := s.Store.DAGs(ctx)
	if err != nil {
		return nil, err
	}
	res, _ := s.Bag.Current()
	byID := map[string]*dags.DAG{}
	for _, d := range res.DAGs {
		byID[d.ID] = d
	}
	bad := map[string]bool{}
	for _, f := range res.Files {
		if len(f.Problems.Errors()) > 0 {
			bad[f.Path] = true
		}
	}
	out := make([]DAGView, 0, len(rows))
	seen := map[string]bool{}
	for _, row := range rows {
		v := DAGView{Row: row, DAG: byID[row.ID], ImportErr: bad[row.File]}
		seen[row.ID] = true
		if withNext && v.DAG != nil {
			v.Next = s.NextRun(ctx, v.DAG)
		}
		out = append(out, v)
	}
	// A DAG loaded but not yet recorded by the scheduler is shown too.
	for _, d := range res.DAGs {
		if !seen[d.ID] {
			v := DAGView{Row: store.DAGRow{ID: d.ID, File: d.File, Active: true, Paused: d.IsPausedUponCreation, Version: d.Hash}, DAG: d, ImportErr: bad[d.File]}
			if withNext {
				v.Next = s.NextRun(ctx, d)
			}
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Row.ID < out[j].Row.ID })
	return out, nil
}

// NextRun is the DAG's next scheduled run, nil when there is none.
func (s *Service) NextRun(ctx context.Context, d *dags.DAG) *dags.DagRunInfo {
	if !d.Schedule.Periodic() && d.Schedule.Summary() != "@once" {
		return nil
	}
	last, err := s.Store.LastScheduledRun(ctx, d.ID)
	if err != nil {
		return nil
	}
	var iv *dags.DataInterval
	if last != nil {
		iv = &last.Interval
	}
	info, ok := dags.NextRun(d, iv, s.Now())
	if !ok {
		return nil
	}
	return &info
}

// DAGView returns one DAG with its next run; an unknown id is ErrNotFound.
func (s *Service) DAGView(ctx context.Context, id string) (DAGView, error) {
	views, err := s.DAGViews(ctx, false)
	if err != nil {
		return DAGView{}, err
	}
	for _, v := range views {
		if v.Row.ID == id {
			if v.DAG != nil {
				v.Next = s.NextRun(ctx, v.DAG)
			}
			return v, nil
		}
	}
	return DAGView{}, fmt.Errorf("dag %q: %w", id, store.ErrNotFound)
}

// CurrentDAG is the DAG as its file defines it now; ErrNotFound when no
// loaded file does.
func (s *Service) CurrentDAG(id string) (*dags.DAG, error) {
	res, _ := s.Bag.Current()
	for _, d := range res.DAGs {
		if d.ID == id {
			return d, nil
		}
	}
	return nil, fmt.Errorf("dag %q: %w", id, store.ErrNotFound)
}

// DAGQuery selects DAGs, the filters both APIs and the DAG list offer.
type DAGQuery struct {
	OnlyActive   bool
	Paused       *bool
	IDPattern    string   // SQL LIKE, case-insensitive, matching anywhere
	NamePattern  string   // same, on the display name
	Tags         []string // any of them, or all with TagsMatchAll
	TagsMatchAll bool
	Owners       []string
	HasImportErr *bool
	// LastRunStates keeps the DAGs whose latest run is in one of them.
	LastRunStates []dags.RunState
	OrderBy       []string // "field" or "-field", first decides first
}

// dagOrder are the fields DAG lists sort by.
var dagOrder = map[string]func(a, b DAGView) int{
	"dag_id":           func(a, b DAGView) int { return strings.Compare(a.Row.ID, b.Row.ID) },
	"dag_display_name": func(a, b DAGView) int { return strings.Compare(a.Row.ID, b.Row.ID) },
	"is_paused":        func(a, b DAGView) int { return CompareBool(a.Row.Paused, b.Row.Paused) },
	"fileloc":          func(a, b DAGView) int { return strings.Compare(a.Row.File, b.Row.File) },
	"last_parsed_time": func(a, b DAGView) int { return a.Row.LastParsed.Compare(b.Row.LastParsed) },
}

// DAGs returns the DAGs the query selects, in its order.
func (s *Service) DAGs(ctx context.Context, q DAGQuery) ([]DAGView, error) {
	views, err := s.DAGViews(ctx, false)
	if err != nil {
		return nil, err
	}
	var last map[string]dags.RunState
	if len(q.LastRunStates) > 0 {
		if last, err = s.lastRunStates(ctx); err != nil {
			return nil, err
		}
	}
	out := []DAGView{}
	for _, v := range views {
		if q.OnlyActive && !v.Active() || q.Paused != nil && v.Row.Paused != *q.Paused ||
			q.IDPattern != "" && !Like(q.IDPattern, v.Row.ID) || q.NamePattern != "" && !Like(q.NamePattern, v.Row.ID) ||
			q.HasImportErr != nil && v.ImportErr != *q.HasImportErr {
			continue
		}
		if len(q.Tags) > 0 {
			has := func(t string) bool { return v.DAG != nil && slices.Contains(v.DAG.Tags, t) }
			if q.TagsMatchAll && !all(q.Tags, has) || !q.TagsMatchAll && !slices.ContainsFunc(q.Tags, has) {
				continue
			}
		}
		if len(q.Owners) > 0 && !slices.ContainsFunc(q.Owners, func(o string) bool { return slices.Contains(v.Owners(), o) }) {
			continue
		}
		if len(q.LastRunStates) > 0 && !slices.Contains(q.LastRunStates, last[v.Row.ID]) {
			continue
		}
		out = append(out, v)
	}
	if err := SortBy(out, q.OrderBy, dagOrder); err != nil {
		return nil, err
	}
	return out, nil
}

func all(items []string, f func(string) bool) bool {
	for _, x := range items {
		if !f(x) {
			return false
		}
	}
	return true
}

// lastRunStates is the state of each DAG's latest run.
func (s *Service) lastRunStates(ctx context.Context) (map[string]dags.RunState, error) {
	last, err := s.Store.LastRuns(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]dags.RunState, len(last))
	for id, r := range last {
		out[id] = r.State
	}
	return out, nil
}

// SetPaused pauses or unpauses DAGs, in order; it stops at the first
// failure.
func (s *Service) SetPaused(ctx context.Context, views []DAGView, paused bool, actor string) ([]DAGView, error) {
	out := make([]DAGView, 0, len(views))
	for _, v := range views {
		if err := s.Commands.SetPaused(ctx, v.Row.ID, paused, actor); err != nil {
			return out, err
		}
		v.Row.Paused = paused
		out = append(out, v)
	}
	return out, nil
}

// Like matches SQL LIKE patterns as Airflow's *_pattern filters do: case
// insensitive, anywhere in the value, % any run of characters and _ any
// one, a backslash escaping the next character.
func Like(pattern, value string) bool {
	p, v := []rune(strings.ToLower(pattern)), []rune(strings.ToLower(value))
	// Anywhere: as if the pattern were %pattern%.
	for start := 0; start <= len(v); start++ {
		if likeAt(p, v[start:]) {
			return true
		}
	}
	return false
}

// likeAt matches p against a prefix of v.
func likeAt(p, v []rune) bool {
	for len(p) > 0 {
		switch p[0] {
		case '%':
			for len(p) > 0 && p[0] == '%' {
				p = p[1:]
			}
			if len(p) == 0 {
				return true
			}
			for i := 0; i <= len(v); i++ {
				if likeAt(p, v[i:]) {
					return true
				}
			}
			return false
		case '_':
			if len(v) == 0 {
				return false
			}
		case '\\':
			if len(p) > 1 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(v) == 0 || v[0] != p[0] {
				return false
			}
		}
		p, v = p[1:], v[1:]
	}
	return true
}

// CompareBool orders false before true.
func CompareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// SortBy orders items by order_by values ("field" or "-field"), the first
// deciding first; no values keep the order.
func SortBy[T any](items []T, orderBy []string, fields map[string]func(a, b T) int) error {
	type key struct {
		cmp  func(a, b T) int
		desc bool
	}
	var keys []key
	for _, ob := range orderBy {
		if ob == "" {
			continue
		}
		cmp, ok := fields[strings.TrimPrefix(ob, "-")]
		if !ok {
			names := make([]string, 0, len(fields))
			for k := range fields {
				names = append(names, k)
			}
			sort.Strings(names)
			return Invalid("cannot order by %q; use one of %s", ob, strings.Join(names, ", "))
		}
		keys = append(keys, key{cmp, strings.HasPrefix(ob, "-")})
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortStableFunc(items, func(a, b T) int {
		for _, k := range keys {
			c := k.cmp(a, b)
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
	return nil
}

// Page is one page of a list: Limit items from Offset.
type Page struct{ Limit, Offset int }

// Slice returns one page of items.
func Slice[T any](items []T, p Page) []T {
	if p.Offset >= len(items) {
		return []T{}
	}
	return items[p.Offset:min(len(items), p.Offset+p.Limit)]
}

// sourceReader is a bag that can show its files (dags.Folder).
type sourceReader interface {
	ReadFile(path string) ([]byte, string, error)
}

// ReadSource returns a DAG file as it is now, with the revision it was
// read at; a file that is gone, or a bag that cannot show its files, is
// store.ErrNotFound.
func (s *Service) ReadSource(file string) ([]byte, string, error) {
	sr, ok := s.Bag.(sourceReader)
	if !ok {
		return nil, "", fmt.Errorf("sources are not available: %w", store.ErrNotFound)
	}
	b, rev, err := sr.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("%s: %w", file, store.ErrNotFound)
	}
	return b, rev, err
}

// HasTaskLimits says whether a task of the DAG limits its own concurrency
// (Airflow's has_task_concurrency_limits).
func (v DAGView) HasTaskLimits() bool {
	if v.DAG == nil {
		return false
	}
	for _, t := range v.DAG.Tasks {
		if t.MaxActiveTisPerDag > 0 || t.MaxActiveTisPerDagrun > 0 {
			return true
		}
	}
	return false
}
