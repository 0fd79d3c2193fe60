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
# One editable install per environment: the stamp names the work tree, the setup files' hash and
# the extras installed from them. Another clone (or changed setup files) reinstalls; a new extra
# is added to those already there. The import check (from /, as the `abvoc` entry point sees it)
# catches an install another clone made without this script: the editable finder maps the
# packages to one work tree only.
stamp="$ABVOC_VENV/.abvoc-installed"
setup="$(cat "$ABVOC_REPO/setup.cfg" "$ABVOC_REPO/setup.py" "$ABVOC_REPO/pyproject.toml" | sha256sum | cut -c1-16) $ABVOC_REPO"
have_setup="$(sed -n 1p "$stamp" 2>/dev/null || true)"
have_extras="$(sed -n 2p "$stamp" 2>/dev/null || true)"
[ "$have_setup" = "$setup" ] || have_extras=""
mapped="$(cd / && "$ABVOC_VENV/bin/python" -c 'import importlib.util as u, os; print(os.path.dirname(os.path.dirname(u.find_spec("app").origin)))' 2>/dev/null || true)"
want_extras="$(printf '%s\n' $have_extras $extras | sort -u | xargs)"
if [ "$have_setup" != "$setup" ] || [ "$want_extras" != "$have_extras" ] || [ "$mapped" != "$ABVOC_REPO" ]; then
  target="$ABVOC_REPO"; [ -n "$want_extras" ] && target="$ABVOC_REPO[${want_extras// /,}]"
  echo "[install-python] installing $target (the first run downloads torch: a few minutes)"
  "$ABVOC_VENV/bin/python" -m pip install --progress-bar off -e "$target"
  rm -f "$ABVOC_VENV"/.abvoc-installed-*  # the per-extra stamps of earlier versions of this script
  printf '%s\n%s\n' "$setup" "$want_extras" > "$stamp"
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
