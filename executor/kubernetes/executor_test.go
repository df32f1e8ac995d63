package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/executortest"
	"updraft/executor/kubernetes/cluster"
)

// kube is the control plane every test of this package shares.
var kube *cluster.Cluster

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "updraft-kube-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kube, err = cluster.Start(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test control plane:", err)
		os.Exit(1)
	}
	code := m.Run()
	kube.Stop()
	if code == 0 {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

func zero() *int64 { var z int64; return &z }

// podClient is the executor's own client of the test control plane.
func podClient(t testing.TB, c *rest.Config) *Client {
	t.Helper()
	client, err := NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func newExecutor(t *testing.T, slots int) (*Executor, func()) {
	return runExecutor(t, Options{Client: podClient(t, kube.Config), Defaults: Defaults{Namespace: "default", Image: "busybox"}, Slots: slots,
		Grace: zero(), Retry: 200 * time.Millisecond, SweepGrace: time.Nanosecond})
}

// runExecutor starts an executor (its informer) until the test ends or
// the returned function stops it, as a crash would.
func runExecutor(t *testing.T, opts Options) (*Executor, func()) {
	ex := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ex.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return ex, stop
}

// podSpec makes a pod task whose kwok simulation behaves as b.
func podSpec(b executortest.Behavior) dags.PodSpec {
	ann := map[string]string{}
	if b.Forever {
		ann[cluster.AnnotationForever] = "true"
	} else {
		ann[cluster.AnnotationExitCode] = fmt.Sprint(b.ExitCode)
		d := b.Duration
		if d == 0 {
			d = 200 * time.Millisecond
		}
		ann[cluster.AnnotationDuration] = d.String()
	}
	if b.XCom != "" {
		ann[cluster.AnnotationXCom] = b.XCom
	}
	return dags.PodSpec{Image: "busybox", Cmds: []string{"sh", "-c"}, Arguments: []string{"echo " + b.Output},
		Annotations: ann, GetLogs: true, OnFinishAction: dags.DeletePod, StartupTimeout: dags.DefaultStartupTimeout,
		DoXComPush: b.PushXCom}
}

func TestConformance(t *testing.T) {
	executortest.Run(t, executortest.Harness{
		New: func(t *testing.T, slots int) (executor.Executor, func()) {
			return newExecutor(t, slots)
		},
		Spec: func(b executortest.Behavior) dags.OperatorSpec { return podSpec(b) },
		Logs: false, // kwok runs no containers, so there is no output to read
	})
}

func start(t *testing.T, ex *Executor, spec dags.PodSpec) executor.Try {
	t.Helper()
	try := executortest.NewTry(t, spec)
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	return try
}

// Kubernetes' own reasons end up in the try's outcome and log.
func TestKubernetesReasons(t *testing.T) {
	ex, _ := newExecutor(t, 10)
	oom := podSpec(executortest.Behavior{ExitCode: 137})
	oom.Annotations[cluster.AnnotationReason] = "OOMKilled"
	secret := podSpec(executortest.Behavior{Forever: true})
	secret.Annotations = map[string]string{"updraft.test/waiting": "CreateContainerConfigError", "updraft.test/message": `secret "airflow2" not found`}
	huge := podSpec(executortest.Behavior{Forever: true})
	huge.StartupTimeout = 3 * time.Second
	huge.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Ti")}}
	pull := podSpec(executortest.Behavior{Forever: true})
	pull.StartupTimeout = 3 * time.Second
	pull.Annotations = map[string]string{"updraft.test/waiting": "ImagePullBackOff", "updraft.test/message": `Back-off pulling image "etl:missing"`}
	unplaced := podSpec(executortest.Behavior{Forever: true})
	unplaced.ScheduleTimeout, unplaced.LogEventsOnFailure = 2*time.Second, true
	unplaced.Resources = huge.Resources
	cases := []struct {
		name string
		spec dags.PodSpec
		want string
	}{
		{"schedule timeout, with events", unplaced, "Pod took longer than 2 seconds to be scheduled: Unschedulable"},
		{"image pull", pull, `Pod took longer than 3 seconds to start: ImagePullBackOff: Back-off pulling image "etl:missing"`},
		{"oom", oom, "OOMKilled (exit code 137)"},
		{"missing secret", secret, `CreateContainerConfigError: secret "airflow2" not found`},
		{"unschedulable", huge, "Pod took longer than 3 seconds to start: Unschedulable"},
	}
	for _, c := range cases {
		try := start(t, ex, c.spec)
		ev := executortest.Final(t, ex, try.Key, 60*time.Second)
		if ev.State != executor.Failed || !strings.Contains(ev.Reason, c.want) {
			t.Errorf("%s: %+v, want a failure saying %q", c.name, ev, c.want)
		}
		log, _ := os.ReadFile(try.LogPath)
		if !strings.Contains(string(log), c.want) {
			t.Errorf("%s: log lacks the reason:\n%s", c.name, log)
		}
		if events := strings.Contains(string(log), "FailedScheduling"); events != c.spec.LogEventsOnFailure {
			t.Errorf("%s: log_events_on_failure %v, events in the log %v:\n%s", c.name, c.spec.LogEventsOnFailure, events, log)
		}
	}
}

// A pod deleted by someone else fails its try with that reason; finished
// pods are deleted or kept per on_finish_action.
func TestPodLifecycle(t *testing.T) {
	ex, _ := newExecutor(t, 10)
	ctx := context.Background()
	forever := start(t, ex, podSpec(executortest.Behavior{Forever: true}))
	ev := executortest.Running(t, ex, forever.Key, 30*time.Second)
	ns, name, _ := strings.Cut(ev.Handle, "/")
	if err := kube.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if ev := executortest.Final(t, ex, forever.Key, 30*time.Second); ev.State != executor.Failed || !strings.Contains(ev.Reason, "deleted by someone else") {
		t.Fatalf("deleted pod: %+v", ev)
	}
	kept := podSpec(executortest.Behavior{ExitCode: 1})
	kept.OnFinishAction = dags.DeleteSucceededPod
	keptTry := start(t, ex, kept)
	ev = executortest.Running(t, ex, keptTry.Key, 30*time.Second)
	executortest.Final(t, ex, keptTry.Key, 30*time.Second)
	time.Sleep(time.Second)
	ns, name, _ = strings.Cut(ev.Handle, "/")
	if _, err := kube.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Fatalf("a failed pod with delete_succeeded_pod was not kept: %v", err)
	}
	ok := start(t, ex, podSpec(executortest.Behavior{ExitCode: 0}))
	ev = executortest.Running(t, ex, ok.Key, 30*time.Second)
	executortest.Final(t, ex, ok.Key, 30*time.Second)
	ns, name, _ = strings.Cut(ev.Handle, "/")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := kube.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			break // deleted after it succeeded
		}
		if time.Now().After(deadline) {
			t.Fatal("a finished pod was not deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var _ = slog.Default

// After a crash, ended pods no live try needs are deleted, except those
// their on_finish_action keeps; a live try's pod is left alone.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	first, crash := newExecutor(t, 10)
	orphan := start(t, first, podSpec(executortest.Behavior{ExitCode: 0, Duration: 2 * time.Second}))
	keep := podSpec(executortest.Behavior{ExitCode: 0, Duration: 2 * time.Second})
	keep.OnFinishAction = dags.KeepPod
	kept := start(t, first, keep)
	live := start(t, first, podSpec(executortest.Behavior{Forever: true}))
	handles := map[executor.TryKey]string{}
	for len(handles) < 3 {
		select {
		case ev := <-first.Events():
			if ev.State == executor.Running {
				handles[ev.Key] = ev.Handle
			}
		case <-time.After(60 * time.Second):
			t.Fatal("pods not created")
		}
	}
	crash() // the pods end with nobody watching
	pods := kube.Client.CoreV1().Pods("default")
	phase := func(k executor.TryKey) string {
		_, name, _ := strings.Cut(handles[k], "/")
		p, err := pods.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return "gone"
		}
		return string(p.Status.Phase)
	}
	deadline := time.Now().Add(60 * time.Second)
	for phase(orphan.Key) != "Succeeded" || phase(kept.Key) != "Succeeded" {
		if time.Now().After(deadline) {
			t.Fatalf("pods did not end: %s %s", phase(orphan.Key), phase(kept.Key))
		}
		time.Sleep(100 * time.Millisecond)
	}
	second, _ := newExecutor(t, 10)
	// Other tests' pods share the namespace: they count as live here.
	ours := map[executor.TryKey]bool{orphan.Key: true, kept.Key: true, live.Key: true}
	n, err := second.Sweep(ctx, func(k executor.TryKey) bool { return k == live.Key || !ours[k] })
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	for phase(orphan.Key) != "gone" {
		if time.Now().After(deadline) {
			t.Fatal("the orphan pod was not deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if phase(kept.Key) != "Succeeded" || phase(live.Key) != "Running" {
		t.Fatalf("kept %s, live %s", phase(kept.Key), phase(live.Key))
	}
	for _, k := range []executor.TryKey{kept.Key, live.Key} {
		_, name, _ := strings.Cut(handles[k], "/")
		pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: zero()})
	}
}

// The container's log is copied into the try's log while the pod runs; the
// stream is reopened (kwok ends it after each read) and no line is
// written twice.
func TestLogsStreamed(t *testing.T) {
	ex, _ := newExecutor(t, 1)
	try := start(t, ex, podSpec(executortest.Behavior{ExitCode: 0, Duration: 3 * time.Second}))
	if ev := executortest.Final(t, ex, try.Key, 60*time.Second); ev.State != executor.Succeeded {
		t.Fatalf("event %+v", ev)
	}
	data, _ := os.ReadFile(try.LogPath)
	log := string(data)
	for _, line := range cluster.LogLines {
		if n := strings.Count(log, line); n != 1 {
			t.Fatalf("%q appears %d times in the try's log:\n%s", line, n, log)
		}
	}
	if !strings.Contains(log, "try ended: success") || strings.Index(log, cluster.LogLines[1]) > strings.Index(log, "try ended") {
		t.Fatalf("log out of order:\n%s", log)
	}
}
