package cluster

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The harness starts a control plane whose scheduler places pods on the
// kwok node, and pods end as their annotations say.
func TestControlPlane(t *testing.T) {
	ctx := context.Background()
	c, err := Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	pods := c.Client.CoreV1().Pods("default")
	mk := func(name, code, reason string) {
		t.Helper()
		ann := map[string]string{AnnotationDuration: "500ms"}
		if code != "" {
			ann[AnnotationExitCode], ann[AnnotationReason] = code, reason
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "base", Image: "busybox"}}}}
		if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("ok", "", "") // no annotations: succeeds
	mk("oom", "137", "OOMKilled")
	want := map[string]string{"ok": "Succeeded/0/Completed", "oom": "Failed/137/OOMKilled"}
	// kwok serves LogLines as the log of a running pod's base container.
	mk("logs", "", "")
	var logs []byte
	for i := 0; i < 100 && !strings.Contains(string(logs), LogLines[1]); i++ {
		time.Sleep(100 * time.Millisecond)
		logs, _ = pods.GetLogs("logs", &corev1.PodLogOptions{Container: "base"}).DoRaw(ctx)
	}
	if !strings.Contains(string(logs), LogLines[0]+"\n"+LogLines[1]) {
		t.Fatalf("pod logs: %q", logs)
	}
	deadline := time.Now().Add(60 * time.Second)
	for name, w := range want {
		for {
			p, err := pods.Get(ctx, name, metav1.GetOptions{})
			if err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed) {
				term := p.Status.ContainerStatuses[0].State.Terminated
				if got := string(p.Status.Phase) + "/" + strconv.Itoa(int(term.ExitCode)) + "/" + term.Reason; got != w || p.Spec.NodeName != NodeName {
					t.Fatalf("%s: %s on %q, want %s", name, got, p.Spec.NodeName, w)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never finished: %+v", name, p.Status)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
