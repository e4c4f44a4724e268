#!/usr/bin/env bash
# The tests on a fresh machine: install, then pytest. Extra arguments go to pytest
# (e.g. `-m "not slow"` for the fast tests only).
set -euo pipefail
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
# The browser test of report.html drives the system's chromium: install it when it is missing and
# apt is usable (root, or sudo without a password); otherwise that test is skipped, saying why.
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null \
  && command -v apt-get >/dev/null; then
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo -n"
  if [ -z "$as_root" ] || sudo -n true 2>/dev/null; then
    { $as_root apt-get update -qq && $as_root apt-get install -y -qq chromium; } >/dev/null \
      || echo "warning: could not install chromium; the report's browser test will be skipped" >&2
  fi
fi
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
fi
exit "$status"
