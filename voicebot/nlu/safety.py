"""Safety escalation as its own calibrated decision.

The three safety intents (notfall, seelsorge, mitarbeiter) reach a human at
once. Missing one is the worst error, a false crisis escalation the second
worst, so each safety intent gets its own operating point on its calibrated
probability instead of the old fixed rule "any safety runner-up >= 0.1":

* ``fit_operating_points`` picks, per safety intent, the threshold with the
  fewest weighted errors on out-of-fold training lines (typed and through the
  telephone ASR), a missed safety line weighing ``miss_cost`` false
  escalations; lines the keyword net catches need no score.
* ``escalation_curve`` is the coverage / false-escalation trade-off around it,
  which `voicebot eval intent` prints.
* ``fuzzy_safety_keyword`` is the keyword net made robust to recognition
  errors: a long keyword word matches a heard word one edit away or with the
  same Cologne phonetic code, and a keyword may be split or joined ("not arzt",
  "mit arbeiter", "nich mehr lebn").

Pure numpy / text code: no models here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAFETY_LABELS = ("notfall", "seelsorge", "mitarbeiter")
FUZZY_MIN_CHARS = 7  # shorter keyword words must match exactly: "atmet" / "achtet" are not alike enough
_WORD = re.compile(r"\w+")


# ---- operating points -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperatingPoint:
    """One safety intent's threshold and what it did on the data it was chosen on."""

    label: str
    threshold: float
    recall: float
    false_escalation_rate: float
    n_positive: int
    n_negative: int


def escalated_by_scores(probs: np.ndarray, labels: Sequence[str], thresholds: dict[str, float]) -> np.ndarray:
    """Boolean matrix ``(n, len(thresholds))``: which safety scores pass their threshold, per line."""
    index = {label: i for i, label in enumerate(labels)}
    return np.stack([probs[:, index[s]] >= t for s, t in thresholds.items()], axis=1)


def fit_operating_points(
    probs: np.ndarray,
    gold: Sequence[str],
    labels: Sequence[str],
    keyword_hits: Sequence[bool] | None = None,
    miss_cost: float = 30.0,  # issue 14: 25-40 pick the same points; 20 raised notfall and missed spoken dev lines
    safety_labels: Sequence[str] = SAFETY_LABELS,
    ceiling: float = 0.5,
    floor: float = 0.02,
) -> dict[str, OperatingPoint]:
    """Per safety intent: the threshold with the fewest weighted errors on held-out lines.

    ``probs`` are calibrated out-of-fold probabilities; a line the keyword net
    catches (``keyword_hits``) needs no score. The cost of a threshold is
    ``miss_cost`` per safety line of that intent left below it plus one per
    ordinary line above it: with an unbounded ``miss_cost`` this is "recall
    1.0 at the lowest false-escalation rate", which the held-out data here
    cannot give at any useful rate (a recognizer that turns a cry for help
    into "Und hauschte." leaves no score to find). Candidates lie within
    ``[floor, ceiling]``: above ``ceiling`` a clear safety top-1 could be
    missed, below ``floor`` the score means nothing. Ties go to the lower
    threshold (the safer side).
    """
    index = {label: i for i, label in enumerate(labels)}
    gold_arr = np.asarray(gold)
    hits = np.zeros(len(gold_arr), dtype=bool) if keyword_hits is None else np.asarray(keyword_hits, dtype=bool)
    ordinary = ~np.isin(gold_arr, list(safety_labels))
    points: dict[str, OperatingPoint] = {}
    for label in safety_labels:
        scores = probs[:, index[label]]
        positive = gold_arr == label
        need, against = np.sort(scores[positive & ~hits]), np.sort(scores[ordinary])
        candidates = np.unique(np.clip(np.concatenate([need, [floor, ceiling]]), floor, ceiling))
        missed = np.searchsorted(need, candidates, side="left")  # positives strictly below each threshold
        false = len(against) - np.searchsorted(against, candidates, side="left")
        threshold = float(candidates[int(np.argmin(miss_cost * missed + false))])
        escalated = (scores >= threshold) | hits
        points[label] = OperatingPoint(
            label, round(threshold, 6),
            float(escalated[positive].mean()) if positive.any() else 1.0,
            float((scores >= threshold)[ordinary].mean()) if ordinary.any() else 0.0,
            int(positive.sum()), int(ordinary.sum()),
        )
    return points


