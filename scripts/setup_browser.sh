#!/usr/bin/env bash
# Installs Debian's chromium and chromium-driver (the headless browser of the `p2r-eval view`
# tests) when they are missing. Idempotent: does nothing when both are there. Needs root or
# sudo and Debian's apt; elsewhere it says so and exits 0 (those tests then skip).
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_browser: no apt-get here; install chromium yourself (the browser tests skip)" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "setup_browser: need root or sudo to install chromium (the browser tests skip)" >&2
        exit 0
    fi
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver
