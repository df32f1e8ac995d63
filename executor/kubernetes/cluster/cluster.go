// Package cluster starts a real Kubernetes control plane for tests and for
// "make dev-cluster": etcd, kube-apiserver and kube-scheduler built from
// source (build-tools.sh), and kwok simulating a node and the lifecycle of
// its pods. Pods behave as their annotations say (see stages.yaml): exit
// code, duration, OOMKilled.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

//go:embed stages.yaml
var stages []byte

// Pod annotations the kwok stages read.
const (
	AnnotationExitCode = "updraft.test/exit-code" // the base container's exit code (default 0)
	AnnotationForever  = "updraft.test/forever"   // "true": the pod runs until deleted
	AnnotationDuration = "updraft.test/duration"  // how long it runs, e.g. "2s" (default 1s)
	AnnotationReason   = "updraft.test/reason"    // termination reason, e.g. OOMKilled
	AnnotationSidecar  = "updraft.test/sidecar"   // "true": only the base container ends; sidecars keep running
	AnnotationXCom     = "updraft.test/xcom"      // what the container writes to /airflow/xcom/return.json
	NodeName           = "kwok-node"
	AdminToken         = "updraft-test-admin-token"
)

// LogLines are what every pod's base container "prints": kwok serves them
// as the container's log.
var LogLines = []string{"hello from the test node", "second line of output"}

// Cluster is a running control plane.
type Cluster struct {
	Dir        string
	Server     string // https://127.0.0.1:PORT
	Kubeconfig string // admin kubeconfig
	Config     *rest.Config
	Client     *kubernetes.Clientset

	procs   map[string]*exec.Cmd
	logs    map[string]*os.File
	bin     string
	apiArgs []string
}

// BinDir is where build-tools.sh puts the binaries: $UPDRAFT_TOOLS_BIN, or
// .tools/bin at the repository root.
func BinDir() string {
	if d := os.Getenv("UPDRAFT_TOOLS_BIN"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	for d := wd; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			if data, _ := os.ReadFile(filepath.Join(d, "go.mod")); strings.HasPrefix(string(data), "module updraft\n") {
				return filepath.Join(d, ".tools", "bin")
			}
		}
	}
	return filepath.Join(wd, ".tools", "bin")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a control plane in dir and waits until a node is ready.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	c := &Cluster{Dir: dir, procs: map[string]*exec.Cmd{}, logs: map[string]*os.File{}, bin: BinDir()}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(c.bin, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run executor/kubernetes/cluster/build-tools.sh (make test does)", b, c.bin)
		}
	}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()
	etcdPort, _ := freePort()
	peerPort, _ := freePort()
	apiPort, _ := freePort()
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	if err := c.spawn("etcd", "--data-dir", filepath.Join(dir, "etcd"), "--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL, "--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort), "--log-level", "warn"); err != nil {
		return nil, err
	}
	if err := writeKeys(dir); err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(AdminToken+",updraft-admin,1,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	c.Server = fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	c.apiArgs = []string{"--etcd-servers", etcdURL, "--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", filepath.Join(dir, "certs"), "--token-auth-file", tokens, "--authorization-mode", "Node,RBAC",
		"--service-account-issuer", "https://kubernetes.default.svc", "--service-account-key-file", filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file", filepath.Join(dir, "sa.key"), "--service-cluster-ip-range", "10.0.0.0/24",
		// No controller manager here: it would create default service
		// accounts and lift the not-ready taint of new nodes.
		"--disable-admission-plugins", "ServiceAccount,TaintNodesByCondition", "--allow-privileged=true",
		"--kubelet-preferred-address-types", "InternalIP"}
	if err := c.StartAPIServer(ctx); err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, []byte(Kubeconfig(c.Server, AdminToken)), 0o600); err != nil {
		return nil, err
	}
	c.Config = &rest.Config{Host: c.Server, BearerToken: AdminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 200, Burst: 400}
	var err error
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return nil, err
	}
	schedPort, _ := freePort()
	if err := c.spawn("kube-scheduler", "--kubeconfig", c.Kubeconfig, "--leader-elect=false", "--bind-address", "127.0.0.1",
		"--secure-port", strconv.Itoa(schedPort)); err != nil {
		return nil, err
	}
	// Every pod's log is this file (CRI log format), served by kwok.
	var logs strings.Builder
	for i, l := range LogLines {
		fmt.Fprintf(&logs, "2024-01-01T00:00:0%d.000000000Z stdout F %s\n", i, l)
	}
	logsPath := filepath.Join(dir, "pod.log")
	if err := os.WriteFile(logsPath, []byte(logs.String()), 0o644); err != nil {
		return nil, err
	}
	conf := append(append([]byte{}, stages...), []byte(fmt.Sprintf(`---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata:
  name: updraft-test-logs
spec:
  logs:
  - containers: ["base"]
    logsFile: %q
    follow: false
`, logsPath))...)
	if err := os.WriteFile(filepath.Join(dir, "stages.yaml"), conf, 0o644); err != nil {
		return nil, err
	}
	if err := c.startKwok(); err != nil {
		return nil, err
	}
	if err := c.createNode(ctx); err != nil {
		return nil, err
	}
	ok = true
	return c, nil
}

