package kubernetes

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/executortest"
	"updraft/executor/kubernetes/cluster"
	"updraft/executor/python"
)

// A Python callable's try is a pod of its own on the simulated cluster:
// the task's pod_override with the bootstrap as its command, the input and
// a credential for that one try in its environment and nothing else of
// updraft's; its outcome is what it reported through the Execution API
// (here the Results hook the store backs in the server).
func TestPythonCallablePod(t *testing.T) {
	creds, err := python.NewCredentials([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	reported := map[executor.TryKey]*python.Result{}
	ex, _ := runExecutor(t, Options{Client: podClient(t, kube.Config), Slots: 4, Grace: zero(), Retry: 200 * time.Millisecond, SweepGrace: time.Nanosecond,
		Defaults: Defaults{Namespace: "default", Image: "busybox",
			Python: &PythonPods{Image: "python:3.12-slim", APIURL: "http://updraft.data.svc:8080", Credentials: creds}},
		Results: func(_ context.Context, k executor.TryKey) (*python.Result, error) {
			mu.Lock()
			defer mu.Unlock()
			return reported[k], nil
		}})
	override := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{cluster.AnnotationExitCode: "0", cluster.AnnotationDuration: "2s"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: BaseContainer,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
			Env: []corev1.EnvVar{{Name: "SNOWFLAKE_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "snowflake"}, Key: "password"}}},
				{Name: "UPDRAFT_TRY_TOKEN", Value: "forged"}}}}},
	}
	spec := dags.PythonSpec{Operator: "BranchPythonOperator", Mode: dags.PythonBranch, Module: "lib.helpers", Name: "pick",
		SysPath: []string{"dags", ""}, OpKwargs: map[string]any{"day": "2024-03-01"}, PodOverride: override, ShowReturnValue: true,
		Context: map[string]any{"ds": "2024-03-01"}}
	try := executortest.NewTry(t, spec)
	try.XComPush = true
	mu.Lock()
	reported[try.Key] = &python.Result{State: "success", XCom: map[string]json.RawMessage{dags.ReturnValueKey: json.RawMessage(`["left"]`)}, Branch: []string{"left"}}
	mu.Unlock()
	if err := ex.Start(context.Background(), try); err != nil {
		t.Fatal(err)
	}
	var pods *corev1.PodList
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		pods, err = podClient(t, kube.Config).ListPods(context.Background(), "default", metav1.ListOptions{LabelSelector: LabelTask + "=" + try.Key.TaskID})
		if err == nil && len(pods.Items) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pods: %v %v", pods, err)
		}
	}
	pod := pods.Items[0]
	c := pod.Spec.Containers[0]
	if c.Name != BaseContainer || c.Image != "python:3.12-slim" || len(c.Command) != 3 || c.Command[0] != "python3" || c.Command[2] != python.Bootstrap {
		t.Fatalf("container: %+v", c)
	}
	if q := c.Resources.Requests[corev1.ResourceCPU]; q.String() != "250m" {
		t.Errorf("requests: %v", c.Resources.Requests)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("env %s twice", e.Name)
		}
		env[e.Name] = e
	}
	if env["SNOWFLAKE_PASSWORD"].ValueFrom == nil || env["SNOWFLAKE_PASSWORD"].ValueFrom.SecretKeyRef.Name != "snowflake" {
		t.Errorf("the task's secret: %+v", env["SNOWFLAKE_PASSWORD"])
	}
	if got, err := creds.Verify(env[python.EnvToken].Value); err != nil || got != try.Key {
		t.Errorf("the pod's credential names %+v (%v), want %+v", got, err, try.Key)
	}
	if env[python.EnvAPIURL].Value != "http://updraft.data.svc:8080" {
		t.Errorf("API URL %q", env[python.EnvAPIURL].Value)
	}
	var in python.Input
	if err := json.Unmarshal([]byte(env[python.EnvInput].Value), &in); err != nil || in.Callable.Module != "lib.helpers" || in.Callable.Name != "pick" ||
		in.Mode != dags.PythonBranch || in.OpKwargs["day"] != "2024-03-01" || in.Context["ds"] != "2024-03-01" {
		t.Errorf("input %+v (%v)", in, err)
	}
	for name := range env {
		if strings.HasPrefix(name, "UPDRAFT_") && name != python.EnvToken && name != python.EnvAPIURL && name != python.EnvInput {
			t.Errorf("env %s reaches the pod", name)
		}
	}
	if pod.Labels["task_id"] == "" || pod.Labels["kubernetes_pod_operator"] != "True" {
		t.Errorf("labels %v", pod.Labels)
	}
	ev := executortest.Final(t, ex, try.Key, 30*time.Second)
	if ev.State != executor.Succeeded || ev.Branch == nil || strings.Join(ev.Branch.Follow, ",") != "left" || string(ev.XCom[dags.ReturnValueKey]) != `["left"]` {
		t.Fatalf("final event %+v", ev)
	}

	// A pod that ends without reporting fails, with the reason.
	silent := executortest.NewTry(t, spec)
	if err := ex.Start(context.Background(), silent); err != nil {
		t.Fatal(err)
	}
	if ev := executortest.Final(t, ex, silent.Key, 30*time.Second); ev.State != executor.Failed || !strings.Contains(ev.Reason, "without reporting") {
		t.Fatalf("silent pod: %+v", ev)
	}

	// Without Python settings the server refuses a Python try clearly.
	if _, err := BuildPod(try, Defaults{Image: "busybox"}); err == nil || !strings.Contains(err.Error(), "no Python callables") {
		t.Errorf("BuildPod without Python settings: %v", err)
	}
}
