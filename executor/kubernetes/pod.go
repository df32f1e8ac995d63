package kubernetes

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/python"
)

// Defaults are the server-wide settings every pod starts from, so DAG
// files stay short; a task's own fields win.
type Defaults struct {
	Namespace       string
	Image           string // the image BashOperator tasks run in
	ImagePullPolicy corev1.PullPolicy
	Resources       corev1.ResourceRequirements
	Labels          map[string]string
	ServiceAccount  string
	// Python runs Python callables' pods; nil runs none.
	Python *PythonPods
}

// PythonPods are the settings of Python callables' pods: the image (a
// task's executor_config pod_override may name another), the server's
// Execution API as pods reach it, and the signer of their credentials.
type PythonPods struct {
	Image       string
	APIURL      string
	Credentials *python.Credentials
}

// Labels and annotations that identify a try's pod.
const (
	LabelManagedBy   = "app.kubernetes.io/managed-by"
	ManagedBy        = "updraft"
	LabelDAG         = "updraft.dev/dag-id"
	LabelTask        = "updraft.dev/task-id"
	LabelRun         = "updraft.dev/run-id"
	LabelTry         = "updraft.dev/try-number"
	LabelMapIndex    = "updraft.dev/map-index"
	AnnotationDAG    = "updraft.dev/dag-id"
	AnnotationTask   = "updraft.dev/task-id"
	AnnotationRun    = "updraft.dev/run-id"
	AnnotationTry    = "updraft.dev/try-number"
	AnnotationMap    = "updraft.dev/map-index" // set on the pods of mapped task instances only
	AnnotationFinish = "updraft.dev/on-finish-action"
	BaseContainer    = "base"
	secretVolPrefix  = "secretvol-"
)

// PodName is the deterministic name of a try's pod: the task's pod name (or
// task id) made a DNS label, then a hash of the try's identity. At most 63
// characters, the same for the same try in every process.
func PodName(k executor.TryKey, name string) string {
	if name == "" {
		name = k.TaskID
	}
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(name), "-"), "-")
	id := fmt.Sprintf("%s\x00%s\x00%s\x00%d", k.DagID, k.TaskID, k.RunID, k.TryNumber)
	if k.MapIndex >= 0 {
		id += fmt.Sprintf("\x00%d", k.MapIndex)
	}
	sum := sha256.Sum256([]byte(id))
	suffix := hex.EncodeToString(sum[:])[:10]
	if len(base) > 52 {
		base = strings.TrimRight(base[:52], "-")
	}
	if base == "" {
		base = "task"
	}
	return base + "-" + suffix
}

var (
	nonDNS        = regexp.MustCompile(`[^a-z0-9-]+`)
	nonLabel      = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)
	badLabelEdges = regexp.MustCompile(`^[^A-Za-z0-9]+|[^A-Za-z0-9]+$`)
)

// LabelValue makes v a valid label value the way KubernetesPodOperator
// does: characters outside [A-Za-z0-9_.-] and non-alphanumeric ends are
// dropped; if that changed it or it is longer than 63, it is cut to 53
// and "-" + 9 hex digits of md5(v) are added, so distinct values stay
// distinct. The exact value is kept in an annotation.
func LabelValue(v string) string {
	s := badLabelEdges.ReplaceAllString(nonLabel.ReplaceAllString(v, ""), "")
	if s == v && len(s) <= 63 {
		return s
	}
	sum := md5.Sum([]byte(v))
	if len(s) > 53 {
		s = s[:53]
	}
	return badLabelEdges.ReplaceAllString(s, "") + "-" + hex.EncodeToString(sum[:])[:9]
}

// TryLabels are the labels that select a try's pod.
func TryLabels(k executor.TryKey) map[string]string {
	out := map[string]string{
		LabelManagedBy: ManagedBy,
		LabelDAG:       LabelValue(k.DagID),
		LabelTask:      LabelValue(k.TaskID),
		LabelRun:       LabelValue(k.RunID),
		LabelTry:       strconv.Itoa(k.TryNumber),
	}
	if k.MapIndex >= 0 {
		out[LabelMapIndex] = strconv.Itoa(k.MapIndex)
	}
	return out
}

// AirflowLabels are the labels KubernetesPodOperator puts on its pods,
// with values made valid the same way.
func AirflowLabels(k executor.TryKey) map[string]string {
	out := map[string]string{
		"dag_id":                  LabelValue(k.DagID),
		"task_id":                 LabelValue(k.TaskID),
		"run_id":                  LabelValue(k.RunID),
		"try_number":              strconv.Itoa(k.TryNumber),
		"kubernetes_pod_operator": "True",
	}
	if k.MapIndex >= 0 {
		out["map_index"] = strconv.Itoa(k.MapIndex)
	}
	return out
}

