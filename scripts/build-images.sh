#!/usr/bin/env bash
# Builds every image the stack runs, here, with podman (runc, no daemon), and pushes
# them to the dev stack's registry store (.images/registry, served to the real node by
# qarun_devstack.node as localhost:5001):
#   qarun/operator, qarun/workers, qarun/flink   the project's Dockerfiles (chart tag)
#   qarun/flink-base                             flink/Dockerfile's base stage
#   qarun/kafka, qarun/postgres, qarun/redis     images/*/Containerfile (Debian + Maven)
#   qarun/coredns, qarun/pause                   the node's DNS and sandbox (Go/C built)
# Bases are local: `debootstrap --variant=minbase bookworm` imported into podman, and
# passed to the Dockerfiles as build args (their public defaults stay for kind users).
# Cached by content: an image whose staged build context hashes as before and whose
# tag is in the registry store is not rebuilt (a warm run takes seconds).
# Usage: build-images.sh [name...]   (default: all)
source "$(dirname "$0")/lib.sh"

TAG=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$ROOT/charts/qarun-stack/Chart.yaml")
[[ -n $TAG ]] || die "no appVersion in charts/qarun-stack/Chart.yaml"
# The images are this checkout's (built from its sources), so their store, keys and
# contexts are too ($QARUN_IMAGE_DIR, default .images/): checkouts sharing one
# QARUN_CACHE_DIR share only podman's layer cache, never a tag's meaning.
IMAGES=${QARUN_IMAGE_DIR:-$ROOT/.images}
STORE="$IMAGES/registry"
HOST_CA=/etc/ssl/certs/ca-certificates.crt
mkdir -p "$IMAGES/stamps" "$IMAGES/contexts" "$STORE" "$CACHE/images/stamps"

# podman's own storage and settings, not the machine's: runc (crun refuses a hybrid
# cgroup v1/v2 host), rlimits under the host's hard nofile limit, cgroupfs, no
# registry to search for short names (none is reachable; bases are local).
PODMAN="$CACHE/podman"
mkdir -p "$PODMAN/storage"
cat > "$PODMAN/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat > "$PODMAN/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$PODMAN/storage"
runroot = "/run/qarun-podman"
CONF
echo 'unqualified-search-registries = []' > "$PODMAN/registries.conf"
export CONTAINERS_CONF="$PODMAN/containers.conf" \
  CONTAINERS_STORAGE_CONF="$PODMAN/storage.conf" \
  CONTAINERS_REGISTRIES_CONF="$PODMAN/registries.conf"

have_image() { podman image exists "$1"; }

# --- local bases ---------------------------------------------------------------------

# The mirror the machine's apt uses (read from its sources, never written down here).
debian_mirror() {
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | grep -oE '^(URIs:|deb) *(\[[^]]*\] *)?https?://[^ ]+' | grep -v security \
    | grep -oE 'https?://[^ ]+' | head -1 || true)
  [[ -n $uri ]] || die "no Debian mirror in /etc/apt/sources*: debootstrap needs one"
  echo "$uri"
}

BOOKWORM=qarun-local/bookworm:minbase
build_bookworm() {
  local root="$CACHE/images/rootfs-bookworm"
  rm -rf "$root"
  log "debootstrap --variant=minbase bookworm (about a minute)"
  debootstrap --variant=minbase bookworm "$root" "$(debian_mirror)" >"$CACHE/images/debootstrap.log" 2>&1 \
    || die "debootstrap failed: see $CACHE/images/debootstrap.log"
  rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
  tar -C "$root" -c . | podman import --change 'CMD ["/bin/bash"]' - "$BOOKWORM" >/dev/null
  rm -rf "$root"
}
bookworm_base() {
  if [[ ! -f "$CACHE/images/stamps/bookworm.done" ]] || ! have_image "$BOOKWORM"; then
    rm -f "$CACHE/images/stamps/bookworm.done"
    once "$CACHE/images/stamps/bookworm.done" build_bookworm
  fi
}

# --- build, keyed by content ---------------------------------------------------------

# Copies repository paths (tracked or new, never ignored ones) into a build context.
stage_repo() { # ctx path...
  local ctx=$1; shift
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard -- "$@") \
    | (cd "$ROOT" && while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done) \
    | (cd "$ROOT" && tar --null -T - -c) | tar -C "$ctx" -x
}

# The key of a staged context: its files (names, modes, bytes) and the build inputs.
context_key() { # ctx extra...
  local ctx=$1; shift
  { tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$ctx" -c . | sha256sum
    printf '%s\n' "$@"; } | sha256sum | cut -c1-32
}

tag_link() { # name tag: the registry store's pointer to the pushed manifest
  echo "$STORE/docker/registry/v2/repositories/qarun/$1/_manifests/tags/$2/current/link"
}

