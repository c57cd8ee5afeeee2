#!/usr/bin/env bash
# Installs what canarybot's tests need on a bare Debian machine. Safe to run
# again: it installs only what is missing.
set -euo pipefail

need=()
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v npm >/dev/null 2>&1 || need+=(npm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v pgbouncer >/dev/null 2>&1 || need+=(pgbouncer)
# A daemonless container engine and a static shell for deploy/image_test.go,
# which builds the Dockerfile and runs the image.
command -v buildah >/dev/null 2>&1 || need+=(buildah)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)

if ((${#need[@]})); then
  sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install: ${need[*]}" >&2; exit 1; }
    sudo=sudo
  fi
  echo "deps: installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

go mod download

# GitHub's OpenAPI description, against which the GitHub fake checks every
# request and response (npm package @octokit/openapi, cached).
"$(dirname "$0")/openapi.sh" >/dev/null

# A real kube-apiserver for the Kubernetes adapters' tests, built once from
# the Go module proxy and cached under ~/.cache (about 11 minutes cold).
"$(dirname "$0")/kube-apiserver.sh" >/dev/null
