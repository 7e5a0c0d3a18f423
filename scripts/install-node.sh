#!/usr/bin/env bash
# Installs what a real Kubernetes node and the image builds need, from package
# registries only:
#   Debian:  containerd + runc (the node's CRI runtime), the CNI plugins (bridge,
#            host-local, portmap, loopback), iptables + conntrack (kube-proxy),
#            podman + buildah (daemonless image builds), debootstrap (local base
#            images), gcc + libc6-dev (the static pause binary).
#   Go:      kubelet + kube-proxy (the control plane's own wrapper module), CoreDNS
#            and the distribution registry (scripts/install-go-tools.sh).
# Idempotent: a warm run checks a few files and takes seconds.
source "$(dirname "$0")/lib.sh"

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v podman >/dev/null || need+=(podman)
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v nsenter >/dev/null || need+=(util-linux)
command -v ip >/dev/null || need+=(iproute2)
command -v gcc >/dev/null || need+=(gcc)
[[ -f /usr/lib/x86_64-linux-gnu/libc.a || -f /usr/lib/aarch64-linux-gnu/libc.a ]] || need+=(libc6-dev)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need+=(ca-certificates)
if [[ ${#need[@]} -gt 0 ]]; then
  apt_install "${need[@]}"
  # The containerd package enables a system-wide service on some machines; the dev
  # stack starts its own containerd with its own root, state and socket.
  service containerd stop >/dev/null 2>&1 || true
  log "installed ${need[*]}"
else
  log "node packages already installed"
fi

bash "$ROOT/scripts/install-go-tools.sh" kubenode coredns registry