REGISTRY_PID=""
REGISTRY_ADDR=""
registry_up() {
  [[ -n $REGISTRY_PID ]] && return 0
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  REGISTRY_ADDR="127.0.0.1:$port"
  cat > "$IMAGES/registry.yaml" <<CONF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: "$STORE"}}
http: {addr: "$REGISTRY_ADDR"}
CONF
  OTEL_TRACES_EXPORTER=none OTEL_SDK_DISABLED=true \
    "$CACHE/bin/registry/registry" serve "$IMAGES/registry.yaml" >"$IMAGES/registry.log" 2>&1 &
  REGISTRY_PID=$!
  for _ in $(seq 100); do
    python3 -c "import urllib.request as u; u.urlopen('http://$REGISTRY_ADDR/v2/', timeout=1)" \
      2>/dev/null && return 0
    sleep 0.1
  done
  die "the registry did not start: $(tail -5 "$IMAGES/registry.log")"
}
registry_down() {
  [[ -z $REGISTRY_PID ]] && return 0
  kill "$REGISTRY_PID"; wait "$REGISTRY_PID" || true
  REGISTRY_PID=""
  # A push that moved a tag leaves the old manifest's blobs behind: collected while
  # nothing serves the store, so it holds each image about once.
  "$CACHE/bin/registry/registry" garbage-collect --delete-untagged "$IMAGES/registry.yaml" \
    >>"$IMAGES/registry.log" 2>&1 || log "registry garbage-collect failed (see $IMAGES/registry.log)"
}
trap registry_down EXIT

# Free space where the builds write, in MiB.
free_mib() { df -Pm "$1" | awk 'NR == 2 {print $4}'; }
report_space() {
  log "free space: $(free_mib "$PODMAN") MiB under $PODMAN, $(free_mib "$STORE") MiB under $STORE"
}

# build name tag ctx containerfile [podman build args...]: builds localhost/qarun/<name>
# unless the same key was built and pushed before; pushes to the store.
build() {
  local name=$1 tag=$2 ctx=$3 file=$4; shift 4
  local key ref="localhost/qarun/$name:$tag" stamp="$IMAGES/stamps/$name-$tag"
  key=$(context_key "$ctx" "$file" "$@")
  local link; link=$(tag_link "$name" "$tag")
  if [[ -f $stamp.key && $(cat "$stamp.key") == "$key" && -f $link \
        && $(cat "$link") == "$(cat "$stamp.digest" 2>/dev/null)" ]]; then
    log "qarun/$name:$tag is up to date"
    return 0
  fi
  local started=$SECONDS
  log "building qarun/$name:$tag"
  podman build --quiet --network=host --layers -f "$ctx/$file" -t "$ref" "$@" "$ctx" \
    >"$IMAGES/build-$name.log" 2>&1 \
    || die "building $name failed (log: $IMAGES/build-$name.log; $(free_mib "$PODMAN") MiB free):
$(tail -30 "$IMAGES/build-$name.log")"
  registry_up
  podman push --quiet --tls-verify=false --digestfile "$stamp.digest" "$ref" \
    "docker://$REGISTRY_ADDR/qarun/$name:$tag"
  echo "$key" > "$stamp.key"
  prune_stale
  log "qarun/$name:$tag built and pushed in $((SECONDS - started)) s"
}

# A local base (not pushed): rebuilt when its key changes or podman lost it.
base() { # ref ctx containerfile [args...]
  local ref=$1 ctx=$2 file=$3; shift 3
  local key stamp="$CACHE/images/stamps/base-${ref//[^a-z0-9]/_}"
  key=$(context_key "$ctx" "$file" "$@")
  if [[ -f $stamp && $(cat "$stamp") == "$key" ]] && have_image "$ref"; then return 0; fi
  log "building the local base $ref"
  podman build --quiet --network=host --layers -f "$ctx/$file" -t "$ref" "$@" "$ctx" \
    >"$IMAGES/build-base.log" 2>&1 || die "building $ref failed: $(tail -30 "$IMAGES/build-base.log")"
  echo "$key" > "$stamp"
}

# A build that moved a tag leaves the previous image untagged: removed at once, with
# the layers only it used (the layer cache of the current images stays), so rebuilding
# the same images again and again does not fill the disk.
prune_stale() {
  local before after
  after=$(podman images --quiet --filter dangling=true | wc -l)
  while ((after > 0)); do  # removing one frees its parent: again until none is left
    before=$after
    podman image prune --force >/dev/null || return 0
    after=$(podman images --quiet --filter dangling=true | wc -l)
    ((after < before)) || return 0
  done
}

fresh_context() { local ctx="$IMAGES/contexts/$1"; rm -rf "$ctx"; mkdir -p "$ctx"; echo "$ctx"; }

