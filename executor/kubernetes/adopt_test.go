package kubernetes

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/executortest"
	"updraft/executor/kubernetes/cluster"
)

// outcome is what a try came to: its final event, whether its pod was
// still there a moment later, and its log.
type outcome struct {
	state   executor.State
	reason  string
	podKept bool
	log     string
	took    time.Duration // from the try's start to its final event
}

// runCase runs one try to its end, uninterrupted or with the executor
// stopped (as a crash stops it) after crashAfter and a new one adopting
// the try downtime later, and says how it ended.
func runCase(t *testing.T, spec dags.PodSpec, timeout, crashAfter, downtime time.Duration) outcome {
	t.Helper()
	ctx := context.Background()
	ex, crash := newExecutor(t, 10)
	try := executortest.NewTry(t, spec)
	try.Timeout = timeout
	try.Started = time.Now()
	if err := ex.Start(ctx, try); err != nil {
		t.Fatal(err)
	}
	running := executortest.Running(t, ex, try.Key, 30*time.Second)
	var final executor.Event
	if crashAfter > 0 {
		time.Sleep(crashAfter)
		crash()
		time.Sleep(downtime)
		again, _ := newExecutor(t, 10)
		adopted := try
		if err := again.Adopt(ctx, adopted); err != nil {
			t.Fatalf("adopt: %v", err)
		}
		executortest.Running(t, again, try.Key, 30*time.Second)
		final = executortest.Final(t, again, try.Key, 60*time.Second)
	} else {
		final = executortest.Final(t, ex, try.Key, 60*time.Second)
	}
	took := time.Since(try.Started)
	time.Sleep(1500 * time.Millisecond) // deletions are asynchronous
	ns, name, _ := strings.Cut(running.Handle, "/")
	pod, err := kube.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	kept := err == nil && pod.DeletionTimestamp == nil
	if kept {
		t.Cleanup(func() {
			kube.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: zero()})
		})
	}
	data, _ := os.ReadFile(try.LogPath)
	return outcome{state: final.State, reason: final.Reason, podKept: kept, log: string(data), took: took}
}

// A try adopted after a crash ends as it would have without the crash:
// its on_finish_action, get_logs, start-up timeout and execution timeout
// come from its task's spec, and the timers count from the pod's creation
// and the try's start, not from the adoption.
func TestAdoptedTryKeepsEverySetting(t *testing.T) {
	keep := podSpec(executortest.Behavior{ExitCode: 0, Duration: 3 * time.Second})
	keep.OnFinishAction = dags.KeepPod
	noLogs := podSpec(executortest.Behavior{ExitCode: 0, Duration: 3 * time.Second})
	noLogs.GetLogs = false
	slowStart := podSpec(executortest.Behavior{Forever: true})
	slowStart.Annotations = map[string]string{"updraft.test/waiting": "ImagePullBackOff", "updraft.test/message": "Back-off pulling image"}
	slowStart.StartupTimeout = 5 * time.Second
	forever := podSpec(executortest.Behavior{Forever: true})
	cases := []struct {
		name    string
		spec    dags.PodSpec
		timeout time.Duration
		check   func(t *testing.T, o outcome)
	}{
		{"keep_pod", keep, 0, func(t *testing.T, o outcome) {
			if o.state != executor.Succeeded || !o.podKept {
				t.Errorf("%+v: want success with the pod kept", o)
			}
		}},
		{"get_logs false", noLogs, 0, func(t *testing.T, o outcome) {
			if o.state != executor.Succeeded || strings.Contains(o.log, cluster.LogLines[0]) || !strings.Contains(o.log, "creating pod") {
				t.Errorf("%+v: want success without the pod's log, the try's own lines kept", o)
			}
		}},
		{"startup_timeout_seconds", slowStart, 0, func(t *testing.T, o outcome) {
			if o.state != executor.Failed || !strings.Contains(o.reason, "longer than 5 seconds to start") || o.took > 8*time.Second {
				t.Errorf("%+v: want a start-up failure about 5 s after the pod's creation", o)
			}
		}},
		{"execution_timeout", forever, 5 * time.Second, func(t *testing.T, o outcome) {
			if o.state != executor.Failed || !strings.Contains(o.reason, "execution_timeout") || o.took > 8*time.Second {
				t.Errorf("%+v: want a timeout about 5 s after the try's start", o)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			plain := runCase(t, c.spec, c.timeout, 0, 0)
			c.check(t, plain)
			crashed := runCase(t, c.spec, c.timeout, 1500*time.Millisecond, 2*time.Second)
			c.check(t, crashed)
			if plain.state != crashed.state || plain.podKept != crashed.podKept {
				t.Errorf("uninterrupted %+v, crashed %+v", plain, crashed)
			}
		})
	}
}

// The try follows the base container: a sidecar still running does not
// keep it running, and the pod (sidecar and all) is deleted after.
func TestSidecarDoesNotKeepTheTry(t *testing.T) {
	ex, _ := newExecutor(t, 10)
	spec := podSpec(executortest.Behavior{ExitCode: 0, Duration: time.Second})
	spec.Annotations[cluster.AnnotationSidecar] = "true"
	spec.FullPodSpec = &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "proxy", Image: "envoy"}}}}
	try := start(t, ex, spec)
	running := executortest.Running(t, ex, try.Key, 30*time.Second)
	if ev := executortest.Final(t, ex, try.Key, 30*time.Second); ev.State != executor.Succeeded {
		t.Fatalf("with a sidecar: %+v", ev)
	}
	ns, name, _ := strings.Cut(running.Handle, "/")
	waitGone(t, ns, name)
	failing := podSpec(executortest.Behavior{ExitCode: 3, Duration: time.Second})
	failing.Annotations[cluster.AnnotationSidecar] = "true"
	failing.FullPodSpec = spec.FullPodSpec
	try = start(t, ex, failing)
	if ev := executortest.Final(t, ex, try.Key, 30*time.Second); ev.State != executor.Failed || !strings.Contains(ev.Reason, "exit code 3") {
		t.Fatalf("a failing base container with a sidecar: %+v", ev)
	}
}

