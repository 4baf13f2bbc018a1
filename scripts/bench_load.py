#!/usr/bin/env python3
"""Load benchmark at 1, 4, 8, 16 and 32 concurrent calls (a thin wrapper of `voicebot bench load`).

Starts `voicebot serve` as a child process unless --url is given, runs each
concurrency level for --duration seconds, prints a markdown table and writes
eval/reports/bench-load.{json,png} (git-ignored). Extra arguments go to
`voicebot bench load`, e.g.:

    .venv/bin/python scripts/bench_load.py --duration 60
    .venv/bin/python scripts/bench_load.py --calls 1,4 --duration 30 --channel telephone
    .venv/bin/python scripts/bench_load.py --url ws://127.0.0.1:8765/v1/call --server-pid 1234
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.cli.main import main  # noqa: E402 - after the path set-up for a plain checkout


def run(argv: list[str]) -> int:
    out = REPO / "eval" / "reports"
    out.mkdir(parents=True, exist_ok=True)
    defaults = {"--calls": "1,4,8,16,32", "--duration": "60", "--plot": str(out / "bench-load.png"),
                "--out": str(out / "bench-load.json")}
    args = list(argv)
    for flag, value in defaults.items():
        if flag not in args:
            args += [flag, value]
    return main(["bench", "load", *args])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
