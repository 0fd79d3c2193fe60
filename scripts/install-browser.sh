#!/usr/bin/env bash
# Install, once, the real browser the dashboard tests drive: Debian's `chromium` and
# `chromium-driver` (the driver matches the browser's version, both from the same archive),
# and `poppler-utils` (pdftoppm, pdfimages), with which the tests read the weekly report's PDF.
# Skipped when all are present, so running it again costs nothing. Runs apt-get as root (CI)
# or through sudo.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/pdftoppm ]; then
  exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[install-browser] apt-get install chromium chromium-driver poppler-utils"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver \
  poppler-utils >/dev/null
/usr/bin/chromium --version
