// Package deploy_test checks the Helm chart: it renders with the default
// and with production values, and every rendered object passes a
// server-side dry run on a real Kubernetes API server (the test control
// plane of executor/kubernetes/cluster), so they are valid objects.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"updraft/executor/kubernetes/cluster"
)

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(cluster.BinDir(), "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("helm not found in %s: run executor/kubernetes/cluster/build-tools.sh (make test does)", cluster.BinDir())
	}
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	err := cmd.Run()
	if err != nil {
		return errOut.String(), err
	}
	return out.String(), nil
}

func objects(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(manifest, "\n---") {
		if strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if string(js) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatalf("rendered object: %v\n%s", err, doc)
		}
		out = append(out, u)
	}
	return out
}

func TestChart(t *testing.T) {
	ctx := context.Background()
	if out, err := helm(t, "lint", "helm/updraft", "-f", "helm/testdata/production-values.yaml"); err != nil {
		t.Fatalf("helm lint: %v\n%s", err, out)
	}
	k, err := cluster.Start(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer k.Stop()
	for _, ns := range []string{"updraft", "data-pods"} {
		if _, err := k.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	dyn := dynamic.NewForConfigOrDie(k.Config)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(k.Config)))
	for _, c := range []struct {
		name   string
		args   []string
		checks map[string]string // kind -> text the rendered object must hold
	}{
		{"default", nil, map[string]string{"Deployment": `"value":"sqlite:/data/updraft.db"`, "Role": `"pods/log"`, "Service": `"targetPort":"http"`}},
		{"production", []string{"-f", "helm/testdata/production-values.yaml"}, map[string]string{
			"Deployment": `"replicas":3`, "Ingress": `"host":"updraft.example.com"`, "RoleBinding": `"namespace":"data-pods"`}},
	} {
		manifest, err := helm(t, append([]string{"template", "up", "helm/updraft", "--namespace", "updraft"}, c.args...)...)
		if err != nil {
			t.Fatalf("%s: helm template: %v\n%s", c.name, err, manifest)
		}
		objs := objects(t, manifest)
		kinds := map[string]string{}
		for _, o := range objs {
			js, _ := json.Marshal(o.Object)
			kinds[o.GetKind()] += string(js)
			gvk := o.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				t.Fatalf("%s: %s: %v", c.name, gvk, err)
			}
			ns := o.GetNamespace()
			if ns == "" {
				ns = "updraft"
			}
			if _, err := dyn.Resource(m.Resource).Namespace(ns).Patch(ctx, o.GetName(), types.ApplyPatchType, js,
				metav1.PatchOptions{FieldManager: "updraft-chart-test", DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("%s: %s %s does not pass a server-side dry run: %v", c.name, o.GetKind(), o.GetName(), err)
			}
		}
		for kind, want := range c.checks {
			if !strings.Contains(kinds[kind], want) {
				t.Errorf("%s: %s lacks %s", c.name, kind, want)
			}
		}
		if c.name == "production" {
			dep := kinds["Deployment"]
			for _, want := range []string{`"path":"/health/ready"`, `"path":"/health/live"`, `"name":"updraft-db"`, `"UPDRAFT_MATTERMOST_WEBHOOK_URL_FILE"`,
				`"--git-url=https://git.example.com/data/dags.git"`, `"runAsNonRoot":true`, `"UPDRAFT_CONNECTIONS_DIR"`, `"claimName":"updraft-logs"`, `"fieldPath":"metadata.name"`} {
				if !strings.Contains(dep, want) {
					t.Errorf("production Deployment lacks %s", want)
				}
			}
		}
	}
	// Several replicas on SQLite would each have a database of their own.
	if out, err := helm(t, "template", "up", "helm/updraft", "--set", "replicaCount=2"); err == nil || !strings.Contains(out, "needs PostgreSQL") {
		t.Fatalf("replicas without PostgreSQL: %v %s", err, out)
	}
}
