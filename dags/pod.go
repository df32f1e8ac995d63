package dags

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

var podFields = []string{
	// cluster connection: owned by the updraft server, accepted and ignored
	"kubernetes_conn_id", "in_cluster", "cluster_context", "config_file", "deferrable", "poll_interval",
	// container
	"name", "random_name_suffix", "labels", "annotations", "hostname", "subdomain", "image", "cmds",
	"arguments", "ports", "env_vars", "env_from", "configmaps", "secrets", "pod_runtime_info_envs",
	"volumes", "volume_mounts", "container_resources", "image_pull_policy", "container_security_context",
	"termination_message_policy", "base_container_name",
	// pod
	"node_selector", "affinity", "tolerations", "image_pull_secrets", "service_account_name",
	"security_context", "hostnetwork", "dnspolicy", "dns_config", "schedulername", "priority_class_name",
	"init_containers", "termination_grace_period", "active_deadline_seconds", "full_pod_spec",
	"pod_template_file", "pod_template_dict", "host_aliases",
	// lifecycle
	"startup_timeout_seconds", "schedule_timeout_seconds", "get_logs", "container_logs",
	"log_events_on_failure", "log_pod_spec_on_failure", "reattach_on_restart", "on_finish_action",
	"is_delete_operator_pod", "skip_on_exit_code", "do_xcom_push",
}

// ignoredPodFields configure how Airflow reaches the cluster; updraft's
// server owns that connection, so they are accepted with a warning.
var ignoredPodFields = []string{"kubernetes_conn_id", "in_cluster", "cluster_context", "config_file", "deferrable", "poll_interval"}

// On-finish actions of KubernetesPodOperator.
const (
	DeletePod          = "delete_pod"
	DeleteSucceededPod = "delete_succeeded_pod"
	KeepPod            = "keep_pod"
)

// DefaultStartupTimeout is KubernetesPodOperator's startup_timeout_seconds.
const DefaultStartupTimeout = 120 * time.Second

// PodSpec is KubernetesPodOperator: one Pod per try. Kubernetes objects are
// kept as k8s.io/api types; Secrets are references, never values.
type PodSpec struct {
	Name                     string                          `json:"name,omitempty"`
	RandomNameSuffix         bool                            `json:"random_name_suffix"`
	Image                    string                          `json:"image"`
	Cmds                     []string                        `json:"cmds,omitempty"`
	Arguments                []string                        `json:"arguments,omitempty"`
	EnvVars                  []corev1.EnvVar                 `json:"env_vars,omitempty"`
	Secrets                  []Secret                        `json:"secrets,omitempty"`
	EnvFrom                  []corev1.EnvFromSource          `json:"env_from,omitempty"`
	ConfigMaps               []string                        `json:"configmaps,omitempty"`
	Resources                *corev1.ResourceRequirements    `json:"container_resources,omitempty"`
	Namespace                string                          `json:"namespace,omitempty"`
	Labels                   map[string]string               `json:"labels,omitempty"`
	Annotations              map[string]string               `json:"annotations,omitempty"`
	Hostname                 string                          `json:"hostname,omitempty"`
	Subdomain                string                          `json:"subdomain,omitempty"`
	Ports                    []corev1.ContainerPort          `json:"ports,omitempty"`
	RuntimeInfoEnvs          []corev1.EnvVar                 `json:"pod_runtime_info_envs,omitempty"`
	Volumes                  []corev1.Volume                 `json:"volumes,omitempty"`
	VolumeMounts             []corev1.VolumeMount            `json:"volume_mounts,omitempty"`
	ImagePullPolicy          corev1.PullPolicy               `json:"image_pull_policy,omitempty"`
	ContainerSecurityContext *corev1.SecurityContext         `json:"container_security_context,omitempty"`
	TerminationMessagePolicy corev1.TerminationMessagePolicy `json:"termination_message_policy,omitempty"`
	BaseContainerName        string                          `json:"base_container_name,omitempty"`

	NodeSelector           map[string]string             `json:"node_selector,omitempty"`
	Affinity               *corev1.Affinity              `json:"affinity,omitempty"`
	Tolerations            []corev1.Toleration           `json:"tolerations,omitempty"`
	ImagePullSecrets       []corev1.LocalObjectReference `json:"image_pull_secrets,omitempty"`
	ServiceAccountName     string                        `json:"service_account_name,omitempty"`
	SecurityContext        *corev1.PodSecurityContext    `json:"security_context,omitempty"`
	HostNetwork            bool                          `json:"hostnetwork,omitempty"`
	DNSPolicy              corev1.DNSPolicy              `json:"dnspolicy,omitempty"`
	DNSConfig              *corev1.PodDNSConfig          `json:"dns_config,omitempty"`
	SchedulerName          string                        `json:"schedulername,omitempty"`
	PriorityClassName      string                        `json:"priority_class_name,omitempty"`
	InitContainers         []corev1.Container            `json:"init_containers,omitempty"`
	HostAliases            []corev1.HostAlias            `json:"host_aliases,omitempty"`
	TerminationGracePeriod *int64                        `json:"termination_grace_period,omitempty"`
	ActiveDeadlineSeconds  *int64                        `json:"active_deadline_seconds,omitempty"`
	FullPodSpec            *corev1.Pod                   `json:"full_pod_spec,omitempty"`

	StartupTimeout      time.Duration `json:"startup_timeout_seconds"`
	ScheduleTimeout     time.Duration `json:"schedule_timeout_seconds,omitempty"`
	GetLogs             bool          `json:"get_logs"`
	LogEventsOnFailure  bool          `json:"log_events_on_failure,omitempty"`
	LogPodSpecOnFailure bool          `json:"log_pod_spec_on_failure"`
	ReattachOnRestart   bool          `json:"reattach_on_restart"`
	OnFinishAction      string        `json:"on_finish_action"`
	SkipOnExitCode      []int         `json:"skip_on_exit_code,omitempty"`
	DoXComPush          bool          `json:"do_xcom_push,omitempty"`

	at map[string]*val
}

