package web

import (
	"encoding/json"
	"html"
	"strings"
	"testing"
	"time"

	"updraft/scheduler"
	"updraft/store"
)

// The DAG's details say its deadlines and slas, and list its misses; the
// run page lists the run's; /api/v1/slaMisses lists them all.
func TestDeadlineMissesShown(t *testing.T) {
	e := yamlEnv(t, `
reports:
  start_date: 2024-01-01
  schedule: "@daily"
  deadline: {reference: dagrun_queued_at, interval: 2h, channel: bizops}
  tasks: [{task_id: build, operator: EmptyOperator, sla: 1800}]
`)
	run, err := e.sched.Trigger(e.ctx, "reports", scheduler.TriggerOptions{RunID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	at := run.QueuedAt.Add(2 * time.Hour)
	if _, err := e.st.RecordMiss(e.ctx, store.Miss{DagID: "reports", RunID: "r1", Kind: "deadline:0", Deadline: at,
		DetectedAt: at.Add(90 * time.Second), What: "queued at + 2h0m0s", Alerted: true}, nil); err != nil {
		t.Fatal(err)
	}
	_, page := e.call("GET", "/dags/reports?tab=details", "", "viewer")
	page = html.UnescapeString(page)
	for _, want := range []string{"run ends by queued at + 2h0m0s (misses to bizops)", "task build succeeds within 30m0s", "Missed deadlines (1)", "1m30s"} {
		if !strings.Contains(page, want) {
			t.Errorf("details lack %q", want)
		}
	}
	if _, page = e.call("GET", "/dags/reports/runs/r1", "", "viewer"); !strings.Contains(page, `id="run-misses"`) || !strings.Contains(html.UnescapeString(page), "queued at + 2h0m0s") {
		t.Errorf("the run page lacks the miss")
	}
	status, body := e.call("GET", "/api/v1/slaMisses?dag_id=reports", "", "viewer")
	var got struct {
		Misses []map[string]any `json:"sla_misses"`
		Total  int              `json:"total_entries"`
	}
	if err := json.Unmarshal([]byte(body), &got); status != 200 || err != nil || got.Total != 1 || got.Misses[0]["late_seconds"] != 90.0 || got.Misses[0]["notified"] != true {
		t.Errorf("slaMisses: %d %s", status, body)
	}
	if status, _ := e.call("GET", "/api/v1/slaMisses", "", ""); status != 401 {
		t.Errorf("anonymous slaMisses: %d", status)
	}
}
