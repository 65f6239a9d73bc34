#!/usr/bin/env bash
# Headless Chromium and its WebDriver, for the leaderboard browser test (tests/test_leaderboard_browser.py).
#
# Runs as root on a fresh Debian machine (CI) and again on a development machine where it may already have run: it
# installs only what is missing, then checks that both programs start, so a broken install fails here, by name.
set -euo pipefail

log() { echo "setup-chromium: $*"; }

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    log "chromium and chromedriver already installed"
else
    log "installing chromium and chromium-driver"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # with the recommended packages: they bring the fonts pages and screenshots are drawn with
    apt-get install -y -q chromium chromium-driver
fi

# The browser and the driver must come from the same release, or WebDriver refuses the session.
log "$(chromium --version 2>/dev/null | head -n 1)"
log "$(chromedriver --version | head -n 1)"
