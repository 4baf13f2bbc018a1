"""The intent classifier engine and its act/confirm/re-ask decision.

An ``IntentClassifier`` is a backend that turns texts into scores (the e5
model: a linear head on mean-pooled multilingual-e5 embeddings mixed with the
character-n-gram model; or the n-gram model alone, the fallback) plus the
``Calibration`` fitted on held-out data (temperature, per-intent thresholds).
Both live in one artefact directory written by `voicebot train intent`:
``models/store/intent-e5/`` or ``models/store/intent-ngram/``, each with a
``calibration.json`` that also says which backend it is.

Like every engine it is a plain synchronous class with ``load()``; a call's
stage runs ``predict`` in an executor thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voicebot.config import Settings
from voicebot.frames import Intent
from voicebot.models.registry import ModelNotProvisionedError
from voicebot.nlu.calibration import Calibration, softmax

if TYPE_CHECKING:
    from voicebot.nlu.ngram import NgramIntentModel

log = logging.getLogger(__name__)

CALIBRATION_FILE = "calibration.json"
HEAD_FILE = "head.safetensors"
E5_TEXT_PREFIX = "query: "  # e5 was trained with this prefix on short queries


class IntentModelNotTrainedError(ModelNotProvisionedError):
    """The trained intent artefact is missing: it is made by `voicebot train intent`, not pulled."""

    def __init__(self, name: str, path: Path) -> None:
        RuntimeError.__init__(
            self, f"intent model '{name}' is not trained at {path}: run `voicebot train intent` first"
        )
        self.name = name
        self.path = path


@dataclass(frozen=True)
class IntentPrediction:
    """One classified utterance: calibrated probabilities, best first.

    ``ranking`` holds every intent with its probability, sorted; ``margin`` is
    top-1 minus top-2. ``decision`` is the classifier's act/confirm/re-ask
    verdict from its per-intent thresholds ("" when made without a classifier,
    e.g. in tests; the policy then applies the domain's default thresholds).
    """

    label: str
    confidence: float
    ranking: tuple[tuple[str, float], ...]
    margin: float
    decision: str = ""
    model: str = ""
    # Each safety intent's operating point from the classifier's calibration (empty without
    # one); the policy escalates a safety intent whose probability reaches it.
    safety_thresholds: tuple[tuple[str, float], ...] = ()
    # The out-of-domain gate from the same calibration (``voicebot.nlu.safety.fit_ood_gate``): where
    # ``sonstiges`` has at least this probability a safety runner-up does not escalate (1.01: never gated).
    safety_ood_gate: float = 1.01
    # Safety evidence from outside the softmax (``voicebot.nlu.evidence``: the lexicon learned from train), per
    # safety intent, and the gate a safety *runner-up* must reach with it (fitted out of fold; -1: never gated).
    safety_evidence: tuple[tuple[str, float], ...] = ()
    safety_evidence_gate: float = -1.0

    def probability(self, label: str) -> float:
        for name, p in self.ranking:
            if name == label:
                return p
        return 0.0

    def runners_up(self, n: int = 3) -> tuple[tuple[str, float], ...]:
        return self.ranking[1 : 1 + n]

    def to_intent(self, slots: dict[str, str] | None = None, alternatives: int = 3) -> Intent:
        """The frame the pipeline emits for this prediction."""
        return Intent(self.label, self.confidence, self.runners_up(alternatives), dict(slots or {}))

    @classmethod
    def from_probabilities(
        cls, labels: tuple[str, ...] | list[str], probs: np.ndarray, decision: str = "", model: str = ""
    ) -> IntentPrediction:
        order = np.argsort(-probs, kind="stable")
        ranking = tuple((labels[i], float(probs[i])) for i in order)
        second = ranking[1][1] if len(ranking) > 1 else 0.0
        return cls(ranking[0][0], ranking[0][1], ranking, ranking[0][1] - second, decision, model)


class IntentBackend(Protocol):
    """Texts in, uncalibrated logits out (columns in ``labels`` order)."""

    name: str
    labels: tuple[str, ...]

    def logits(self, texts: list[str]) -> np.ndarray: ...


def pad_ids(ids: Sequence[list[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-pad token id lists into a batch: ``(input_ids, attention_mask)`` tensors."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[row, : len(x)] = 1
    return input_ids, mask


def mean_pool(hidden: Any, mask: Any) -> Any:
    """e5's sentence embedding: the mean of the token states under the mask, L2-normalized."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, dim=-1)


def truncate_layers(encoder: Any, layers: int) -> Any:
    """Keep the lower ``layers`` transformer layers (0 or more than there are: keep all)."""
    import torch

    if 0 < layers < encoder.config.num_hidden_layers:
        encoder.encoder.layer = torch.nn.ModuleList(list(encoder.encoder.layer)[:layers])
        encoder.config.num_hidden_layers = layers
    return encoder


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def mix_logits(e5: np.ndarray, ngram: np.ndarray | None, ngram_weight: float) -> np.ndarray:
    """Weighted sum of the two models' log-probabilities (the scores temperature scaling calibrates)."""
    if ngram is None or ngram_weight <= 0:
        return log_softmax(e5)
    return (1.0 - ngram_weight) * log_softmax(e5) + ngram_weight * log_softmax(ngram)


class E5IntentBackend:
    """Mean-pooled multilingual-e5 embeddings, a linear head, and the n-gram model mixed in.

    The artefact directory holds ``head.safetensors`` (and the n-gram files);
    the encoder is the provisioned e5 checkpoint named in ``calibration.json``,
    or a fine-tuned copy saved in the directory itself (``config.json`` there).
    """

    name = "e5"

    def __init__(self, directory: Path, calibration: Calibration, settings: Settings, device: str = "cpu") -> None:
        self.directory = directory
        self.extra = calibration.extra
        self.settings = settings
        self.device = device
        self.labels: tuple[str, ...] = calibration.labels
        self.ngram_weight = float(self.extra.get("ngram_weight", 0.0))
        self.encoder: Any = None
        self.tokenizer: Any = None
        self.head: tuple[Any, ...] = ()
        self.ngram: NgramIntentModel | None = None
        # One model object serves all calls; concurrent forward passes on 2 cores only thrash.
        self._lock = threading.Lock()

    def encoder_dir(self) -> Path:
        from voicebot.models.registry import resolve_model_dir
        from voicebot.nlu.encoder import E5_FILES

        if (self.directory / "config.json").is_file():
            return self.directory
        return resolve_model_dir(str(self.extra.get("encoder", self.settings.nlu.encoder)), self.settings.models,
                                 E5_FILES)

    def load(self) -> E5IntentBackend:
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        if self.device == "cpu":
            torch.set_num_threads(self.settings.nlu.threads)
        source = self.encoder_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
        encoder = AutoModel.from_pretrained(source, local_files_only=True, add_pooling_layer=False).eval()
        encoder = truncate_layers(encoder, int(self.extra.get("encoder_layers", 0)))
        if self.settings.nlu.quantize and self.device == "cpu":
            encoder = torch.ao.quantization.quantize_dynamic(encoder, {torch.nn.Linear}, dtype=torch.qint8)
        self.encoder = encoder.to(self.device)
        head = load_file(str(self.directory / HEAD_FILE))
        self.head = (head["weight"].to(self.device), head["bias"].to(self.device))
        if self.head[0].shape[0] != len(self.labels):
            rows = self.head[0].shape[0]
            raise ValueError(f"{self.directory / HEAD_FILE}: {rows} rows for {len(self.labels)} labels")
        if self.ngram_weight > 0:
            from voicebot.nlu.ngram import NgramIntentModel

            self.ngram = NgramIntentModel.load(self.directory)
        return self

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        if self.tokenizer is None:
            raise RuntimeError("E5IntentBackend.load() has not been called")
        max_length = int(self.extra.get("max_length", 64))
        return self.tokenizer([E5_TEXT_PREFIX + " ".join(t.split()) for t in texts], truncation=True,
                              max_length=max_length)["input_ids"]

    def e5_logits(self, texts: list[str], batch: int = 64) -> np.ndarray:
        import torch

        if self.encoder is None or self.tokenizer is None:
            raise RuntimeError("E5IntentBackend.load() has not been called")
        ids = self.token_ids(texts)
        out = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(ids), batch):
                input_ids, mask = pad_ids(ids[start : start + batch], self.tokenizer.pad_token_id)
                input_ids, mask = input_ids.to(self.device), mask.to(self.device)
                pooled = mean_pool(self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask)
                out.append(torch.nn.functional.linear(pooled, *self.head).float().cpu())
        return torch.cat(out).numpy().astype(np.float64)

    def logits(self, texts: list[str]) -> np.ndarray:
        ngram = self.ngram.logits(texts) if self.ngram is not None else None
        return mix_logits(self.e5_logits(texts), ngram, self.ngram_weight)