func (PodSpec) Kind() string       { return "KubernetesPodOperator" }
func (s PodSpec) skipCodes() []int { return s.SkipOnExitCode }

func (s PodSpec) templates() []templateField {
	out := []templateField{{"image", s.Image, s.at["image"]}, {"namespace", s.Namespace, s.at["namespace"]}}
	for i, c := range s.Cmds {
		out = append(out, templateField{fmt.Sprintf("cmds[%d]", i), c, s.at["cmds"]})
	}
	for i, a := range s.Arguments {
		out = append(out, templateField{fmt.Sprintf("arguments[%d]", i), a, s.at["arguments"]})
	}
	for _, e := range s.EnvVars {
		out = append(out, templateField{"env_vars." + e.Name, e.Value, s.at["env_vars"]})
	}
	for _, k := range sortedKeys(s.Labels) {
		out = append(out, templateField{"labels." + k, s.Labels[k], s.at["labels"]})
	}
	for _, k := range sortedKeys(s.Annotations) {
		out = append(out, templateField{"annotations." + k, s.Annotations[k], s.at["annotations"]})
	}
	return out
}

// Render renders KubernetesPodOperator's templated fields: image, cmds,
// arguments, env_vars values, labels, annotations and namespace.
func (s PodSpec) Render(r *Renderer) (OperatorSpec, error) {
	out := s
	var err error
	if out.Image, err = r.field("image", s.Image); err != nil {
		return nil, err
	}
	if out.Namespace, err = r.field("namespace", s.Namespace); err != nil {
		return nil, err
	}
	if out.Cmds, err = r.list("cmds", s.Cmds); err != nil {
		return nil, err
	}
	if out.Arguments, err = r.list("arguments", s.Arguments); err != nil {
		return nil, err
	}
	if s.EnvVars != nil {
		out.EnvVars = make([]corev1.EnvVar, len(s.EnvVars))
		for i, e := range s.EnvVars {
			out.EnvVars[i] = *e.DeepCopy()
			if e.ValueFrom == nil {
				if out.EnvVars[i].Value, err = r.field("env_vars."+e.Name, e.Value); err != nil {
					return nil, err
				}
			}
		}
	}
	if out.Labels, err = r.stringMap("labels", s.Labels); err != nil {
		return nil, err
	}
	if out.Annotations, err = r.stringMap("annotations", s.Annotations); err != nil {
		return nil, err
	}
	return out, nil
}