// A pod that never starts is kept when on_finish_action keeps failed
// pods, as Airflow keeps it; a skipped try says why it was skipped.
func TestFailedStartKeepsPodAndSkipSaysWhy(t *testing.T) {
	ex, _ := newExecutor(t, 10)
	ctx := context.Background()
	spec := podSpec(executortest.Behavior{Forever: true})
	spec.Annotations = map[string]string{"updraft.test/waiting": "ImagePullBackOff", "updraft.test/message": "Back-off pulling image"}
	spec.StartupTimeout = 2 * time.Second
	spec.OnFinishAction = dags.DeleteSucceededPod
	try := start(t, ex, spec)
	running := executortest.Running(t, ex, try.Key, 30*time.Second)
	if ev := executortest.Final(t, ex, try.Key, 30*time.Second); ev.State != executor.Failed || !strings.Contains(ev.Reason, "to start") {
		t.Fatalf("start-up failure: %+v", ev)
	}
	time.Sleep(1500 * time.Millisecond)
	ns, name, _ := strings.Cut(running.Handle, "/")
	if pod, err := kube.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err != nil || pod.DeletionTimestamp != nil {
		t.Fatalf("a pod that failed to start was not kept under delete_succeeded_pod: %v", err)
	}
	kube.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: zero()})

	skip := executortest.NewTry(t, podSpec(executortest.Behavior{ExitCode: 99, Duration: 500 * time.Millisecond}))
	skip.SkipOn = []int{99}
	if err := ex.Start(ctx, skip); err != nil {
		t.Fatal(err)
	}
	if ev := executortest.Final(t, ex, skip.Key, 30*time.Second); ev.State != executor.Skipped || !strings.Contains(ev.Reason, "skip_on_exit_code") ||
		strings.Contains(ev.Reason, "failure") {
		t.Fatalf("skipped: %+v", ev)
	}
}

// Pods ending together are reported independently: twenty pods ending
// within a second are all reported within a few seconds of the last end
// (one at a time, 2 s each, they took 40 s), each try's end is its
// container's end, and every try's log has the pod's lines.
func TestPodsEndingTogetherAreReportedTogether(t *testing.T) {
	ex, _ := newExecutor(t, 100)
	ctx := context.Background()
	var tries []executor.Try
	for i := 0; i < 20; i++ {
		try := executortest.NewTry(t, podSpec(executortest.Behavior{ExitCode: 0, Duration: 3 * time.Second}))
		if err := ex.Start(ctx, try); err != nil {
			t.Fatal(err)
		}
		tries = append(tries, try)
	}
	ends := map[executor.TryKey]executor.Event{}
	var lastEnd time.Time
	deadline := time.After(90 * time.Second)
	for len(ends) < len(tries) {
		select {
		case ev := <-ex.Events():
			if ev.State != executor.Running {
				ends[ev.Key] = ev
				lastEnd = time.Now()
			}
		case <-deadline:
			t.Fatalf("%d of %d tries reported", len(ends), len(tries))
		}
	}
	var first time.Time
	for _, ev := range ends {
		if ev.State != executor.Succeeded {
			t.Fatalf("%+v", ev)
		}
		if first.IsZero() || ev.At.Before(first) {
			first = ev.At
		}
	}
	// The pods were created within about a second, so they ended within
	// about a second: reported one by one, the last would come 40 s later.
	if spread := lastEnd.Sub(first); spread > 10*time.Second {
		t.Fatalf("the last end was reported %v after the first pod ended", spread)
	}
	for _, try := range tries {
		data, _ := os.ReadFile(try.LogPath)
		if !strings.Contains(string(data), cluster.LogLines[1]) || strings.Index(string(data), cluster.LogLines[1]) > strings.Index(string(data), "try ended") {
			t.Fatalf("log of %s:\n%s", try.Key, data)
		}
	}
}

func waitGone(t *testing.T, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := kube.Client.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{}); err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s was not deleted", ns, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
