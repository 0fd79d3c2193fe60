# Shared locations for the project's scripts. Source it; it sets nothing else.
# Caches live outside the repository so fresh clones reuse them.
ABVOC_CACHE="${ABVOC_CACHE:-$HOME/.cache/abvoc}"
ABVOC_VENV="${ABVOC_VENV:-$ABVOC_CACHE/venv}"
ABVOC_KAFKA_HOME="${ABVOC_KAFKA_HOME:-$ABVOC_CACHE/kafka-4.4.0}"
ABVOC_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ABVOC_CACHE ABVOC_VENV ABVOC_KAFKA_HOME ABVOC_REPO
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}"
