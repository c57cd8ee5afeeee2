#!/usr/bin/env bash
# Builds a real kube-apiserver from the Go module proxy and caches it under
# ~/.cache, keyed by version; tests run it against Debian's etcd. The first
# build takes about 11 minutes on 2 cores; later runs reuse the binary.
# Prints the binary's path.
set -euo pipefail

version="${KUBE_VERSION:-v1.37.2}"
staging="v0.${version#v1.}"
cache="${CANARYBOT_CACHE:-$HOME/.cache/canarybot}"
bin="$cache/kube-apiserver-$version"

if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# k8s.io/kubernetes cannot be installed directly (its go.mod has replace
# lines), so a wrapper module requires it and pins every staging module.
modules=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
  cloud-provider cluster-bootstrap code-generator component-base component-helpers
  controller-manager cri-api cri-client cri-streaming csi-translation-lib
  dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
  kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver streaming)
{
  echo "module canarybot.local/kubeapiserver"
  echo
  echo "go $(go env GOVERSION | sed 's/^go//')"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  for m in "${modules[@]}"; do echo "replace k8s.io/$m => k8s.io/$m $staging"; done
} >"$work/go.mod"
cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO

echo "kube-apiserver: building $version into $bin (about 11 minutes the first time)" >&2
cd "$work"
GOFLAGS=-mod=mod go mod tidy >&2
major="${version#v}"; major="${major%%.*}"
minor="${version#v*.}"; minor="${minor%%.*}"
GOFLAGS=-mod=mod go build -trimpath -o "$bin.tmp" \
  -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor" \
  k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$bin.tmp" "$bin"
echo "$bin"
