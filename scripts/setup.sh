#!/usr/bin/env bash
# Installs everything QARun's tests and demo run on, from package registries only:
# Debian packages, the Python workspace (uv + PyPI), Kafka and the Flink connector
# (Maven Central), the Kubernetes control plane, etcd, kwok and helm (Go modules), and
# the real node's parts (containerd, runc, CNI, podman from Debian; kubelet, kube-proxy,
# CoreDNS and a registry from Go modules).
# Idempotent: a warm run finds everything in .cache/ and takes seconds.
# --no-kube leaves out the Kubernetes tools and the node (the slow part of a cold set-up):
# a local run (`make demo`) needs none of them.
source "$(dirname "$0")/lib.sh"

step() {
  local started=$SECONDS
  bash "$ROOT/scripts/$1" "${@:2}"
  log "$1 took $((SECONDS - started)) s"
}

started=$SECONDS
step install-debian.sh
step install-python.sh
step install-jars.sh
if [[ "${1:-}" != "--no-kube" ]]; then
  step install-go-tools.sh
  step install-node.sh
fi
log "setup complete in $((SECONDS - started)) s (cache: $CACHE)"
