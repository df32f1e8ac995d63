package web

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"updraft/dags"
	"updraft/gitsync"
	"updraft/scheduler"
	"updraft/store"
	"updraft/store/trylog"
	"updraft/web/ops"
)

//go:embed static
var staticFS embed.FS

// uiRoutes are the pages and the forms behind their buttons. Every form
// posts with the session's CSRF token and redirects back (post, redirect,
// get), so the pages work without scripts; app.js only adds live refresh,
// log tailing and previews.
func (s *Server) uiRoutes(r chi.Router) {
	read, act, admin := s.need(permRead), s.need(permAct), s.need(permAdmin)
	r.With(read).Get("/", s.pageDAGs)
	r.With(read).Get("/dags/{dag_id}", s.pageDAG)
	r.With(read).Get("/dags/{dag_id}/runs/{run_id}", s.pageRun)
	r.With(read).Get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", s.pageTI)
	r.With(read).Get("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs/{try}", s.downloadLog)
	r.With(read).Get("/files/{token}", s.pageFile)
	r.With(read).Get("/audit", s.pageAudit)
	r.With(read).Get("/alerts", s.pageAlerts)
	// Links from Airflow's UI (old alerts, bookmarks) land on the same things here.
	r.With(read).Get("/tree", s.legacyDAG)
	r.With(read).Get("/dags/{dag_id}/grid", s.legacyDAG)
	r.With(read).Get("/task", s.legacyTask)
	r.With(admin).Get("/variables", s.pageVariables)
	r.With(act).Post("/dags/{dag_id}/pause", s.formPause)
	r.With(act).Post("/dags/{dag_id}/trigger", s.formTrigger)
	r.With(act).Post("/dags/{dag_id}/backfills", s.formBackfill)
	r.With(act).Post("/dags/{dag_id}/backfills/{backfill_id}/{action}", s.formChangeBackfill)
	r.With(act).Post("/dags/{dag_id}/runs/{run_id}/clear", s.formClearRun)
	r.With(act).Post("/dags/{dag_id}/runs/{run_id}/mark", s.formMarkRun)
	r.With(act).Post("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/clear", s.formClearTI)
	r.With(act).Post("/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark", s.formMarkTI)
	r.With(admin).Post("/variables", s.formSetVariable)
	r.With(admin).Post("/variables/{key}/delete", s.formDeleteVariable)
	op := s.need(permOp)
	r.With(read).Get("/pools", s.pagePools)
	r.With(op).Post("/pools", s.formSetPool)
	r.With(op).Post("/pools/{pool_name}/delete", s.formDeletePool)
	r.With(op).Get("/connections", s.pageConnections)
	r.With(op).Post("/connections/{conn_id}/test", s.formTestConnection)
	r.With(admin).Get("/users", s.pageUsers)
	r.With(admin).Post("/users", s.formCreateUser)
	r.With(admin).Post("/users/{username}", s.formEditUser)
	r.With(admin).Post("/users/{username}/delete", s.formDeleteUser)
}

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Files only: a folder is not listed.
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if st, err := fs.Stat(sub, name); name == "" || strings.HasSuffix(name, "/") || err != nil || st.IsDir() {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		files.ServeHTTP(w, r)
	})
}

// pagePath builds a page URL from path segments, each escaped.
func pagePath(segments ...string) string {
	var b strings.Builder
	for _, s := range segments {
		b.WriteString("/")
		b.WriteString(url.PathEscape(s))
	}
	return b.String()
}

func dagURL(id string) string             { return pagePath("dags", id) }
func runURL(dagID, runID string) string   { return pagePath("dags", dagID, "runs", runID) }
func tiURL(dagID, runID, t string) string { return pagePath("dags", dagID, "runs", runID, "tasks", t) }

// instURL is the page of one task instance: a mapped one's has its map index.
func instURL(k store.TIKey) string { return tiURL(k.DagID, k.RunID, k.TaskID) + mapQuery(k.MapIndex) }

// mapQuery is the query that names a map index ("" when unmapped).
func mapQuery(mapIndex int) string {
	if mapIndex < 0 {
		return ""
	}
	return "?map_index=" + strconv.Itoa(mapIndex)
}

// instName is how a task instance is named on pages: its task, and a
// mapped one's index and label ("check [1] events").
func instName(ti store.TaskInstance) string {
	if ti.MapIndex < 0 {
		return ti.TaskID
	}
	name := fmt.Sprintf("%s [%d]", ti.TaskID, ti.MapIndex)
	if ti.Label != "" {
		name += " " + ti.Label
	}
	return name
}

