#!/usr/bin/env bash
# Builds the test control plane once into $1 (default: .tools/bin at the
# repository root): kube-apiserver and kube-scheduler from k8s.io/kubernetes,
# etcd 3.6, kwok, and helm (for the chart's test). Everything comes from the Go module proxy; a binary
# already there is not rebuilt. The first build takes several minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(cd "$here/../../.." && pwd)/.tools/bin}
mkdir -p "$out"
export GOFLAGS=-mod=mod
if [ ! -x "$out/kube-apiserver" ] || [ ! -x "$out/kube-scheduler" ]; then
  (cd "$here/tools/k8s" && go build -trimpath -o "$out/" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-scheduler)
fi
if [ ! -x "$out/etcd" ]; then
  (cd "$here/tools/etcd" && go build -trimpath -o "$out/etcd" .)
fi
if [ ! -x "$out/kwok" ]; then
  GOBIN="$out" go install sigs.k8s.io/kwok/cmd/kwok@v0.8.0
fi
# helm renders the chart in deploy/ for its test.
if [ ! -x "$out/helm" ]; then
  GOBIN="$out" go install helm.sh/helm/v3/cmd/helm@v3.19.5
fi
echo "control plane binaries in $out"
