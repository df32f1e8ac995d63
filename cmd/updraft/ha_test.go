package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"updraft/store/pgtest"
)

// haDAG is ten tasks in two chains of five, each try writing one line to
// the launch record when it starts (the executor's own record of launches).
func haDAG(record string) string {
	var b strings.Builder
	b.WriteString("ha:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  max_active_runs: 200\n  max_active_tasks: 200\n  tasks:\n")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "    - {task_id: t%d, operator: BashOperator, retries: 3, retry_delay: 0, bash_command: 'echo \"{{ run_id }} {{ ti.task_id }} {{ ti.try_number }}\" >> %s; sleep 1'", i, record)
		if i%5 != 0 {
			fmt.Fprintf(&b, ", dependencies: [t%d]", i-1)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// Three servers on one PostgreSQL run 200 runs of 10 tasks while one of
// them is killed with SIGKILL every 10 s and started again: every run
// completes, no try is launched twice (checked in the store and in the
// tasks' own launch record), and nothing is left running.
func TestReplicasSurviveKills(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "ha")
	bin := buildBinary(t)
	dir := t.TempDir()
	record := filepath.Join(dir, "launches")
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	os.WriteFile(filepath.Join(dir, "dags", "ha.yaml"), []byte(haDAG(record)), 0o644)
	if code, out, errOut := run(t, nil, "db", "migrate", "--db", dsn); code != 0 {
		t.Fatalf("migrate: %s %s", out, errOut)
	}
	type replica struct {
		cmd *exec.Cmd
		out *syncBuffer
		url string
	}
	start := func(i int) *replica {
		var out syncBuffer
		cmd := exec.Command(bin, "server", "--dags", filepath.Join(dir, "dags"), "--db", dsn, "--logs", filepath.Join(dir, fmt.Sprintf("logs%d", i)),
			"--addr", "127.0.0.1:0", "--local-slots", "16", "--parallelism", "48", "--replica-timeout", "4s")
		cmd.Env = append(os.Environ(), "UPDRAFT_ADMIN_USER=admin", "UPDRAFT_ADMIN_PASSWORD="+adminPassword, "UPDRAFT_REPLICA_ID=")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return &replica{cmd: cmd, out: &out, url: serverURL(t, &out, 30*time.Second)}
	}
	replicas := []*replica{start(0), start(1), start(2)}
	t.Cleanup(func() {
		for _, r := range replicas {
			r.cmd.Process.Kill()
			r.cmd.Wait()
		}
	})
	for i := 0; i < 200; i++ {
		body := fmt.Sprintf(`{"dag_run_id": "r%03d", "logical_date": "%s"}`, i, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Minute).Format(time.RFC3339))
		if code, resp := adminPost(t, replicas[i%3].url+"/api/v1/dags/ha/dagRuns", body); code != 200 {
			t.Fatalf("trigger %d: %d %s", i, code, resp)
		}
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(q string) int {
		var n int
		if err := db.QueryRowContext(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(8 * time.Minute)
	kills := 0
	for count(`SELECT COUNT(*) FROM dag_runs WHERE state IN ('success', 'failed')`) < 200 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d runs finished after %d kills", count(`SELECT COUNT(*) FROM dag_runs WHERE state IN ('success', 'failed')`), kills)
		}
		time.Sleep(10 * time.Second)
		i := rand.IntN(3)
		replicas[i].cmd.Process.Kill() // SIGKILL
		replicas[i].cmd.Wait()
		kills++
		replicas[i] = start(i)
	}
	if failed := count(`SELECT COUNT(*) FROM dag_runs WHERE state <> 'success'`); failed != 0 {
		rows, _ := db.Query(`SELECT t.run_id, t.task_id, t.state, t.try_number, COALESCE(r.reason, ''), COALESCE(r.owner, '') FROM task_instances t
			LEFT JOIN task_tries r ON r.dag_id = t.dag_id AND r.run_id = t.run_id AND r.task_id = t.task_id
			WHERE t.state <> 'success' ORDER BY t.run_id, t.task_id, r.try_number LIMIT 20`)
		for rows != nil && rows.Next() {
			var run, task, state, reason, owner string
			var try int
			rows.Scan(&run, &task, &state, &try, &reason, &owner)
			t.Logf("%s %s %s try %d: %s (%s)", run, task, state, try, reason, owner)
		}
		t.Fatalf("%d runs did not succeed", failed)
	}
	// In the store: every task instance succeeded, each try row is one try.
	if n := count(`SELECT COUNT(*) FROM task_instances WHERE state <> 'success'`); n != 0 {
		t.Fatalf("%d task instances did not succeed", n)
	}
	if n := count(`SELECT COUNT(*) FROM task_tries WHERE end_date IS NULL`); n != 0 {
		t.Fatalf("%d tries left running", n)
	}
	// In the launch record: no (run, task, try) twice, and every successful
	// try launched exactly once.
	data, _ := os.ReadFile(record)
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		seen[line]++
	}
	for line, n := range seen {
		if n != 1 {
			t.Errorf("launched %d times: %s", n, line)
		}
	}
	rows, err := db.Query(`SELECT run_id, task_id, try_number FROM task_tries WHERE state = 'success'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	successes := 0
	for rows.Next() {
		var run, task string
		var try int
		if err := rows.Scan(&run, &task, &try); err != nil {
			t.Fatal(err)
		}
		successes++
		if seen[fmt.Sprintf("%s %s %d", run, task, try)] != 1 {
			t.Errorf("successful try %s %s %d is not in the launch record once", run, task, try)
		}
	}
	if successes != 2000 {
		t.Errorf("%d successful tries, want 2000", successes)
		rows, _ := db.Query(`SELECT t.run_id, t.task_id, t.try_number, COALESCE(r.try_number, 0), COALESCE(r.state, ''), COALESCE(r.reason, ''), COALESCE(r.owner, '')
			FROM task_instances t LEFT JOIN task_tries r ON r.dag_id = t.dag_id AND r.run_id = t.run_id AND r.task_id = t.task_id
			WHERE NOT EXISTS (SELECT 1 FROM task_tries s WHERE s.dag_id = t.dag_id AND s.run_id = t.run_id AND s.task_id = t.task_id AND s.state = 'success')`)
		for rows != nil && rows.Next() {
			var run, task, state, reason, owner string
			var ti, try int
			rows.Scan(&run, &task, &ti, &try, &state, &reason, &owner)
			t.Logf("no successful try: %s %s (try_number %d): try %d %s %q (%s)", run, task, ti, try, state, reason, owner)
		}
	}
	t.Logf("%d kills, %d launches, %d task instances retried", kills, len(seen), count(`SELECT COUNT(*) FROM task_instances WHERE try_number > 1`))
}

// Two servers on one PostgreSQL, each with its own log folder (no shared
// volume): the log of a running try is copied into the database as it
// grows, and once the try ended both replicas serve the whole log even
// when the folder it was written to is gone (another machine's disk).
func TestLogsFromEveryReplica(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "logs")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	writeFile(t, filepath.Join(dir, "dags", "talk.yaml"), `talk:
  start_date: 2024-01-01
  schedule: null
  is_paused_upon_creation: false
  tasks:
    - {task_id: speak, operator: BashOperator, bash_command: "echo first-words; sleep 5; echo last-words"}
`)
	servers := map[string]string{}
	for _, id := range []string{"a", "b"} {
		url, _ := startInProcess(t, map[string]string{"UPDRAFT_DB": dsn, "UPDRAFT_DAGS": filepath.Join(dir, "dags"),
			"UPDRAFT_LOGS": filepath.Join(dir, "logs-"+id), "UPDRAFT_REPLICA_ID": id})
		servers[id] = url
	}
	if status, body := adminPost(t, servers["a"]+"/api/v1/dags/talk/dagRuns", `{"dag_run_id": "r1"}`); status != 200 {
		t.Fatalf("trigger: %d %s", status, body)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	copied := func() (string, bool) {
		var data []byte
		var ended bool
		err := db.QueryRow(`SELECT COALESCE((SELECT string_agg(data, '' ORDER BY start_at) FROM log_chunks WHERE task_id = 'speak'), ''::bytea),
			(SELECT end_date IS NOT NULL FROM task_tries WHERE task_id = 'speak')`).Scan(&data, &ended)
		return string(data), err == nil && ended
	}
	waitFor(t, "the first words copied into the database", 30*time.Second, func() bool {
		data, _ := copied()
		return strings.Contains(data, "first-words")
	})
	if data, ended := copied(); ended || strings.Contains(data, "last-words") {
		t.Logf("the try ended before its copy was seen growing (a slow machine): %q", data)
	}
	var owner string
	waitFor(t, "the run to succeed", 60*time.Second, func() bool {
		var state string
		return db.QueryRow(`SELECT r.state, t.owner FROM dag_runs r JOIN task_tries t ON t.run_id = r.run_id WHERE r.run_id = 'r1'`).Scan(&state, &owner) == nil && state == "success"
	})
	// The folder the try's log was written to goes away.
	if err := os.Rename(filepath.Join(dir, "logs-"+owner), filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	logOf := func(server string) string {
		resp, err := adminGet(servers[server] + "/api/v1/dags/talk/dagRuns/r1/taskInstances/speak/logs/1?full_content=true")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Content string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
			t.Fatalf("log from %s: %d %v", server, resp.StatusCode, err)
		}
		return body.Content
	}
	file, _ := os.ReadFile(filepath.Join(dir, "gone", "dag_id=talk", "run_id=r1", "task_id=speak", "attempt=1.log"))
	for _, server := range []string{"a", "b"} {
		got := logOf(server)
		if !strings.Contains(got, "first-words") || !strings.Contains(got, "last-words") || !strings.Contains(got, "try ended: success") {
			t.Fatalf("the log from %s:\n%s", server, got)
		}
		if got != string(file) {
			t.Errorf("the log from %s differs from the file written:\n%s\n---\n%s", server, got, file)
		}
	}
}
