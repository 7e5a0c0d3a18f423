#!/usr/bin/env bash
# Installs the system packages (PostgreSQL, Redis, a JDK, Maven) from Debian when missing.
# They are started per test session / demo by qarun_devstack, not as system services.
source "$(dirname "$0")/lib.sh"

command -v go >/dev/null || die "Go 1.26+ is required to build the control plane: install it from your distribution or the Go downloads, then re-run"

need=()
command -v java >/dev/null || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null || need+=(maven)
command -v openssl >/dev/null || need+=(openssl)
command -v runuser >/dev/null || need+=(util-linux)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
[[ ${#need[@]} -eq 0 ]] && { log "system packages already installed"; exit 0; }

apt_install "${need[@]}"
# The packages start system-wide services on some machines; the project runs its own.
for svc in postgresql redis-server; do
  service "$svc" stop >/dev/null 2>&1 || true
done
log "installed ${need[*]}"
