#!/usr/bin/env bash
# Create (once) the project's virtual environment outside the repository and install abvoc
# into it, editable, with the extras named in $1 (default: test). Idempotent.
set -euo pipefail
source "$(dirname "$0")/env.sh"
extras="${1:-test}"
if [ ! -x "$ABVOC_VENV/bin/python" ]; then
  echo "[install-python] creating virtual environment at $ABVOC_VENV"
  python3 -m venv "$ABVOC_VENV"
  "$ABVOC_VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
fi
stamp="$ABVOC_VENV/.abvoc-installed"
want="$(cat "$ABVOC_REPO/setup.cfg" "$ABVOC_REPO/pyproject.toml" | sha256sum | cut -c1-16)-$extras-$ABVOC_REPO"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[install-python] installing abvoc[$extras] (first run downloads torch, a few minutes)"
  "$ABVOC_VENV/bin/python" -m pip install --progress-bar off -e "$ABVOC_REPO[$extras]"
  echo "$want" > "$stamp"
fi
