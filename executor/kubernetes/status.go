package kubernetes

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// podState is what a pod's status says about its try.
type podState struct {
	done     bool   // the pod ended: Succeeded or Failed
	ok       bool   // it succeeded (exit code 0)
	exitCode *int   // the base container's exit code, when it ran
	reason   string // why it failed, in Kubernetes' words
	started  bool   // the base container has started (logs can be read)
	fatal    string // a problem that will not go away: fail at once (missing secret)
	stuck    string // why it has not started yet (unschedulable, image pull): fail after the startup timeout
	// finishedAt is when the base container ended (zero if unknown).
	finishedAt time.Time
	// message is the base container's termination message: its XCom
	// when the task pushes one.
	message string
}

// readPod maps a pod's status onto a try outcome, keeping Kubernetes'
// reasons (OOMKilled, Evicted, DeadlineExceeded, Unschedulable...) for the
// try record, the UI and alerts.
func readPod(pod *corev1.Pod, container string) podState {
	var st podState
	var cs *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == container {
			cs = &pod.Status.ContainerStatuses[i]
		}
	}
	if cs != nil {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			st.started = true
		}
		if term := cs.State.Terminated; term != nil {
			code := int(term.ExitCode)
			st.exitCode = &code
			st.finishedAt = term.FinishedAt.Time
			st.message = term.Message
			st.reason = term.Reason
			if term.Message != "" {
				st.reason += ": " + strings.TrimSpace(term.Message)
			}
		}
		if w := cs.State.Waiting; w != nil {
			msg := w.Reason
			if w.Message != "" {
				msg += ": " + w.Message
			}
			switch w.Reason {
			case "CreateContainerConfigError", "CreateContainerError", "InvalidImageName":
				st.fatal = msg
			case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull":
				st.stuck = msg
			}
		}
	}
	switch pod.Status.Phase {
	case corev1.PodSucceeded:
		st.done, st.ok = true, true
		if st.exitCode == nil {
			zero := 0
			st.exitCode = &zero
		}
		st.reason = ""
	case corev1.PodFailed:
		st.done = true
		reason := pod.Status.Reason // Evicted, DeadlineExceeded, ...
		if pod.Status.Message != "" {
			reason = strings.TrimSpace(reason + ": " + pod.Status.Message)
		}
		switch {
		case reason != "" && st.reason != "" && st.reason != "Error":
			st.reason = reason + "; container " + st.reason
		case reason != "":
			st.reason = reason
		case st.reason == "":
			st.reason = "Failed"
		}
		if st.exitCode != nil {
			st.reason = fmt.Sprintf("%s (exit code %d)", st.reason, *st.exitCode)
		}
	case corev1.PodPending:
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
				st.stuck = "Unschedulable: " + c.Message
			}
		}
	}
	// The try follows its base container, as Airflow does: once it has
	// ended, sidecars that keep the pod running do not keep the try.
	if !st.done && st.exitCode != nil {
		st.done, st.ok = true, *st.exitCode == 0
		if st.ok {
			st.reason = ""
		} else {
			if st.reason == "" {
				st.reason = "Error"
			}
			st.reason = fmt.Sprintf("container %s %s (exit code %d)", container, st.reason, *st.exitCode)
		}
	}
	return st
}

// XComPath is where a pod task writes its XCom, as KubernetesPodOperator
// has it; the base container's termination message is read from it.
const XComPath = "/airflow/xcom/return.json"

// maxTerminationMessage is what the kubelet keeps of a termination
// message: a longer return.json arrives cut.
const maxTerminationMessage = 4096

// podXCom reads a succeeded pod's XCom from its termination message.
func podXCom(st podState) (json.RawMessage, string) {
	msg := strings.TrimSpace(st.message)
	switch {
	case msg == "":
		return nil, "do_xcom_push is set but the container wrote no " + XComPath
	case !json.Valid([]byte(msg)) && len(st.message) >= maxTerminationMessage:
		return nil, fmt.Sprintf("%s is larger than the %d bytes Kubernetes keeps of a termination message: push less, or write the data elsewhere and push its location", XComPath, maxTerminationMessage)
	case !json.Valid([]byte(msg)):
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		return nil, XComPath + " is not JSON: " + msg
	}
	return json.RawMessage(msg), ""
}
