package main

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"updraft/executor/kubernetes/cluster"
	"updraft/store/pgtest"
)

// SIGKILL the server while 20 pods run, restart it: every pod is adopted,
// none is created twice, none is left behind, and the runs finish.
func TestKilledServerAdoptsPods(t *testing.T) {
	ctx := context.Background()
	kube, bin, dir := kubeServerTest(t)
	var b strings.Builder
	b.WriteString("fanout:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  max_active_tasks: 50\n  tasks:\n")
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "    - {task_id: p%02d, operator: KubernetesPodOperator, image: busybox, cmds: [\"true\"], annotations: {updraft.test/duration: 8s}}\n", i)
	}
	b.WriteString("    - {task_id: after, operator: KubernetesPodOperator, image: busybox, cmds: [\"true\"], dependencies: [p00")
	for i := 1; i < 20; i++ {
		fmt.Fprintf(&b, ", p%02d", i)
	}
	b.WriteString("]}\n")
	writeFile(t, filepath.Join(dir, "dags", "fanout.yaml"), b.String())
	args := func() []string {
		return []string{"server", "--dags", filepath.Join(dir, "dags"), "--db", "sqlite:" + filepath.Join(dir, "u.db"),
			"--logs", filepath.Join(dir, "logs"), "--addr", "127.0.0.1:0", "--executor", "kubernetes",
			"--kubeconfig", kube.Kubeconfig, "--namespace", "default", "--kube-qps", "100", "--kube-burst", "200"}
	}
	s := startCmd(t, bin, args()...)
	code, out, errOut := run(t, map[string]string{"UPDRAFT_DB": "sqlite:" + filepath.Join(dir, "u.db"), "UPDRAFT_DAGS": filepath.Join(dir, "dags")},
		"dags", "trigger", "fanout", "--logical-date", "2024-01-01")
	if code != 0 {
		t.Fatalf("trigger: %s %s", out, errOut)
	}
	pods := kube.Client.CoreV1().Pods("default")
	running := func() int {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=updraft"})
		if err != nil {
			return -1
		}
		n := 0
		for _, p := range list.Items {
			if p.Status.Phase == "Running" {
				n++
			}
		}
		return n
	}
	waitFor(t, "20 running pods", 60*time.Second, func() bool { return running() == 20 }, s.out)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	restarted := startCmd(t, bin, args()...)
	waitFor(t, "the run to finish", 120*time.Second, func() bool {
		return query(t, dir, `SELECT state FROM dag_runs`) == "success"
	}, restarted.out)
	if got := query(t, dir, `SELECT COUNT(*) || '/' || MAX(try_number) || '/' || SUM(state = 'success') FROM task_tries`); got != "21/1/21" {
		t.Fatalf("tries (count/max try/successes) = %s, want 21/1/21:\n%s", got, restarted.out.String())
	}
	if n := strings.Count(restarted.out.String(), "adopted a try left running"); n != 20 {
		t.Errorf("%d tries adopted, want 20", n)
	}
	// An adopted pod's log is read again from its start, and the try's log
	// starts over with it instead of repeating what was written before.
	for i := 0; i < 20; i++ {
		matches, _ := filepath.Glob(filepath.Join(dir, "logs", "dag_id=fanout", "*", fmt.Sprintf("task_id=p%02d", i), "attempt=1.log"))
		if len(matches) != 1 {
			t.Fatalf("log files of p%02d: %v", i, matches)
		}
		b, err := os.ReadFile(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		if strings.Count(log, "adopted pod") != 1 || strings.Count(log, "scheduled on node") != 1 || strings.Count(log, "try ended: success") != 1 {
			t.Errorf("log of p%02d:\n%s", i, log)
		}
	}
	waitFor(t, "no pod left behind", 30*time.Second, func() bool {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=updraft"})
		return err == nil && len(list.Items) == 0
	}, restarted.out)
}

// kubeServerTest starts the simulated cluster (stopped at the end of the
// test) and builds the binary, for a test that runs servers against it
// from a fresh folder with a dags/ folder in it.
func kubeServerTest(t *testing.T) (*cluster.Cluster, string, string) {
	t.Helper()
	kube, err := cluster.Start(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kube.Stop)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	return kube, buildBinary(t), dir
}