// BuildPod builds the pod of one try from its rendered operator spec and
// the server defaults. EmptyOperator tries have no pod.
func BuildPod(k executor.Try, d Defaults) (*corev1.Pod, error) {
	var pod *corev1.Pod
	switch s := k.Spec.(type) {
	case dags.PodSpec:
		pod = fromPodSpec(s, d)
	case dags.BashSpec:
		pod = fromBash(s, d)
	case dags.PythonSpec:
		var err error
		if pod, err = fromPython(k, s, d); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("the kubernetes executor cannot run %s", k.Spec.Kind())
	}
	if pod.Namespace == "" {
		pod.Namespace = d.Namespace
	}
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	name := ""
	if s, ok := k.Spec.(dags.PodSpec); ok {
		name = s.Name
	}
	pod.Name = PodName(k.Key, name)
	pod.GenerateName = ""
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	for key, v := range d.Labels {
		if _, set := pod.Labels[key]; !set {
			pod.Labels[key] = v
		}
	}
	for key, v := range TryLabels(k.Key) {
		pod.Labels[key] = v
	}
	// Airflow's KubernetesPodOperator labels too, which dashboards and
	// policies written for Airflow select on.
	for key, v := range AirflowLabels(k.Key) {
		pod.Labels[key] = v
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[AnnotationDAG] = k.Key.DagID
	pod.Annotations[AnnotationTask] = k.Key.TaskID
	pod.Annotations[AnnotationRun] = k.Key.RunID
	pod.Annotations[AnnotationTry] = strconv.Itoa(k.Key.TryNumber)
	if k.Key.MapIndex >= 0 {
		pod.Annotations[AnnotationMap] = strconv.Itoa(k.Key.MapIndex)
	}
	pod.Annotations[AnnotationFinish] = dags.DeletePod
	if s, ok := k.Spec.(dags.PodSpec); ok && s.OnFinishAction != "" {
		pod.Annotations[AnnotationFinish] = s.OnFinishAction
	}
	pod.Spec.RestartPolicy = corev1.RestartPolicyNever
	c := &pod.Spec.Containers[0]
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = d.ImagePullPolicy
	}
	if c.Resources.Requests == nil && c.Resources.Limits == nil {
		c.Resources = *d.Resources.DeepCopy()
	}
	if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = d.ServiceAccount
	}
	return pod, nil
}

// fromPython builds a Python callable's pod: the task's pod_override (its
// resources, secrets, volumes...) with updraft's bootstrap as the base
// container's command. The pod fetches its run's DAG files and the
// runner from the server with the try's credential; the input (rendered
// arguments and context) is in its environment.
func fromPython(k executor.Try, s dags.PythonSpec, d Defaults) (*corev1.Pod, error) {
	if d.Python == nil || d.Python.Credentials == nil {
		return nil, fmt.Errorf("this server runs no Python callables on Kubernetes (set --python-image and --execution-api-url)")
	}
	in, err := json.Marshal(python.NewInput(s))
	if err != nil {
		return nil, fmt.Errorf("the callable's arguments: %w", err)
	}
	pod := &corev1.Pod{}
	if s.PodOverride != nil {
		pod = s.PodOverride.DeepCopy()
		pod.TypeMeta, pod.Status = metav1.TypeMeta{}, corev1.PodStatus{}
	}
	i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == BaseContainer })
	if i < 0 {
		pod.Spec.Containers = append([]corev1.Container{{Name: BaseContainer}}, pod.Spec.Containers...)
		i = 0
	}
	c := &pod.Spec.Containers[i]
	if c.Image == "" {
		c.Image = firstNonEmpty(d.Python.Image, d.Image)
	}
	if i != 0 { // the base container first, as Airflow has it
		pod.Spec.Containers[0], pod.Spec.Containers[i] = pod.Spec.Containers[i], pod.Spec.Containers[0]
		c = &pod.Spec.Containers[0]
	}
	interp := "python3"
	if s.Python != "" {
		interp = s.Python
	}
	c.Command, c.Args = []string{interp, "-c", python.Bootstrap}, nil
	c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return strings.HasPrefix(e.Name, "UPDRAFT_") })
	c.Env = append(c.Env,
		corev1.EnvVar{Name: python.EnvAPIURL, Value: d.Python.APIURL},
		corev1.EnvVar{Name: python.EnvToken, Value: d.Python.Credentials.Mint(k.Key)},
		corev1.EnvVar{Name: python.EnvInput, Value: string(in)})
	return pod, nil
}

func fromBash(s dags.BashSpec, d Defaults) *corev1.Pod {
	c := corev1.Container{Name: BaseContainer, Image: d.Image, Command: []string{"bash", "-c", s.Command}, WorkingDir: s.Cwd}
	for _, key := range slices.Sorted(maps.Keys(s.Env)) {
		c.Env = append(c.Env, corev1.EnvVar{Name: key, Value: s.Env[key]})
	}
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
}

