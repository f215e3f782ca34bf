#!/usr/bin/env bash
# Installs Debian's Chromium and its WebDriver (chromedriver) when missing, for the
# portal's browser tests (tests/portal.rs). Idempotent and quiet: does nothing when
# /usr/bin/chromium and /usr/bin/chromedriver are both present.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
if ! $SUDO apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; then
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q chromium chromium-driver >/dev/null
fi
test -x /usr/bin/chromium && test -x /usr/bin/chromedriver
