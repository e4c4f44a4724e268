#!/usr/bin/env bash
# The tests on a fresh machine: install, then pytest. Extra arguments go to pytest
# (e.g. `-m "not slow"` for the fast tests only).
set -euo pipefail
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
status=0
python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
fi
exit "$status"