def fit_ood_gate(
    probs: np.ndarray,
    gold: Sequence[str],
    labels: Sequence[str],
    thresholds: dict[str, float],
    keyword_hits: Sequence[bool] | None = None,
    ood_label: str = "sonstiges",
    floor: float = 0.5,
) -> float:
    """The out-of-domain probability at and above which a safety *runner-up* does not escalate.

    Nonsense and line checks ("hören Sie mich?") land on ``ood_label`` with a
    confident top-1 and a small safety runner-up that would pass its operating
    point. The gate is the lowest value (not below ``floor``) that costs no
    held-out safety line: above the out-of-domain probability of every safety
    line that only a runner-up score escalates. A safety top-1 and the keyword
    net are never gated. 1.0 or more: no line may be gated.
    """
    index = {label: i for i, label in enumerate(labels)}
    if ood_label not in index:
        return 1.01
    gold_arr = np.asarray(gold)
    hits = np.zeros(len(gold_arr), dtype=bool) if keyword_hits is None else np.asarray(keyword_hits, dtype=bool)
    top = probs.argmax(axis=1)
    by_top = np.zeros(len(gold_arr), dtype=bool)
    by_runner = np.zeros(len(gold_arr), dtype=bool)
    for label, t in thresholds.items():
        passes = probs[:, index[label]] >= t
        by_top |= passes & (top == index[label])
        by_runner |= passes & (top != index[label])
    needed = np.isin(gold_arr, list(thresholds)) & by_runner & ~by_top & ~hits
    highest = float(probs[needed, index[ood_label]].max()) if needed.any() else 0.0
    return round(max(floor, highest + 1e-4), 6)


def escalation_curve(
    probs: np.ndarray,
    gold: Sequence[str],
    labels: Sequence[str],
    keyword_hits: Sequence[bool] | None = None,
    scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0),
    thresholds: dict[str, float] | None = None,
    safety_labels: Sequence[str] = SAFETY_LABELS,
    ood_gate: float | None = None,
    ood_label: str = "sonstiges",
) -> list[dict[str, float]]:
    """Safety recall and false-escalation rate with every threshold scaled by each of ``scales``.

    Scale 1.0 is the operating point; a line counts as recalled when it is
    escalated as any safety intent (each reaches a human at once). With
    ``ood_gate`` a safety runner-up does not escalate where ``ood_label`` has
    at least that probability (``fit_ood_gate``).
    """
    gold_arr = np.asarray(gold)
    hits = np.zeros(len(gold_arr), dtype=bool) if keyword_hits is None else np.asarray(keyword_hits, dtype=bool)
    safety = np.isin(gold_arr, list(safety_labels))
    base = thresholds or {s: 0.1 for s in safety_labels}
    index = {label: i for i, label in enumerate(labels)}
    gated = np.zeros(len(gold_arr), dtype=bool)
    if ood_gate is not None and ood_label in index:
        gated = probs[:, index[ood_label]] >= ood_gate
    top = probs.argmax(axis=1)
    curve = []
    for scale in scales:
        scaled = {s: min(1.0, t * scale) for s, t in base.items()}
        passes = escalated_by_scores(probs, labels, scaled)
        is_top = np.stack([top == index[s] for s in scaled], axis=1)
        escalated = (passes & (is_top | ~gated[:, None])).any(axis=1) | hits
        curve.append({
            "scale": float(scale),
            "recall": float(escalated[safety].mean()) if safety.any() else 1.0,
            "false_escalation_rate": float(escalated[~safety].mean()) if (~safety).any() else 0.0,
        })
    return curve


# ---- the fuzzy keyword net --------------------------------------------------------------------------------

_COLOGNE = {**dict.fromkeys("aeijouyäöü", "0"), "b": "1", "f": "3", "v": "3", "w": "3", "g": "4", "k": "4",
            "q": "4", "l": "5", "m": "6", "n": "6", "r": "7", "s": "8", "z": "8", "ß": "8"}