// fromPodSpec maps every KubernetesPodOperator field onto the pod, over
// full_pod_spec when the task gives one (task fields win, as in KPO).
func fromPodSpec(s dags.PodSpec, d Defaults) *corev1.Pod {
	pod := &corev1.Pod{}
	if s.FullPodSpec != nil {
		pod = s.FullPodSpec.DeepCopy()
		pod.TypeMeta = metav1.TypeMeta{}
		pod.Status = corev1.PodStatus{}
	}
	pod.Namespace = firstNonEmpty(s.Namespace, pod.Namespace)
	pod.Labels = merge(pod.Labels, s.Labels)
	pod.Annotations = merge(pod.Annotations, s.Annotations)
	base := BaseContainer
	if s.BaseContainerName != "" {
		base = s.BaseContainerName
	}
	idx := -1
	for i, c := range pod.Spec.Containers {
		if c.Name == base {
			idx = i
		}
	}
	if idx < 0 {
		pod.Spec.Containers = append([]corev1.Container{{Name: base}}, pod.Spec.Containers...)
		idx = 0
	} else if idx != 0 {
		c := pod.Spec.Containers[idx]
		pod.Spec.Containers = append([]corev1.Container{c}, append(pod.Spec.Containers[:idx:idx], pod.Spec.Containers[idx+1:]...)...)
		idx = 0
	}
	c := &pod.Spec.Containers[idx]
	c.Image = firstNonEmpty(s.Image, c.Image)
	if s.Cmds != nil {
		c.Command = s.Cmds
	}
	if s.Arguments != nil {
		c.Args = s.Arguments
	}
	// Plain env first, then secrets: Kubernetes keeps the later of two
	// entries with one name, so a secret wins, as with KPO.
	c.Env = append(c.Env, s.EnvVars...)
	c.Env = append(c.Env, s.RuntimeInfoEnvs...)
	c.EnvFrom = append(c.EnvFrom, s.EnvFrom...)
	for _, cm := range s.ConfigMaps {
		c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: cm}}})
	}
	for i, sec := range s.Secrets {
		switch {
		case sec.DeployType == "env" && sec.Key != "":
			c.Env = append(c.Env, corev1.EnvVar{Name: strings.ToUpper(sec.DeployTarget), ValueFrom: &corev1.EnvVarSource{
				SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: sec.Secret}, Key: sec.Key}}})
		case sec.DeployType == "env":
			c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: sec.Secret}}})
		case sec.DeployType == "volume":
			vol := fmt.Sprintf("%s%d", secretVolPrefix, i)
			pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: sec.Secret, Items: sec.Items}}})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol, MountPath: sec.DeployTarget, ReadOnly: true})
		}
	}
	if s.Resources != nil {
		c.Resources = *s.Resources.DeepCopy()
	}
	c.Ports = append(c.Ports, s.Ports...)
	c.VolumeMounts = append(c.VolumeMounts, s.VolumeMounts...)
	if s.ImagePullPolicy != "" {
		c.ImagePullPolicy = s.ImagePullPolicy
	}
	if s.ContainerSecurityContext != nil {
		c.SecurityContext = s.ContainerSecurityContext.DeepCopy()
	}
	if s.TerminationMessagePolicy != "" {
		c.TerminationMessagePolicy = s.TerminationMessagePolicy
	}
	if s.DoXComPush {
		// The kubelet copies this file into the container's termination
		// message when it ends: the XCom reaches updraft through the pod's
		// status, without exec into the pod, and survives a restart.
		c.TerminationMessagePath = XComPath
		if c.TerminationMessagePolicy == "" {
			c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
		}
	}
	ps := &pod.Spec
	ps.Volumes = append(ps.Volumes, s.Volumes...)
	ps.InitContainers = append(ps.InitContainers, s.InitContainers...)
	ps.NodeSelector = merge(ps.NodeSelector, s.NodeSelector)
	if s.Affinity != nil {
		ps.Affinity = s.Affinity.DeepCopy()
	}
	ps.Tolerations = append(ps.Tolerations, s.Tolerations...)
	ps.ImagePullSecrets = append(ps.ImagePullSecrets, s.ImagePullSecrets...)
	ps.ServiceAccountName = firstNonEmpty(s.ServiceAccountName, ps.ServiceAccountName)
	if s.SecurityContext != nil {
		ps.SecurityContext = s.SecurityContext.DeepCopy()
	}
	ps.HostNetwork = ps.HostNetwork || s.HostNetwork
	if s.DNSPolicy != "" {
		ps.DNSPolicy = s.DNSPolicy
	}
	if s.DNSConfig != nil {
		ps.DNSConfig = s.DNSConfig.DeepCopy()
	}
	ps.SchedulerName = firstNonEmpty(s.SchedulerName, ps.SchedulerName)
	ps.PriorityClassName = firstNonEmpty(s.PriorityClassName, ps.PriorityClassName)
	ps.Hostname = firstNonEmpty(s.Hostname, ps.Hostname)
	ps.Subdomain = firstNonEmpty(s.Subdomain, ps.Subdomain)
	ps.HostAliases = append(ps.HostAliases, s.HostAliases...)
	if s.TerminationGracePeriod != nil {
		ps.TerminationGracePeriodSeconds = s.TerminationGracePeriod
	}
	if s.ActiveDeadlineSeconds != nil {
		ps.ActiveDeadlineSeconds = s.ActiveDeadlineSeconds
	}
	return pod
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func merge(base, over map[string]string) map[string]string {
	if len(over) == 0 {
		return base
	}
	out := make(map[string]string, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}
