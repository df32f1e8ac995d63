package kubernetes

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"updraft/dags"
	"updraft/executor"
)

var defaults = Defaults{
	Namespace:       "airflow-dev",
	Image:           "debian:bookworm-slim",
	ImagePullPolicy: corev1.PullIfNotPresent,
	Resources: corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("100Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("500Mi")},
	},
	Labels:         map[string]string{"team": "data"},
	ServiceAccount: "updraft-tasks",
}

func key(task string, try int) executor.TryKey {
	return executor.TryKey{DagID: "nightly", RunID: "scheduled__2024-01-01T03:00:00+00:00", TaskID: task, TryNumber: try, MapIndex: -1}
}

func build(t *testing.T, spec dags.OperatorSpec, k executor.TryKey) *corev1.Pod {
	t.Helper()
	pod, err := BuildPod(executor.Try{Key: k, Spec: spec}, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if errs := validation.IsDNS1123Label(pod.Name); len(errs) > 0 {
		t.Fatalf("pod name %q: %v", pod.Name, errs)
	}
	for k, v := range pod.Labels {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Fatalf("label %s=%q: %v", k, v, errs)
		}
	}
	return pod
}

// The manifest: dag-factory's kpo.yml gives a pod matching the file.
func TestCorpusKPOPod(t *testing.T) {
	dir := os.Getenv("UPDRAFT_DAG_FACTORY_CORPUS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "corpus", "dag-factory")
	}
	data, err := os.ReadFile(filepath.Join(dir, "dev", "dags", "kpo.yml"))
	if err != nil {
		t.Fatalf("dag-factory corpus not found (set UPDRAFT_DAG_FACTORY_CORPUS): %v", err)
	}
	res := dags.Load(fstest.MapFS{"kpo.yml": {Data: data}}, dags.Options{})
	task := res.DAG("kubernetes_pod_dag").Task("hello-world-pod")
	pod := build(t, task.Spec, key(task.ID, 1))
	c := pod.Spec.Containers[0]
	if pod.Namespace != "default" || c.Name != "base" || c.Image != "python:3.12-slim" ||
		strings.Join(c.Command, " ") != "python -c" || strings.Join(c.Args, " ") != "print('Hello from KubernetesPodOperator!')" {
		t.Fatalf("pod = %s %s %v %v", pod.Namespace, c.Image, c.Command, c.Args)
	}
	if c.Resources.Limits.Cpu().String() != "1" || c.Resources.Limits.Memory().String() != "1Gi" ||
		c.Resources.Requests.Cpu().String() != "500m" || c.Resources.Requests.Memory().String() != "512Mi" {
		t.Fatalf("resources = %+v", c.Resources)
	}
	if !strings.HasPrefix(pod.Name, "example-pod-task-") || pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Fatalf("name %s, restart %s", pod.Name, pod.Spec.RestartPolicy)
	}
}

