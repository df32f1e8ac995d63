package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// metrics serves GET /metrics in the Prometheus text format: the DAG bag
// and, when DAGs come from git, the sync's state. A handful of unlabelled
// series does not need a client library.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	metric := func(name, kind, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, kind, name, strconv.FormatFloat(v, 'f', -1, 64))
	}
	res, at := s.bag.Current()
	metric("updraft_dags", "gauge", "DAGs loaded.", float64(len(res.DAGs)))
	metric("updraft_dag_import_errors", "gauge", "DAG import errors in the latest load.", float64(len(res.Problems().Errors())))
	kept := 0
	for _, f := range res.Files {
		kept += len(f.Kept)
	}
	metric("updraft_dags_kept_last_good", "gauge", "DAGs serving their last good version because their file has errors.", float64(kept))
	if !at.IsZero() {
		metric("updraft_dag_load_timestamp_seconds", "gauge", "When the DAGs were last loaded.", float64(at.Unix()))
	}
	if s.git != nil {
		st := s.git.Status()
		metric("updraft_git_sync_attempts_total", "counter", "Git sync attempts.", float64(st.Syncs))
		metric("updraft_git_sync_revisions_total", "counter", "New revisions published.", float64(st.Changes))
		metric("updraft_git_sync_consecutive_failures", "gauge", "Failed git syncs since the last success.", float64(st.ConsecutiveFailures))
		if !st.LastSuccess.IsZero() {
			metric("updraft_git_sync_last_success_timestamp_seconds", "gauge", "When a git sync last succeeded.", float64(st.LastSuccess.Unix()))
		}
		if !st.Current.At.IsZero() {
			metric("updraft_git_sync_revision_timestamp_seconds", "gauge", "When the serving revision was published.", float64(st.Current.At.Unix()))
		}
	}
	if counts, err := s.st.CountAlerts(r.Context()); err == nil {
		metric("updraft_alerts_pending", "gauge", "Alerts waiting for the webhook (the outbox depth).", float64(counts["pending"]))
		metric("updraft_alerts_failed", "gauge", "Alerts given up after too many attempts.", float64(counts["failed"]))
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}
