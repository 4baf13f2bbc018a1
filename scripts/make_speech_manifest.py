#!/usr/bin/env python3
"""Write eval/speech-de.jsonl: the shared real German speech, with paths relative to that manifest.

The clips stay in ../shared/data/speech-de (never copied into the repository);
each line's ``audio`` is relative to the manifest's own folder, e.g.
``../../shared/data/speech-de/clips/emodb_03a01Fa.flac``, which resolves both
here and in CI, where shared/ is a sibling of the repository root.

Usage: .venv/bin/python scripts/make_speech_manifest.py [--shared DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEEP = ("text", "speaker", "seconds", "set", "emotion")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data" / "speech-de")
    parser.add_argument("--out", type=Path, default=REPO / "eval" / "speech-de.jsonl")
    args = parser.parse_args(argv)
    source = args.shared / "manifest.jsonl"
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
    with args.out.open("w", encoding="utf-8") as fh:
        for row in rows:
            # relpath, not Path.relative_to: the clips live outside the manifest's folder.
            audio = os.path.relpath(args.shared / row["audio"], args.out.parent)
            record = {"audio": Path(audio).as_posix(), **{k: row[k] for k in KEEP if k in row}}
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} clips to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
