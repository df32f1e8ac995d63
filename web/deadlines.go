package web

import (
	"context"
	"net/http"
	"time"

	"updraft/dags"
	"updraft/store"
)

// missRow is a missed deadline as the pages show it.
type missRow struct {
	RunID, RunURL, TaskID, What, Deadline, Late string
	Alerted                                     bool
}

func (s *Server) missRows(ctx context.Context, f store.MissFilter) ([]missRow, int, error) {
	ms, total, err := s.st.Misses(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	out := make([]missRow, 0, len(ms))
	for _, m := range ms {
		out = append(out, missRow{RunID: m.RunID, RunURL: runURL(m.DagID, m.RunID), TaskID: m.TaskID, What: m.What,
			Deadline: m.Deadline.UTC().Format("2006-01-02 15:04 MST"), Late: m.Late().Round(time.Second).String(), Alerted: m.Alerted})
	}
	return out, total, nil
}

// deadlineLines describes a DAG's deadlines and task slas for its details.
func deadlineLines(d *dags.DAG) []string {
	var out []string
	for _, dl := range d.Deadlines {
		line := "run ends by " + dl.Describe()
		if dl.Channel != "" {
			line += " (misses to " + dl.Channel + ")"
		}
		out = append(out, line)
	}
	for _, t := range d.Tasks {
		if t.SLA > 0 {
			out = append(out, "task "+t.ID+" succeeds within "+t.SLA.String()+" of its data interval end (sla)")
		}
	}
	return out
}

// apiDeadlineMisses is GET /api/v1/slaMisses: the missed deadlines and
// slas, newest first (an updraft addition: Airflow 2 kept them in its
// sla_miss table without an endpoint).
func (s *Server) apiDeadlineMisses(w http.ResponseWriter, r *http.Request) {
	p, err := pageOf(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ms, total, err := s.st.Misses(r.Context(), store.MissFilter{DagID: r.URL.Query().Get("dag_id"), RunID: r.URL.Query().Get("dag_run_id"),
		Limit: p.limit, Offset: p.offset})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []map[string]any{}
	for _, m := range ms {
		out = append(out, map[string]any{"dag_id": m.DagID, "dag_run_id": m.RunID, "task_id": nullable(m.TaskID), "kind": m.Kind,
			"description": m.What, "deadline": apiTime(m.Deadline), "detected_at": apiTime(m.DetectedAt),
			"late_seconds": m.Late().Seconds(), "notified": m.Alerted})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sla_misses": out, "total_entries": total})
}
