"""`voicebot train intent`: the n-gram baseline and the e5 intent model.

Data: ``eval/intent/train.jsonl`` (``{"text", "intent"}`` per line) plus
every ``train_asr*.jsonl`` present (the same lines after TTS -> telephone channel
-> Whisper, per voice and noise level, with their recognition errors; ``origin``
names the clean line).
``dev.jsonl`` is never trained or calibrated on: it is the report.

The e5 model is a linear head on mean-pooled multilingual-e5 embeddings (the
pooling e5 was trained with), mixed with the n-gram model. On 2 CPU cores the
encoder stays frozen (``nlu.train_freeze_layers = 12``): fine-tuning its top
layers cost minutes per epoch here and bought nothing once the n-gram model
was mixed in (dev accuracy 0.889 either way), while the frozen encoder needs
one forward pass per line. With fewer frozen layers (a GPU) the layers above
them are fine-tuned on cached lower-layer states.

Calibration (temperature, act thresholds) is fitted on held-out predictions
from *train*, never on dev, so the dev report does not judge its own
thresholds. The same out-of-fold predictions fix each safety intent's
operating point (``voicebot.nlu.safety``: fewest errors with a missed safety line
weighing 30 false escalations; keyword-net lines need no score), stored as ``safety_thresholds`` in
``calibration.json``. Cheap models (n-gram, frozen-encoder head) use 5-fold out-of-fold
predictions on all of train and a final fit on everything; fine-tuning holds
out ``nlu.calibration_share`` of the lines instead. A line and its ASR version
always fall on the same side of a split.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voicebot.config import NluSettings, Settings
from voicebot.nlu.calibration import Calibration
from voicebot.nlu.intent import (
    CALIBRATION_FILE,
    E5_TEXT_PREFIX,
    HEAD_FILE,
    mean_pool,
    mix_logits,
    pad_ids,
    truncate_layers,
)
from voicebot.nlu.oof_calibration import OOF_FILE as OOF_FILE
from voicebot.nlu.oof_calibration import finish_calibration as _finish
from voicebot.nlu.oof_calibration import refit_safety as refit_safety
from voicebot.nlu.oof_calibration import safety_calibration as safety_calibration
from voicebot.nlu.training_data import (
    INTENT_DATA_DIR,
    Example,
    files_sha256,
    fold_assignment,
    read_examples,
    training_files,
)
from voicebot.nlu.training_data import cross_folds as cross_folds
from voicebot.nlu.training_data import split_for_calibration as split_for_calibration

if TYPE_CHECKING:
    from voicebot.nlu.ngram import NgramIntentModel

Progress = Callable[[str], None]


@dataclass
class TrainReport:
    kind: str
    directory: Path
    seconds: float
    calibration: Calibration
    metrics: dict[str, Any] = field(default_factory=dict)



def _fit_ngram(examples: Sequence[Example], labels: Sequence[str], seed: int) -> NgramIntentModel:
    from voicebot.nlu.ngram import NgramIntentModel

    model = NgramIntentModel.fit([e.text for e in examples], [e.label for e in examples], seed=seed)
    if list(model.labels) != list(labels):
        raise ValueError(f"a training split lacks intents: saw {model.labels}, expected {tuple(labels)}")
    return model


def _fit_head(x: np.ndarray, y: Sequence[str] | np.ndarray, labels: Sequence[str],
              seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A multinomial logistic regression on unit-length embeddings, as (weight, bias) of a linear layer.

    Classes weigh alike: ``sonstiges`` has about three times the lines of any other intent (nonsense and
    out-of-domain negatives), and unweighted it pulled borderline lines to itself (issue 14: dev macro-F1
    0.874 -> 0.888 balanced, and stabler safety operating points).
    """
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=10.0, max_iter=3000, random_state=seed, class_weight="balanced").fit(x, list(y))
    if list(model.classes_) != list(labels):
        raise ValueError(f"a training split lacks intents: saw {tuple(model.classes_)}, expected {tuple(labels)}")
    return model.coef_.astype(np.float32), model.intercept_.astype(np.float32)


