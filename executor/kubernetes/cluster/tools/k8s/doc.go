// Package k8s pins the Kubernetes release whose kube-apiserver and
// kube-scheduler the test control plane is built from (see
// ../build-tools.sh). k8s.io/kubernetes replaces its staging modules with
// local folders, so this module replaces each with its published v0.34.4.
package k8s
