#!/usr/bin/env bash
# Set everything up (if needed) and start the service on localhost with the default models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/voicebot serve "$@"