// pageData is what every page template gets.
type pageData struct {
	Title string
	Nav   string
	Session
	Flash string // the outcome of the last action (see takeFlash)
	Data  any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title, nav string, data any) {
	p := pageData{Title: title, Nav: nav, Session: sessionOf(r), Flash: s.takeFlash(w, r), Data: data}
	var buf strings.Builder
	if err := s.pages.ExecuteTemplate(&buf, name, p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "page error; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(buf.String()))
}

func (s *Server) pageError(w http.ResponseWriter, r *http.Request, err error) {
	status := statusOf(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		s.log.Error("page failed", "path", r.URL.Path, "err", err)
		msg = "internal error; see the server log"
	}
	s.render(w, r, status, "error.html", http.StatusText(status), "", msg)
}

// returnTo is the form's "return" field if it is a page of this site.
func returnTo(r *http.Request, def string) string {
	if v := r.PostFormValue("return"); v != "" && safeNext(v) == v {
		return v
	}
	return def
}

// --- DAGs ---

// failedTask is a task that failed in some of a DAG's recent runs.
type failedTask struct {
	TaskID, URL string // URL: its latest failed instance
	Runs, Of    int
}

// recentFailures finds, for each DAG, the tasks that failed in its recent
// runs (one query for the page).
func (s *Server) recentFailures(ctx context.Context, ids []string, recent map[string][]store.Run) (map[string][]failedTask, error) {
	var runIDs []string
	inRecent := map[string]bool{}
	for _, id := range ids {
		for _, r := range recent[id] {
			runIDs = append(runIDs, r.RunID)
			inRecent[id+"\x00"+r.RunID] = true
		}
	}
	out := map[string][]failedTask{}
	if len(runIDs) == 0 {
		return out, nil
	}
	tis, _, err := s.st.FindTaskInstances(ctx, store.TIFilter{DagIDs: ids, RunIDs: runIDs, States: []dags.TaskState{dags.StateFailed}})
	if err != nil {
		return nil, err
	}
	byTask := map[string]*failedTask{}
	runsOf := map[string]map[string]bool{}
	for _, ti := range tis { // oldest logical date first: the last seen is the latest
		if !inRecent[ti.DagID+"\x00"+ti.RunID] {
			continue
		}
		key := ti.DagID + "\x00" + ti.TaskID
		f := byTask[key]
		if f == nil {
			f = &failedTask{TaskID: ti.TaskID, Of: len(recent[ti.DagID])}
			byTask[key] = f
			runsOf[key] = map[string]bool{}
		}
		runsOf[key][ti.RunID] = true
		f.Runs, f.URL = len(runsOf[key]), tiURL(ti.DagID, ti.RunID, ti.TaskID)
	}
	for key, f := range byTask {
		dagID, _, _ := strings.Cut(key, "\x00")
		out[dagID] = append(out[dagID], *f)
	}
	for _, fs := range out {
		sort.Slice(fs, func(i, j int) bool {
			return fs[i].Runs > fs[j].Runs || fs[i].Runs == fs[j].Runs && fs[i].TaskID < fs[j].TaskID
		})
	}
	return out, nil
}

type dagListRow struct {
	// Failed are the tasks that failed in its recent runs: a run can
	// succeed with a failed task (an all_done leaf decides it).
	Failed                                              []failedTask
	Owners, LastRun, LastState, LastURL                 string
	ID, URL, Description, Schedule, Cron, NextRun, File string
	Tags                                                []string
	Paused, Active, ImportErr                           bool
	Recent                                              []runMark
	Return                                              string
}

type runMark struct {
	RunID, State, Title, URL string
}

type dagsPage struct {
	DAGs       []dagListRow
	Total      int
	Query, Tag string
	Tags       []string
	// Filters: the tags chosen (any of them), active or paused, the
	// latest run's state, an owner; and the order.
	TagsOn                    map[string]bool
	Status, Last, Owner, Sort string
	Owners                    []string
	Filtered                  bool // some filter is set: "no match" rather than "none loaded"
	Errors                    []store.ImportError
	ErrorLinks                map[string]string
	Kept                      []string
	Revision                  string
	LoadedAt                  time.Time
	Git                       *gitsync.Status
	ShowInactive              bool
	Offset                    int
	PrevPage                  string
	NextPage                  string
}

// tagLink is the DAG list with tag toggled among the chosen tags.
func tagLink(on map[string]bool, tag string) string {
	v := url.Values{}
	for t := range on {
		if t != tag {
			v.Add("tag", t)
		}
	}
	if !on[tag] {
		v.Add("tag", tag)
	}
	if len(v) == 0 {
		return "/"
	}
	return "/?" + v.Encode()
}

// dagsPerPage bounds the DAG list; search and tags reach the rest.
const dagsPerPage = 100

func (s *Server) pageDAGs(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	views, err := s.dagViews(ctx, false)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	res, at := s.bag.Current()
	q := r.URL.Query()
	p := dagsPage{Query: q.Get("q"), Tag: q.Get("tag"), Revision: res.Revision, LoadedAt: at, ShowInactive: q.Get("inactive") == "1",
		ErrorLinks: map[string]string{}}
	if v := q.Get("offset"); v != "" {
		if p.Offset, err = strconv.Atoi(v); err != nil || p.Offset < 0 {
			s.pageError(w, r, badRequest("offset must be a non-negative number"))
			return
		}
	}
	if s.git != nil {
		st := s.git.Status()
		p.Git = &st
	}
	for _, f := range res.Files {
		p.Kept = append(p.Kept, f.Kept...)
	}
	if p.Errors, err = s.st.ImportErrors(ctx); err != nil {
		s.pageError(w, r, err)
		return
	}
	for _, e := range p.Errors {
		p.ErrorLinks[e.File] = "/files/" + fileToken(e.File)
	}
	p.TagsOn = map[string]bool{}
	for _, t := range q["tag"] {
		if t != "" {
			p.TagsOn[t] = true
		}
	}
	p.Status, p.Last, p.Owner, p.Sort = q.Get("status"), q.Get("last"), q.Get("owner"), q.Get("sort")
	p.Filtered = p.Query != "" || len(p.TagsOn) > 0 || p.Status != "" || p.Last != "" || p.Owner != ""
	lastRuns, err := s.st.LastRuns(ctx)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	tags, owners := map[string]bool{}, map[string]bool{}
	var shown []dagView
	for _, v := range views {
		if v.DAG != nil {
			for _, t := range v.DAG.Tags {
				tags[t] = true
			}
		}
		for _, o := range v.Owners() {
			owners[o] = true
		}
		if !(v.Row.Active && v.DAG != nil) && !p.ShowInactive {
			continue
		}
		if p.Query != "" && !strings.Contains(strings.ToLower(v.Row.ID), strings.ToLower(p.Query)) &&
			(v.DAG == nil || !strings.Contains(strings.ToLower(v.DAG.Description), strings.ToLower(p.Query))) {
			continue
		}
		if len(p.TagsOn) > 0 && (v.DAG == nil || !slices.ContainsFunc(v.DAG.Tags, func(t string) bool { return p.TagsOn[t] })) {
			continue
		}
		if p.Status == "active" && v.Row.Paused || p.Status == "paused" && !v.Row.Paused ||
			p.Last != "" && string(lastRuns[v.Row.ID].State) != p.Last || p.Owner != "" && !slices.Contains(v.Owners(), p.Owner) {
			continue
		}
		shown = append(shown, v)
	}
	for t := range tags {
		p.Tags = append(p.Tags, t)
	}
	sort.Strings(p.Tags)
	for o := range owners {
		p.Owners = append(p.Owners, o)
	}
	sort.Strings(p.Owners)
	switch p.Sort {
	case "-dag_id":
		sort.SliceStable(shown, func(i, j int) bool { return shown[i].Row.ID > shown[j].Row.ID })
	case "owner":
		sort.SliceStable(shown, func(i, j int) bool {
			return strings.Join(shown[i].Owners(), ",") < strings.Join(shown[j].Owners(), ",")
		})
	case "last_run": // the most recent first, never-run last
		sort.SliceStable(shown, func(i, j int) bool {
			a, b := lastRuns[shown[i].Row.ID], lastRuns[shown[j].Row.ID]
			return a.LogicalDate.After(b.LogicalDate)
		})
	}
	p.Total = len(shown)
	shown = slice(shown, page{limit: dagsPerPage, offset: p.Offset})
	pageURL := func(offset int) string {
		v := url.Values{}
		for _, k := range []string{"q", "tag", "inactive", "status", "last", "owner", "sort"} {
			for _, x := range q[k] {
				if x != "" {
					v.Add(k, x)
				}
			}
		}
		v.Set("offset", strconv.Itoa(offset))
		return "/?" + v.Encode()
	}
	if p.Offset > 0 {
		p.PrevPage = pageURL(max(0, p.Offset-dagsPerPage))
	}
	if p.Offset+dagsPerPage < p.Total {
		p.NextPage = pageURL(p.Offset + dagsPerPage)
	}
	ids := make([]string, len(shown))
	for i, v := range shown {
		ids[i] = v.Row.ID
	}
	recent, err := s.st.RecentRuns(ctx, ids, 10)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	lasts, err := s.st.LastScheduledRuns(ctx, ids)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	failures, err := s.recentFailures(ctx, ids, recent)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	now := s.now()
	ret := r.URL.RequestURI()
	for _, v := range shown {
		row := dagListRow{ID: v.Row.ID, URL: dagURL(v.Row.ID), File: v.Row.File, Paused: v.Row.Paused, Active: v.Row.Active && v.DAG != nil,
			ImportErr: v.ImportErr, Return: ret}
		if v.DAG != nil {
			row.Description, row.Tags = v.DAG.Description, v.DAG.Tags
			row.Schedule, row.Cron = dags.Describe(v.DAG.Schedule), v.DAG.Schedule.Summary()
			row.NextRun = "manual only"
			if v.DAG.Schedule.Periodic() || v.DAG.Schedule.Summary() == "@once" {
				var last *dags.DataInterval
				if run, ok := lasts[v.Row.ID]; ok {
					last = &run.Interval
				}
				row.NextRun = "none"
				if info, ok := dags.NextRun(v.DAG, last, now); ok {
					row.NextRun = info.RunAfter.UTC().Format("2006-01-02 15:04 MST")
					if v.Row.Paused && !info.RunAfter.After(now) {
						row.NextRun = "when unpaused" // a time in the past would mislead
					}
				}
			}
		}
		row.Failed = failures[v.Row.ID]
		row.Owners = strings.Join(v.Owners(), ", ")
		if lr, ok := lastRuns[v.Row.ID]; ok {
			row.LastRun, row.LastState, row.LastURL = lr.LogicalDate.UTC().Format("2006-01-02 15:04"), string(lr.State), runURL(lr.DagID, lr.RunID)
		}
		runs := recent[v.Row.ID]
		for i := len(runs) - 1; i >= 0; i-- {
			run := runs[i]
			row.Recent = append(row.Recent, runMark{RunID: run.RunID, State: string(run.State), URL: runURL(run.DagID, run.RunID),
				Title: run.RunID + ": " + string(run.State)})
		}
		p.DAGs = append(p.DAGs, row)
	}
	s.render(w, r, http.StatusOK, "dags.html", "DAGs", "dags", p)
}

func (s *Server) formPause(w http.ResponseWriter, r *http.Request) {
	id := param(r, "dag_id")
	paused := r.PostFormValue("paused") == "true"
	ret := returnTo(r, dagURL(id))
	if err := s.cmd.SetPaused(r.Context(), id, paused, actor(r)); err != nil {
		s.back(w, r, ret, "Error: "+err.Error())
		return
	}
	word := "unpaused"
	if paused {
		word = "paused"
	}
	s.back(w, r, ret, id+" "+word+".")
}

// --- one DAG ---

type gridRow struct {
	TaskID, Group string
	Depth         int
	// HTML is the row's cells, built here rather than by the template: a
	// year of runs of a wide DAG is tens of thousands of cells.
	HTML template.HTML
}

type gridCol struct {
	RunID, URL, State, RunType, Label, Title string
	Selected                                 bool
}

type dagPage struct {
	ID, Tab, File, FileURL, Description, DocMD, Schedule, Cron, Timezone, NextRun string
	DocHTML                                                                       template.HTML // DocMD rendered and sanitised
	Paused, Active                                                                bool
	Owners, Tags                                                                  []string
	MaxActiveRuns, MaxActiveTasks                                                 int
	Catchup                                                                       bool
	DagrunTimeout, StartDate, EndDate, Version, Revision                          string
	Params                                                                        []paramField
	ParamsJSON                                                                    string
	// grid
	Cols     []gridCol
	Rows     []gridRow
	RunLimit int
	Selected *selectedTI
	// graph
	Graph     *graphSVG
	GraphRun  string
	GraphRuns []gridCol
	// runs
	Runs      []runRow
	RunsTotal int
	RunFilter runListFilter
	PrevPage  string
	NextPage  string
	// source
	Source    []sourceLine
	SourceRev string
	Return    string
	// backfills
	Backfill *backfillTab
	// graph: links that collapse every top-level task group, or none
	CollapseAll, ExpandAll string
	// versions
	Versions *versionsTab
	// the trigger form as it was typed, after an error
	Trigger triggerForm
	// details: the deadlines and slas, and the latest misses
	Deadlines   []string
	Misses      []missRow
	MissesTotal int
}

type triggerForm struct {
	Open                     bool
	Conf, RunID, LogicalDate string
}

type runRow struct {
	DagID, RunID, URL, RunType, State, Logical, Started, Ended, Duration, Revision string
}

type runListFilter struct {
	State, RunType string
	Offset         int
}

type paramField struct {
	Name, Value, Type string
}

type sourceLine struct {
	N     int
	Text  string
	Error string
}

type selectedTI struct {
	DagID, RunID, TaskID, State, URL, RunURL, Started, Ended, Duration string
	Tries                                                              int
	CanClear                                                           bool
	Mapped                                                             []mappedLink // a mapped task's instances
}

// mappedLink is one instance of a mapped task in the grid's task panel.
type mappedLink struct {
	Name, URL, State, Duration string
	Tries                      int
}

// mappedState is the state a mapped task's grid cell shows: running while
// any instance runs, failed if one failed, else the most common state.
func mappedState(insts []store.TaskInstance) dags.TaskState {
	counts := map[dags.TaskState]int{}
	for _, ti := range insts {
		counts[ti.State]++
	}
	for _, st := range []dags.TaskState{dags.StateRunning, dags.StateQueued, dags.StateFailed, dags.StateUpstreamFailed, dags.StateUpForRetry, dags.StateScheduled, dags.StateNone} {
		if counts[st] > 0 {
			return st
		}
	}
	if counts[dags.StateSuccess] > 0 {
		return dags.StateSuccess
	}
	return insts[0].State
}

// mappedSummary counts a mapped task's instances by state for a tooltip.
func mappedSummary(insts []store.TaskInstance) string {
	counts := map[string]int{}
	for _, ti := range insts {
		counts[string(ti.State)]++
	}
	parts := []string{fmt.Sprintf("%d mapped instances", len(insts))}
	for _, st := range sortedKeys(counts) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
	}
	return strings.Join(parts, "\n")
}