def cologne_phonetic(word: str) -> str:
    """The Kölner Phonetik code of ``word``: German words that sound alike share it."""
    word = word.lower()
    codes: list[str] = []
    for i, ch in enumerate(word):
        prev = word[i - 1] if i else ""
        nxt = word[i + 1] if i + 1 < len(word) else ""
        if ch in _COLOGNE:
            code = _COLOGNE[ch]
        elif ch == "p":
            code = "3" if nxt == "h" else "1"
        elif ch in "dt":
            code = "8" if nxt in "csz" else "2"
        elif ch == "c":
            if i == 0:
                code = "4" if nxt in "ahkloqrux" else "8"
            else:
                code = "8" if prev in "sz" or nxt not in "ahkoqux" else "4"
        elif ch == "x":
            code = "8" if prev in "ckq" else "48"
        elif ch == "h":
            continue
        else:
            continue  # digits and other letters carry no sound code
        codes.append(code)
    collapsed = [c for i, c in enumerate(codes) if i == 0 or c != codes[i - 1]]
    return collapsed[0] + "".join(c for c in collapsed[1:] if c != "0") if collapsed else ""


def within_one_edit(a: str, b: str) -> bool:
    """Levenshtein distance of at most one."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = j = edits = 0
    while i < len(a) and j < len(b):
        if a[i] == b[j]:
            i, j = i + 1, j + 1
            continue
        edits += 1
        if edits > 1:
            return False
        if len(a) == len(b):
            i += 1
        j += 1
    return edits + (len(b) - j) <= 1


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _word_alike(keyword: str, heard: str, in_phrase: bool, joined: bool = False) -> bool:
    """Whether ``heard`` may be a misrecognized ``keyword``.

    Long words: one edit after a shared start of four letters ("mitarbeita",
    "notarz"), or the same Cologne code and start ("Notartz"); two heard
    words glued together only by the edit rule ("sprung in" sounds like
    "springen"). The shared start keeps "abgefahren" from matching "angefahren". Short words only inside a phrase
    and only with a letter dropped or added ("nich", "lebn"): a substituted
    letter makes another word ("lesen" for "leben").
    """
    if keyword == heard:
        return True
    if keyword.endswith("er") and heard.endswith("a"):
        keyword = keyword[:-2] + "a"  # spoken "-er" is a vowel: "Mitarbeita"
    if len(keyword) >= FUZZY_MIN_CHARS:
        return (_common_prefix(keyword, heard) >= 4 and within_one_edit(keyword, heard)) or (
            not joined and abs(len(keyword) - len(heard)) <= 1 and _common_prefix(keyword, heard) >= 4
            and cologne_phonetic(keyword) == cologne_phonetic(heard))
    return (in_phrase and len(keyword) >= 4 and abs(len(keyword) - len(heard)) == 1
            and _common_prefix(keyword, heard) >= 3 and within_one_edit(keyword, heard))


def _phrase_at(words: list[str], start: int, phrase: list[str]) -> int:
    """How many heard words from ``start`` spell ``phrase`` (fuzzy, splits and joins allowed); 0 if none."""
    i = start
    for target in phrase:
        if i >= len(words):
            return 0
        if _word_alike(target, words[i], len(phrase) > 1):
            i += 1
        elif i + 1 < len(words) and _word_alike(target, words[i] + words[i + 1], len(phrase) > 1, joined=True):
            i += 2  # "not arzt" heard for "notarzt"
        else:
            return 0
    return i - start


def fuzzy_phrase_match(phrases: Sequence[str], text: str) -> str:
    """The first of ``phrases`` found in ``text`` up to recognition errors, as heard; "" if none.

    Only phrases of several words or with a word of at least
    ``FUZZY_MIN_CHARS`` letters are matched fuzzily (short keywords such as
    "112" or "rauch" stay exact in the domain's own net): a one-edit slip in a
    short word makes another word.
    """
    words = _WORD.findall(text.lower())
    joined = ["".join(p.split()) for p in phrases]
    for phrase, glued in zip(phrases, joined, strict=True):
        parts = phrase.split()
        if (len(parts) < 2 and len(phrase) < FUZZY_MIN_CHARS) or any(ch.isdigit() for ch in phrase):
            continue
        for start in range(len(words)):
            size = _phrase_at(words, start, parts)
            if not size and len(parts) > 1:
                size = _phrase_at(words, start, [glued])  # "nichtmehrleben" / split words heard joined
            if size:
                return " ".join(words[start : start + size])
    return ""
