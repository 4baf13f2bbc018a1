"""The German PII corpus (``eval/pii/*.jsonl``) and how well redaction does on it.

One case per line: ``{"id", "text", "pii": [{"kind", "value"}], "keep": [str]}``.
``value`` is a substring of ``text`` that is personal; ``keep`` are substrings that
must come out unchanged (appointment dates, amounts, intents, service numbers).

Recall counts personal *tokens* (runs of letters and digits inside a personal
value): a token is masked when none of its personal characters survives the
redaction, found by aligning the output with the input. Characters a mask keeps
on purpose do not count (the last two digits of a number, an IBAN's country and
check digits, a name's initial, the first letters and top-level domain of an
e-mail address, letters in a reference number such as ``KV-``).
Precision is the share of ``keep`` strings that survive verbatim, and of all
tokens outside personal values that survive whole.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path


@dataclass(frozen=True)
class PiiValue:
    kind: str
    value: str
    start: int
    end: int


@dataclass(frozen=True)
class PiiCase:
    id: str
    text: str
    pii: tuple[PiiValue, ...]
    keep: tuple[str, ...]


class CorpusError(ValueError):
    """A corpus line that does not say what it means (a value not in its text, bad JSON)."""


def load_corpus(paths: Iterable[Path]) -> list[PiiCase]:
    cases: list[PiiCase] = []
    for path in paths:
        for n, line in enumerate(Path(path).read_text("utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                text = str(raw["text"])
                pii = []
                for item in raw.get("pii", []):
                    start = text.find(item["value"])
                    if start < 0:
                        raise CorpusError(f"{path}:{n}: {item['value']!r} is not in the text")
                    pii.append(PiiValue(str(item["kind"]), item["value"], start, start + len(item["value"])))
                for keep in raw.get("keep", []):
                    if keep not in text:
                        raise CorpusError(f"{path}:{n}: keep {keep!r} is not in the text")
                cases.append(PiiCase(str(raw["id"]), text, tuple(pii), tuple(raw.get("keep", []))))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path}:{n}: {exc}") from exc
    return cases


def _kept_by_design(kind: str, value: str) -> set[int]:
    """Offsets within ``value`` that its mask keeps on purpose."""
    alnum = [i for i, ch in enumerate(value) if ch.isalnum()]
    digits = [i for i in alnum if value[i].isdigit()]
    if kind in ("reference", "number", "phone"):
        return {i for i in alnum if not value[i].isdigit()} | set(digits[-2:])
    if kind == "iban":
        kept = set(alnum[:4])
        return kept | set(alnum[-2:]) if len(alnum) >= 15 else kept
    if kind == "name":
        return {m.start() for m in re.finditer(r"\w+", value)}
    if kind == "email":
        kept = set(alnum[:1])
        host = re.search(r"(?:@|\b(?:at|ät|klammeraffe)\b)\W*(\w)", value, re.IGNORECASE)
        tld = re.search(r"(\w+)\W*$", value)
        if host:
            kept.add(host.start(1))
        if tld:
            kept |= set(range(tld.start(1), tld.end(1)))
        return kept
    return set()


def _surviving(text: str, redacted: str) -> set[int]:
    """Input offsets copied to the output: aligned front to back and back to front, both must agree
    (one alignment alone may pair a kept "00" with other zeros of the input and call them leaked)."""
    forward = SequenceMatcher(None, text, redacted, autojunk=False)
    ahead = {b.a + k for b in forward.get_matching_blocks() for k in range(b.size)}
    backward = SequenceMatcher(None, text[::-1], redacted[::-1], autojunk=False)
    n = len(text)
    behind = {n - 1 - (b.a + k) for b in backward.get_matching_blocks() for k in range(b.size)}
    return ahead & behind


@dataclass
class PiiScore:
    tokens: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    masked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    leaks: list[tuple[str, str, str]] = field(default_factory=list)  # (case id, token, redacted text)
    keep_total: int = 0
    keep_ok: int = 0
    keep_lost: list[tuple[str, str, str]] = field(default_factory=list)
    other_total: int = 0
    other_ok: int = 0

    @property
    def recall(self) -> float:
        total = sum(self.tokens.values())
        return sum(self.masked.values()) / total if total else 1.0

    @property
    def keep_rate(self) -> float:
        return self.keep_ok / self.keep_total if self.keep_total else 1.0

    @property
    def other_rate(self) -> float:
        return self.other_ok / self.other_total if self.other_total else 1.0


def score(cases: Iterable[PiiCase], redact: Callable[[str], str]) -> PiiScore:
    result = PiiScore()
    for case in cases:
        out = redact(case.text)
        alive = _surviving(case.text, out)
        personal: set[int] = set()
        for pv in case.pii:
            kept = _kept_by_design(pv.kind, pv.value)
            personal.update(range(pv.start, pv.end))
            for m in re.finditer(r"\w+", pv.value):
                chars = [pv.start + i for i in range(m.start(), m.end()) if i not in kept]
                if not chars:
                    continue
                result.tokens[pv.kind] += 1
                if any(c in alive for c in chars):
                    result.leaks.append((case.id, m.group(0), out))
                else:
                    result.masked[pv.kind] += 1
        for keep in case.keep:
            result.keep_total += 1
            if keep in out:
                result.keep_ok += 1
            else:
                result.keep_lost.append((case.id, keep, out))
        for m in re.finditer(r"\w+", case.text):
            if any(i in personal for i in range(m.start(), m.end())):
                continue
            result.other_total += 1
            result.other_ok += all(i in alive for i in range(m.start(), m.end()))
    return result
