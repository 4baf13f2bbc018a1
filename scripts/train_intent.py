#!/usr/bin/env python3
"""Thin wrapper: `voicebot train intent` (the n-gram baseline and the e5 intent model).

    .venv/bin/python scripts/train_intent.py               # both models into models/store/
    .venv/bin/python scripts/train_intent.py --model ngram # just the baseline (seconds)

Everything after the script name is passed on; see `voicebot train intent --help`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicebot.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", "intent", *sys.argv[1:]]))
