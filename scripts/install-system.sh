#!/usr/bin/env bash
# Install, once, what the tests need from outside PyPI: PostgreSQL 15 from Debian's packages, and
# the Apache Kafka 4.4.0 broker jars from Maven Central into the cache folder.
# Each step checks first, so running it again costs a few seconds.
set -euo pipefail
source "$(dirname "$0")/env.sh"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

need_apt=()
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[install-system] apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -f "$ABVOC_KAFKA_HOME/.complete" ]; then
  echo "[install-system] fetching Apache Kafka 4.4.0 from Maven Central into $ABVOC_KAFKA_HOME"
  mkdir -p "$ABVOC_KAFKA_HOME"
  cp "$ABVOC_REPO/scripts/kafka-pom.xml" "$ABVOC_KAFKA_HOME/pom.xml"
  (cd "$ABVOC_KAFKA_HOME" && mvn -q -B dependency:copy-dependencies -DoutputDirectory=lib \
      -Dmaven.repo.local="$ABVOC_CACHE/m2")
  touch "$ABVOC_KAFKA_HOME/.complete"
fi
