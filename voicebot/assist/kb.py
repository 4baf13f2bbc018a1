"""Suggested answers for the human agent, retrieved from the domain's knowledge base.

``pipelines/<domain>/kb.toml`` holds entries with an ``intent``, a ``title`` and
an ``answer`` (optionally ``next_steps``). They are embedded once at start with
the e5 ``TextEncoder`` ("passage: " prefix); each caller turn is embedded as a
query ("query: ") and the closest entries come back, those filed under the
current intent boosted. Without an encoder (not provisioned, or in a test) a
character n-gram TF-IDF index stands in, so the feature degrades, never breaks.

The file is read defensively: the knowledge base belongs to the domain
authors, and a missing or odd file must not stop the server.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)

INTENT_BOOST = 0.15  # added to the cosine similarity of entries filed under the current intent
KEYWORD_BOOST = 0.05  # per keyword of an entry the caller actually said (at most two count)
_ENTRY_LIST_KEYS = ("entry", "entries", "kb", "answers", "articles", "article", "faq", "items")


class Encoder(Protocol):
    def encode(self, texts: list[str], prefix: str = ..., max_length: int = ...) -> np.ndarray: ...


@dataclass(frozen=True)
class KbEntry:
    intent: str
    title: str
    answer: str
    next_steps: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suggestion:
    title: str
    answer: str
    intent: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "answer": self.answer, "intent": self.intent, "score": round(self.score, 4)}


class KnowledgeBase:
    """Entries plus their embeddings; ``suggest`` is synchronous (run it in an executor)."""

    def __init__(
        self, entries: Iterable[KbEntry], encoder: Encoder | None = None,
        next_steps: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.entries = list(entries)
        self.encoder = encoder
        self._next_steps = {k: [str(s) for s in v] for k, v in (next_steps or {}).items()}
        for entry in self.entries:
            if entry.next_steps and entry.intent not in self._next_steps:
                self._next_steps[entry.intent] = list(entry.next_steps)
        self._matrix: np.ndarray | None = None
        self._tfidf: Any = None
        self.backend = "empty"
        if self.entries:
            self._index()

    @classmethod
    def load(cls, path: Path | str, encoder: Encoder | None = None) -> KnowledgeBase:
        """Read ``kb.toml``; a missing or unreadable file gives an empty knowledge base and a warning."""
        path = Path(path)
        if not path.is_file():
            log.warning("knowledge base %s not found: no suggested answers", path)
            return cls([], encoder)
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            log.warning("knowledge base %s unreadable (%s): no suggested answers", path, exc)
            return cls([], encoder)
        entries, steps = parse_kb(data)
        kb = cls(entries, encoder, steps)
        log.info("knowledge base: %d entries from %s (%s retrieval)", len(entries), path, kb.backend)
        return kb

    @classmethod
    def from_domain(cls, domain: Any, encoder: Encoder | None = None) -> KnowledgeBase:
        """Entries from a loaded ``voicebot.dialog.domain.Domain`` (its kb.toml) and its intents' next steps."""
        entries = [
            KbEntry(str(label), str(a.title), str(a.text), keywords=tuple(getattr(a, "keywords", ()) or ()))
            for label, answers in (getattr(domain, "kb", None) or {}).items()
            for a in answers
        ]
        steps = {
            str(label): list(getattr(spec, "next_steps", ()) or ())
            for label, spec in (getattr(domain, "intents", None) or {}).items()
        }
        kb = cls(entries, encoder, {k: v for k, v in steps.items() if v})
        log.info("knowledge base: %d entries from domain %s (%s retrieval)", len(entries),
                 getattr(domain, "name", "?"), kb.backend)
        return kb

    def _index(self) -> None:
        passages = [". ".join([e.title, e.answer, *e.keywords]) for e in self.entries]
        if self.encoder is not None:
            self._matrix = np.asarray(self.encoder.encode(passages, prefix="passage: "), dtype=np.float32)
            self.backend = "e5"
            return
        from sklearn.feature_extraction.text import TfidfVectorizer

        # Character n-grams within words cope with German compounds (Rechnungsbetrag ~ Rechnung).
        self._tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=True)
        self._matrix = self._tfidf.fit_transform(passages).toarray().astype(np.float32)
        self.backend = "tfidf"

    def _embed_query(self, text: str) -> np.ndarray:
        if self.encoder is not None:
            return np.asarray(self.encoder.encode([text], prefix="query: "), dtype=np.float32)[0]
        vec = self._tfidf.transform([text]).toarray().astype(np.float32)[0]
        return vec

    def suggest(self, text: str, intent: str | None = None, k: int = 3) -> list[Suggestion]:
        """The ``k`` best entries for a caller's words, entries of ``intent`` boosted."""
        if self._matrix is None or not text.strip():
            return []
        scores = self._matrix @ self._embed_query(text)
        if intent:
            scores = scores + np.array([INTENT_BOOST if e.intent == intent else 0.0 for e in self.entries])
        lowered = text.lower()
        scores = scores + np.array(
            [KEYWORD_BOOST * min(2, sum(k.lower() in lowered for k in e.keywords)) for e in self.entries]
        )
        order = np.argsort(-scores)[:k]
        return [
            Suggestion(self.entries[i].title, self.entries[i].answer, self.entries[i].intent, float(scores[i]))
            for i in order
        ]

    def next_steps(self, intent: str | None) -> list[str]:
        """What the agent should do next for this intent (empty when the domain says nothing)."""
        return list(self._next_steps.get(intent or "", []))


def parse_kb(data: Mapping[str, Any]) -> tuple[list[KbEntry], dict[str, list[str]]]:
    """Entries and per-intent next steps from a parsed kb.toml, accepting the common shapes.

    Shapes: ``[[kb.<intent>]]`` tables (the default domain's), ``[[entry]]`` (or
    entries/answers/faq/...) arrays of tables that name their ``intent``, or a
    table per intent; an entry has ``title`` and ``answer`` (or ``text``), optionally
    ``keywords`` and ``next_steps``. An optional ``[next_steps]`` table maps intents to lists.
    """
    entries: list[KbEntry] = []
    steps: dict[str, list[str]] = {}
    raw_steps = data.get("next_steps")
    if isinstance(raw_steps, Mapping):
        steps = {str(k): [str(s) for s in v] for k, v in raw_steps.items() if isinstance(v, list)}
    _collect({k: v for k, v in data.items() if k != "next_steps"}, None, entries)
    return entries, steps


def _collect(node: Any, intent: str | None, out: list[KbEntry]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect(item, intent, out)
    elif isinstance(node, Mapping):
        entry = _entry(node, intent)
        if entry is not None:
            out.append(entry)
            return
        for key, value in node.items():
            if isinstance(value, (list, Mapping)) and key != "next_steps":
                # A container key ("kb", "entries") keeps the intent; any other key names one.
                _collect(value, intent if key in _ENTRY_LIST_KEYS else str(key), out)


def _entry(item: Any, intent: str | None) -> KbEntry | None:
    if not isinstance(item, Mapping):
        return None
    answer = item.get("answer") or item.get("text") or item.get("antwort")
    if not isinstance(answer, str) or not answer.strip():
        return None
    title = item.get("title") or item.get("titel") or item.get("question") or answer[:60]
    raw_steps = item.get("next_steps")
    entry_steps = tuple(str(s) for s in raw_steps) if isinstance(raw_steps, list) else ()
    raw_keywords = item.get("keywords")
    keywords = tuple(str(k) for k in raw_keywords) if isinstance(raw_keywords, list) else ()
    return KbEntry(str(item.get("intent") or intent or ""), str(title), answer.strip(), entry_steps, keywords)
