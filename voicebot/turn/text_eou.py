"""German text end-of-utterance model: P(the partial transcript is a finished turn).

German syntax says a lot about whether a sentence is over: the finite verb of a subordinate
clause, participles, infinitives and separable particles all come last ("..., weil mein
Router seit gestern nicht mehr *funktioniert*"). The model is a logistic regression over
features of the transcript's end (last words, their suffixes, word bigrams/trigrams at the
end, open conjunctions earlier on, length), trained on complete utterances (positives) against
their own prefixes cut at word boundaries (negatives).

Training data (committed, small): ``eval/turn/callers_de.jsonl`` (caller utterances, typed and as
whisper heard them: a fixed snapshot of the intent training lines, so intent data can grow without
moving this model) and ``eval/turn/sentences_de.jsonl`` (general German written for this). The
German turn-end evaluation's transcripts (``../shared/data``) are never trained on. Training takes
seconds, so ``load`` trains and caches the model in the models dir, keyed by the data's hash;
nothing large is committed.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicebot.config import REPO_ROOT
from voicebot.turn.cues import CONJUNCTIONS, tokens

# Its own list, not eval/intent/train*.jsonl: more intent lines (hard negatives, nonsense) shifted
# P(complete) for finished verb-final sentences, so the intent data must not move this model.
TRAIN_FILES = (
    REPO_ROOT / "eval" / "turn" / "callers_de.jsonl",
    REPO_ROOT / "eval" / "turn" / "sentences_de.jsonl",
)
CACHE_NAME = "text-eou-de"
SEED = 7
MAX_PREFIXES = 4  # negatives per sentence: long utterances would otherwise swamp the positives
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A subordinating conjunction opens a clause whose verb must still come.
_SUBORDINATORS = frozenset("weil dass daß wenn ob obwohl damit bevor nachdem falls sobald während".split())


def tail_features(text: str) -> list[str]:
    """The features of a (normalised) partial: what its end looks like."""
    words = tokens(text)
    if not words:
        return ["empty"]
    w1 = words[-1]
    w2 = words[-2] if len(words) > 1 else "<s>"
    w3 = words[-3] if len(words) > 2 else "<s>"
    n = len(words)
    feats = [f"w1={w1}", f"w2={w2}", f"b={w2}_{w1}", f"t={w3}_{w2}_{w1}", f"n={min(n, 8) if n < 9 else '9+'}"]
    feats += [f"s1:{w1[-k:]}" for k in (1, 2, 3, 4) if len(w1) >= k]
    feats += [f"s2:{w2[-k:]}" for k in (2, 3) if len(w2) >= k]
    if w1.isdigit():
        feats.append("w1=<digit>")
    # an open subordinate clause: a subordinator after the last finite-verb-looking word is a weak hint
    for i, w in enumerate(words[:-1]):
        if w in _SUBORDINATORS:
            feats.append(f"sub@{min(n - 1 - i, 6)}")
        if w in CONJUNCTIONS:
            feats.append("conj")
    feats += [f"bow={w}" for w in set(words[-6:])]
    return feats


@dataclass(frozen=True)
class Example:
    text: str
    complete: bool


def sentences_of(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def make_examples(utterances: Iterable[str], seed: int = SEED) -> list[Example]:
    """Whole utterances and each of their sentence ends are complete; word-boundary prefixes are not."""
    rng = random.Random(seed)
    out: list[Example] = []
    for utterance in utterances:
        sentences = sentences_of(utterance)
        done: list[str] = []
        for sentence in sentences:
            words = sentence.split()
            prefixes = [" ".join(done + words[:k]) for k in range(1, len(words))]
            for prefix in rng.sample(prefixes, min(MAX_PREFIXES, len(prefixes))):
                out.append(Example(prefix, False))
            done += words
            out.append(Example(" ".join(done), True))
    return out


def read_utterances(files: Iterable[Path] = TRAIN_FILES) -> list[str]:
    texts = []
    for path in files:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.loads(line)["text"])
    return texts


def _data_key(files: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    digest.update(Path(__file__).read_bytes())  # feature code changes retrain too
    return digest.hexdigest()[:16]


class TextTurnModel:
    """``TextTurnModel.load(models_dir)``; ``.predict(text) -> float`` (P(turn complete))."""

    def __init__(self, vectorizer: object, classifier: object, key: str = "") -> None:
        self.vectorizer = vectorizer
        self.classifier = classifier
        self.key = key

    @classmethod
    def train(cls, examples: list[Example], c: float = 4.0) -> TextTurnModel:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(analyzer=tail_features, sublinear_tf=True, min_df=1)
        x = vectorizer.fit_transform([e.text for e in examples])
        y = np.array([e.complete for e in examples], dtype=int)
        classifier = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        classifier.fit(x, y)
        return cls(vectorizer, classifier)

    @classmethod
    def load(cls, models_dir: Path | None = None, files: tuple[Path, ...] = TRAIN_FILES) -> TextTurnModel:
        """Train on the committed data (seconds), or load the cached model trained on the same data."""
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"text end-of-utterance training data missing: {', '.join(missing)}")
        key = _data_key(files)
        cache = models_dir / CACHE_NAME / f"model-{key}.pkl" if models_dir else None
        if cache is not None and cache.is_file():
            with cache.open("rb") as fh:
                model: TextTurnModel = pickle.load(fh)  # written by this class below, never downloaded
            return model
        model = cls.train(make_examples(read_utterances(files)))
        model.key = key
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            for old in cache.parent.glob("model-*.pkl"):
                old.unlink()
            tmp = cache.with_suffix(".partial")
            with tmp.open("wb") as fh:
                pickle.dump(model, fh)
            tmp.replace(cache)
        return model

    def predict(self, text: str) -> float:
        """Probability that ``text`` (a partial or final transcript) is a finished turn."""
        x = self.vectorizer.transform([text])  # type: ignore[attr-defined]
        return float(self.classifier.predict_proba(x)[0, 1])  # type: ignore[attr-defined]

    def predict_many(self, texts: list[str]) -> list[float]:
        x = self.vectorizer.transform(texts)  # type: ignore[attr-defined]
        return [float(p) for p in self.classifier.predict_proba(x)[:, 1]]  # type: ignore[attr-defined]
