#!/usr/bin/env bash
# The main job of the README:   bash ci/main.sh
# Creates .venv (if missing), installs xldas into it and runs the main job.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .

# The main job: the embedded Heihe twin experiment end to end (open loop, EnKF, LETKF),
# Zarr stores, skill table and figures under ./xldas-demo/ (no network).
.venv/bin/xldas demo --out xldas-demo
