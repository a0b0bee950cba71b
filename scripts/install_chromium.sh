#!/usr/bin/env bash
# Install headless Chromium (Debian packages `chromium` and `chromium-driver`) for the
# leaderboard browser test (tests/test_leaderboard_browser.py, marker `browser`), if missing.
# Usage: scripts/install_chromium.sh        (root, or a user with passwordless sudo)
set -euo pipefail

for name in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "install_chromium: found $(command -v "$name"); nothing to do."
        exit 0
    fi
done

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no apt-get on this machine; install Chromium by hand and put it on PATH" \
         "(or set GAPBENCH_CHROMIUM=/path/to/chrome)." >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install_chromium: need root or sudo to run apt-get." >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium chromium-driver
chromium --version
