#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/test_browser.py): Debian's package, driven by
# Python playwright through executable_path, so no browser download from the internet.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    echo "chromium present: $(/usr/bin/chromium --version 2>/dev/null | head -n1)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
$SUDO apt-get install -y chromium
/usr/bin/chromium --version 2>/dev/null | head -n1
