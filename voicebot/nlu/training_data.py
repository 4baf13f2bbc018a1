"""Intent training data: reading the JSONL files, their digest, and leak-free folds (a line with its ASR versions)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicebot.config import REPO_ROOT

INTENT_DATA_DIR = REPO_ROOT / "eval" / "intent"


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    origin: str = ""  # ASR-augmented lines: the clean text they were synthesized from


def read_examples(path: Path) -> list[Example]:
    """A JSONL intent file: one ``{"text": ..., "intent": ...}`` object per line ("label" also accepted)."""
    examples = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, label = str(row["text"]).strip(), str(row.get("intent") or row["label"])
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: expected a JSON object with text and intent ({exc})") from exc
            if text:
                examples.append(Example(text, label, str(row.get("origin", ""))))
    return examples


def files_sha256(paths: Sequence[Path]) -> str:
    """One digest over the training files (name and content), recorded with the artefact."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def fold_assignment(examples: Sequence[Example], k: int, seed: int) -> np.ndarray:
    """The fold of each example: clean lines stratified by intent and ordered by hash; ASR lines follow their origin."""
    clean = [e for e in examples if not e.origin]
    fold_of: dict[str, int] = {}
    for label in sorted({e.label for e in clean}):
        lines = sorted((e for e in clean if e.label == label),
                       key=lambda e: hashlib.sha256(f"{seed}:{e.text}".encode()).hexdigest())
        fold_of.update({e.text: i % k for i, e in enumerate(lines)})
    return np.array([fold_of.get(e.origin or e.text, 0) for e in examples], dtype=int)


def cross_folds(clean: Sequence[Example], augmented: Sequence[Example], k: int, seed: int) -> list[list[Example]]:
    examples = list(clean) + list(augmented)
    folds = fold_assignment(examples, k, seed)
    return [[e for e, f in zip(examples, folds, strict=True) if f == i] for i in range(k)]


def split_for_calibration(
    clean: Sequence[Example], augmented: Sequence[Example], share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """``(train, calibration)``: about ``share`` of each intent's lines (with their ASR versions) held out."""
    folds = cross_folds(clean, augmented, max(2, round(1 / share)), seed)
    return [e for fold in folds[1:] for e in fold], folds[0]


def training_files(data_dir: Path | None = None) -> list[Path]:
    """The files a model is trained on, in digest order: train.jsonl and every train_asr*.jsonl."""
    data_dir = data_dir or INTENT_DATA_DIR
    return [data_dir / "train.jsonl", *sorted(data_dir.glob("train_asr*.jsonl"))]