func (c *Cluster) startKwok() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	// kwok serves pod logs as a kubelet would, on the node's address.
	return c.spawn("kwok", "--kubeconfig", c.Kubeconfig, "--manage-all-nodes=false",
		"--node-port", strconv.Itoa(port), "--server-address", "127.0.0.1:"+strconv.Itoa(port),
		"--manage-nodes-with-label-selector=type=kwok", "--config", filepath.Join(c.Dir, "stages.yaml"),
		"--node-lease-duration-seconds=40")
}

// Kubeconfig returns a kubeconfig for server authenticating with token.
func Kubeconfig(server, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: updraft-test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: user
  user: {token: %q}
contexts:
- name: updraft-test
  context: {cluster: updraft-test, user: user}
current-context: updraft-test
`, server, token)
}

func (c *Cluster) spawn(name string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(c.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	c.procs[name], c.logs[name] = cmd, logf
	return nil
}

// StartAPIServer (re)starts kube-apiserver and waits until it is ready.
func (c *Cluster) StartAPIServer(ctx context.Context) error {
	if err := c.spawn("kube-apiserver", c.apiArgs...); err != nil {
		return err
	}
	return c.waitReady(ctx)
}

// StopAPIServer stops kube-apiserver, to test what happens while the API
// is unreachable.
func (c *Cluster) StopAPIServer() { c.stop("kube-apiserver") }

func (c *Cluster) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.Server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+AdminToken)
		if resp, err := client.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("kube-apiserver not ready after 90 s; see " + filepath.Join(c.Dir, "kube-apiserver.log"))
}

func (c *Cluster) createNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: NodeName, Labels: map[string]string{"type": "kwok", "kubernetes.io/os": "linux",
			"kubernetes.io/hostname": NodeName}, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("64Gi"),
				corev1.ResourcePods: resource.MustParse("1000")},
			Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("64Gi"),
				corev1.ResourcePods: resource.MustParse("1000")},
		},
	}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node: %w", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err == nil {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("the kwok node never became ready; see " + filepath.Join(c.Dir, "kwok.log"))
}

func (c *Cluster) stop(name string) {
	if cmd := c.procs[name]; cmd != nil && cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		delete(c.procs, name)
	}
	if f := c.logs[name]; f != nil {
		f.Close()
		delete(c.logs, name)
	}
}

// Stop stops every component.
func (c *Cluster) Stop() {
	for _, name := range []string{"kwok", "kube-scheduler", "kube-apiserver", "etcd"} {
		c.stop(name)
	}
}

// writeKeys writes the service-account signing key pair.
func writeKeys(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}
