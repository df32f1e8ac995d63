package kubernetes

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func podWith(phase corev1.PodPhase, mutate func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{Status: corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: "base"}}}}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func terminated(code int32, reason string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses[0].State.Terminated = &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}
	}
}

func waiting(reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses[0].State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: msg}
	}
}

func TestReadPod(t *testing.T) {
	cases := []struct {
		name string
		pod  *corev1.Pod
		want podState
	}{
		{"succeeded", podWith(corev1.PodSucceeded, terminated(0, "Completed")), podState{done: true, ok: true, started: true}},
		{"exit code", podWith(corev1.PodFailed, terminated(3, "Error")), podState{done: true, started: true, reason: "Error (exit code 3)"}},
		{"oom", podWith(corev1.PodFailed, terminated(137, "OOMKilled")), podState{done: true, started: true, reason: "OOMKilled (exit code 137)"}},
		{"evicted", podWith(corev1.PodFailed, func(p *corev1.Pod) {
			p.Status.Reason, p.Status.Message = "Evicted", "The node was low on resource: memory."
		}), podState{done: true, reason: "Evicted: The node was low on resource: memory."}},
		{"deadline", podWith(corev1.PodFailed, func(p *corev1.Pod) { p.Status.Reason = "DeadlineExceeded" }), podState{done: true, reason: "DeadlineExceeded"}},
		{"running", podWith(corev1.PodRunning, func(p *corev1.Pod) {
			p.Status.ContainerStatuses[0].State.Running = &corev1.ContainerStateRunning{}
		}), podState{started: true}},
		{"missing secret", podWith(corev1.PodPending, waiting("CreateContainerConfigError", `secret "airflow2" not found`)),
			podState{fatal: `CreateContainerConfigError: secret "airflow2" not found`}},
		{"image pull", podWith(corev1.PodPending, waiting("ImagePullBackOff", "Back-off pulling image")), podState{stuck: "ImagePullBackOff: Back-off pulling image"}},
		{"unschedulable", podWith(corev1.PodPending, func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
				Message: "0/1 nodes are available: 1 Insufficient memory."}}
		}), podState{stuck: "Unschedulable: 0/1 nodes are available: 1 Insufficient memory."}},
		// A sidecar keeps the pod running after the base container ended:
		// the try follows the base container.
		{"sidecar after success", podWith(corev1.PodRunning, sidecar(0, "Completed")), podState{done: true, ok: true, started: true}},
		{"sidecar after failure", podWith(corev1.PodRunning, sidecar(2, "Error")), podState{done: true, started: true, reason: "container base Error (exit code 2)"}},
	}
	for _, c := range cases {
		got := readPod(c.pod, "base")
		code := got.exitCode
		got.exitCode = nil
		if got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		if c.want.started && c.want.done && code == nil {
			t.Errorf("%s: no exit code", c.name)
		}
	}
}

func sidecar(code int32, reason string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{
			{Name: "proxy", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			{Name: "base", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}},
		}
	}
}