def _safety_lexicon(examples: Sequence[Example], folds: np.ndarray, directory: Path) -> np.ndarray:
    """Fit and save the safety-evidence lexicon on all lines; its out-of-fold scores (the gate's calibration)."""
    from voicebot.nlu.evidence import SafetyLexicon, lexicon_out_of_fold

    texts, gold = [e.text for e in examples], [e.label for e in examples]
    SafetyLexicon.fit(texts, gold).save(directory)
    return lexicon_out_of_fold(texts, gold, folds)


def train_ngram(examples: Sequence[Example], labels: Sequence[str], directory: Path, nlu: NluSettings,
                meta: dict[str, Any], folds: int = 5, keyword_hits: Sequence[bool] | None = None) -> Calibration:
    """The n-gram model on all of train, calibrated on ``folds``-fold out-of-fold predictions (seconds each)."""
    assignment = fold_assignment(examples, folds, nlu.train_seed)
    logits = np.zeros((len(examples), len(labels)))
    for k in range(folds):
        held = assignment == k
        model = _fit_ngram([e for e, h in zip(examples, held, strict=True) if not h], labels, nlu.train_seed)
        logits[held] = model.logits([e.text for e, h in zip(examples, held, strict=True) if h])
    directory.mkdir(parents=True, exist_ok=True)
    _fit_ngram(examples, labels, nlu.train_seed).save(directory)
    evidence = _safety_lexicon(examples, assignment, directory)
    meta = {**meta, "n_train": len(examples), "calibration": f"{folds}-fold out-of-fold predictions on train"}
    return _finish("ngram", directory, logits, [e.label for e in examples], labels, nlu, meta, keyword_hits,
                   [not e.origin for e in examples], evidence)


# ---- e5 ---------------------------------------------------------------------------------------------------


@contextmanager
def _layers(encoder: Any, first: int, last: int | None = None, states: list[Any] | None = None) -> Iterator[None]:
    """Run only encoder layers ``first:last``; with ``states``, ``states[0]`` stands in for the embeddings.

    Swapping modules (rather than calling layers by hand) keeps the model's
    own attention-mask handling, which differs between transformers versions.
    """
    import torch

    class StandIn(torch.nn.Module):
        def forward(self, *args: Any, **kwargs: Any) -> Any:
            return states[0] if states else None

    layers, embeddings = encoder.encoder.layer, encoder.embeddings
    encoder.encoder.layer = torch.nn.ModuleList(list(layers)[first:last])
    if states is not None:
        encoder.embeddings = StandIn()
    try:
        yield
    finally:
        encoder.encoder.layer, encoder.embeddings = layers, embeddings


def _embed(encoder: Any, ids: Sequence[list[int]], pad_id: int, device: str,
           frozen: int) -> tuple[np.ndarray, list[Any]]:
    """One forward pass: unit-length mean-pooled embeddings, and the states after ``frozen`` layers."""
    import torch

    pooled = np.zeros((len(ids), encoder.config.hidden_size), dtype=np.float32)
    states: list = [None] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths: little padding
    encoder.eval()
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            input_ids, mask = pad_ids([ids[i] for i in chunk], pad_id)
            out = encoder(input_ids=input_ids.to(device), attention_mask=mask.to(device), output_hidden_states=True)
            pooled[chunk] = mean_pool(out.last_hidden_state, mask.to(device)).float().cpu().numpy()
            for row, i in enumerate(chunk):
                states[i] = out.hidden_states[frozen][row, : len(ids[i])].clone()
    return pooled, states


