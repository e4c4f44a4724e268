#!/usr/bin/env bash
# Create .venv-lerobot/ with the `lerobot` package, for the optional test that loads an exported
# LeRobotDataset with lerobot's own LeRobotDataset class (tests/driving/data/test_lerobot_io.py,
# skipped while this venv is absent). lerobot pins an older torch than this project, so it gets a
# virtual environment of its own. lerobot 0.4.4 is the last release for Python 3.10/3.11 (0.5
# needs 3.12) and reads the v3.0 layout that `drive convert --to lerobot` writes.
# Then runs that test. Usage: bash scripts/lerobot_check.sh   (a few GB to download, once)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LEROBOT_VERSION="${LEROBOT_VERSION:-0.4.4}"
if [ ! -x .venv-lerobot/bin/python ]; then
  python3 -m venv .venv-lerobot.tmp
  nice -n 10 .venv-lerobot.tmp/bin/pip install --quiet --disable-pip-version-check \
    "lerobot==${LEROBOT_VERSION}"
  mv .venv-lerobot.tmp .venv-lerobot  # only a complete venv counts
fi
.venv-lerobot/bin/python -c "import lerobot; print('lerobot', lerobot.__version__)"
if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
"$python" -m pytest tests/driving/data/test_lerobot_io.py -q "$@"
