package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const browserDAG = `
browser_demo:
  default_args: {owner: data, start_date: 2024-01-01}
  description: Slow first task, a flaky second one, a report.
  schedule: null
  is_paused_upon_creation: false
  params: {table: events}
  tasks:
    - task_id: slow
      operator: BashOperator
      bash_command: 'for i in 1 2 3 4 5 6; do echo "line $i of {{ params.table }}"; sleep 1; done'
    - task_id: flaky
      operator: BashOperator
      bash_command: 'if [ -f "MARKER_PATH" ]; then echo recovered; else touch "MARKER_PATH"; echo failing; exit 1; fi'
      dependencies: [slow]
    - task_id: report
      operator: BashOperator
      bash_command: echo done
      dependencies: [flaky]
    - task_id: shards
      operator: BashOperator
      expand: {bash_command: ["echo shard zero", "echo shard one"]}
      map_index_template: "{{ task.bash_command }}"
      dependencies: [slow]
`

// chromiumPath is Debian's Chromium, which `make test` installs.
const chromiumPath = "/usr/bin/chromium"

// browser starts a headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("the browser tests need Chromium at %s: run `make deps` (apt-get install chromium)", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1400, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 4*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	return ctx
}

// In a real browser: log in, trigger a DAG from the UI with a param, watch
// a running task's log tail live, watch the grid show the failure, clear
// the failed task from the grid (through the preview), and watch the grid
// turn green. Screenshots of each page are saved as test artifacts (go test
// -artifacts keeps them).
func TestBrowser(t *testing.T) {
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	os.WriteFile(filepath.Join(dagDir, "browser_demo.yaml"), []byte(strings.ReplaceAll(browserDAG, "MARKER_PATH", filepath.Join(dir, "marker"))), 0o644)
	url, serverLog := startInProcess(t, map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": "sqlite:" + filepath.Join(dir, "u.db")})
	ctx := browser(t)
	shots := t.ArtifactDir()
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v\nserver log:\n%s", what, err, serverLog.String())
		}
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// text and click look the element up when they run: the page swaps its
	// live parts every few seconds, which would leave a node id stale.
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).innerText ?? ""`, sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	click := func(sel string) chromedp.Action[chromedp.Void] {
		ev := chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e) throw new Error("no %s"); e.click(); return true })()`, sel, sel))
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := ev(ctx, tg)
			return chromedp.Void{}, err
		}
	}
	// waitJS waits until a JavaScript predicate holds (pages refresh
	// their live parts every 3 s by themselves).
	waitJS := func(what, expr string, within time.Duration) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(within))); err != nil {
			shot("timeout-" + strings.ReplaceAll(what, " ", "-"))
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.querySelector('main').innerHTML.slice(0, 3000)"))
			t.Logf("page when the wait ended:\n%s", html)
			t.Fatalf("waiting for %s: %v\nserver log:\n%s", what, err, serverLog.String())
		}
	}

	step("log in", chromedp.Navigate(url+"/"), chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "admin"), chromedp.SendKeys(chromedp.CSS("#password"), adminPassword),
		click("#login"), chromedp.WaitVisible(chromedp.CSS("#dags")))
	if got := text("#dags"); !strings.Contains(got, "browser_demo") {
		t.Fatalf("DAG list: %q", got)
	}
	shot("dags")

	step("trigger from the DAG page", chromedp.Navigate(url+"/dags/browser_demo"), chromedp.WaitVisible(chromedp.CSS("#trigger-box")),
		click("#trigger-box summary"), chromedp.WaitVisible(chromedp.CSS("#trigger-submit")),
		chromedp.SetValue(chromedp.CSS(`input[name="param.table"]`), "orders"))
	shot("trigger-form")
	step("submit the trigger form", click("#trigger-submit"), chromedp.WaitVisible(chromedp.CSS("#run-tasks")))
	runPath, err := chromedp.Run(ctx, chromedp.Evaluate[string]("location.pathname"))
	if err != nil || !strings.HasPrefix(runPath, "/dags/browser_demo/runs/manual__") {
		t.Fatalf("after triggering: %q %v", runPath, err)
	}
	if got := text("#flash"); !strings.HasPrefix(got, "Triggered manual__") {
		t.Fatalf("flash: %q", got)
	}
	if got := text("#run-conf"); !strings.Contains(got, `"table": "orders"`) {
		t.Fatalf("conf: %q", got)
	}

	// The first task's log, tailed while it runs.
	step("open the running task", chromedp.Navigate(url+runPath+"/tasks/slow"), chromedp.WaitVisible(chromedp.CSS("#tries")))
	waitJS("the log to show line 2", `(document.querySelector("#log-1")||{}).textContent?.includes("line 2 of orders")`, 30*time.Second)
	if got := text("#log-1"); strings.Contains(got, "line 6") {
		t.Fatalf("the whole log was there at once, not tailed: %q", got)
	}
	shot("task-instance-live-log")
	waitJS("the log to reach line 6", `(document.querySelector("#log-1")||{}).textContent?.includes("line 6 of orders")`, 30*time.Second)

	// The grid shows the failure; clear it from the grid.
	step("open the grid", chromedp.Navigate(url+"/dags/browser_demo"), chromedp.WaitVisible(chromedp.CSS("#grid")))
	waitJS("the grid to show the failed task", `document.querySelector("#grid .cell.s-failed") !== null`, 60*time.Second)
	shot("grid-failed")
	step("select the failed cell", click("#grid .cell.s-failed"), chromedp.WaitVisible(chromedp.CSS("#ti-panel")))
	if got := text("#ti-panel"); !strings.Contains(got, "flaky") || !strings.Contains(got, "failed") {
		t.Fatalf("panel: %q", got)
	}
	step("clear it", click("#panel-clear"), chromedp.WaitVisible(chromedp.CSS("#clear-preview")))
	if got := text("#clear-preview"); !strings.Contains(got, "flaky") || !strings.Contains(got, "report") {
		t.Fatalf("preview: %q", got)
	}
	shot("clear-preview")
	step("confirm", click("#clear-confirm"), chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text("#flash"); !strings.Contains(got, "Cleared 2") {
		t.Fatalf("flash after clearing: %q", got)
	}
	waitJS("the grid to turn green", `(() => { const c = [...document.querySelectorAll("#grid td .cell")];
		return c.length === 4 && c.every(x => x.classList.contains("s-success")); })()`, 60*time.Second)
	shot("grid-green")

	// The mapped task: one cell, whose panel lists its instances; an
	// instance's page has its own log and the XCom it pushed.
	step("select the mapped cell", click("#grid .cell.mapped"), chromedp.WaitVisible(chromedp.CSS("#mapped-instances")))
	if got := text("#mapped-instances"); !strings.Contains(got, "shards [0] echo shard zero") || !strings.Contains(got, "shards [1] echo shard one") {
		t.Fatalf("mapped instances: %q", got)
	}
	shot("grid-mapped")
	step("open instance 1", click("#mapped-instances tbody tr:nth-child(2) a"), chromedp.WaitVisible(chromedp.CSS("#tries")))
	waitJS("instance 1's log", `(document.querySelector("#log-1")||{}).textContent?.includes("shard one")`, 20*time.Second)
	if got := text("#xcom"); !strings.Contains(got, "return_value") || !strings.Contains(got, "shard one") || strings.Contains(got, "shard zero") {
		t.Fatalf("XCom of instance 1: %q", got)
	}
	shot("mapped-instance")

	step("the retried task", chromedp.Navigate(url+runPath+"/tasks/flaky"), chromedp.WaitVisible(chromedp.CSS("#try-2")))
	waitJS("the second try's log", `(document.querySelector("#log-2")||{}).textContent?.includes("recovered")`, 20*time.Second)
	if got := text("#try-1"); !strings.Contains(got, "Exit code") {
		t.Fatalf("first try: %q", got)
	}
	shot("task-instance-retried")
	for _, page := range []struct{ name, path, sel string }{
		{"run", runPath, "#gantt"},
		{"graph", "/dags/browser_demo?tab=graph", "#graph"},
		{"runs", "/dags/browser_demo?tab=runs", "#runs"},
		{"source", "/dags/browser_demo?tab=source", "#source"},
		{"details", "/dags/browser_demo?tab=details", "#details"},
		{"audit", "/audit", "#audit"},
		{"variables", "/variables", "#variables"},
		{"alerts", "/alerts", "#alerts"},
		{"pools", "/pools", "#pools"},
		{"connections", "/connections", "#connections"},
		{"users", "/users", "#users"},
	} {
		step("open "+page.name, chromedp.Navigate(url+page.path), chromedp.WaitVisible(chromedp.CSS(page.sel)))
		shot(page.name)
		if page.name == "audit" {
			if got := text("#audit"); !strings.Contains(got, "admin") || !strings.Contains(got, "clear") || !strings.Contains(got, "trigger") {
				t.Fatalf("audit log: %q", got)
			}
		}
	}
	// An Admin adds a user from the Users page.
	step("create a user", chromedp.SendKeys(chromedp.CSS(`#user-form input[name="username"]`), "nadia"),
		chromedp.SetValue(chromedp.CSS(`#user-form select[name="role"]`), "Op"),
		chromedp.SendKeys(chromedp.CSS(`#user-form input[name="password"]`), "nadia-password"),
		chromedp.Click(chromedp.CSS(`#user-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#flash")))
	if got := text("#flash"); !strings.Contains(got, "Created nadia") {
		t.Fatalf("flash after creating a user: %q", got)
	}
	if got := text("#users"); !strings.Contains(got, "nadia") {
		t.Fatalf("users table: %q", got)
	}
	shot("users-created")
	t.Log(fmt.Sprintf("screenshots in %s", shots))
}
