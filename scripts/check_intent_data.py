#!/usr/bin/env python3
"""Validate the intent data set: labels, counts, duplicates within and across splits.

Usage: python scripts/check_intent_data.py [--dir eval/intent] [--threshold 0.6]
       python scripts/check_intent_data.py --candidates NEW.jsonl [--held-out-max 0.35]

Checks every line of train.jsonl and dev.jsonl is {"text": str, "intent": id}
with one of the 14 ids of TRIAGE.md, that each label has enough lines
(train >= 70, dev >= 30), and that no two lines are exact or near duplicates
(character 4-gram Jaccard above the threshold after lower-casing and removing
punctuation and fillers), within a split or across train/dev. Prints a count
table and the closest cross-split pairs; exits 1 on any problem.

``--candidates`` checks drafted training lines before they go into train.jsonl:
each is compared with every held-out line (dev.jsonl, ood.jsonl and the caller
turns of eval/scenarios/scenarios.jsonl) and with train; a draft closer than
``--held-out-max`` to a held-out line, or above ``--threshold`` to train or to
another draft, is listed (drop it, do not reword it towards the held-out line);
exits 1 if any is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

LABELS = (
    "bestellung",
    "reklamation",
    "rechnung",
    "kuendigung",
    "stammdaten",
    "pannenhilfe",
    "schadensmeldung",
    "technik",
    "beratung",
    "termin",
    "notfall",
    "seelsorge",
    "mitarbeiter",
    "sonstiges",
)
MIN_COUNT = {"train": 70, "dev": 30}
SPLITS = ("train", "dev")
# The spoken out-of-domain set (all `sonstiges`): at least 50 lines, independent of train like dev.
OOD_SPLIT, OOD_MIN = "ood", 50
# Hesitations are ASR noise, not content: two lines differing only in "äh" are duplicates.
_FILLERS = re.compile(r"\b(?:äh+|ähm|öhm?|hm+|mhm|ehm)\b")
_NON_WORD = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Lower case, no punctuation or fillers, single spaces."""
    text = " ".join(_NON_WORD.sub(" ", text.lower()).split())
    # A line that is only a filler ("ähm") keeps it, else it would equal every other such line.
    return " ".join(_FILLERS.sub(" ", text).split()) or text


def grams(text: str, n: int = 4) -> frozenset[str]:
    """Character n-grams of the normalised text, padded so short lines still have some."""
    padded = f" {normalise(text)} "
    if len(padded) < n:
        return frozenset({padded})
    return frozenset(padded[i : i + n] for i in range(len(padded) - n + 1))


def load(path: Path) -> tuple[list[tuple[str, str]], list[str]]:
    """(text, intent) rows of a JSONL file and the problems found while reading it."""
    rows: list[tuple[str, str]] = []
    problems: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            problems.append(f"{path.name}:{lineno}: empty line")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name}:{lineno}: invalid JSON ({exc})")
            continue
        if not isinstance(obj, dict) or set(obj) != {"text", "intent"}:
            problems.append(f"{path.name}:{lineno}: expected exactly the keys text and intent")
            continue
        text, intent = obj["text"], obj["intent"]
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{path.name}:{lineno}: empty or non-string text")
            continue
        if intent not in LABELS:
            problems.append(f"{path.name}:{lineno}: unknown intent {intent!r}")
            continue
        rows.append((text, intent))
    return rows, problems


def similar_pairs(
    items: list[tuple[str, int, str, str]], threshold: float
) -> tuple[list[tuple[float, int, int]], list[tuple[float, int, int]]]:
    """Pairs above ``threshold`` and, per item, its best cross-split match.

    ``items`` are (split, index, text, intent). An inverted index over
    4-grams keeps this linear in practice instead of comparing all pairs.
    """
    sets = [grams(text) for _, _, text, _ in items]
    index: dict[str, list[int]] = defaultdict(list)
    above: list[tuple[float, int, int]] = []
    best_cross: dict[int, tuple[float, int]] = {}
    for j, g in enumerate(sets):
        shared: Counter[int] = Counter()
        for gram in g:
            for i in index[gram]:
                shared[i] += 1
        for i, common in shared.items():
            score = common / (len(sets[i]) + len(g) - common)
            if score > threshold:
                above.append((score, i, j))
            if items[i][0] != items[j][0]:
                if "train" not in (items[i][0], items[j][0]):
                    continue  # dev vs ood: both held out
                dev_idx, other = (j, i) if items[i][0] == "train" else (i, j)
                if score > best_cross.get(dev_idx, (0.0, -1))[0]:
                    best_cross[dev_idx] = (score, other)
        for gram in g:
            index[gram].append(j)
    cross = sorted(((s, i, o) for i, (s, o) in best_cross.items()), reverse=True)
    return above, cross


def held_out_texts(data_dir: Path) -> list[tuple[str, str]]:
    """(source, text) of every line training must stay away from: dev, ood and the call scenarios' turns."""
    out: list[tuple[str, str]] = []
    for split in ("dev", OOD_SPLIT):
        path = data_dir / f"{split}.jsonl"
        if path.is_file():
            out += [(split, text) for text, _ in load(path)[0]]
    scenarios = data_dir.parent / "scenarios" / "scenarios.jsonl"
    if scenarios.is_file():
        for line in scenarios.read_text(encoding="utf-8").splitlines():
            if line.strip():
                out += [("scenario", turn) for turn in json.loads(line)["turns"]]
    return out


