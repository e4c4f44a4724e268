#!/usr/bin/env bash
# Create .venv (once) and install the project into it. Sourced by demo.sh and test.sh.
# torch: if none is installed yet, the CPU-or-CUDA build of torch 2.13 is installed first, so that
# pyproject's range is satisfied; a GPU user can install any CUDA build of torch >= 2.2 before this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
  pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
pip install --quiet --disable-pip-version-check -e '.[test]'
