#!/usr/bin/env bash
# Builds the Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl), etcd, kwok and helm from their Go modules into
# .cache/bin/<tool>-<version>/, and on request the real node's Go parts: kubelet +
# kube-proxy ("kubenode", the same wrapper module), CoreDNS and the distribution
# registry. Nothing is downloaded but Go modules.
source "$(dirname "$0")/lib.sh"

command -v go >/dev/null || die "go is not installed: apt-get install golang-go (Go 1.26+)"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false -trimpath"
export CGO_ENABLED=0

# A wrapper module that requires k8s.io/kubernetes and replaces every staging repo
# (k8s.io/api, client-go, ...) with its published v0.Y.Z twin; kubernetes' own
# replace block points at ./staging, which a dependency cannot use.
kube_wrapper() { # work-dir: writes the wrapper go.mod there
  local work=$1 staging="v0.${KUBERNETES_VERSION#1.}"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  {
    echo "module qarun.local/kubebuild"
    echo "go 1.26"
    echo "require k8s.io/kubernetes v$KUBERNETES_VERSION"
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$gomod" | grep -o 'k8s.io/[a-z0-9-]* =>' \
      | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod
}

kube_build() { # out-dir cmd...: builds k8s.io/kubernetes/cmd/<cmd> with version stamps
  local out=$1; shift
  local pkg=k8s.io/component-base/version cpkg=k8s.io/client-go/pkg/version
  local minor=${KUBERNETES_VERSION#1.}; minor=${minor%%.*}
  local ldflags="-s -w" cmds=()
  for p in $pkg $cpkg; do
    ldflags+=" -X $p.gitVersion=v$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "$@"; do cmds+=("k8s.io/kubernetes/cmd/$c"); done
  GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "$ldflags" -o "$out/" "${cmds[@]}"
}

build_kubernetes() {
  kube_wrapper "$CACHE/src/kubernetes-$KUBERNETES_VERSION"
  log "building kubernetes v$KUBERNETES_VERSION (several minutes on 2 cores)"
  kube_build "$1" kube-apiserver kube-controller-manager kube-scheduler kubectl
}

# The node's binaries are their own cache entry: adding them re-builds nothing of the
# control plane (and a warm Go build cache makes this step about a minute).
build_kubenode() {
  kube_wrapper "$CACHE/src/kubenode-$KUBERNETES_VERSION"
  log "building kubelet + kube-proxy v$KUBERNETES_VERSION"
  kube_build "$1" kubelet kube-proxy
  # The pause container's source ships in the same module: the node's sandbox image
  # (scripts/build-images.sh) is built from it, as upstream builds it (static C).
  local dir
  dir=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  gcc -Os -Wall -Werror -static -DVERSION="v$KUBERNETES_VERSION" \
    -o "$1/pause" "$dir/build/pause/linux/pause.c"
}

build_coredns() {
  log "building coredns v$COREDNS_VERSION"
  GOBIN="$1" go install -ldflags "-s -w" "github.com/coredns/coredns@v$COREDNS_VERSION"
}

build_registry() {
  log "building the distribution registry v$REGISTRY_VERSION"
  GOBIN="$1" go install -ldflags "-s -w" \
    "github.com/distribution/distribution/v3/cmd/registry@v$REGISTRY_VERSION"
}

# etcd's server module also replaces its sibling modules with ../ paths.
build_etcd() {
  local out=$1 work="$CACHE/src/etcd-$ETCD_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  printf 'module qarun.local/etcdbuild\ngo 1.26\nrequire go.etcd.io/etcd/server/v3 v%s\n' \
    "$ETCD_VERSION" > go.mod
  log "building etcd v$ETCD_VERSION"
  GOFLAGS="$GOFLAGS -mod=mod" go build -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
}

# kwok only acts through Stages: take the upstream "fast" node/pod lifecycle and the
# node heartbeat (without it the node-lifecycle controller taints the node NotReady)
# from the same module download.
build_kwok() {
  log "building kwok v$KWOK_VERSION"
  GOBIN="$1" go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  local src
  src=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/kustomize/stage
  local stage
  for stage in node/fast/node-initialize node/heartbeat/node-heartbeat \
      pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"
    cat "$src/$stage.yaml"
  done > "$1/stages.yaml"
}

build_helm() {
  log "building helm v$HELM_VERSION"
  local v=helm.sh/helm/v3/internal/version
  GOBIN="$1" go install -ldflags "-s -w -X $v.version=v$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
}

install_tool() { # name version builder
  local dir="$CACHE/bin/$1-$2"
  once "$dir/.done" "$3" "$dir"
  ln -sfn "$dir" "$CACHE/bin/$1"
}

mkdir -p "$CACHE/bin"
want=${*:-kubernetes etcd kwok helm}
for tool in $want; do
  case $tool in
    kubernetes) install_tool kubernetes "$KUBERNETES_VERSION" build_kubernetes ;;
    etcd) install_tool etcd "$ETCD_VERSION" build_etcd ;;
    kwok) install_tool kwok "$KWOK_VERSION" build_kwok ;;
    helm) install_tool helm "$HELM_VERSION" build_helm ;;
    kubenode) install_tool kubenode "$KUBERNETES_VERSION" build_kubenode ;;
    coredns) install_tool coredns "$COREDNS_VERSION" build_coredns ;;
    registry) install_tool registry "$REGISTRY_VERSION" build_registry ;;
    *) die "unknown tool $tool (kubernetes etcd kwok helm kubenode coredns registry)" ;;
  esac
done
log "go tools ready under $CACHE/bin"
