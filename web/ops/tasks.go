package ops

import "updraft/dags"

// OperatorModule is the Python module Airflow has an operator in.
func OperatorModule(op string) string {
	switch op {
	case "BashOperator":
		return "airflow.operators.bash"
	case "EmptyOperator":
		return "airflow.operators.empty"
	case "KubernetesPodOperator":
		return "airflow.providers.cncf.kubernetes.operators.pod"
	}
	return "airflow.operators"
}

// TemplateFields are the fields of a task Airflow renders as templates.
func TemplateFields(t *dags.Task) []string {
	switch t.Operator {
	case "BashOperator":
		return []string{"bash_command", "env", "cwd"}
	case "KubernetesPodOperator":
		return []string{"image", "cmds", "arguments", "env_vars", "labels", "config_file", "pod_template_file", "namespace", "container_resources", "volumes", "volume_mounts"}
	}
	return []string{}
}

// NonNil is s, or an empty list for nil (an API list is [] rather than
// null).
func NonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
