#!/usr/bin/env bash
# Installs uv (from PyPI, into the cache) and syncs the workspace virtualenv .venv.
# Versions come from pyproject.toml's constraint-dependencies: the same on every machine.
source "$(dirname "$0")/lib.sh"

UV_HOME="$CACHE/tools/uv-$UV_VERSION"
install_uv() {
  python3 -m venv "$UV_HOME"
  "$UV_HOME/bin/pip" install --quiet --disable-pip-version-check "uv==$UV_VERSION"
}
once "$UV_HOME/.done" install_uv
ln -sfn "$UV_HOME/bin/uv" "$CACHE/tools/uv"

# Python builds come from the machine (pyenv/Debian), never downloaded by uv.
export UV_PYTHON_DOWNLOADS=never UV_PYTHON="$PYTHON_VERSION"
cd "$ROOT"
"$UV_HOME/bin/uv" sync --all-packages --quiet
log "python environment ready: $ROOT/.venv"
