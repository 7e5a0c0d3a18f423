# Shared by the install scripts: pinned versions, cache locations, logging.
# Sourced, never run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../versions.env
source "$ROOT/versions.env"

# Everything the scripts build or download lives here, keyed by version, so a warm
# run re-uses it and a version bump rebuilds only what changed.
CACHE=${QARUN_CACHE_DIR:-$ROOT/.cache}
mkdir -p "$CACHE"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Runs "$@" only when the marker file $1 is absent, then creates it: each install step
# is all-or-nothing, so an interrupted build is redone rather than half-used.
once() {
  local marker=$1; shift
  if [[ -f $marker ]]; then return 0; fi
  "$@"
  mkdir -p "$(dirname "$marker")"
  touch "$marker"
}

# apt-get install the Debian packages "$@" (as root, or through sudo).
apt_install() {
  local sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root to install $*: run 'apt-get install -y $*' as root"
    sudo=sudo
  fi
  log "installing $* from Debian"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
