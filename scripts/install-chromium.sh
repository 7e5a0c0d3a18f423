#!/usr/bin/env bash
# Installs Debian's Chromium for the headless dashboard test (tests/cli) when missing.
# `make test` runs it; the demo does not need a browser.
source "$(dirname "$0")/lib.sh"

if command -v chromium >/dev/null; then
  log "chromium already installed ($(chromium --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

apt_install chromium fonts-dejavu-core
log "installed $(chromium --version 2>/dev/null || echo chromium)"