func TestLabelValueLikeKPO(t *testing.T) {
	for in, want := range map[string]string{
		"scheduled__2023-03-08T01:30:00+00:00": "scheduled__2023-03-08T0130000000-77fa57adf",
		"manual__2024-01-01T00:00:00+00:00":    "manual__2024-01-01T0000000000-701821d7a",
		"extract.users":                        "extract.users",
		strings.Repeat("a", 70):                strings.Repeat("a", 53) + "-",
	} {
		got := LabelValue(in)
		if !strings.HasPrefix(got, want) || len(got) > 63 {
			t.Errorf("LabelValue(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPodNames(t *testing.T) {
	a, b := PodName(key("load", 1), ""), PodName(key("load", 2), "")
	if a == b || a != PodName(key("load", 1), "") || !strings.HasPrefix(a, "load-") {
		t.Fatalf("names %s %s", a, b)
	}
	long := PodName(key(strings.Repeat("Very_Long.Task-Name", 10), 1), "")
	if len(long) > 63 || len(validation.IsDNS1123Label(long)) > 0 {
		t.Fatalf("long name %q", long)
	}
	if got := PodName(key("x", 1), "Check New Tables!"); !strings.HasPrefix(got, "check-new-tables-") {
		t.Fatalf("KPO name %q", got)
	}
}

func TestPodFromEveryField(t *testing.T) {
	src := `kpo:
  start_date: 2024-01-01
  tasks:
    - task_id: load
      operator: KubernetesPodOperator
      image: "etl:1"
      cmds: ["/bin/bash", "-c"]
      arguments: ["load ${SNOWFLAKE_USER}"]
      env_vars: {SNOWFLAKE_LOAD_DATABASE: RAW, EXECUTION_DATE: "2024-01-02"}
      secrets:
        - {deploy_type: env, deploy_target: SNOWFLAKE_LOAD_DATABASE, secret: airflow2, key: SNOWFLAKE_LOAD_DATABASE}
        - {deploy_type: env, secret: all-keys}
        - {deploy_type: volume, deploy_target: /etc/creds, secret: creds}
      configmaps: [settings]
      labels: {component: etl}
      annotations: {example.com/owner: data}
      node_selector: {kubernetes.io/os: linux}
      tolerations: [{key: dedicated, operator: Equal, value: etl, effect: NoSchedule}]
      image_pull_secrets: regcred
      image_pull_policy: Always
      service_account_name: etl
      termination_grace_period: 30
      active_deadline_seconds: 600
      full_pod_spec:
        metadata: {labels: {from: template}}
        spec:
          containers:
            - {name: sidecar, image: "proxy:1"}
            - {name: base, image: "ignored:0", working_dir: /work}
`
	res := dags.Load(fstest.MapFS{"k.yaml": {Data: []byte(src)}}, dags.Options{})
	if errs := res.Problems().Errors(); len(errs) > 0 {
		t.Fatal(errs)
	}
	pod := build(t, res.DAG("kpo").Task("load").Spec, key("load", 3))
	c := pod.Spec.Containers[0]
	if c.Name != "base" || c.Image != "etl:1" || c.WorkingDir != "/work" || pod.Spec.Containers[1].Name != "sidecar" {
		t.Fatalf("containers %+v", pod.Spec.Containers)
	}
	var env []string
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			env = append(env, e.Name+"<-"+e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
		} else {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	// Plain env in file order first, secrets after: the secret wins in Kubernetes.
	if got := strings.Join(env, " "); got != "SNOWFLAKE_LOAD_DATABASE=RAW EXECUTION_DATE=2024-01-02 SNOWFLAKE_LOAD_DATABASE<-airflow2/SNOWFLAKE_LOAD_DATABASE" {
		t.Fatalf("env %s", got)
	}
	if len(c.EnvFrom) != 2 || c.EnvFrom[0].ConfigMapRef.Name != "settings" || c.EnvFrom[1].SecretRef.Name != "all-keys" {
		t.Fatalf("envFrom %+v", c.EnvFrom)
	}
	if v := pod.Spec.Volumes[0]; v.Secret.SecretName != "creds" || c.VolumeMounts[0].MountPath != "/etc/creds" || !c.VolumeMounts[0].ReadOnly {
		t.Fatalf("secret volume %+v %+v", v, c.VolumeMounts)
	}
	if pod.Namespace != "airflow-dev" || pod.Labels["component"] != "etl" || pod.Labels["from"] != "template" || pod.Labels["team"] != "data" {
		t.Fatalf("namespace %s labels %v", pod.Namespace, pod.Labels)
	}
	if pod.Labels[LabelRun] != LabelValue("scheduled__2024-01-01T03:00:00+00:00") || pod.Annotations[AnnotationRun] != "scheduled__2024-01-01T03:00:00+00:00" || pod.Labels[LabelTry] != "3" {
		t.Fatalf("identity labels %v annotations %v", pod.Labels, pod.Annotations)
	}
	// Airflow's labels beside ours, with KubernetesPodOperator's values.
	if pod.Labels["run_id"] != LabelValue("scheduled__2024-01-01T03:00:00+00:00") || pod.Labels["try_number"] != "3" ||
		pod.Labels["kubernetes_pod_operator"] != "True" || pod.Labels["dag_id"] == "" || pod.Labels["task_id"] == "" {
		t.Fatalf("Airflow's labels: %v", pod.Labels)
	}
	if c.ImagePullPolicy != corev1.PullAlways || pod.Spec.ServiceAccountName != "etl" || pod.Spec.ImagePullSecrets[0].Name != "regcred" ||
		*pod.Spec.TerminationGracePeriodSeconds != 30 || *pod.Spec.ActiveDeadlineSeconds != 600 || pod.Spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Fatalf("pod spec %+v", pod.Spec)
	}
	if c.Resources.Requests.Cpu().String() != "50m" {
		t.Fatalf("server default resources not applied: %+v", c.Resources)
	}
}

func TestBashAndEmpty(t *testing.T) {
	pod := build(t, dags.BashSpec{Command: "echo {{ ds }}", Env: map[string]string{"B": "2", "A": "1"}, Cwd: "/tmp"}, key("shell", 1))
	c := pod.Spec.Containers[0]
	if c.Image != defaults.Image || strings.Join(c.Command, " ") != "bash -c echo {{ ds }}" || c.Env[0].Name != "A" || c.WorkingDir != "/tmp" ||
		pod.Spec.ServiceAccountName != "updraft-tasks" || c.ImagePullPolicy != corev1.PullIfNotPresent {
		t.Fatalf("bash pod %+v", pod.Spec)
	}
	if _, err := BuildPod(executor.Try{Key: key("e", 1), Spec: dags.EmptySpec{}}, defaults); err == nil {
		t.Fatal("EmptyOperator got a pod")
	}
}
