#!/usr/bin/env bash
# Install, once, the real browser the dashboard tests drive: Debian's `chromium` and
# `chromium-driver` (the driver matches the browser's version, both from the same archive),
# `poppler-utils` (pdftoppm, pdfimages, pdffonts), with which the tests read the weekly report's
# PDF, `fonts-wqy-microhei` (1.6 MB), which draws Chinese, Japanese and Korean in the report
# and its plots, and `fonts-noto-core` (12 MB), which draws the scripts DejaVu has no glyphs for
# (Thai, Devanagari and the other Indic scripts, Khmer, Ethiopic, ...): without them these come
# out as empty boxes.
# Skipped when all are present, so running it again costs nothing. Runs apt-get as root (CI)
# or through sudo.
set -euo pipefail
CJK_FONT=/usr/share/fonts/truetype/wqy/wqy-microhei.ttc
NOTO_FONT=/usr/share/fonts/truetype/noto/NotoSansThai-Regular.ttf
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -x /usr/bin/pdftoppm ] \
    && [ -f "$CJK_FONT" ] && [ -f "$NOTO_FONT" ]; then
  exit 0
fi
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
echo "[install-browser] apt-get install chromium chromium-driver poppler-utils fonts-wqy-microhei" \
  "fonts-noto-core"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver \
  poppler-utils fonts-wqy-microhei fonts-noto-core >/dev/null
/usr/bin/chromium --version
