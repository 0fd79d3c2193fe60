#!/usr/bin/env bash
# Create (once) the project's virtual environment outside the repository and install abvoc
# into it, editable, with the extras named in $1 (default: test). Idempotent.
set -euo pipefail
source "$(dirname "$0")/env.sh"
extras="${1-test}"
if [ ! -x "$ABVOC_VENV/bin/python" ]; then
  echo "[install-python] creating virtual environment at $ABVOC_VENV"
  python3 -m venv "$ABVOC_VENV"
  "$ABVOC_VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
fi
stamp="$ABVOC_VENV/.abvoc-installed-${extras:-base}"
want="$(cat "$ABVOC_REPO/setup.cfg" "$ABVOC_REPO/setup.py" "$ABVOC_REPO/pyproject.toml" | sha256sum | cut -c1-16)-$extras-$ABVOC_REPO"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  target="$ABVOC_REPO"; [ -n "$extras" ] && target="$ABVOC_REPO[$extras]"
  echo "[install-python] installing $target (the first run downloads torch: a few minutes)"
  "$ABVOC_VENV/bin/python" -m pip install --progress-bar off -e "$target"
  echo "$want" > "$stamp"
fi
# The editable install imports the native op (csrc/ccl) from the work tree: rebuild it in place
# whenever its sources are newer than the built module (setuptools compares the timestamps).
echo "[install-python] building the native op (csrc/ccl) in place"
(cd "$ABVOC_REPO" && "$ABVOC_VENV/bin/python" setup.py --quiet build_ext --inplace)
# The ONNX Runtime custom-op library (csrc/ort: Rust glue over the csrc/ccl kernel). cargo
# rebuilds only when csrc/ort or csrc/ccl changed; crates come from Cargo.lock, cached in
# CARGO_HOME (~/.cargo), the build folder is csrc/ort/target (gitignored). Without cargo it says
# so and goes on (the library's tests then skip with that reason).
echo "[install-python] building the ONNX Runtime op library (csrc/ort) with cargo"
(cd "$ABVOC_REPO" && "$ABVOC_VENV/bin/python" -m workloads.ocr.ort_ops)