func decodePod(d *taskDecoder) OperatorSpec {
	s := PodSpec{
		RandomNameSuffix:    true,
		GetLogs:             true,
		LogPodSpecOnFailure: true,
		ReattachOnRestart:   true,
		OnFinishAction:      DeletePod,
		StartupTimeout:      DefaultStartupTimeout,
		at:                  map[string]*val{},
	}
	r := d.r
	for _, key := range ignoredPodFields {
		if v := d.take(key); v != nil && d.isOwn(key) {
			r.warnf(v, "%s is ignored: the updraft server owns the connection to the cluster", key)
		}
	}
	str := func(key string, dst *string) *val {
		v := d.take(key)
		if v != nil {
			*dst, _ = r.str(key, v)
			s.at[key] = v
		}
		return v
	}
	boolean := func(key string, dst *bool) {
		if v := d.take(key); v != nil {
			*dst, _ = r.boolean(key, v)
		}
	}
	kube := func(key string, dst any) {
		if v := d.take(key); v != nil {
			r.kube(key, v, dst)
		}
	}
	seconds := func(key string, dst **int64) {
		if v := d.take(key); v != nil {
			if n, ok := r.nonNegative(key, v); ok {
				n64 := int64(n)
				*dst = &n64
			}
		}
	}

	if v := str("image", &s.Image); v == nil || s.Image == "" {
		r.errf(nodeOr(v, d.own), "KubernetesPodOperator needs image")
	}
	if v := str("name", &s.Name); v != nil && s.Name != "" && !isTemplated(s.Name) {
		if len(validation.IsDNS1123Label(podNamePart(s.Name))) > 0 {
			r.errf(v, "name %q cannot become a Pod name: use lowercase letters, digits and '-'", s.Name)
		}
	}
	boolean("random_name_suffix", &s.RandomNameSuffix)
	for _, key := range []string{"cmds", "arguments"} {
		v := d.take(key)
		if v == nil {
			continue
		}
		s.at[key] = v
		list, _ := r.strList(key, v)
		if key == "cmds" {
			s.Cmds = list
		} else {
			s.Arguments = list
		}
	}
	if v := d.take("env_vars"); v != nil {
		s.at["env_vars"] = v
		s.EnvVars = d.envVars(v)
	}
	if v := d.take("secrets"); v != nil {
		if v.kind != kindSeq {
			r.errf(v, "secrets: expected a list of Secret mappings, got %s", v.describe())
		} else {
			for i, item := range v.items {
				if sec, ok := r.secret(fmt.Sprintf("secrets[%d]", i), item); ok {
					s.Secrets = append(s.Secrets, sec)
				}
			}
		}
	}
	kube("env_from", &s.EnvFrom)
	if v := d.take("configmaps"); v != nil {
		s.ConfigMaps, _ = r.strList("configmaps", v)
		for _, cm := range s.ConfigMaps {
			r.dnsSubdomain("configmaps", v, cm)
		}
	}
	kube("container_resources", &s.Resources)
	if v := str("namespace", &s.Namespace); v != nil && s.Namespace != "" && !isTemplated(s.Namespace) {
		if errs := validation.IsDNS1123Label(s.Namespace); len(errs) > 0 {
			r.errf(v, "namespace %q is not a valid Kubernetes namespace: %s", s.Namespace, errs[0])
		}
	}
	if v := d.take("labels"); v != nil {
		s.at["labels"] = v
		s.Labels, _ = r.strMap("labels", v)
		r.labels("labels", v, s.Labels, true)
	}
	if v := d.take("annotations"); v != nil {
		s.at["annotations"] = v
		s.Annotations, _ = r.strMap("annotations", v)
		r.labels("annotations", v, s.Annotations, false)
	}
	str("hostname", &s.Hostname)
	str("subdomain", &s.Subdomain)
	kube("ports", &s.Ports)
	kube("pod_runtime_info_envs", &s.RuntimeInfoEnvs)
	if v := d.take("volumes"); v != nil {
		r.kube("volumes", flattenVolumeConfigs(v), &s.Volumes)
	}
	kube("volume_mounts", &s.VolumeMounts)
	if v := d.take("image_pull_policy"); v != nil {
		p, _ := r.str("image_pull_policy", v)
		switch corev1.PullPolicy(p) {
		case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
			s.ImagePullPolicy = corev1.PullPolicy(p)
		default:
			r.errf(v, "image_pull_policy must be Always, IfNotPresent or Never, got %q", p)
		}
	}
	kube("container_security_context", &s.ContainerSecurityContext)
	if v := d.take("termination_message_policy"); v != nil {
		p, _ := r.str("termination_message_policy", v)
		if p != "File" && p != "FallbackToLogsOnError" {
			r.errf(v, "termination_message_policy must be File or FallbackToLogsOnError, got %q", p)
		}
		s.TerminationMessagePolicy = corev1.TerminationMessagePolicy(p)
	}
	str("base_container_name", &s.BaseContainerName)
	if v := d.take("container_logs"); v != nil {
		names, _ := r.strList("container_logs", v)
		base := firstNonEmptyStr(s.BaseContainerName, "base")
		if v.kind == kindScalar && (v.str == "true" || v.str == "True") {
			r.warnf(v, "container_logs: only the %s container's log is read (updraft streams one container per try)", base)
		} else if len(names) != 1 || names[0] != base {
			r.warnf(v, "container_logs: only the %s container's log is read, not %v", base, names)
		}
	}

	if v := d.take("node_selector"); v != nil {
		s.NodeSelector, _ = r.strMap("node_selector", v)
		r.labels("node_selector", v, s.NodeSelector, true)
	}
	kube("affinity", &s.Affinity)
	kube("tolerations", &s.Tolerations)
	if v := d.take("image_pull_secrets"); v != nil {
		if v.kind == kindScalar { // "a,b" as in Airflow
			for _, name := range strings.Split(v.str, ",") {
				if name = strings.TrimSpace(name); name != "" {
					s.ImagePullSecrets = append(s.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
				}
			}
		} else {
			r.kube("image_pull_secrets", v, &s.ImagePullSecrets)
		}
	}
	if v := str("service_account_name", &s.ServiceAccountName); v != nil && s.ServiceAccountName != "" {
		r.dnsSubdomain("service_account_name", v, s.ServiceAccountName)
	}
	kube("security_context", &s.SecurityContext)
	boolean("hostnetwork", &s.HostNetwork)
	if v := d.take("dnspolicy"); v != nil {
		p, _ := r.str("dnspolicy", v)
		s.DNSPolicy = corev1.DNSPolicy(p)
	}
	kube("dns_config", &s.DNSConfig)
	str("schedulername", &s.SchedulerName)
	str("priority_class_name", &s.PriorityClassName)
	kube("init_containers", &s.InitContainers)
	kube("host_aliases", &s.HostAliases)
	seconds("termination_grace_period", &s.TerminationGracePeriod)
	seconds("active_deadline_seconds", &s.ActiveDeadlineSeconds)
	kube("full_pod_spec", &s.FullPodSpec)
	for _, key := range []string{"pod_template_file", "pod_template_dict"} {
		if v := d.take(key); v != nil {
			r.errf(v, "%s is not supported: write the pod's settings as task fields, or as full_pod_spec", key)
		}
	}
	for _, key := range []string{"startup_timeout_seconds", "schedule_timeout_seconds"} {
		if v := d.take(key); v != nil {
			if n, ok := r.nonNegative(key, v); ok {
				if key == "startup_timeout_seconds" {
					s.StartupTimeout = time.Duration(n) * time.Second
				} else {
					s.ScheduleTimeout = time.Duration(n) * time.Second
				}
			}
		}
	}
	boolean("get_logs", &s.GetLogs)
	boolean("log_events_on_failure", &s.LogEventsOnFailure)
	boolean("log_pod_spec_on_failure", &s.LogPodSpecOnFailure)
	boolean("reattach_on_restart", &s.ReattachOnRestart)
	if v := d.take("is_delete_operator_pod"); v != nil {
		if del, ok := r.boolean("is_delete_operator_pod", v); ok && !del {
			s.OnFinishAction = KeepPod
		}
	}
	if v := d.take("on_finish_action"); v != nil {
		a, _ := r.str("on_finish_action", v)
		if a != DeletePod && a != DeleteSucceededPod && a != KeepPod {
			r.errf(v, "on_finish_action must be delete_pod, delete_succeeded_pod or keep_pod, got %q", a)
		} else {
			s.OnFinishAction = a
		}
	}
	if v := d.take("skip_on_exit_code"); v != nil {
		s.SkipOnExitCode = d.exitCodes("skip_on_exit_code", v)
	}
	boolean("do_xcom_push", &s.DoXComPush)
	return s
}

// envVars reads env_vars as a mapping {NAME: value} or a list of V1EnvVar.
func (d *taskDecoder) envVars(v *val) []corev1.EnvVar {
	var out []corev1.EnvVar
	switch v.kind {
	case kindMap:
		for i, k := range v.keys {
			value := v.vals[i]
			if value.kind != kindScalar && !value.isNull() {
				d.r.errf(value, "env_vars.%s: expected a string, got %s", k.str, value.describe())
				continue
			}
			d.r.envName("env_vars", k, k.str)
			out = append(out, corev1.EnvVar{Name: k.str, Value: value.str})
		}
	default:
		if d.r.kube("env_vars", v, &out) {
			for i, e := range out {
				d.r.envName("env_vars", v.items[i], e.Name)
			}
		}
	}
	return out
}

// flattenVolumeConfigs turns dag-factory 0.x volumes ({name, configs:
// {persistentVolumeClaim: ...}}) into plain V1Volume mappings.
func flattenVolumeConfigs(v *val) *val {
	if v.kind != kindSeq {
		return v
	}
	out := v.clone()
	for _, item := range out.items {
		cfg := item.get("configs")
		if cfg == nil || cfg.kind != kindMap {
			continue
		}
		item.del("configs")
		for i, k := range cfg.keys {
			item.set(k, cfg.vals[i])
		}
	}
	return out
}

// exitCodes reads skip_on_exit_code: one code or a list.
func (d *taskDecoder) exitCodes(key string, v *val) []int {
	items := []*val{v}
	if v.kind == kindSeq {
		items = v.items
	}
	var out []int
	for _, item := range items {
		if n, ok := d.r.integer(key, item); ok {
			if n < 0 || n > 255 {
				d.r.errf(item, "%s: exit codes are 0 to 255, got %d", key, n)
				continue
			}
			out = append(out, n)
		}
	}
	return out
}

var podNameRE = regexp.MustCompile(`[^a-z0-9-]+`)

// podNamePart sanitises a user pod name as KubernetesPodOperator does.
func podNamePart(name string) string {
	s := podNameRE.ReplaceAllString(strings.ToLower(name), "-")
	s = strings.Trim(s, "-")
	if len(s) > 53 {
		s = strings.Trim(s[:53], "-")
	}
	return s
}

func isTemplated(s string) bool { return strings.Contains(s, "{{") || strings.Contains(s, "{%") }

// labels validates label or annotation keys and (for labels) values.
func (r report) labels(key string, v *val, m map[string]string, values bool) {
	for _, k := range sortedKeys(m) {
		at := v
		if kn := v.keyNode(k); kn != nil {
			at = kn
		}
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			r.errf(at, "%s: invalid key %q: %s", key, k, errs[0])
		}
		if values && !isTemplated(m[k]) {
			if errs := validation.IsValidLabelValue(m[k]); len(errs) > 0 {
				r.errf(nodeOr(v.get(k), at), "%s.%s: invalid label value %q: %s", key, k, m[k], errs[0])
			}
		}
	}
}