// startCmd starts the updraft binary with args, killed at the end of the test.
func startCmd(t *testing.T, bin string, args ...string) *serverProc {
	t.Helper()
	var out syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &serverProc{cmd: cmd, out: &out}
}

// Two servers share a PostgreSQL and a cluster; the one whose pods are
// running is SIGKILLed and not restarted: the other notices it stopped
// beating, takes its tries over and adopts its pods, and the run finishes
// with every pod created once and none left behind.
func TestReplicaAdoptsPodsOfAKilledOne(t *testing.T) {
	ctx := context.Background()
	kube, err := cluster.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer kube.Stop()
	pg := pgtest.Start(t)
	dsn := pg.CreateDB(t, "kubeha")
	bin := buildBinary(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "dags"), 0o755)
	var b strings.Builder
	b.WriteString("fanout:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  max_active_tasks: 50\n  tasks:\n")
	for i := 0; i < 10; i++ {
		fmt.Fprintf(&b, "    - {task_id: p%02d, operator: KubernetesPodOperator, image: busybox, cmds: [\"true\"], annotations: {updraft.test/duration: 10s}}\n", i)
	}
	writeFile(t, filepath.Join(dir, "dags", "fanout.yaml"), b.String())
	start := func(id string) *serverProc {
		s := startCmd(t, bin, "server", "--dags", filepath.Join(dir, "dags"), "--db", dsn, "--logs", filepath.Join(dir, "logs-"+id),
			"--addr", "127.0.0.1:0", "--executor", "kubernetes", "--kubeconfig", kube.Kubeconfig, "--namespace", "default",
			"--kube-qps", "100", "--kube-burst", "200", "--replica-timeout", "3s")
		return s
	}
	// Start them one after the other, with their ids.
	t.Setenv("UPDRAFT_REPLICA_ID", "a")
	a := start("a")
	t.Setenv("UPDRAFT_REPLICA_ID", "b")
	bsrv := start("b")
	if code, out, errOut := run(t, map[string]string{"UPDRAFT_DB": dsn, "UPDRAFT_DAGS": filepath.Join(dir, "dags")},
		"dags", "trigger", "fanout", "--logical-date", "2024-01-01"); code != 0 {
		t.Fatalf("trigger: %s %s", out, errOut)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	one := func(q string) string {
		var s string
		if err := db.QueryRowContext(ctx, q).Scan(&s); err != nil {
			return ""
		}
		return s
	}
	pods := kube.Client.CoreV1().Pods("default")
	waitFor(t, "10 running pods", 60*time.Second, func() bool {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=updraft"})
		if err != nil {
			return false
		}
		n := 0
		for _, p := range list.Items {
			if p.Status.Phase == "Running" {
				n++
			}
		}
		return n == 10
	}, a.out, bsrv.out)
	// Kill the replica that owns most running tries; the other survives.
	owner := one(`SELECT owner FROM task_tries WHERE end_date IS NULL GROUP BY owner ORDER BY COUNT(*) DESC LIMIT 1`)
	victim, survivor := a, bsrv
	if owner == "b" {
		victim, survivor = bsrv, a
	}
	victim.cmd.Process.Signal(syscall.SIGKILL)
	victim.cmd.Wait()
	waitFor(t, "the run to finish on the surviving replica", 120*time.Second, func() bool {
		return one(`SELECT state FROM dag_runs`) == "success"
	}, survivor.out)
	if got := one(`SELECT COUNT(*) || '/' || MAX(try_number) || '/' || SUM(CASE WHEN state = 'success' THEN 1 ELSE 0 END) FROM task_tries`); got != "10/1/10" {
		t.Fatalf("tries (count/max try/successes) = %s, want 10/1/10:\n%s", got, survivor.out.String())
	}
	if !strings.Contains(survivor.out.String(), "taking over the tries of a stopped replica") {
		t.Errorf("the survivor did not take over:\n%s", survivor.out.String())
	}
	// Each try's log is in the database (the replicas have no common
	// folder): an adopted pod's log was read again from its start and
	// replaced the copy, so it says so once and ends once.
	rows, err := db.QueryContext(ctx, `SELECT task_id, string_agg(data, '' ORDER BY start_at) FROM log_chunks GROUP BY task_id`)
	if err != nil {
		t.Fatal(err)
	}
	copies := map[string]string{}
	for rows.Next() {
		var task string
		var data []byte
		if err := rows.Scan(&task, &data); err != nil {
			t.Fatal(err)
		}
		copies[task] = string(data)
	}
	rows.Close()
	adopted := 0
	for i := 0; i < 10; i++ {
		log := copies[fmt.Sprintf("p%02d", i)]
		if strings.Count(log, "updraft: try ended: success") != 1 || strings.Count(log, "adopted pod") > 1 {
			t.Errorf("log copy of p%02d:\n%s", i, log)
		}
		if strings.Contains(log, "adopted pod") {
			adopted++
		}
	}
	if adopted == 0 {
		t.Errorf("no log copy shows an adoption")
	}
	waitFor(t, "no pod left behind", 30*time.Second, func() bool {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=updraft"})
		return err == nil && len(list.Items) == 0
	}, survivor.out)
}

