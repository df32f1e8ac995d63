package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"updraft/gitsync/gittest"
)

const gitDAG = "%s:\n  schedule: null\n  start_date: 2026-01-01\n  tasks:\n    t: {operator: airflow.operators.bash.BashOperator, bash_command: 'echo %s'}\n"

func dagYAML(id, echo string) *string {
	return gittest.S(strings.ReplaceAll(strings.ReplaceAll(gitDAG, "%s:", id+":"), "echo %s", "echo "+echo))
}

// The server follows a branch served by git daemon: a new commit is
// picked up, a broken commit keeps the last good DAG serving with its
// import error shown (with the revision) until a fix clears it, a deleted
// file takes its DAG away, and a remote that goes away shows in /health
// and the UI while the last revision keeps serving.
func TestServerFollowsGitBranch(t *testing.T) {
	repo := gittest.NewRepo(t)
	first := repo.Commit(map[string]*string{"dags/a.yaml": dagYAML("a", "1"), "dags/b.yaml": dagYAML("b", "1"),
		"README.md": gittest.S("not a DAG folder")}, "first")
	daemon := gittest.StartDaemon(t, repo.Base)
	dir := t.TempDir()
	var errOut syncBuffer
	m := Main{Stdout: &syncBuffer{}, Stderr: &errOut, Env: func(k string) string {
		return map[string]string{"UPDRAFT_ADDR": "127.0.0.1:0", "UPDRAFT_DB": "sqlite:" + dir + "/u.db",
			"UPDRAFT_LOGS": dir + "/logs", "UPDRAFT_GIT_URL": daemon.URL(), "UPDRAFT_GIT_PATH": "dags",
			"UPDRAFT_GIT_ROOT": dir + "/git", "UPDRAFT_GIT_INTERVAL": "100ms", "UPDRAFT_DAGS_INTERVAL": "1h"}[k]
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, []string{"server"}) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("server did not stop")
		}
	}()
	var url string
	re := regexp.MustCompile(`url=(http://\S+)`)
	waitFor(t, "the server", 10*time.Second, func() bool {
		if m := re.FindStringSubmatch(errOut.String()); m != nil {
			url = m[1]
		}
		return url != ""
	}, &errOut)
	get := func(path string) string {
		resp, err := http.Get(url + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	type bag struct {
		Revision string `json:"revision"`
		DAGs     []struct {
			ID   string `json:"dag_id"`
			Hash string `json:"hash"`
		} `json:"dags"`
		Errors []struct {
			File string `json:"file"`
			Line int    `json:"line"`
		} `json:"import_errors"`
	}
	current := func() bag {
		var b bag
		_ = json.Unmarshal([]byte(get("/dags.json")), &b)
		return b
	}
	ids := func(b bag) string {
		var out []string
		for _, d := range b.DAGs {
			out = append(out, d.ID)
		}
		return strings.Join(out, ",")
	}
	within := 10 * time.Second
	waitFor(t, "the first revision", within, func() bool {
		b := current()
		return b.Revision == first && ids(b) == "a,b" && len(b.Errors) == 0
	}, &errOut)
	hashA := current().DAGs[0].Hash

	broken := repo.Commit(map[string]*string{"dags/a.yaml": gittest.S("a:\n  tasks: [broken\n")}, "broken")
	waitFor(t, "the broken revision", within, func() bool {
		b := current()
		return b.Revision == broken && ids(b) == "a,b" && len(b.Errors) == 1 && b.Errors[0].File == "a.yaml" && b.Errors[0].Line > 0
	}, &errOut)
	if b := current(); b.DAGs[0].Hash != hashA {
		t.Fatalf("DAG a is not its last good version: %+v", b)
	}
	if page := get("/"); !strings.Contains(page, "import error") || !strings.Contains(page, broken[:12]) ||
		!strings.Contains(page, "keeps serving") {
		t.Fatalf("the UI banner does not show the import error with its revision:\n%s", page)
	}

	fixed := repo.Commit(map[string]*string{"dags/a.yaml": dagYAML("a", "2"), "dags/b.yaml": nil}, "fix a, drop b")
	waitFor(t, "the fixed revision", within, func() bool {
		b := current()
		return b.Revision == fixed && ids(b) == "a" && len(b.Errors) == 0 && b.DAGs[0].Hash != hashA
	}, &errOut)

	daemon.Stop()
	waitFor(t, "the sync failure in /health", within, func() bool {
		return strings.Contains(get("/health"), `"git_sync":{"changes":3,"consecutive_failures"`) &&
			strings.Contains(get("/health"), `"status":"unhealthy"`)
	}, &errOut)
	if page := get("/"); !strings.Contains(page, "Git sync failing") || !strings.Contains(page, fixed[:12]) {
		t.Fatalf("the UI does not show the failing sync:\n%s", page)
	}
	if b := current(); b.Revision != fixed || ids(b) != "a" {
		t.Fatalf("the last good revision stopped serving: %+v", b)
	}
	daemon.Start()
	waitFor(t, "recovery", within, func() bool {
		h := get("/health")
		return strings.Contains(h, `"consecutive_failures":0`) && !strings.Contains(h, "unhealthy")
	}, &errOut)
}
