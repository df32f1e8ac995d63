package kubernetes

import (
	"context"
	"os"
	"strings"
	"testing"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/executortest"
)

// The Role in deploy/rbac is enough: the conformance suite passes as a
// ServiceAccount bound to exactly that Role, which can do nothing outside
// its namespace.
func TestConformanceWithMinimalRole(t *testing.T) {
	ctx := context.Background()
	const ns = "rbac-test"
	admin := kube.Client
	if _, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("../../deploy/rbac/scheduler-role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ServiceAccount":
			var sa corev1.ServiceAccount
			mustYAML(t, doc, &sa)
			_, err = admin.CoreV1().ServiceAccounts(ns).Create(ctx, &sa, metav1.CreateOptions{})
		case "Role":
			var r rbacv1.Role
			mustYAML(t, doc, &r)
			_, err = admin.RbacV1().Roles(ns).Create(ctx, &r, metav1.CreateOptions{})
		case "RoleBinding":
			var rb rbacv1.RoleBinding
			mustYAML(t, doc, &rb)
			for i := range rb.Subjects {
				rb.Subjects[i].Namespace = ns
			}
			_, err = admin.RbacV1().RoleBindings(ns).Create(ctx, &rb, metav1.CreateOptions{})
		default:
			t.Fatalf("unexpected kind %q in the RBAC manifest", meta.Kind)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	tok, err := admin.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "updraft", &authv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	restricted := &rest.Config{Host: kube.Server, BearerToken: tok.Status.Token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	client, err := k8s.NewForConfig(restricted)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the Role reaches outside its namespace: %v", err)
	}
	executortest.Run(t, executortest.Harness{
		New: func(t *testing.T, slots int) (executor.Executor, func()) {
			return runExecutor(t, Options{Client: podClient(t, restricted), Defaults: Defaults{Namespace: ns, Image: "busybox"}, Slots: slots, Grace: zero()})
		},
		Spec: func(b executortest.Behavior) dags.OperatorSpec { return podSpec(b) },
	})
}

func mustYAML(t *testing.T, doc string, out any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(doc), out); err != nil {
		t.Fatal(err)
	}
}