class NgramBackend:
    """Adapter giving the n-gram model the backend interface."""

    name = "ngram"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.labels: tuple[str, ...] = ()
        self.model: NgramIntentModel | None = None

    def load(self) -> NgramBackend:
        from voicebot.nlu.ngram import NgramIntentModel

        self.model = NgramIntentModel.load(self.directory)
        self.labels = self.model.labels
        return self

    def logits(self, texts: list[str]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("NgramBackend.load() has not been called")
        return self.model.logits(texts)


def decide(prediction: IntentPrediction, calibration: Calibration) -> str:
    """``act``, ``confirm`` or ``reask`` for ``prediction`` under ``calibration``'s thresholds."""
    return calibration.decide(prediction.label, prediction.confidence, prediction.margin)


class IntentClassifier:
    """A backend plus its calibration: ``predict(text) -> IntentPrediction``, ``decide(prediction)``."""

    def __init__(self, backend: IntentBackend, calibration: Calibration, directory: Path | None = None) -> None:
        from voicebot.nlu.evidence import LEXICON_FILE, SafetyLexicon

        if tuple(backend.labels) and tuple(backend.labels) != tuple(calibration.labels):
            raise ValueError(
                f"intent model labels {backend.labels} differ from its calibration's {calibration.labels}"
            )
        self.backend = backend
        self.calibration = calibration
        self.directory = directory
        # The evidence gate needs the lexicon it was fitted with; an artefact without one is never gated.
        self.lexicon: SafetyLexicon | None = None
        self.evidence_gate = float(calibration.extra.get("safety_evidence_gate", -1.0))
        if directory is not None and (directory / LEXICON_FILE).is_file():
            self.lexicon = SafetyLexicon.load(directory)
        elif self.evidence_gate > -1.0:
            raise ValueError(f"{directory}: calibration has a safety evidence gate but no {LEXICON_FILE}")

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def labels(self) -> tuple[str, ...]:
        return self.calibration.labels

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Calibrated probabilities, shape ``(len(texts), len(labels))``."""
        return softmax(self.backend.logits(texts), self.calibration.temperature)

    def predict_batch(self, texts: list[str]) -> list[IntentPrediction]:
        if not texts:
            return []
        probs = self.probabilities(texts)
        safety = tuple((str(k), float(v)) for k, v in self.calibration.extra.get("safety_thresholds", {}).items())
        gate = float(self.calibration.extra.get("safety_ood_gate", 1.01))
        evidence = self.lexicon.scores(texts) if self.lexicon is not None else None
        predictions = []
        for i, row in enumerate(probs):
            p = IntentPrediction.from_probabilities(self.labels, row, model=self.name)
            backing = () if evidence is None else tuple(
                (label, float(v)) for label, v in zip(self.lexicon.labels, evidence[i], strict=True))  # type: ignore[union-attr]
            predictions.append(IntentPrediction(p.label, p.confidence, p.ranking, p.margin, self.decide(p), self.name,
                                                safety, gate, backing, self.evidence_gate if backing else -1.0))
        return predictions

    def predict(self, text: str) -> IntentPrediction:
        return self.predict_batch([text])[0]

    def decide(self, prediction: IntentPrediction) -> str:
        return decide(prediction, self.calibration)


def intent_model_dir(reference: str, settings: Settings) -> Path:
    """A trained-artefact reference ("intent-e5", "e5", "ngram" or a path) as a directory."""
    aliases = {"e5": settings.nlu.intent_model, "ngram": settings.nlu.fallback}
    reference = aliases.get(reference, reference)
    candidate = Path(reference).expanduser()
    if "/" in reference or candidate.is_dir():
        return candidate
    return settings.models.dir / reference


def load_intent_artefact(directory: Path, settings: Settings | None = None, device: str = "cpu") -> IntentClassifier:
    """Load one trained artefact directory (its ``calibration.json`` says which backend)."""
    calibration_path = directory / CALIBRATION_FILE
    if not calibration_path.is_file():
        raise IntentModelNotTrainedError(directory.name, directory)
    calibration = Calibration.load(calibration_path)
    kind = calibration.extra.get("kind", "e5")
    backend: E5IntentBackend | NgramBackend
    if kind == "ngram":
        backend = NgramBackend(directory).load()
    elif kind == "e5":
        backend = E5IntentBackend(directory, calibration, settings or Settings(), device).load()
    else:
        raise ValueError(f"{calibration_path}: unknown intent model kind {kind!r}")
    return IntentClassifier(backend, calibration, directory)


def load_intent_classifier(settings: Settings, model: str | None = None) -> IntentClassifier:
    """The configured intent classifier, loaded.

    ``model`` ("e5", "ngram", an artefact name or a path) picks one explicitly
    and must exist. Without it, ``settings.nlu.intent_model`` is used, falling
    back to ``settings.nlu.fallback`` with a warning when it is not trained
    (a fresh checkout before `voicebot train intent` finished for e5).
    """
    device = settings.nlu.device
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if model is not None:
        return load_intent_artefact(intent_model_dir(model, settings), settings, device)
    primary = intent_model_dir(settings.nlu.intent_model, settings)
    if (primary / CALIBRATION_FILE).is_file():
        return load_intent_artefact(primary, settings, device)
    fallback = intent_model_dir(settings.nlu.fallback, settings)
    if settings.nlu.fallback and (fallback / CALIBRATION_FILE).is_file():
        log.warning("intent model %s is not trained; using the fallback %s", primary, fallback)
        return load_intent_artefact(fallback, settings, device)
    raise IntentModelNotTrainedError(settings.nlu.intent_model, primary)
