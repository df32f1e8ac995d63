package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// At a phone's 420 px, no page is wider than the screen: tables scroll
// inside themselves and the navigation wraps. Checked in Chromium.
func TestPagesFitAPhone(t *testing.T) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	os.WriteFile(filepath.Join(dagDir, "phone.yaml"), []byte(`
a_dag_with_a_rather_long_name_for_a_phone_screen:
  start_date: 2024-01-01
  schedule: "0 3 * * *"
  is_paused_upon_creation: false
  catchup: false
  tags: [finance, nightly, snowflake]
  description: Loads the orders of every warehouse into the reporting schema.
  tasks:
    - {task_id: extract_orders_from_the_warehouse, operator: BashOperator, bash_command: "echo extract"}
    - {task_id: transform_the_orders_into_facts, operator: BashOperator, bash_command: "echo transform", dependencies: [extract_orders_from_the_warehouse]}
`), 0o644)
	url, _ := startInProcess(t, map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": "sqlite:" + filepath.Join(dir, "u.db"), "UPDRAFT_DAGS_INTERVAL": "200ms"})
	ctx := browser(t)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(420, 900), chromedp.Navigate(url+"/login"), chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "admin"), chromedp.SendKeys(chromedp.CSS("#password"), adminPassword),
		chromedp.Submit(chromedp.CSS("#password")), chromedp.WaitVisible(chromedp.CSS("#dags"))); err != nil {
		t.Fatalf("log in: %v", err)
	}
	var runID string
	waitFor(t, "the scheduled run", 30*time.Second, func() bool {
		code, body := adminSend(t, "GET", url+"/api/v1/dags/a_dag_with_a_rather_long_name_for_a_phone_screen/dagRuns", "")
		if _, rest, ok := strings.Cut(body, `"dag_run_id":"`); ok {
			runID, _, _ = strings.Cut(rest, `"`)
		}
		return code == 200 && strings.Contains(body, `"state":"success"`)
	})
	dag := "/dags/a_dag_with_a_rather_long_name_for_a_phone_screen"
	run := dag + "/runs/" + runID
	for _, path := range []string{"/", dag, dag + "?tab=runs", dag + "?tab=details", dag + "?tab=backfills", dag + "?tab=graph", run,
		run + "/tasks/transform_the_orders_into_facts", "/users", "/pools", "/audit", "/alerts", "/variables"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(url+path), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		widths, err := chromedp.Run(ctx, chromedp.Evaluate[[]int]("[document.documentElement.scrollWidth, window.innerWidth]"))
		if err != nil {
			t.Fatal(err)
		}
		if widths[0] > widths[1]+1 {
			wide, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll("main *, header *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map(e => e.tagName + "#" + e.id + "." + e.className).join(" ")`))
			t.Errorf("%s is %d px wide at %d px: %s", path, widths[0], widths[1], wide)
		}
	}
	// Times in the browser's zone, once chosen: the run page's UTC
	// logical date shows in Tokyo time, the UTC one in its tooltip.
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "Asia/Tokyo"})
		return err
	}), chromedp.Navigate(url+run), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(localStorage.setItem("updraft.tz", "local"), true)`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url+run), chromedp.WaitReady(chromedp.CSS("main"))); err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("main table").innerText`))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text, " UTC") || !strings.Contains(text, "12:00:00 GMT+9") && !strings.Contains(text, "12:00:00 JST") {
		t.Errorf("times not shown in the browser's zone: %q", text)
	}
}
