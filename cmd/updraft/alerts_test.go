package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"updraft/notify/mattermosttest"
	"updraft/store"
)

// twentyFailures is a DAG of 20 independent tasks that all fail.
func twentyFailures() string {
	var b strings.Builder
	b.WriteString("twenty:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  tasks:\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "    - {task_id: t%02d, operator: BashOperator, bash_command: \"echo failing t%02d; exit 3\"}\n", i, i)
	}
	return b.String()
}

// With the webhook down for the whole of a 20-task failing run, and the
// server restarted meanwhile, every alert arrives once the webhook is back
// (the Mattermost stand-in speaks the incoming-webhook contract; the real
// server cannot run here): each failed task in exactly one message, and
// the run's failure.
func TestAlertsSurviveADownWebhookAndARestart(t *testing.T) {
	mm := mattermosttest.Start(t)
	mm.Stop()
	dir := t.TempDir()
	dagDir := filepath.Join(dir, "dags")
	os.MkdirAll(dagDir, 0o755)
	os.WriteFile(filepath.Join(dagDir, "twenty.yaml"), []byte(twentyFailures()), 0o644)
	db := "sqlite:" + filepath.Join(dir, "u.db")
	env := map[string]string{"UPDRAFT_DAGS": dagDir, "UPDRAFT_DB": db, "UPDRAFT_LOGS": filepath.Join(dir, "logs"),
		"UPDRAFT_MATTERMOST_WEBHOOK_URL": mm.URL(), "UPDRAFT_PUBLIC_URL": "https://updraft.example.com", "UPDRAFT_MATTERMOST_CHANNEL": "#bizops"}
	first, log1 := startInProcessCtx(t, env)
	url := first.url
	if code, body := adminPost(t, url+"/api/v1/dags/twenty/dagRuns", `{"dag_run_id": "r1"}`); code != 200 {
		t.Fatalf("trigger: %d %s", code, body)
	}
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	waitFor(t, "the run to fail and its alerts to be tried", time.Minute, func() bool {
		all, _ := st.Alerts(context.Background(), 100)
		tried := 0
		for _, a := range all {
			if a.Attempts > 0 && a.State == store.AlertPending {
				tried++
			}
		}
		return len(all) == 21 && tried == 21
	}, log1)
	first.stop()
	if posts := mm.Posts(); len(posts) != 0 {
		t.Fatalf("posts while down: %d", len(posts))
	}
	_, log2 := startInProcessCtx(t, env)
	mm.Restart(t)
	waitFor(t, "every alert to be sent", time.Minute, func() bool {
		counts, _ := st.CountAlerts(context.Background())
		return counts[store.AlertSent] == 21
	}, log2)
	seen := map[string]int{}
	runFailures := 0
	for _, p := range mm.Posts() {
		if p.Channel != "bizops" || !strings.Contains(p.Text, "https://updraft.example.com/dags/twenty") {
			t.Errorf("post: %+v", p)
		}
		for i := 1; i <= 20; i++ {
			id := fmt.Sprintf("t%02d", i)
			if strings.Contains(p.Text, id) {
				seen[id]++
			}
		}
		if strings.Contains(p.Text, "**Run**: [r1]") || strings.Contains(p.Text, "tasks failed") {
			runFailures++
		}
	}
	if len(seen) != 20 {
		t.Fatalf("tasks alerted: %v", seen)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s in %d messages", id, n)
		}
	}
	if runFailures == 0 {
		t.Error("the run's failure was not told")
	}
	t.Logf("%d messages after %d attempts", len(mm.Posts()), mm.Attempts())
}