func (s *Server) pageDAG(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := param(r, "dag_id")
	v, err := s.dagView(ctx, id)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	q := r.URL.Query()
	p := dagPage{ID: id, Tab: q.Get("tab"), File: v.Row.File, FileURL: "/files/" + fileToken(v.Row.File), Paused: v.Row.Paused,
		Active: v.Row.Active && v.DAG != nil, Version: v.Row.Version, Return: r.URL.RequestURI(),
		Trigger: triggerForm{Open: q.Get("trigger") == "1", Conf: q.Get("conf"), RunID: q.Get("run_id"), LogicalDate: q.Get("logical_date")}}
	if p.Trigger.Conf == "" {
		p.Trigger.Conf = "{}"
	}
	if p.Tab == "" {
		p.Tab = "grid"
	}
	d := v.DAG
	if d != nil {
		p.Description, p.DocMD, p.Owners, p.Tags = d.Description, d.DocMD, d.Owners, d.Tags
		p.DocHTML = renderDoc(d.DocMD)
		p.Schedule, p.Cron, p.Timezone = dags.Describe(d.Schedule), d.Schedule.Summary(), d.Location.String()
		p.MaxActiveRuns, p.MaxActiveTasks, p.Catchup, p.Revision = d.MaxActiveRuns, d.MaxActiveTasks, d.Catchup, d.Revision
		if d.DagrunTimeout > 0 {
			p.DagrunTimeout = d.DagrunTimeout.String()
		}
		if d.StartDate != nil {
			p.StartDate = d.StartDate.UTC().Format("2006-01-02 15:04 MST")
		}
		if d.EndDate != nil {
			p.EndDate = d.EndDate.UTC().Format("2006-01-02 15:04 MST")
		}
		if v.Next != nil {
			p.NextRun = v.Next.RunAfter.UTC().Format("2006-01-02 15:04 MST")
			if v.Row.Paused && !v.Next.RunAfter.After(s.now()) {
				p.NextRun = "when unpaused" // a time in the past would mislead
			}
		}
		p.Params, p.ParamsJSON = paramFields(d.Params)
	}
	switch p.Tab {
	case "grid":
		err = s.fillGrid(ctx, r, &p, d)
	case "graph":
		err = s.fillGraph(ctx, r, &p, d)
	case "runs":
		err = s.fillRuns(ctx, r, &p)
	case "source":
		err = s.fillSource(&p)
	case "details":
		if d != nil {
			p.Deadlines = deadlineLines(d)
		}
		p.Misses, p.MissesTotal, err = s.missRows(ctx, store.MissFilter{DagID: id, Limit: 20})
	case "backfills":
		err = s.fillBackfills(r, &p, d, sessionOf(r).CanAct)
	case "versions":
		err = s.fillVersions(r, &p)
	default:
		err = fmt.Errorf("no tab %q: %w", p.Tab, errBadRequest)
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "dag.html", id, "dags", p)
}

