#!/usr/bin/env python3
"""Redaction on the German PII corpus: recall per kind of personal data, and what ordinary text survives.

    .venv/bin/python scripts/eval_pii.py            # eval/pii/*.jsonl
    .venv/bin/python scripts/eval_pii.py --show     # also every leak and every lost keep string
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.assist.pii_corpus import load_corpus, score  # noqa: E402 - after the path set-up
from voicebot.assist.redact import redact_text  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="*", type=Path, help="JSONL files (default: eval/pii/*.jsonl)")
    ap.add_argument("--show", action="store_true", help="print every leak and lost keep string")
    args = ap.parse_args()
    paths = args.corpus or sorted((REPO / "eval" / "pii").glob("*.jsonl"))
    cases = load_corpus(paths)
    started = time.perf_counter()
    result = score(cases, redact_text)
    per_case_ms = (time.perf_counter() - started) / max(1, len(cases)) * 1000
    print(f"{len(cases)} cases from {', '.join(p.name for p in paths)}\n")
    print("| kind | personal tokens | masked | recall |")
    print("|---|---:|---:|---:|")
    for kind in sorted(result.tokens):
        t, m = result.tokens[kind], result.masked[kind]
        print(f"| {kind} | {t} | {m} | {m / t:.1%} |")
    total, masked = sum(result.tokens.values()), sum(result.masked.values())
    print(f"| **all** | {total} | {masked} | **{result.recall:.1%}** |\n")
    print("| precision | total | kept | rate |")
    print("|---|---:|---:|---:|")
    print(f"| keep strings (dates of appointments, amounts, service numbers, ...) | {result.keep_total} | "
          f"{result.keep_ok} | {result.keep_rate:.1%} |")
    print(f"| ordinary tokens outside personal values | {result.other_total} | {result.other_ok} | "
          f"{result.other_rate:.1%} |")
    print(f"\nredaction + scoring: {per_case_ms:.2f} ms per case")
    if args.show or result.leaks or result.keep_lost:
        for case_id, token, out in result.leaks:
            print(f"LEAK {case_id}: {token!r} in {out!r}")
        for case_id, keep, out in result.keep_lost:
            print(f"LOST {case_id}: {keep!r} -> {out!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