// SIGKILL the server while it is still creating a fan-out's pods (one API
// request a second): after a restart the tries that never got a pod get
// one, with the same try number and no retry used (retries: 0, so one
// failure would fail the run), and a pod no try knows (left by an
// earlier crash) is swept at start.
func TestKilledWhileCreatingPods(t *testing.T) {
	ctx := context.Background()
	kube, bin, dir := kubeServerTest(t)
	var b strings.Builder
	b.WriteString("fanout:\n  start_date: 2024-01-01\n  schedule: null\n  is_paused_upon_creation: false\n  max_active_tasks: 50\n  default_args: {retries: 0}\n  tasks:\n")
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "    - {task_id: p%02d, operator: KubernetesPodOperator, image: busybox, cmds: [\"true\"], annotations: {updraft.test/duration: 2s}}\n", i)
	}
	writeFile(t, filepath.Join(dir, "dags", "fanout.yaml"), b.String())
	args := func(qps string) []string {
		return []string{"server", "--dags", filepath.Join(dir, "dags"), "--db", "sqlite:" + filepath.Join(dir, "u.db"),
			"--logs", filepath.Join(dir, "logs"), "--addr", "127.0.0.1:0", "--executor", "kubernetes",
			"--kubeconfig", kube.Kubeconfig, "--namespace", "default", "--kube-qps", qps, "--kube-burst", "1"}
	}
	pods := kube.Client.CoreV1().Pods("default")
	count := func() int {
		list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=updraft"})
		if err != nil {
			return -1
		}
		return len(list.Items)
	}
	// A pod left by an earlier crash, of a try nobody knows.
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orphan-0123456789", Namespace: "default",
		Labels:      map[string]string{"app.kubernetes.io/managed-by": "updraft"},
		Annotations: map[string]string{"updraft.dev/dag-id": "gone", "updraft.dev/task-id": "t", "updraft.dev/run-id": "r", "updraft.dev/try-number": "1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "base", Image: "busybox"}}, RestartPolicy: corev1.RestartPolicyNever}}
	if _, err := pods.Create(ctx, orphan, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	s := startCmd(t, bin, args("1")...)
	if code, out, errOut := run(t, map[string]string{"UPDRAFT_DB": "sqlite:" + filepath.Join(dir, "u.db"), "UPDRAFT_DAGS": filepath.Join(dir, "dags")},
		"dags", "trigger", "fanout", "--logical-date", "2024-01-01"); code != 0 {
		t.Fatalf("trigger: %s %s", out, errOut)
	}
	waitFor(t, "a few pods created", 60*time.Second, func() bool { return count() >= 4 }, s.out)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	if n := count(); n >= 13 {
		t.Fatalf("all %d pods were created before the kill; the test needs some that were not", n)
	}
	restarted := startCmd(t, bin, args("100")...)
	waitFor(t, "the run to finish", 120*time.Second, func() bool {
		return query(t, dir, `SELECT state FROM dag_runs`) == "success"
	}, restarted.out)
	if got := query(t, dir, `SELECT COUNT(*) || '/' || MAX(try_number) || '/' || SUM(state = 'success') FROM task_tries`); got != "12/1/12" {
		t.Fatalf("tries (count/max try/successes) = %s, want 12/1/12:\n%s", got, restarted.out.String())
	}
	if !strings.Contains(restarted.out.String(), "a try that never started is scheduled again") {
		t.Errorf("no try was started again:\n%s", restarted.out.String())
	}
	waitFor(t, "no pod left behind, the orphan included", 30*time.Second, func() bool { return count() == 0 }, restarted.out)
}