// paramFields turns a DAG's params into form fields for the trigger form,
// and their defaults into the conf JSON shown beside them.
func paramFields(params map[string]any) ([]paramField, string) {
	var out []paramField
	for _, k := range sortedKeys(params) {
		v := params[k]
		f := paramField{Name: k, Type: "text"}
		switch x := v.(type) {
		case bool:
			f.Type, f.Value = "checkbox", strconv.FormatBool(x)
		case int, int64, float64:
			f.Type, f.Value = "number", fmt.Sprint(x)
		case string:
			f.Value = x
		default:
			f.Type, f.Value = "json", mustJSON(x)
		}
		out = append(out, f)
	}
	if len(params) == 0 {
		return nil, "{}"
	}
	return out, mustJSONIndent(params)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// gridRuns is how many runs the grid shows by default (as Airflow) and at most.
const (
	gridRuns    = 25
	maxGridRuns = 365
)

func (s *Server) fillGrid(ctx context.Context, r *http.Request, p *dagPage, d *dags.DAG) error {
	p.RunLimit = gridRuns
	if v := r.URL.Query().Get("runs"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return badRequest("runs must be a positive number")
		}
		p.RunLimit = min(n, maxGridRuns)
	}
	runs, err := s.st.Runs(ctx, store.RunFilter{DagID: p.ID, Limit: p.RunLimit})
	if err != nil {
		return err
	}
	slices.Reverse(runs) // oldest left, newest right, as Airflow
	ids := make([]string, len(runs))
	for i, run := range runs {
		ids[i] = run.RunID
	}
	tis, err := s.st.TaskInstancesOfRuns(ctx, p.ID, ids)
	if err != nil {
		return err
	}
	byKey := make(map[string]store.TaskInstance, len(tis))
	mapped := map[string][]store.TaskInstance{} // a mapped task's instances in a run: one cell
	taskSet := map[string]bool{}
	for _, ti := range tis {
		key := ti.RunID + "\x00" + ti.TaskID
		if ti.MapIndex >= 0 {
			mapped[key] = append(mapped[key], ti)
			ti.State = mappedState(mapped[key])
		}
		byKey[key] = ti
		taskSet[ti.TaskID] = true
	}
	// Rows: the current DAG's tasks in order, then tasks only older runs had.
	var tasks []string
	if d != nil {
		for _, t := range d.Tasks {
			tasks = append(tasks, t.ID)
			delete(taskSet, t.ID)
		}
	}
	tasks = append(tasks, sortedKeys(taskSet)...)
	selRun, selTask := r.URL.Query().Get("run"), r.URL.Query().Get("task")
	runsParam := ""
	if p.RunLimit != gridRuns {
		runsParam = "&runs=" + strconv.Itoa(p.RunLimit)
	}
	base := dagURL(p.ID) + "?tab=grid" + runsParam
	runParams := make([]string, len(runs))
	for i, run := range runs {
		runParams[i] = "&run=" + url.QueryEscape(run.RunID)
	}
	for _, run := range runs {
		c := gridCol{RunID: run.RunID, URL: runURL(p.ID, run.RunID), State: string(run.State), RunType: run.RunType,
			Label: run.LogicalDate.UTC().Format("01-02 15:04"), Selected: run.RunID == selRun}
		c.Title = fmt.Sprintf("%s\n%s · %s\nlogical date %s%s", run.RunID, run.RunType, run.State,
			run.LogicalDate.UTC().Format(time.RFC3339), durationNote(run.StartDate, run.EndDate))
		p.Cols = append(p.Cols, c)
	}
	for _, task := range tasks {
		row := gridRow{TaskID: task}
		if d != nil && d.Task(task) != nil {
			row.Group = d.Task(task).Group
			row.Depth = strings.Count(row.Group, ".")
			if row.Group != "" {
				row.Depth++
			}
		}
		var b strings.Builder
		taskParam := "&task=" + url.QueryEscape(task)
		for i, run := range runs {
			ti, ok := byKey[run.RunID+"\x00"+task]
			if !ok {
				b.WriteString(`<td><span class="cell absent"></span></td>`)
				continue
			}
			st := string(ti.State)
			if st == "" {
				st = "none"
			}
			selected := run.RunID == selRun && task == selTask
			title := task + " · " + st + "\ntry " + strconv.Itoa(ti.TryNumber) + " of " + strconv.Itoa(ti.MaxTries+1) + durationNote(ti.StartDate, ti.EndDate)
			insts := mapped[run.RunID+"\x00"+task]
			if len(insts) > 0 {
				title = task + " · " + st + "\n" + mappedSummary(insts)
			}
			b.WriteString(`<td><a href="`)
			b.WriteString(html.EscapeString(base + runParams[i] + taskParam))
			b.WriteString(`" class="cell s-`)
			b.WriteString(html.EscapeString(st))
			if selected {
				b.WriteString(` sel`)
			}
			if len(insts) > 0 {
				b.WriteString(` mapped`)
			}
			b.WriteString(`" title="`)
			b.WriteString(html.EscapeString(title))
			b.WriteString(`"></a></td>`)
			if selected {
				p.Selected = &selectedTI{DagID: p.ID, RunID: run.RunID, TaskID: task, State: st, URL: tiURL(p.ID, run.RunID, task),
					RunURL: runURL(p.ID, run.RunID), Started: fmtTime(ti.StartDate), Ended: fmtTime(ti.EndDate),
					Duration: duration(ti.StartDate, ti.EndDate), Tries: ti.TryNumber}
				for _, in := range insts {
					ist := string(in.State)
					p.Selected.Mapped = append(p.Selected.Mapped, mappedLink{Name: instName(in), URL: instURL(in.Key()), State: ist,
						Duration: duration(in.StartDate, in.EndDate), Tries: in.TryNumber})
				}

			}
		}
		row.HTML = template.HTML(b.String()) // every piece escaped above
		p.Rows = append(p.Rows, row)
	}
	return nil
}

func durationNote(start, end *time.Time) string {
	if d := duration(start, end); d != "" {
		return "\nduration " + d
	}
	return ""
}

// duration formats end-start, or how long it has run so far.
func duration(start, end *time.Time) string {
	if start == nil {
		return ""
	}
	stop := time.Now()
	if end != nil {
		stop = *end
	}
	return stop.Sub(*start).Round(time.Second).String()
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 MST")
}