// The server is killed (SIGKILL) while the webhook holds its POST for 5 s
// and then takes it: the next server cannot know whether the message was
// posted, so it sends it once more, marked as a possible repeat, and never
// a third time. (The webhook is a stand-in on loopback speaking the
// incoming-webhook contract.)
func TestKillWhileAnAlertIsInFlight(t *testing.T) {
	bin := buildBinary(t)
	var mu sync.Mutex
	var texts []string
	arrived := make(chan struct{}, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Text string `json:"text"`
		}
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		texts = append(texts, m.Text)
		first := len(texts) == 1
		mu.Unlock()
		arrived <- struct{}{}
		if first {
			time.Sleep(5 * time.Second) // posted, answering late
		}
	}))
	defer hook.Close()
	dir := t.TempDir()
	start := failingDAGServer(t, bin, dir, hook.URL+"/hooks/abc")
	first := start()
	select {
	case <-arrived:
	case <-time.After(60 * time.Second):
		t.Fatal("no alert reached the webhook")
	}
	first.Process.Kill() // while the webhook holds the POST
	first.Wait()
	start()
	waitFor(t, "the alert to be settled", 60*time.Second, func() bool {
		return query(t, dir, `SELECT COUNT(*) FROM alerts WHERE state = 'pending'`) == "0" && query(t, dir, `SELECT COUNT(*) FROM alerts`) != "0"
	})
	time.Sleep(2 * time.Second) // a third copy would come now
	mu.Lock()
	defer mu.Unlock()
	if len(texts) != 2 || strings.Contains(texts[0], "resent") ||
		!strings.Contains(texts[1], "_(resent: the first attempt was interrupted by a restart)_") {
		t.Fatalf("the webhook received %d copies: %q", len(texts), texts)
	}
}

// The webhook is down (nothing listens) when the alert is first tried and
// the server is killed (SIGKILL) meanwhile; once the webhook is up and a
// server runs again, the alert arrives once, unmarked: a refused
// connection sent nothing, so there is nothing to mark as a repeat.
func TestDownWebhookAcrossAKill(t *testing.T) {
	bin := buildBinary(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections are refused
	dir := t.TempDir()
	start := failingDAGServer(t, bin, dir, "http://"+addr+"/hooks/abc")
	first := start()
	waitFor(t, "a failed attempt", 60*time.Second, func() bool {
		return query(t, dir, `SELECT COUNT(*) FROM alerts WHERE attempts > 0 AND state = 'pending'`) != "0"
	})
	first.Process.Kill()
	first.Wait()
	var mu sync.Mutex
	var texts []string
	up, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct {
			Text string `json:"text"`
		}
		json.NewDecoder(r.Body).Decode(&m)
		mu.Lock()
		texts = append(texts, m.Text)
		mu.Unlock()
	})}
	go srv.Serve(up)
	defer srv.Close()
	start()
	waitFor(t, "the alert to be sent", 60*time.Second, func() bool {
		return query(t, dir, `SELECT COUNT(*) FROM alerts WHERE state = 'pending'`) == "0"
	})
	time.Sleep(2 * time.Second) // a second copy would come now
	mu.Lock()
	defer mu.Unlock()
	if len(texts) != 1 || strings.Contains(texts[0], "resent") {
		t.Fatalf("the webhook received %d copies: %q", len(texts), texts)
	}
}

// failingDAGServer writes a DAG whose one task fails at once into dir and
// returns a function that starts the binary's server on it, alerting to
// webhook (each process killed at the end of the test).
func failingDAGServer(t *testing.T, bin, dir, webhook string) func() *exec.Cmd {
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	writeFile(t, filepath.Join(dir, "dags", "fail.yaml"), `
fail:
  start_date: 2024-01-01
  schedule: "@once"
  is_paused_upon_creation: false
  tasks:
    - {task_id: boom, operator: BashOperator, bash_command: "exit 3"}
`)
	return func() *exec.Cmd {
		var out syncBuffer
		cmd := exec.Command(bin, "server", "--dags", filepath.Join(dir, "dags"), "--db", "sqlite:"+filepath.Join(dir, "u.db"),
			"--logs", filepath.Join(dir, "logs"), "--addr", "127.0.0.1:0", "--dags-interval", "100ms")
		cmd.Env = append(os.Environ(), "UPDRAFT_MATTERMOST_WEBHOOK_URL="+webhook)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
}
