#!/usr/bin/env bash
# The main job on a fresh machine: install, then collect -> train -> evaluate (`drive demo`).
# Extra arguments go to `drive demo` (see `drive demo --help`).
set -euo pipefail
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
drive demo "$@"
