#!/usr/bin/env bash
# Installs Debian's Chromium for the headless dashboard test (tests/cli) when missing.
# `make test` runs it; the demo does not need a browser.
source "$(dirname "$0")/lib.sh"

if command -v chromium >/dev/null; then
  log "chromium already installed ($(chromium --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || die "need root to install chromium: run 'apt-get install -y chromium' as root"
  sudo=sudo
fi
log "installing chromium from Debian"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
log "installed $(chromium --version 2>/dev/null || echo chromium)"
