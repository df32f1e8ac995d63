package apiv2

import (
	"errors"
	"net/http"
	"strconv"

	"updraft/scheduler"
	"updraft/store"
)

// backfillResponse is Airflow 3's BackfillResponse.
func (a *api) backfillResponse(b store.Backfill) map[string]any {
	conf := b.Conf
	if conf == nil {
		conf = map[string]any{}
	}
	return map[string]any{"id": b.ID, "dag_id": b.DagID, "dag_display_name": a.dagName(b.DagID), "from_date": apiTime(b.From),
		"to_date": apiTime(b.To), "dag_run_conf": conf, "is_paused": b.Paused, "reprocess_behavior": b.Reprocess,
		"max_active_runs": b.MaxActiveRuns, "created_at": apiTime(b.CreatedAt), "updated_at": apiTime(b.UpdatedAt),
		"completed_at": timePtr(b.CompletedAt)}
}

func (a *api) listBackfills(w http.ResponseWriter, r *http.Request, c call) error {
	q := queryOf(r)
	p, dagID := q.page(), q.str("dag_id")
	if dagID == "" {
		q.errs = append(q.errs, fieldError{Type: "missing", Loc: []any{"query", "dag_id"}, Msg: "Field required", Input: noInput})
	}
	if order := q.orderBy(); len(order) > 0 && (len(order) > 1 || order[0] != "-id") {
		q.bad("order_by", "value_error", "Value error, backfills are listed newest first (-id)", order[0])
	}
	if err := q.err(); err != nil {
		return err
	}
	list, total, err := a.ops.Store.Backfills(r.Context(), store.BackfillFilter{DagID: dagID, Limit: p.Limit, Offset: p.Offset})
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, b := range list {
		out = append(out, a.backfillResponse(b))
	}
	if p.Limit == 0 {
		out = out[:0]
	}
	return collection(w, "backfills", out, total)
}

func backfillID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(param(r, "backfill_id"), 10, 64)
	if err != nil || id < 0 {
		return 0, invalid{{Type: "int_parsing", Loc: []any{"path", "backfill_id"}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: param(r, "backfill_id")}}
	}
	return id, nil
}

func (a *api) getBackfill(w http.ResponseWriter, r *http.Request, c call) error {
	id, err := backfillID(r)
	if err != nil {
		return err
	}
	b, err := a.ops.Store.Backfill(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a.backfillResponse(b))
	return nil
}

// backfillBody reads a BackfillPostBody.
func backfillBody(r *http.Request, actor string) (scheduler.BackfillOptions, error) {
	var body struct {
		DagID              *string        `json:"dag_id"`
		FromDate           *string        `json:"from_date"`
		ToDate             *string        `json:"to_date"`
		RunBackwards       bool           `json:"run_backwards"`
		DagRunConf         map[string]any `json:"dag_run_conf"`
		ReprocessBehavior  *string        `json:"reprocess_behavior"`
		MaxActiveRuns      *int           `json:"max_active_runs"`
		RunOnLatestVersion *bool          `json:"run_on_latest_version"`
	}
	o := scheduler.BackfillOptions{Actor: actor}
	if err := readBody(r, &body); err != nil {
		return o, err
	}
	switch {
	case body.DagID == nil:
		return o, required("dag_id")
	case body.FromDate == nil:
		return o, required("from_date")
	case body.ToDate == nil:
		return o, required("to_date")
	}
	from, err := bodyTime("from_date", body.FromDate)
	if err != nil {
		return o, err
	}
	to, err := bodyTime("to_date", body.ToDate)
	if err != nil {
		return o, err
	}
	o.DagID, o.From, o.To, o.RunBackwards, o.Conf = *body.DagID, *from, *to, body.RunBackwards, body.DagRunConf
	if body.ReprocessBehavior != nil {
		switch *body.ReprocessBehavior {
		case store.ReprocessNone, store.ReprocessFailed, store.ReprocessCompleted:
			o.Reprocess = *body.ReprocessBehavior
		default:
			return o, invalid{{Type: "enum", Loc: []any{"body", "reprocess_behavior"}, Msg: "Input should be 'failed', 'completed' or 'none'", Input: *body.ReprocessBehavior}}
		}
	}
	if body.MaxActiveRuns != nil {
		if *body.MaxActiveRuns < 1 {
			return o, invalid{{Type: "greater_than_equal", Loc: []any{"body", "max_active_runs"}, Msg: "Input should be greater than or equal to 1", Input: *body.MaxActiveRuns}}
		}
		o.MaxActiveRuns = *body.MaxActiveRuns
	}
	return o, nil
}

// asValidation turns the scheduler's refusal of a backfill into a 422 on
// the body (the document's answer for a request it cannot take).
func asValidation(err error) error {
	if errors.Is(err, scheduler.ErrInvalid) {
		return invalid{{Type: "value_error", Loc: []any{"body"}, Msg: "Value error, " + clean(err), Input: noInput}}
	}
	return err
}

func (a *api) createBackfill(dry bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		o, err := backfillBody(r, c.actor)
		if err != nil {
			return err
		}
		o.DryRun = dry
		b, dates, err := a.ops.Commands.Backfill(r.Context(), o)
		if err != nil {
			return asValidation(err)
		}
		if !dry {
			writeJSON(w, http.StatusOK, a.backfillResponse(b))
			return nil
		}
		// The dates that would get a run: new ones and those run again.
		out := []map[string]any{}
		for _, d := range dates {
			if d.Exception == "" {
				out = append(out, map[string]any{"logical_date": apiTime(d.LogicalDate), "partition_date": nil, "partition_key": nil})
			}
		}
		return collection(w, "backfills", out, len(out))
	}
}

func (a *api) changeBackfill(action string) handler {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		id, err := backfillID(r)
		if err != nil {
			return err
		}
		b, err := a.ops.Commands.ChangeBackfill(r.Context(), id, action, c.actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, a.backfillResponse(b))
		return nil
	}
}
