#!/usr/bin/env bash
# Create (once) the two third-party inference servers the remote-candidate tests talk to, each in
# a virtual environment of its own under $ABVOC_CACHE/servers (their dependencies conflict):
# Seldon MLServer 1.7.1 and KServe's Python model server 0.21, both with onnxruntime; and
# Triton's Python HTTP client (its gevent stays out of abvoc's environment).
# Idempotent: a venv whose stamp matches what this script asks for is left alone.
set -euo pipefail
source "$(dirname "$0")/env.sh"
servers="$ABVOC_CACHE/servers"
mkdir -p "$servers"

make_venv() {  # name, then the pip requirements
  local name="$1"; shift
  local venv="$servers/$name" want="$*"
  if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.abvoc-installed" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "[install-inference-servers] creating $venv ($want)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --progress-bar off "$@"
  echo "$want" > "$venv/.abvoc-installed"
}

make_venv mlserver-1.7.1 "mlserver==1.7.1" "onnxruntime>=1.17"
make_venv kserve-0.21 "kserve==0.21.*" "onnxruntime>=1.17"
# Triton's Python HTTP client, which the /v2 tests point at abvoc as a Triton user would.
make_venv tritonclient-2.73 "tritonclient[http]==2.73.0"