func (s *Server) fillGraph(ctx context.Context, r *http.Request, p *dagPage, d *dags.DAG) error {
	if d == nil {
		return fmt.Errorf("dag %q is not loaded (its file is gone): %w", p.ID, store.ErrNotFound)
	}
	runs, err := s.st.Runs(ctx, store.RunFilter{DagID: p.ID, Limit: gridRuns})
	if err != nil {
		return err
	}
	p.GraphRun = r.URL.Query().Get("run")
	if p.GraphRun == "" && len(runs) > 0 {
		p.GraphRun = runs[0].RunID
	}
	states := map[string]string{}
	for _, run := range runs {
		p.GraphRuns = append(p.GraphRuns, gridCol{RunID: run.RunID, State: string(run.State), Selected: run.RunID == p.GraphRun})
	}
	if p.GraphRun != "" {
		tis, err := s.st.TaskInstances(ctx, p.ID, p.GraphRun)
		if err != nil {
			return err
		}
		for _, ti := range tis {
			st := string(ti.State)
			if st == "" {
				st = "none"
			}
			states[ti.TaskID] = st
		}
	}
	collapsed := map[string]bool{}
	for _, g := range r.URL.Query()["collapse"] {
		collapsed[g] = true
	}
	groupLink := func(group string, collapse bool) string {
		v := url.Values{"tab": {"graph"}}
		if p.GraphRun != "" {
			v.Set("run", p.GraphRun)
		}
		for g := range collapsed {
			if g != group {
				v.Add("collapse", g)
			}
		}
		if collapse {
			v.Add("collapse", group)
		}
		return dagURL(p.ID) + "?" + v.Encode()
	}
	p.Graph = layoutGraph(d, states, func(task string) string {
		if p.GraphRun == "" || states[task] == "" {
			return ""
		}
		return tiURL(p.ID, p.GraphRun, task)
	}, collapsed, groupLink)
	if len(d.Groups) > 0 {
		all := url.Values{"tab": {"graph"}}
		if p.GraphRun != "" {
			all.Set("run", p.GraphRun)
		}
		for _, g := range d.Groups {
			if g.Parent == "" {
				all.Add("collapse", g.ID)
			}
		}
		p.CollapseAll, p.ExpandAll = dagURL(p.ID)+"?"+all.Encode(), groupLink("", false)
	}
	return nil
}

func (s *Server) fillRuns(ctx context.Context, r *http.Request, p *dagPage) error {
	q := r.URL.Query()
	p.RunFilter = runListFilter{State: q.Get("state"), RunType: q.Get("run_type")}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return badRequest("offset must be a non-negative number")
		}
		p.RunFilter.Offset = n
	}
	f := store.RunFilter{DagID: p.ID, RunType: p.RunFilter.RunType, Limit: 50, Offset: p.RunFilter.Offset}
	if p.RunFilter.State != "" {
		f.States = []dags.RunState{dags.RunState(p.RunFilter.State)}
	}
	runs, err := s.st.Runs(ctx, f)
	if err != nil {
		return err
	}
	if p.RunsTotal, err = s.st.CountRuns(ctx, f); err != nil {
		return err
	}
	for _, run := range runs {
		p.Runs = append(p.Runs, toRunRow(run))
	}
	pageURL := func(offset int) string {
		v := url.Values{"tab": {"runs"}, "offset": {strconv.Itoa(offset)}}
		if p.RunFilter.State != "" {
			v.Set("state", p.RunFilter.State)
		}
		if p.RunFilter.RunType != "" {
			v.Set("run_type", p.RunFilter.RunType)
		}
		return dagURL(p.ID) + "?" + v.Encode()
	}
	if p.RunFilter.Offset > 0 {
		p.PrevPage = pageURL(max(0, p.RunFilter.Offset-50))
	}
	if p.RunFilter.Offset+50 < p.RunsTotal {
		p.NextPage = pageURL(p.RunFilter.Offset + 50)
	}
	return nil
}

func toRunRow(run store.Run) runRow {
	return runRow{DagID: run.DagID, RunID: run.RunID, URL: runURL(run.DagID, run.RunID), RunType: run.RunType, State: string(run.State),
		Logical: run.LogicalDate.UTC().Format("2006-01-02 15:04:05"), Started: fmtTime(run.StartDate), Ended: fmtTime(run.EndDate),
		Duration: duration(run.StartDate, run.EndDate), Revision: run.GitRevision}
}

func (s *Server) readSource(file string) ([]byte, string, error) { return s.ops.ReadSource(file) }

func (s *Server) fillSource(p *dagPage) error {
	b, rev, err := s.readSource(p.File)
	if err != nil {
		return err
	}
	p.SourceRev = rev
	p.Source = sourceLines(b, nil)
	return nil
}

func sourceLines(b []byte, errs map[int]string) []sourceLine {
	var out []sourceLine
	for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		out = append(out, sourceLine{N: i + 1, Text: line, Error: errs[i+1]})
	}
	return out
}

type filePage struct {
	File, Revision string
	Lines          []sourceLine
	Errors         []dags.Problem
	DAGs           []string
}

// pageFile shows a DAG file with its problems beside their lines (the
// import-error banner links here).
func (s *Server) pageFile(w http.ResponseWriter, r *http.Request) {
	raw, err := base64Decode(param(r, "token"))
	if err != nil {
		s.pageError(w, r, badRequest("not a file link"))
		return
	}
	file := string(raw)
	b, rev, err := s.readSource(file)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := filePage{File: file, Revision: rev}
	res, _ := s.bag.Current()
	errs := map[int]string{}
	for _, f := range res.Files {
		if f.Path != file {
			continue
		}
		p.DAGs = f.DAGs
		for _, pr := range f.Problems {
			p.Errors = append(p.Errors, pr)
			if pr.Line > 0 {
				errs[pr.Line] = strings.TrimSpace(errs[pr.Line] + " " + pr.Subject() + pr.Msg)
			}
		}
	}
	p.Lines = sourceLines(b, errs)
	s.render(w, r, http.StatusOK, "file.html", file, "dags", p)
}

