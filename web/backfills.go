package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"updraft/dags"
	"updraft/scheduler"
	"updraft/store"
	"updraft/web/ops"
)

// The DAG page's backfills tab: a form that previews a backfill (the dates
// and what would happen to each) before it starts, and the DAG's backfills
// with their progress, to pause, unpause or cancel.

type backfillTab struct {
	Periodic   bool
	Form       backfillForm
	Previewed  bool
	PreviewErr string
	Preview    []backfillPreview
	WouldRun   int
	List       []backfillRow
}

// backfillForm is what the form holds, as typed (kept across a preview
// and an error).
type backfillForm struct {
	From, To, Reprocess, MaxActive, Conf string
	Backwards                            bool
}

type backfillPreview struct{ Logical, RunID, What string }

type backfillRow struct {
	ID                  int64
	From, To, Reprocess string
	MaxActive           int
	State, Progress     string
	Done, Paused        bool
}

func backfillFormOf(v url.Values) backfillForm {
	f := backfillForm{From: v.Get("from"), To: v.Get("to"), Reprocess: v.Get("reprocess"), MaxActive: v.Get("max_active_runs"),
		Conf: v.Get("conf"), Backwards: v.Get("run_backwards") == "true"}
	if f.Reprocess == "" {
		f.Reprocess = store.ReprocessNone
	}
	if f.MaxActive == "" {
		f.MaxActive = strconv.Itoa(scheduler.DefaultBackfillRuns)
	}
	if strings.TrimSpace(f.Conf) == "" {
		f.Conf = "{}"
	}
	return f
}

// options reads the form; a "to" without a time is the whole of that day.
func (f backfillForm) options(dagID, actor string) (scheduler.BackfillOptions, error) {
	o := scheduler.BackfillOptions{DagID: dagID, Reprocess: f.Reprocess, RunBackwards: f.Backwards, Actor: actor}
	from, err := parseFormTime(strings.TrimSpace(f.From))
	if err != nil {
		return o, fmt.Errorf("from: %w", err)
	}
	to, err := parseFormTime(strings.TrimSpace(f.To))
	if err != nil {
		return o, fmt.Errorf("to: %w", err)
	}
	if len(strings.TrimSpace(f.To)) == len("2006-01-02") {
		to = to.Add(24*time.Hour - time.Second)
	}
	o.From, o.To = from, to
	if o.MaxActiveRuns, err = strconv.Atoi(strings.TrimSpace(f.MaxActive)); err != nil {
		return o, fmt.Errorf("runs at once: %q is not a number", f.MaxActive)
	}
	if raw := strings.TrimSpace(f.Conf); raw != "" && raw != "{}" {
		if o.Conf, err = ops.DecodeConf([]byte(raw)); err != nil {
			return o, fmt.Errorf("conf: %s", cleanErr(err))
		}
	}
	return o, nil
}

// values is the form as a query, to come back to it.
func (f backfillForm) values() url.Values {
	v := url.Values{"tab": {"backfills"}, "from": {f.From}, "to": {f.To}, "reprocess": {f.Reprocess},
		"max_active_runs": {f.MaxActive}, "conf": {f.Conf}}
	if f.Backwards {
		v.Set("run_backwards", "true")
	}
	return v
}

func (s *Server) fillBackfills(r *http.Request, p *dagPage, d *dags.DAG, canAct bool) error {
	ctx := r.Context()
	q := r.URL.Query()
	tab := &backfillTab{Periodic: d != nil && d.Schedule.Periodic(), Form: backfillFormOf(q)}
	p.Backfill = tab
	if canAct && tab.Periodic && q.Get("preview") == "1" {
		tab.Previewed = true
		o, err := tab.Form.options(p.ID, actor(r))
		if err == nil {
			o.DryRun = true
			var dates []store.BackfillDate
			_, dates, err = s.cmd.Backfill(ctx, o)
			for _, bd := range dates {
				if bd.Exception == "" {
					tab.WouldRun++
				}
				tab.Preview = append(tab.Preview, backfillPreview{Logical: bd.LogicalDate.UTC().Format("2006-01-02 15:04 MST"), RunID: bd.RunID, What: bd.What()})
			}
		}
		if err != nil {
			tab.PreviewErr = cleanErr(err)
		}
	}
	list, _, err := s.st.Backfills(ctx, store.BackfillFilter{DagID: p.ID, Limit: 50})
	if err != nil {
		return err
	}
	ids := make([]int64, len(list))
	for i, b := range list {
		ids[i] = b.ID
	}
	states, err := s.st.BackfillRunStates(ctx, ids)
	if err != nil {
		return err
	}
	for _, b := range list {
		counts := states[b.ID]
		var parts []string
		for _, st := range []string{"success", "failed", "running", "queued"} {
			if counts[st] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
			}
		}
		row := backfillRow{ID: b.ID, From: b.From.Format("2006-01-02 15:04"), To: b.To.Format("2006-01-02 15:04"), Reprocess: b.Reprocess,
			MaxActive: b.MaxActiveRuns, Progress: strings.Join(parts, " · "), Done: b.CompletedAt != nil, Paused: b.Paused, State: "running"}
		switch {
		case b.CompletedAt != nil:
			row.State = "completed " + b.CompletedAt.UTC().Format("2006-01-02 15:04")
		case b.Paused:
			row.State = "paused"
		}
		if row.Progress == "" {
			row.Progress = "no runs"
		}
		tab.List = append(tab.List, row)
	}
	return nil
}

// formBackfill starts the backfill the form previewed.
func (s *Server) formBackfill(w http.ResponseWriter, r *http.Request) {
	id := param(r, "dag_id")
	_ = r.ParseForm()
	f := backfillFormOf(r.PostForm)
	again := dagURL(id) + "?" + f.values().Encode() + "&preview=1"
	o, err := f.options(id, actor(r))
	if err != nil {
		s.back(w, r, again, "Error: "+err.Error())
		return
	}
	b, dates, err := s.cmd.Backfill(r.Context(), o)
	if err != nil {
		s.back(w, r, again, "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, dagURL(id)+"?tab=backfills", fmt.Sprintf("Backfill %d started: %d dates, %d runs at once.", b.ID, len(dates), b.MaxActiveRuns))
}

// formChangeBackfill pauses, unpauses or cancels a backfill.
func (s *Server) formChangeBackfill(w http.ResponseWriter, r *http.Request) {
	id := param(r, "dag_id")
	ret := dagURL(id) + "?tab=backfills"
	bid, err := strconv.ParseInt(param(r, "backfill_id"), 10, 64)
	if err != nil {
		s.back(w, r, ret, "Error: no such backfill")
		return
	}
	if b, err := s.st.Backfill(r.Context(), bid); err != nil || b.DagID != id {
		s.back(w, r, ret, fmt.Sprintf("Error: %s has no backfill %d", id, bid))
		return
	}
	action := param(r, "action")
	b, err := s.cmd.ChangeBackfill(r.Context(), bid, action, actor(r))
	if err != nil {
		s.back(w, r, ret, "Error: "+cleanErr(err))
		return
	}
	s.back(w, r, ret, fmt.Sprintf("Backfill %d %s.", b.ID, scheduler.BackfillDone[action]))
}