def _top_forward(encoder: Any, ids: Sequence[list[int]], states: Sequence[Any], rows: Any, pad_id: int,
                 device: str, frozen: int, head: Sequence[Any]) -> Any:
    """Logits of ``rows`` through the layers above ``frozen``, from their cached states."""
    import torch

    input_ids, mask = pad_ids([ids[i] for i in rows], pad_id)
    cached = torch.zeros((len(rows), input_ids.shape[1], states[rows[0]].shape[-1]), device=device)
    for r, i in enumerate(rows):
        cached[r, : len(ids[i])] = states[i]
    holder = [cached]
    with _layers(encoder, frozen, None, holder):
        hidden = encoder(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    return torch.nn.functional.linear(mean_pool(hidden, mask.to(device)), *head)


def _fine_tune(encoder: Any, ids: Sequence[list[int]], states: Sequence[Any], y: np.ndarray, rows: np.ndarray,
               head: tuple[np.ndarray, np.ndarray], pad_id: int, device: str, nlu: NluSettings,
               progress: Progress) -> tuple[Any, Any]:
    """Train the layers above ``nlu.train_freeze_layers`` and the head (started from the linear probe)."""
    import torch

    torch.manual_seed(nlu.train_seed)
    weight, bias = (torch.nn.Parameter(torch.tensor(t, device=device)) for t in head)
    for layer in list(encoder.encoder.layer)[: nlu.train_freeze_layers]:
        layer.requires_grad_(False)
    encoder.embeddings.requires_grad_(False)
    body = [p for p in encoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": body, "lr": nlu.train_learning_rate},
                                   {"params": [weight, bias], "lr": nlu.train_learning_rate * 20}], weight_decay=0.01)
    total = max(1, nlu.train_epochs * math.ceil(len(rows) / nlu.train_batch_size))
    warmup = max(1, total // 16)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    target = torch.tensor(y, device=device)
    rng = np.random.default_rng(nlu.train_seed)
    started = time.perf_counter()
    for epoch in range(nlu.train_epochs):
        encoder.train()
        losses = []
        order = rows[rng.permutation(len(rows))]
        for start in range(0, len(order), nlu.train_batch_size):
            chunk = order[start : start + nlu.train_batch_size]
            logits = _top_forward(encoder, ids, states, chunk, pad_id, device, nlu.train_freeze_layers, (weight, bias))
            loss = torch.nn.functional.cross_entropy(logits, target[chunk])
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        progress(f"e5: epoch {epoch + 1}/{nlu.train_epochs} loss {np.mean(losses):.4f} "
                 f"({time.perf_counter() - started:.0f} s)")
    encoder.eval()
    return weight.detach(), bias.detach()


def train_e5(examples: Sequence[Example], labels: Sequence[str], directory: Path, encoder_dir: Path,
             encoder_ref: str, nlu: NluSettings, meta: dict[str, Any], progress: Progress,
             keyword_hits: Sequence[bool] | None = None) -> Calibration:
    """Train the e5 head (and, unless all layers are frozen, the upper layers), mix in n-grams, calibrate, save."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(nlu.threads)
    tokenizer = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
    encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True, add_pooling_layer=False)
    encoder = truncate_layers(encoder, nlu.encoder_layers).to(device)
    layers = encoder.config.num_hidden_layers
    frozen = min(max(nlu.train_freeze_layers, 0), layers)
    ids = tokenizer([E5_TEXT_PREFIX + " ".join(e.text.split()) for e in examples], truncation=True,
                    max_length=nlu.train_max_length)["input_ids"]
    gold = np.array([e.label for e in examples])
    started = time.perf_counter()
    pooled, states = _embed(encoder, ids, tokenizer.pad_token_id, device, frozen)
    progress(f"e5: embedded {len(ids)} lines in {time.perf_counter() - started:.0f} s on {device}")
    directory.mkdir(parents=True, exist_ok=True)
    logits = np.zeros((len(examples), len(labels)))
    if frozen >= layers:
        folds = fold_assignment(examples, 5, nlu.train_seed)
        for k in range(5):  # out-of-fold: every line is scored by models that never saw it
            held, rest = np.flatnonzero(folds == k), np.flatnonzero(folds != k)
            head = _fit_head(pooled[rest], gold[rest], labels, nlu.train_seed)
            ngram = _fit_ngram([examples[int(i)] for i in rest], labels, nlu.train_seed)
            logits[held] = mix_logits(pooled[held] @ head[0].T + head[1],
                                      ngram.logits([examples[int(i)].text for i in held]), nlu.ngram_weight)
        weight, bias = (torch.tensor(t) for t in _fit_head(pooled, gold, labels, nlu.train_seed))
        evidence = _safety_lexicon(examples, folds, directory)
        ngram, calib = _fit_ngram(examples, labels, nlu.train_seed), np.arange(len(examples))
        how = "5-fold out-of-fold predictions on train"
    else:
        folds = fold_assignment(examples, max(2, round(1 / nlu.calibration_share)), nlu.train_seed)
        calib, rest = np.flatnonzero(folds == 0), np.flatnonzero(folds != 0)
        head = _fit_head(pooled[rest], gold[rest], labels, nlu.train_seed)
        index = {label: i for i, label in enumerate(labels)}
        y = np.array([index[g] for g in gold])
        weight, bias = _fine_tune(encoder, ids, states, y, rest, head, tokenizer.pad_token_id, device, nlu, progress)
        with torch.inference_mode():
            e5 = torch.cat([_top_forward(encoder, ids, states, calib[s : s + 64], tokenizer.pad_token_id, device,
                                         frozen, (weight, bias)) for s in range(0, len(calib), 64)])
        ngram = _fit_ngram([examples[int(i)] for i in rest], labels, nlu.train_seed)
        logits = mix_logits(e5.float().cpu().numpy().astype(np.float64),
                            ngram.logits([examples[int(i)].text for i in calib]), nlu.ngram_weight)
        encoder.to("cpu").save_pretrained(directory)  # the fine-tuned encoder travels with the head
        tokenizer.save_pretrained(directory)
        how = f"held-out {nlu.calibration_share:.0%} of train (+ its ASR lines)"
        evidence = _safety_lexicon(examples, np.where(folds == 0, 0, 1), directory)[calib]
    save_file({"weight": weight.float().cpu().contiguous(), "bias": bias.float().cpu().contiguous()},
              str(directory / HEAD_FILE))
    if nlu.ngram_weight > 0:
        ngram.save(directory)
    meta = {**meta, "n_train": len(examples), "calibration": how, "encoder": encoder_ref,
            "text_prefix": E5_TEXT_PREFIX, "max_length": nlu.train_max_length, "freeze_layers": frozen,
            "ngram_weight": nlu.ngram_weight, "encoder_layers": layers, "device": device}
    if frozen < layers:
        meta.update(epochs=nlu.train_epochs, batch_size=nlu.train_batch_size, learning_rate=nlu.train_learning_rate)
    hits = None if keyword_hits is None else [bool(keyword_hits[int(i)]) for i in calib]
    return _finish("e5", directory, logits, gold[calib], labels, nlu, meta, hits,
                   [not examples[int(i)].origin for i in calib], evidence)



def stale_reason(directory: Path, data_dir: Path | None = None, keyword_net: str | None = None) -> str:
    """Why the artefact in ``directory`` must be retrained ("" when it is current).

    Missing, trained on other data (``train_sha256``), fitted with another
    safety keyword net than ``keyword_net`` (``voicebot.dialog.escalation.keyword_net_digest``
    of the configured domain; None: not checked), or from before the safety
    operating points existed.
    """
    path = directory / CALIBRATION_FILE
    if not path.is_file():
        return "not trained"
    extra = Calibration.load(path).extra
    if extra.get("train_sha256") != files_sha256([p for p in training_files(data_dir) if p.is_file()]):
        return "training data changed"
    if keyword_net is not None and extra.get("keyword_net_sha256") != keyword_net:
        return "the domain's safety keyword nets changed (the operating points leave their lines out)"
    if "safety_thresholds" not in extra:
        return "no safety operating points"
    if "safety_evidence_gate" not in extra:
        return "no safety evidence gate"
    return ""


def train_intent_models(settings: Settings, kinds: Sequence[str] = ("ngram", "e5"), data_dir: Path | None = None,
                        progress: Progress = print) -> list[TrainReport]:
    """Train the requested intent models into ``settings.models.dir`` and evaluate each on dev."""
    from voicebot.eval.intent import evaluate_intent
    from voicebot.models.registry import resolve_model_dir
    from voicebot.nlu.encoder import E5_FILES
    from voicebot.nlu.intent import intent_model_dir, load_intent_artefact

    data_dir = data_dir or INTENT_DATA_DIR
    train_file, asr_file, dev_file = data_dir / "train.jsonl", data_dir / "train_asr.jsonl", data_dir / "dev.jsonl"
    if not train_file.is_file():
        raise FileNotFoundError(f"intent training data not found: {train_file}")
    clean = read_examples(train_file)
    # train_asr.jsonl and its siblings (other voices, line noise): train_asr_variant.jsonl, ...
    asr_files = training_files(data_dir)[1:]
    augmented = [e for path in asr_files for e in read_examples(path)]
    if not augmented:
        progress(f"note: {asr_file} not found; training on typed lines only (run scripts/make_asr_augmented.py)")
    labels = sorted({e.label for e in clean})
    stray = sorted({e.label for e in augmented} - set(labels))
    if stray:
        raise ValueError(f"{data_dir}/train_asr*.jsonl: intents not in {train_file.name}: {', '.join(stray)}")
    examples = [replace(e, origin="") for e in clean] + [replace(e, origin=e.origin or e.text) for e in augmented]
    used = [train_file, *asr_files]
    meta = {"train_sha256": files_sha256(used), "data_files": [p.name for p in used]}
    dev = read_examples(dev_file) if dev_file.is_file() else []
    domain = None
    try:
        from voicebot.dialog.domain import load_domain

        domain = load_domain(settings.dialog.domain)
    except (OSError, ValueError) as exc:
        progress(f"note: domain not loaded ({exc}); dev safety numbers use the classifier only")

    hits = None
    if domain is not None:
        from voicebot.dialog.escalation import any_safety_keyword, keyword_net_digest

        hits = [bool(any_safety_keyword(domain, e.text)) for e in examples]
        meta["keyword_net_sha256"] = keyword_net_digest(domain)
    reports = []
    for kind in kinds:
        directory = intent_model_dir(kind, settings)
        started = time.perf_counter()
        progress(f"training {kind} on {len(examples)} lines -> {directory}")
        if kind == "ngram":
            train_ngram(examples, labels, directory, settings.nlu, meta, keyword_hits=hits)
        elif kind == "e5":
            encoder_dir = resolve_model_dir(settings.nlu.encoder, settings.models, E5_FILES)
            train_e5(examples, labels, directory, encoder_dir, settings.nlu.encoder, settings.nlu, meta, progress,
                     keyword_hits=hits)
        else:
            raise ValueError(f"unknown intent model kind {kind!r} (ngram or e5)")
        seconds = time.perf_counter() - started
        metrics: dict[str, Any] = {"train_seconds": round(seconds, 1)}
        if dev:
            result = evaluate_intent(load_intent_artefact(directory, settings), [(e.text, e.label) for e in dev],
                                     domain)
            metrics["dev"] = {k: result[k] for k in ("n", "accuracy", "macro_f1", "ece", "coverage",
                                                     "selective_accuracy", "safety_recall", "false_escalation_rate",
                                                     "model_safety_recall", "latency_ms")}
        calibration = Calibration.load(directory / CALIBRATION_FILE)
        calibration = replace(calibration, extra={**calibration.extra, "metrics": metrics})
        calibration.save(directory / CALIBRATION_FILE)
        reports.append(TrainReport(kind, directory, seconds, calibration, metrics))
        dev_line = (f"; dev macro-F1 {metrics['dev']['macro_f1']:.3f}, ECE {metrics['dev']['ece']:.3f}, coverage "
                    f"{metrics['dev']['coverage']:.3f} at {metrics['dev']['selective_accuracy']:.3f}" if dev else "")
        progress(f"{kind}: trained in {seconds:.1f} s; temperature {calibration.temperature:.3f}, "
                 f"pooled act threshold {calibration.default_act_threshold:.3f}{dev_line}")
    return reports
