package dags

import (
	"strings"
	"testing"
	"time"
)

func TestInProcessOperatorsRender(t *testing.T) {
	res := loadGood(t)
	d := mustDAG(t, res, "monitoring")
	rc := RunContext{DAG: d, RunID: "scheduled__2024-05-01T10:00:00+00:00", RunType: "scheduled",
		LogicalDate: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), DataInterval: DataInterval{Start: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), End: time.Date(2024, 5, 2, 10, 0, 0, 0, time.UTC)}}
	vars := map[string]string{"stitch_token": "tok"}
	spec, err := Render(d.Task("check_stitch"), rc, vars)
	if err != nil {
		t.Fatal(err)
	}
	h := spec.(HttpSpec)
	eq(t, "endpoint", h.Endpoint, "/v4/sources?since=2024-05-01")
	eq(t, "header", h.Headers["Authorization"], "Bearer tok")
	eq(t, "method", h.Method, "GET")
	eq(t, "check", len(h.CheckStatus), 1)
	if h.CheckResponse(200, nil) != nil || h.CheckResponse(204, nil) == nil {
		t.Error("status check")
	}
	hc := d.Task("check_hightouch").Spec.(HttpSpec)
	if hc.CheckResponse(200, []byte(`{"status": "ok"}`)) != nil || hc.CheckResponse(200, []byte(`{"status": "broken"}`)) == nil || hc.CheckResponse(500, []byte(`"status":"ok"`)) == nil {
		t.Error("regex check")
	}
	spec, err = Render(d.Task("notify"), rc, vars)
	if err != nil {
		t.Fatal(err)
	}
	m := spec.(MattermostSpec)
	eq(t, "text", m.Text, "Monitoring of 2024-05-01 passed")
	eq(t, "title", m.Attachments[0]["title"].(string), "[monitoring] checks")
	eq(t, "conn", m.ConnID, "mattermost")
	eq(t, "operator", d.Task("notify").Operator, "MattermostOperator")
	if !strings.Contains(d.Task("notify").Spec.(MattermostSpec).Attachments[0]["title"].(string), "{{") {
		t.Error("rendering changed the loaded spec")
	}
	// The stored form of a version keeps in-process specs too.
	data, _ := EncodeVersion(d)
	back, err := DecodeVersion(data)
	if err != nil || back.Task("notify").Spec.(MattermostSpec).Channel != "bizops" || back.Task("check_stitch").Spec.(HttpSpec).ConnID != "stitch" {
		t.Fatalf("round trip: %v", err)
	}
}

func TestSQLSpec(t *testing.T) {
	res := loadGood(t)
	d := mustDAG(t, res, "sql_loads")
	load := d.Task("load_orders").Spec.(SQLSpec)
	eq(t, "conn", load.ConnID, "snowflake")
	eq(t, "file", strings.Join(load.Files, ","), "sql/load_orders.sql")
	eq(t, "warehouse", load.Warehouse, "LOAD_WH")
	eq(t, "split", load.SplitStatements, true)
	eq(t, "operator", d.Task("load_orders").Operator, "SQLExecuteQueryOperator")
	rc := RunContext{DAG: d, RunID: "r", RunType: "manual", LogicalDate: time.Date(2024, 5, 1, 3, 0, 0, 0, time.UTC)}
	spec, err := Render(d.Task("load_orders"), rc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q := spec.(SQLSpec).SQL[0]; !strings.Contains(q, "@raw.stage/orders/2024-05-01/") || !strings.Contains(q, "order_date = '2024-05-01'") {
		t.Fatalf("rendered file: %s", q)
	}
	refresh := d.Task("refresh").Spec.(SQLSpec)
	eq(t, "statements", len(refresh.SQL), 2)
	eq(t, "autocommit", refresh.Autocommit, true)
	spec, _ = Render(d.Task("refresh"), rc, nil)
	if p := spec.(SQLSpec).Parameters; len(p) != 1 || p[0] != "2024-05-01" {
		t.Fatalf("parameters: %v", p)
	}
}