def check_candidates(path: Path, data_dir: Path, held_out_max: float, threshold: float) -> int:
    """Drafted lines against the held-out sets and train (see the module docstring)."""
    drafts, problems = load(path)
    held = held_out_texts(data_dir)
    train = load(data_dir / "train.jsonl")[0] if (data_dir / "train.jsonl").is_file() else []
    held_sets = [grams(t) for _, t in held]
    train_sets = [grams(t) for t, _ in train]
    draft_sets = [grams(t) for t, _ in drafts]

    def best(g: frozenset[str], pool: list[frozenset[str]]) -> tuple[float, int]:
        scores = [len(g & h) / len(g | h) for h in pool]
        k = max(range(len(scores)), key=scores.__getitem__) if scores else -1
        return (scores[k] if scores else 0.0), k

    closest = []
    for n, ((text, intent), g) in enumerate(zip(drafts, draft_sets, strict=True)):
        score, k = best(g, held_sets)
        closest.append(score)
        if score > held_out_max:
            problems.append(f"{path.name}:{n + 1} [{intent}] {text!r} is {score:.2f} from {held[k][0]} {held[k][1]!r}")
        score, k = best(g, train_sets)
        if score > threshold:
            problems.append(f"{path.name}:{n + 1} [{intent}] {text!r} is {score:.2f} from train {train[k][0]!r}")
        score, k = best(g, draft_sets[:n])
        if score > threshold:
            problems.append(f"{path.name}:{n + 1} [{intent}] {text!r} is {score:.2f} from draft {drafts[k][0]!r}")
    if closest:
        ordered = sorted(closest)
        print(f"{len(drafts)} drafts; closest held-out line per draft: max {ordered[-1]:.2f}, "
              f"median {ordered[len(ordered) // 2]:.2f} ({len(held)} held-out lines)")
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path(__file__).resolve().parent.parent / "eval" / "intent")
    parser.add_argument("--threshold", type=float, default=0.6)
    parser.add_argument("--show", type=int, default=10, help="closest cross-split pairs to print")
    parser.add_argument("--candidates", type=Path, help="drafted training lines to check against the held-out sets")
    parser.add_argument("--held-out-max", type=float, default=0.35,
                        help="with --candidates: the most a draft may resemble a held-out line")
    args = parser.parse_args()
    if args.candidates:
        return check_candidates(args.candidates, args.dir, args.held_out_max, args.threshold)

    problems: list[str] = []
    data: dict[str, list[tuple[str, str]]] = {}
    for split in SPLITS:
        path = args.dir / f"{split}.jsonl"
        if not path.exists():
            problems.append(f"missing {path}")
            data[split] = []
            continue
        data[split], found = load(path)
        problems += found

    ood_path = args.dir / f"{OOD_SPLIT}.jsonl"
    if ood_path.exists():
        data[OOD_SPLIT], found = load(ood_path)
        problems += found
        if len(data[OOD_SPLIT]) < OOD_MIN:
            problems.append(f"{OOD_SPLIT}: {len(data[OOD_SPLIT])} lines, needs {OOD_MIN}")
        problems += [f"{OOD_SPLIT}: {t!r} is labelled {i}, expected sonstiges" for t, i in data[OOD_SPLIT]
                     if i != "sonstiges"]
    counts = {split: Counter(intent for _, intent in rows) for split, rows in data.items()}
    print(f"{'intent':<16}{'train':>7}{'dev':>7}")
    for label in LABELS:
        print(f"{label:<16}{counts['train'][label]:>7}{counts['dev'][label]:>7}")
        for split in SPLITS:
            if counts[split][label] < MIN_COUNT[split]:
                problems.append(f"{split}: {label} has {counts[split][label]} lines, needs {MIN_COUNT[split]}")
    print(f"{'total':<16}{sum(counts['train'].values()):>7}{sum(counts['dev'].values()):>7}")

    if OOD_SPLIT in data:
        print(f"{OOD_SPLIT + ' (sonstiges)':<16}{len(data[OOD_SPLIT]):>7}")
    items = [(split, k, text, intent) for split in data for k, (text, intent) in enumerate(data[split])]
    seen: dict[str, int] = {}
    for n, (split, k, text, intent) in enumerate(items):
        key = normalise(text)
        if key in seen:
            o = items[seen[key]]
            problems.append(f"exact duplicate: {o[0]}:{o[1] + 1} [{o[3]}] and {split}:{k + 1} [{intent}]: {text!r}")
        else:
            seen[key] = n

    above, cross = similar_pairs(items, args.threshold)
    for score, i, j in sorted(above, reverse=True):
        a, b = items[i], items[j]
        if normalise(a[2]) == normalise(b[2]):
            continue  # already reported as exact
        kind = "across splits" if a[0] != b[0] else f"within {a[0]}"
        problems.append(
            f"near duplicate {kind} (Jaccard {score:.2f}): {a[0]}:{a[1] + 1} [{a[3]}] {a[2]!r} / "
            f"{b[0]}:{b[1] + 1} [{b[3]}] {b[2]!r}"
        )

    asr_style = sum(1 for _, _, t, _ in items if t == t.lower() and not re.search(r"[.,!?;:]", t))
    share = asr_style / max(1, len(items))
    print(f"\nASR-style lines (lower case, no punctuation): {asr_style}/{len(items)} ({share:.0%})")
    if cross:
        scores = [s for s, _, _ in cross]
        print(f"closest train match per dev line: max {scores[0]:.2f}, median {scores[len(scores) // 2]:.2f}")
        for score, dev_idx, train_idx in cross[: args.show]:
            print(f"  {score:.2f}  dev {items[dev_idx][2]!r}\n        train {items[train_idx][2]!r}")

    if problems:
        print(f"\n{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print("\nOK: labels valid, counts sufficient, no exact or near duplicates.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