BOOKWORM_KEY() { podman image inspect --format '{{.Id}}' "$BOOKWORM"; }
PYTHON_BASE=localhost/qarun-local/python:3.11
python_base() {
  bookworm_base
  local ctx; ctx=$(fresh_context python-base)
  cp "$ROOT/images/python-base/Containerfile" "$ctx/"
  base "$PYTHON_BASE" "$ctx" Containerfile --build-arg "BASE_IMAGE=$BOOKWORM" \
    --build-arg "BASE_ID=$(BOOKWORM_KEY)"
}

# The project's images: their Dockerfiles, the workspace's pyproject files and lock,
# core/ and the package itself; the host's CA bundle is mounted for pip and uv.
project_image() { # name
  local name=$1 ctx
  [[ -f $ROOT/uv.lock ]] || die "no uv.lock: run 'make setup' first (it locks the workspace)"
  python_base
  ctx=$(fresh_context "$name")
  stage_repo "$ctx" pyproject.toml uv.lock core "$name" \
    workers/pyproject.toml flink/pyproject.toml operator/pyproject.toml \
    devstack/pyproject.toml cli/pyproject.toml simulator/pyproject.toml
  # The workers image also carries the LLM simulator (the charts' qarun-llm-sim).
  if [[ $name == workers ]]; then stage_repo "$ctx" simulator; fi
  local args=(--build-arg "PYTHON_IMAGE=$PYTHON_BASE" --build-arg "UV_VERSION=$UV_VERSION"
    --volume "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro")
  if [[ $name == flink ]]; then
    local jar="flink-sql-connector-kafka-$FLINK_KAFKA_CONNECTOR_VERSION.jar"
    mkdir -p "$ctx/.cache/flink-connector-kafka"
    cp -L "$CACHE/flink-connector-kafka/$jar" "$ctx/.cache/flink-connector-kafka/" \
      || die "no $jar: run 'make setup' (scripts/install-jars.sh)"
    args+=(--build-arg "FLINK_VERSION=$FLINK_VERSION"
      --build-arg "FLINK_KAFKA_CONNECTOR_VERSION=$FLINK_KAFKA_CONNECTOR_VERSION")
    build flink-base "$FLINK_VERSION" "$ctx" flink/Dockerfile --target flink-base "${args[@]}" \
      --build-arg "BASE_ID=$(podman image inspect --format '{{.Id}}' "$PYTHON_BASE")"
  fi
  build "$name" "$TAG" "$ctx" "$name/Dockerfile" "${args[@]}" \
    --build-arg "BASE_ID=$(podman image inspect --format '{{.Id}}' "$PYTHON_BASE")"
}

# images/<name>/: a Containerfile and its files, on the bookworm base.
infra_image() { # name tag [file-to-stage...]
  local name=$1 tag=$2 ctx; shift 2
  bookworm_base
  ctx=$(fresh_context "$name")
  cp -r "$ROOT/images/$name/." "$ctx/"
  local f
  for f in "$@"; do cp -rL "$f" "$ctx/"; done
  build "$name" "$tag" "$ctx" Containerfile --build-arg "BASE_IMAGE=$BOOKWORM" \
    --build-arg "BASE_ID=$(BOOKWORM_KEY)"
}

# The node's own images: one static binary each, FROM scratch.
binary_image() { # name tag binary
  local ctx; ctx=$(fresh_context "$1")
  cp "$ROOT/images/$1/Containerfile" "$ctx/"
  cp -L "$3" "$ctx/" || die "no $3: run 'make setup' (scripts/install-node.sh)"
  build "$1" "$2" "$ctx" Containerfile
}

exec 9>"$CACHE/images/.lock"
flock 9  # one build at a time per podman storage: a tag there moves with every build
started=$SECONDS
report_space
prune_stale
all=(pause coredns redis postgres kafka workers operator flink)
for name in "${@:-${all[@]}}"; do
  case $name in
    pause) binary_image pause "$KUBERNETES_VERSION" "$CACHE/bin/kubenode/pause" ;;
    coredns) binary_image coredns "$COREDNS_VERSION" "$CACHE/bin/coredns/coredns" ;;
    redis) infra_image redis "$REDIS_IMAGE_VERSION" ;;
    postgres) infra_image postgres "$POSTGRES_IMAGE_VERSION" ;;
    kafka) infra_image kafka "$KAFKA_VERSION" "$CACHE/kafka/libs" ;;
    workers | operator | flink) project_image "$name" ;;
    bookworm) bookworm_base ;;
    python-base) python_base ;;
    *) die "unknown image $name (${all[*]})" ;;
  esac
done
registry_down
if [[ ${CI:-} == true ]]; then
  # A CI clone builds once and is thrown away: its layer cache is never used again,
  # and the tests after this need the disk for the node's own copy of the images.
  podman rmi --all --force >/dev/null 2>&1 || true
  prune_stale
fi
report_space
log "images ready in $((SECONDS - started)) s (store: $STORE, pulled as localhost:5001/qarun/<name>:<tag>)"