func (r report) dnsSubdomain(key string, v *val, name string) bool {
	if isTemplated(name) {
		return true
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		r.errf(v, "%s: %q is not a valid Kubernetes name: %s", key, name, errs[0])
		return false
	}
	return true
}

func (r report) envName(key string, v *val, name string) bool {
	if errs := validation.IsEnvVarName(name); len(errs) > 0 {
		r.errf(v, "%s: %q is not a valid environment variable name: %s", key, name, errs[0])
		return false
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	out := mapKeys(m)
	sort.Strings(out)
	return out
}

// MarshalJSON writes the spec with its *_seconds fields in seconds, as
// their names say (and as Airflow shows them), not in nanoseconds.
func (s PodSpec) MarshalJSON() ([]byte, error) {
	type plain PodSpec
	return json.Marshal(struct {
		plain
		StartupTimeout  float64 `json:"startup_timeout_seconds"`
		ScheduleTimeout float64 `json:"schedule_timeout_seconds,omitempty"`
	}{plain(s), s.StartupTimeout.Seconds(), s.ScheduleTimeout.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON wrote. Specs recorded before the
// fields were in seconds held nanoseconds: values of 10^9 and more (over
// 31 years as seconds) are read as such.
func (s *PodSpec) UnmarshalJSON(data []byte) error {
	type plain PodSpec
	aux := struct {
		*plain
		StartupTimeout  *float64 `json:"startup_timeout_seconds"`
		ScheduleTimeout *float64 `json:"schedule_timeout_seconds"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	s.StartupTimeout, s.ScheduleTimeout = jsonSeconds(aux.StartupTimeout), jsonSeconds(aux.ScheduleTimeout)
	return nil
}

func jsonSeconds(v *float64) time.Duration {
	switch {
	case v == nil:
		return 0
	case *v >= 1e9:
		return time.Duration(*v)
	default:
		return time.Duration(*v * float64(time.Second))
	}
}

func firstNonEmptyStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
