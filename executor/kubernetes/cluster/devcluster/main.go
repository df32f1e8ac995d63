// Command devcluster starts the local Kubernetes control plane of the tests
// (kube-apiserver, kube-scheduler, etcd and a kwok node) for trying
// "updraft server --executor kubernetes" without a real cluster. It prints
// the kubeconfig to use and runs until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"updraft/executor/kubernetes/cluster"
)

func main() {
	dir := flag.String("dir", ".run/dev-cluster", "folder for the control plane's data, logs and kubeconfig")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	abs, err := filepath.Abs(*dir)
	if err == nil {
		os.RemoveAll(abs)
		err = os.MkdirAll(abs, 0o755)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
	c, err := cluster.Start(ctx, abs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
	defer c.Stop()
	fmt.Printf(`Local control plane running (Ctrl-C stops it): API server %s
Pods run on the simulated node %q and succeed after a second unless their
annotations say otherwise (see executor/kubernetes/cluster/stages.yaml).

In another terminal:
  ./bin/updraft server --dags dags/examples --executor kubernetes --kubeconfig %s --db sqlite:.run/kube.db --logs .run/kube-logs
`, c.Server, cluster.NodeName, c.Kubeconfig)
	<-ctx.Done()
}
