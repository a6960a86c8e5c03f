#!/bin/sh
# Installs what the browser tests (tests/browser) drive: Debian's Chromium and its WebDriver.
# Does nothing when both are present; otherwise needs root (or sudo) and the Debian archive.
set -eu
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends chromium chromium-driver