func (s *Server) formTrigger(w http.ResponseWriter, r *http.Request) {
	id := param(r, "dag_id")
	ret := returnTo(r, dagURL(id))
	o := scheduler.TriggerOptions{Actor: actor(r), RunID: strings.TrimSpace(r.PostFormValue("run_id")), Note: r.PostFormValue("note")}
	if v := strings.TrimSpace(r.PostFormValue("logical_date")); v != "" {
		t, err := parseFormTime(v)
		if err != nil {
			s.back(w, r, ret, "Error: "+err.Error())
			return
		}
		o.LogicalDate = &t
	}
	conf := map[string]any{}
	if raw := strings.TrimSpace(r.PostFormValue("conf")); raw != "" && raw != "{}" {
		c, err := ops.DecodeConf([]byte(raw))
		if err != nil {
			// Back to the form as it was typed, with what is wrong.
			if u, err := url.Parse(ret); err == nil && u.Path == dagURL(id) {
				q := u.Query()
				q.Set("trigger", "1")
				q.Set("conf", raw)
				q.Set("run_id", r.PostFormValue("run_id"))
				q.Set("logical_date", r.PostFormValue("logical_date"))
				u.RawQuery = q.Encode()
				ret = u.String()
			}
			s.back(w, r, ret, "Error: "+strings.TrimSuffix(err.Error(), ": "+errBadRequest.Error()))
			return
		}
		conf = c
	}
	// Fields generated from params win over the same keys in the JSON.
	if d, err := s.currentDAG(id); err == nil {
		for _, f := range func() []paramField { fs, _ := paramFields(d.Params); return fs }() {
			name := "param." + f.Name
			if _, sent := r.PostForm[name]; !sent && f.Type != "checkbox" {
				continue
			}
			raw := r.PostFormValue(name)
			switch f.Type {
			case "checkbox":
				if r.PostFormValue("params_form") == "1" {
					conf[f.Name] = raw == "true"
				}
			case "number":
				if n, err := strconv.ParseFloat(raw, 64); err == nil {
					conf[f.Name] = dags.JSONNumbers(n)
				} else {
					s.back(w, r, ret, fmt.Sprintf("Error: param %s: %q is not a number", f.Name, raw))
					return
				}
			case "json":
				c, err := ops.DecodeConf([]byte(`{"v":` + raw + `}`))
				if err != nil {
					s.back(w, r, ret, fmt.Sprintf("Error: param %s: not JSON", f.Name))
					return
				}
				conf[f.Name] = c["v"]
			default:
				conf[f.Name] = raw
			}
		}
	}
	if len(conf) > 0 {
		o.Conf = conf
	}
	run, err := s.ops.Trigger(r.Context(), id, o)
	if err != nil {
		s.back(w, r, ret, "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, runURL(id, run.RunID), "Triggered "+run.RunID+".")
}

// parseFormTime reads a logical date from a form: RFC 3339, or the
// datetime-local input's form (taken as UTC).
func parseFormTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			if ops.CheckYear("logical date", &t) != nil {
				return time.Time{}, fmt.Errorf("logical date %q is out of range (1970 to 9999)", v)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("logical date %q: use 2024-05-01T03:00 (UTC) or RFC 3339", v)
}

// cleanErr is an error for a person: without the sentinel suffixes.
func cleanErr(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{errBadRequest, scheduler.ErrInvalid, store.ErrInvalidFilter, store.ErrNotFound, store.ErrConflict} {
		msg = strings.TrimSuffix(msg, ": "+sentinel.Error())
	}
	if statusOf(err) == http.StatusConflict {
		msg += " (already exists)"
	}
	return msg
}

// --- one run ---

type runPage struct {
	runRow
	Misses                     []missRow
	DagID, Conf, Version, Note string
	ExternalTrigger            bool
	Tasks                      []runTask
	Gantt                      *ganttSVG
	Return                     string
}

type runTask struct {
	TaskID, URL, State, Operator, Started, Ended, Duration string
	Tries, MaxTries                                        int
}

func (s *Server) pageRun(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	dagID, runID := param(r, "dag_id"), param(r, "run_id")
	run, err := s.st.Run(ctx, dagID, runID)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	tis, err := s.st.TaskInstances(ctx, dagID, runID)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p := runPage{runRow: toRunRow(run), DagID: dagID, Conf: mustJSONIndent(run.Conf), Version: run.DAGVersion, Note: run.Note,
		ExternalTrigger: run.ExternalTrigger, Return: r.URL.RequestURI()}
	if run.Conf == nil {
		p.Conf = "{}"
	}
	var tries []store.Try
	order := map[string]int{}
	if d, err := s.currentDAG(dagID); err == nil {
		for i, t := range d.Tasks {
			order[t.ID] = i + 1
		}
	}
	sort.SliceStable(tis, func(i, j int) bool {
		oi, oj := order[tis[i].TaskID], order[tis[j].TaskID]
		if oi == 0 || oj == 0 {
			return oi != 0 || (oj == 0 && tis[i].TaskID < tis[j].TaskID)
		}
		return oi < oj
	})
	for _, ti := range tis {
		st := string(ti.State)
		if st == "" {
			st = "none"
		}
		p.Tasks = append(p.Tasks, runTask{TaskID: instName(ti), URL: instURL(ti.Key()), State: st, Operator: ti.Operator,
			Started: fmtTime(ti.StartDate), Ended: fmtTime(ti.EndDate), Duration: duration(ti.StartDate, ti.EndDate),
			Tries: ti.TryNumber, MaxTries: ti.MaxTries + 1})
		ts, err := s.st.Tries(ctx, ti.Key())
		if err != nil {
			s.pageError(w, r, err)
			return
		}
		tries = append(tries, ts...)
	}
	p.Gantt = layoutGantt(tis, tries, func(task string) string { return tiURL(dagID, runID, task) })
	if p.Misses, _, err = s.missRows(ctx, store.MissFilter{DagID: dagID, RunID: runID}); err != nil {
		s.pageError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "run.html", runID, "dags", p)
}

func (s *Server) formClearRun(w http.ResponseWriter, r *http.Request) {
	dagID, runID := param(r, "dag_id"), param(r, "run_id")
	ret := returnTo(r, runURL(dagID, runID))
	tis, err := s.st.TaskInstances(r.Context(), dagID, runID)
	if err != nil {
		s.back(w, r, ret, "Error: "+cleanErr(err))
		return
	}
	var ids []string
	for _, ti := range tis {
		ids = append(ids, ti.TaskID)
	}
	o := scheduler.ClearOptions{OnlyFailed: r.PostFormValue("only_failed") == "true", Actor: actor(r)}
	cleared, err := s.cmd.Clear(r.Context(), dagID, runID, ids, o)
	if err != nil {
		s.back(w, r, ret, "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, ret, fmt.Sprintf("Cleared %d task instance(s); they run again.", len(cleared)))
}

func (s *Server) formMarkRun(w http.ResponseWriter, r *http.Request) {
	dagID, runID := param(r, "dag_id"), param(r, "run_id")
	ret := returnTo(r, runURL(dagID, runID))
	run, err := s.cmd.SetRunState(r.Context(), dagID, runID, dags.RunState(r.PostFormValue("state")), actor(r))
	if err != nil {
		s.back(w, r, ret, "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, ret, "Run marked "+string(run.State)+".")
}

// --- one task instance ---

type tiPage struct {
	DagID, RunID, TaskID, State, Operator, RunURL, DagURL, Started, Ended, Duration string
	Q, Name                                                                         string // a mapped instance's map_index query and name
	TryNumber, MaxTries                                                             int
	Tries                                                                           []tryRow
	Return                                                                          string
	Preview                                                                         *clearPreview
	Waiting                                                                         []string // what keeps it from starting
	WhyNot                                                                          string   // why it ended without running
	XComs                                                                           []ops.XComEntry
}

type tryRow struct {
	N                                                       int
	State, Started, Ended, Duration, ExitCode, Reason, Host string
	Executor, Handle, Namespace, Node, Rendered             string
	LogURL, DownloadURL, APILogURL                          string
	Live                                                    bool
}

type clearPreview struct {
	Tasks                                                []string
	Downstream, Upstream, OnlyFailed, Past, Future, Sure bool
}

// tiHeader is what the task instance page shows above its tries.
func (s *Server) tiHeader(ctx context.Context, k store.TIKey, ret string) (tiPage, error) {
	ti, err := s.st.TaskInstance(ctx, k)
	if err != nil {
		return tiPage{}, err
	}
	st := string(ti.State)
	if st == "" {
		st = "none"
	}
	return tiPage{DagID: k.DagID, RunID: k.RunID, TaskID: k.TaskID, Q: mapQuery(k.MapIndex), Name: instName(ti), State: st, Operator: ti.Operator, RunURL: runURL(k.DagID, k.RunID),
		DagURL: dagURL(k.DagID), Started: fmtTime(ti.StartDate), Ended: fmtTime(ti.EndDate), Duration: duration(ti.StartDate, ti.EndDate),
		TryNumber: ti.TryNumber, MaxTries: ti.MaxTries + 1, Return: ret}, nil
}

func (s *Server) pageTI(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	k := tiKeyParam(r)
	p, err := s.tiHeader(ctx, k, r.URL.RequestURI())
	if errors.Is(err, store.ErrNotFound) && k.MapIndex < 0 {
		// A mapped task's page without a map index: its instances are
		// listed in the grid's panel for the run.
		if d, derr := s.currentDAG(k.DagID); derr == nil && d.Task(k.TaskID) != nil && d.Task(k.TaskID).Mapped() {
			http.Redirect(w, r, dagURL(k.DagID)+"?tab=grid&run="+url.QueryEscape(k.RunID)+"&task="+url.QueryEscape(k.TaskID), http.StatusSeeOther)
			return
		}
	}
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	tries, err := s.st.Tries(ctx, k)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if ti, err := s.st.TaskInstance(ctx, k); err == nil {
		if p.Waiting, err = s.ops.WaitingFor(ctx, ti); err != nil {
			s.pageError(w, r, err)
			return
		}
		if p.WhyNot, err = s.ops.WhyNot(ctx, ti); err != nil {
			s.pageError(w, r, err)
			return
		}
	}
	if p.XComs, err = s.ops.XComs(ctx, store.XComFilter{DagID: k.DagID, RunID: k.RunID, TaskIDs: []string{k.TaskID}, MapIndex: &k.MapIndex}); err != nil {
		s.pageError(w, r, err)
		return
	}
	secrets, err := s.st.SecretValues(ctx)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for i := len(tries) - 1; i >= 0; i-- {
		t := tries[i]
		row := tryRow{N: t.TryNumber, State: string(t.State), Started: fmtTime(&t.StartDate), Ended: fmtTime(t.EndDate),
			Duration: duration(&t.StartDate, t.EndDate), Reason: t.Reason, Host: t.Hostname, Executor: t.Executor, Handle: strings.TrimPrefix(t.Handle, "pid:"),
			Live:        t.EndDate == nil,
			DownloadURL: tiURL(k.DagID, k.RunID, k.TaskID) + "/logs/" + strconv.Itoa(t.TryNumber) + mapQuery(k.MapIndex),
			APILogURL:   "/api/v1" + pagePath("dags", k.DagID, "dagRuns", k.RunID, "taskInstances", k.TaskID, "logs", strconv.Itoa(t.TryNumber)) + mapQuery(k.MapIndex)}
		if t.ExitCode != nil {
			row.ExitCode = strconv.Itoa(*t.ExitCode)
		}
		if t.Executor == "kubernetes" {
			if ns, pod, ok := strings.Cut(t.Handle, "/"); ok {
				row.Namespace, row.Handle = ns, pod
			}
			row.Node = nodeOf(r.Context(), s.st, t)
		}
		if t.Rendered != "" {
			row.Rendered = s.maskText(prettyJSON(t.Rendered), secrets)
		}
		p.Tries = append(p.Tries, row)
	}
	s.render(w, r, http.StatusOK, "ti.html", k.TaskID, "dags", p)
}

// formClearTI clears a task instance with its options. Without "confirm" it
// shows what would re-run and asks to confirm (the preview).
func (s *Server) formClearTI(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	k := tiKeyParam(r)
	ret := returnTo(r, instURL(k))
	on := func(name string) bool { return r.PostFormValue(name) == "true" }
	o := scheduler.ClearOptions{Upstream: on("upstream"), Downstream: on("downstream"), OnlyFailed: on("only_failed"), Actor: actor(r)}
	req := ops.ClearRequest{DagID: k.DagID, RunID: k.RunID, Past: on("past"), Future: on("future"), TaskIDs: []string{k.TaskID}}
	if k.MapIndex >= 0 {
		req.MapIndexes = []int{k.MapIndex}
	}
	confirm := on("confirm")
	o.DryRun = !confirm
	req.Options = o
	cleared, err := s.ops.Clear(ctx, req)
	if err != nil {
		s.back(w, r, ret, "Error: "+cleanErr(err))
		return
	}
	var affected []string
	for _, c := range cleared {
		label := instName(c.TI)
		if c.Run.RunID != k.RunID {
			label += " (" + c.Run.RunID + ")"
		}
		affected = append(affected, label)
	}
	if confirm {
		s.back(w, r, ret, fmt.Sprintf("Cleared %d task instance(s); they run again.", len(affected)))
		return
	}
	// The preview: the task instance page with the list and a confirm button.
	s.renderTIWithPreview(w, r, k, ret, &clearPreview{Tasks: affected, Downstream: o.Downstream, Upstream: o.Upstream,
		OnlyFailed: o.OnlyFailed, Past: req.Past, Future: req.Future, Sure: true})
}

func (s *Server) renderTIWithPreview(w http.ResponseWriter, r *http.Request, k store.TIKey, ret string, pv *clearPreview) {
	p, err := s.tiHeader(r.Context(), k, ret)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	p.Preview = pv
	s.render(w, r, http.StatusOK, "ti.html", k.TaskID, "dags", p)
}

func (s *Server) formMarkTI(w http.ResponseWriter, r *http.Request) {
	k := tiKeyParam(r)
	ret := returnTo(r, tiURL(k.DagID, k.RunID, k.TaskID))
	on := func(name string) bool { return r.PostFormValue(name) == "true" }
	state := dags.TaskState(r.PostFormValue("state"))
	marked, err := s.cmd.MarkTasks(r.Context(), k.DagID, k.RunID, []string{k.TaskID}, state,
		scheduler.MarkOptions{Upstream: on("upstream"), Downstream: on("downstream"), Actor: actor(r)})
	if err != nil {
		s.back(w, r, ret, "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, ret, fmt.Sprintf("Marked %d task instance(s) %s.", len(marked), state))
}

// downloadLog serves a try's whole log as a file, secrets masked.
func (s *Server) downloadLog(w http.ResponseWriter, r *http.Request) {
	k := tiKeyParam(r)
	try, err := strconv.Atoi(param(r, "try"))
	if err != nil || try < 1 {
		s.pageError(w, r, badRequest("not a try number"))
		return
	}
	content, _, err := s.ops.ReadLog(r.Context(), k, try, 0, true)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	name := fmt.Sprintf("%s__%s__%s__%d.log", k.DagID, k.RunID, k.TaskID, try)
	name = strings.Map(func(c rune) rune {
		if c == '"' || c == '\\' || c == '/' || c < ' ' {
			return '_'
		}
		return c
	}, name)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	_, _ = w.Write([]byte(content))
}

// --- variables and audit ---

type variablesPage struct {
	Vars []variableRow
}

type variableRow struct {
	Key, Value, Description, Updated string
	Secret                           bool
}

func (s *Server) pageVariables(w http.ResponseWriter, r *http.Request) {
	vars, err := s.st.Variables(r.Context())
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	var p variablesPage
	for _, v := range vars {
		row := variableRow{Key: v.Key, Description: v.Description, Updated: v.UpdatedAt.UTC().Format("2006-01-02 15:04"),
			Secret: v.Secret || dags.SensitiveName(v.Key)}
		if !row.Secret {
			row.Value = v.Value
		}
		p.Vars = append(p.Vars, row)
	}
	s.render(w, r, http.StatusOK, "variables.html", "Variables", "variables", p)
}

func (s *Server) formSetVariable(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimSpace(r.PostFormValue("key"))
	v := store.Variable{Key: key, Value: r.PostFormValue("value"), Description: r.PostFormValue("description"),
		Secret: r.PostFormValue("secret") == "true" || dags.SensitiveName(key), UpdatedAt: s.now()}
	old, err := s.st.Variable(r.Context(), key)
	exists := err == nil
	if exists && old.Secret {
		v.Secret = true
	}
	// A secret's value is never sent to the page, so an edit that leaves
	// the value empty keeps the old one.
	if exists && v.Secret && v.Value == "" {
		v.Value = old.Value
	}
	action := "variable_create"
	if exists {
		action = "variable_edit"
	}
	if err := s.setVariable(r, v, action); err != nil {
		s.back(w, r, "/variables", "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, "/variables", "Saved "+key+".")
}

func (s *Server) formDeleteVariable(w http.ResponseWriter, r *http.Request) {
	key := param(r, "key")
	if err := s.st.DeleteVariable(r.Context(), key); err != nil {
		s.back(w, r, "/variables", "Error: "+cleanErr(err))
		return
	}
	s.audit(r, "variable_delete", "", "", "", "key="+key)
	s.back(w, r, "/variables", "Deleted "+key+".")
}

type auditRow struct {
	At, Actor, Action, DagID, RunID, TaskID, Detail, URL string
}

// listPage is the paging of a long list page: 100 at a time, newest
// first, with links to the pages before and after.
type listPage struct {
	From, To, Total  int
	Prev, Next, Base string
}

const listPageSize = 100

// pageLinks pages a list of total items at offset, keeping the filters q.
func pageLinks(path string, q url.Values, offset, shown, total int) listPage {
	p := listPage{From: offset + 1, To: offset + shown, Total: total}
	if shown == 0 {
		p.From = 0
	}
	link := func(off int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("offset", strconv.Itoa(off))
		return path + "?" + v.Encode()
	}
	if offset > 0 {
		p.Prev = link(max(0, offset-listPageSize))
	}
	if offset+shown < total {
		p.Next = link(offset + listPageSize)
	}
	return p
}

func offsetOf(r *http.Request) int {
	n, err := strconv.Atoi(r.URL.Query().Get("offset"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

type auditPage struct {
	Rows                 []auditRow
	Actor, Action, DagID string
	Page                 listPage
}

func (s *Server) pageAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := auditPage{Actor: q.Get("actor"), Action: q.Get("action"), DagID: q.Get("dag_id")}
	offset := offsetOf(r)
	entries, total, err := s.st.FindAudit(r.Context(), store.AuditFilter{Actor: p.Actor, Action: p.Action, DagID: p.DagID,
		Limit: listPageSize, Offset: offset})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	for _, e := range entries {
		row := auditRow{At: e.At.UTC().Format("2006-01-02 15:04:05"), Actor: e.Actor, Action: e.Action, DagID: e.DagID, RunID: e.RunID,
			TaskID: e.TaskID, Detail: e.Detail}
		switch {
		case e.DagID != "" && e.RunID != "":
			row.URL = runURL(e.DagID, e.RunID)
		case e.DagID != "":
			row.URL = dagURL(e.DagID)
		}
		p.Rows = append(p.Rows, row)
	}
	q.Del("offset")
	p.Page = pageLinks("/audit", q, offset, len(entries), total)
	s.render(w, r, http.StatusOK, "audit.html", "Audit log", "audit", p)
}

// mustJSON and mustJSONIndent write JSON for pages: "<" stays "<" (the
// template escapes it), so people read what was sent.
func mustJSON(v any) string { return displayJSON(v, "") }

func mustJSONIndent(v any) string { return displayJSON(v, "  ") }

func displayJSON(v any, indent string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// prettyJSON indents a JSON document (as it is, when it is not one).
func prettyJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	return mustJSONIndent(v)
}

func base64Decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

var nodeLine = regexp.MustCompile(`updraft: pod \S+ scheduled on node (\S+)`)

// nodeOf finds the node a pod ran on in the head of its try's log, where
// the Kubernetes executor notes it.
func nodeOf(ctx context.Context, st *store.Store, t store.Try) string {
	l, err := trylog.Open(ctx, st, t)
	if err != nil {
		return ""
	}
	defer l.Close()
	head, _ := l.Read(ctx, 0, 16<<10)
	if m := nodeLine.FindSubmatch(head); m != nil {
		return string(m[1])
	}
	return ""
}

// legacyDAG redirects Airflow's /tree?dag_id=X and /dags/X/grid to the DAG page.
func (s *Server) legacyDAG(w http.ResponseWriter, r *http.Request) {
	id := param(r, "dag_id")
	if id == "" {
		id = r.URL.Query().Get("dag_id")
	}
	if id == "" {
		s.pageError(w, r, badRequest("dag_id is missing"))
		return
	}
	http.Redirect(w, r, dagURL(id), http.StatusMovedPermanently)
}

// legacyTask redirects Airflow's /task?dag_id=&task_id=&execution_date=
// to the task instance page of the run at that logical date.
func (s *Server) legacyTask(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	dagID, taskID := q.Get("dag_id"), q.Get("task_id")
	at, err := parseAPITime("execution_date", strings.ReplaceAll(q.Get("execution_date"), " ", "+"))
	if err != nil || at == nil || dagID == "" || taskID == "" {
		s.pageError(w, r, badRequest("the link needs dag_id, task_id and execution_date"))
		return
	}
	runs, err := s.st.Runs(r.Context(), store.RunFilter{DagID: dagID, LogicalGTE: at, LogicalLTE: at})
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	if len(runs) == 0 {
		s.pageError(w, r, fmt.Errorf("dag %q has no run at %s: %w", dagID, apiTime(*at), store.ErrNotFound))
		return
	}
	http.Redirect(w, r, tiURL(dagID, runs[0].RunID, taskID), http.StatusMovedPermanently)
}

type alertsPage struct {
	Enabled            bool
	Counts             map[string]int
	Rows               []alertRow
	State, Kind, DagID string
	Page               listPage
}

type alertRow struct {
	ID                                                            int64
	Kind, DagID, RunID, TaskID, File, State, Created, Sent, Error string
	Attempts                                                      int
	URL                                                           string
}

// pageAlerts shows the alert outbox: what was sent, what waits for the
// webhook and why.
func (s *Server) pageAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	offset := offsetOf(r)
	f := store.AlertFilter{State: q.Get("state"), Kind: q.Get("kind"), DagID: q.Get("dag_id"), Limit: listPageSize, Offset: offset}
	alerts, total, err := s.st.FindAlerts(r.Context(), f)
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	counts, err := s.st.CountAlerts(r.Context())
	if err != nil {
		s.pageError(w, r, err)
		return
	}
	q.Del("offset")
	p := alertsPage{Enabled: s.alerts, Counts: counts, State: f.State, Kind: f.Kind, DagID: f.DagID,
		Page: pageLinks("/alerts", q, offset, len(alerts), total)}
	for _, a := range alerts {
		row := alertRow{ID: a.ID, Kind: a.Kind, DagID: a.DagID, RunID: a.RunID, TaskID: a.TaskID, File: a.File, State: a.State,
			Created: a.CreatedAt.UTC().Format("2006-01-02 15:04:05"), Sent: fmtTime(a.SentAt), Error: a.LastError, Attempts: a.Attempts}
		switch {
		case a.TaskID != "":
			row.URL = tiURL(a.DagID, a.RunID, a.TaskID)
		case a.RunID != "":
			row.URL = runURL(a.DagID, a.RunID)
		case a.File != "":
			row.URL = "/files/" + fileToken(a.File)
		}
		p.Rows = append(p.Rows, row)
	}
	s.render(w, r, http.StatusOK, "alerts.html", "Alerts", "alerts", p)
}
