#!/usr/bin/env python3
"""Fine-tuning e5's upper layers on CPU against the shipped frozen-encoder recipe, for safety triage (issue 14).

Variants (data, folds, seeds of `voicebot train intent`): ``frozen`` = the shipped recipe refitted
(``compare_safety_garbled.refit``: a linear head on mean-pooled e5 vectors of ``nlu.encoder_layers`` layers, mixed
with the n-gram model); ``ftK`` = e5's top K layers and the head fine-tuned by ``voicebot.nlu.train._fine_tune`` on
cached lower-layer states (shipped lr / batch / warm-up, ``--epochs``), mixed with the n-gram model the same way.
Each gets 5-fold out-of-fold (OOF) 14-way logits on train (one fine-tune per fold; a line and its spoken versions
on one side), then the shipped chain as in ``compare_safety_garbled``: temperature, per-safety-intent operating
points (miss cost 30), ``sonstiges`` gate, OOF lexicon evidence gate; a sixth fit on all of train scores the
held-out sets (reported only). Cells: safety recall / false-escalation rate (count). Caches and fine-tune logits
(per K, epochs, part) live in ``--work``, so a variant can be trained over several short CPU-lock holds.

``ftK+frozen`` (``--ensemble``): the mean of the two models' calibrated log-probabilities, re-calibrated (one
temperature on the OOF mean), then the same chain: the frozen head's spread on a stranger's crisis line with
the fine-tuned model's sharper ordinary intents.

Decision rule (declared before the first full run): a fine-tuned variant wins when dev recall stays 1.000,
dev_asr recall is not below frozen's, false escalations are lower on dev AND dev_asr, and ood, ood_asr (and
speech, when its transcripts exist) get no more escalations than frozen. dev_asr_variant is reported only.
Nothing shipped changes here.

    # one fine-tune per invocation part (0-4 = folds, all = final fit), each under the CPU lock
    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/compare_intent_finetune.py \
        --train-only --layers 2 --parts 0 1 2
    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/compare_intent_finetune.py --layers 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import compare_intent_models  # noqa: E402
from compare_safety_garbled import refit  # noqa: E402
from compare_safety_scores import SPEECH_CACHE, embed_train, held_out_sets, training_examples  # noqa: E402

from voicebot.config import Settings, load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.escalation import any_safety_keyword  # noqa: E402
from voicebot.eval.intent import macro_f1, per_intent_scores  # noqa: E402
from voicebot.nlu.calibration import calibrate, softmax  # noqa: E402
from voicebot.nlu.evidence import escalated_with_evidence, fit_evidence_gate  # noqa: E402
from voicebot.nlu.intent import E5_TEXT_PREFIX, mix_logits, truncate_layers  # noqa: E402
from voicebot.nlu.safety import SAFETY_LABELS, fit_ood_gate, fit_operating_points  # noqa: E402
from voicebot.nlu.train import _embed, _fine_tune, _fit_head, _fit_ngram, _top_forward  # noqa: E402
from voicebot.nlu.training_data import Example, read_examples  # noqa: E402

PARTS = ("0", "1", "2", "3", "4", "all")
REPORTED = ("dev", "dev_asr", "dev_asr_variant", "dev_asr_espeak", "ood", "ood_asr", "ood_asr_espeak")


@dataclass
class Cell:
    """One held-out set under one variant: safety recall (None without safety lines) and false escalations."""

    recall: float | None
    false: int
    ordinary: int

    def text(self) -> str:
        rate = f"{self.false / max(1, self.ordinary):.3f} ({self.false})"
        return rate if self.recall is None else f"{self.recall:.3f} / {rate}"


@dataclass
class Row:
    """A variant's table row (also written to JSON)."""

    variant: str
    points: dict[str, float]
    ood_gate: float
    evidence_gate: float
    train_oof: Cell
    sets: dict[str, Cell]
    macro_f1: dict[str, float]
    fine_tune_s: list[float] = field(default_factory=list)
    missed: dict[str, list[str]] = field(default_factory=dict)  # safety lines not escalated, per dev set


def held_sets(data: Path) -> dict[str, list[Example]]:
    """The reported sets; "speech" (real out-of-domain speech transcripts) only when its cache exists."""
    held = {n: read_examples(data / f"{n}.jsonl") for n in REPORTED}
    if SPEECH_CACHE.is_file():
        held["speech"] = held_out_sets(data)["speech"]
    return held


def logits_path(work: Path, k: int, epochs: int, part: str) -> Path:
    return work / f"ft{k}_e{epochs}_{part}.npy"


def load_e5(texts: list[str], settings: Settings) -> tuple[Any, Any, list[list[int]]]:
    """The tokenizer, the truncated e5 encoder and ``texts``' token ids, as `voicebot train intent` makes them."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from voicebot.models.registry import resolve_model_dir
    from voicebot.nlu.encoder import E5_FILES

    torch.set_num_threads(settings.nlu.threads)
    source = resolve_model_dir(settings.nlu.encoder, settings.models, E5_FILES)
    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    encoder = truncate_layers(AutoModel.from_pretrained(source, local_files_only=True, add_pooling_layer=False),
                              settings.nlu.encoder_layers)
    ids = tokenizer([E5_TEXT_PREFIX + " ".join(t.split()) for t in texts], truncation=True,
                    max_length=settings.nlu.train_max_length)["input_ids"]
    return tokenizer, encoder, ids


def fine_tune_parts(k: int, epochs: int, parts: list[str], train: list[Example], held: dict[str, list[Example]],
                    folds: np.ndarray, labels: list[str], settings: Settings, work: Path) -> None:
    """Fine-tune the top ``k`` layers once per part; save the raw e5 logits of the part's scored lines.

    Part f (0-4): trained on the other folds, scores fold f. Part "all": trained on all of train, scores every
    held-out line (in ``held``'s order). The top layers go back to e5's weights before every part.
    """
    import torch

    texts = [e.text for e in train] + [e.text for rows in held.values() for e in rows]
    tokenizer, encoder, ids = load_e5(texts, settings)
    nlu = replace(settings.nlu, train_freeze_layers=encoder.config.num_hidden_layers - k, train_epochs=epochs)
    started = time.perf_counter()
    pooled, states = _embed(encoder, ids, tokenizer.pad_token_id, "cpu", nlu.train_freeze_layers)
    print(f"ft{k}: embedded {len(ids)} lines in {time.perf_counter() - started:.0f} s", flush=True)
    top = list(encoder.encoder.layer)[nlu.train_freeze_layers:]
    pristine = [copy.deepcopy(layer.state_dict()) for layer in top]
    gold = np.array([e.label for e in train])
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[g] for g in gold] + [0] * (len(texts) - len(train)))  # held-out rows are never trained on
    timings = work / f"ft{k}_e{epochs}_timings.json"
    seconds = json.loads(timings.read_text()) if timings.is_file() else {}
    for part in parts:
        for layer, state in zip(top, pristine, strict=True):
            layer.load_state_dict(state)
        if part == "all":
            rows, scored = np.arange(len(train)), np.arange(len(train), len(texts))
        else:
            rows, scored = np.flatnonzero(folds != int(part)), np.flatnonzero(folds == int(part))
        head = _fit_head(pooled[rows], gold[rows], labels, nlu.train_seed)
        started = time.perf_counter()
        weight, bias = _fine_tune(encoder, ids, states, y, rows, head, tokenizer.pad_token_id, "cpu", nlu,
                                  lambda m, tag=f"ft{k} part {part}": print(f"  {tag}: {m}", flush=True))
        seconds[part] = round(time.perf_counter() - started, 1)
        with torch.inference_mode():
            out = torch.cat([_top_forward(encoder, ids, states, scored[s : s + 64], tokenizer.pad_token_id, "cpu",
                                          nlu.train_freeze_layers, (weight, bias)) for s in range(0, len(scored), 64)])
        np.save(logits_path(work, k, epochs, part), out.float().numpy().astype(np.float64))
        timings.write_text(json.dumps(seconds))
        print(f"ft{k} part {part}: fine-tuned on {len(rows)} lines in {seconds[part]:.0f} s", flush=True)


def train_pooled(texts: list[str], settings: Settings) -> np.ndarray:
    """Mean-pooled e5 vectors as `voicebot train intent` computes them (``_embed``: length-sorted batches)."""
    tokenizer, encoder, ids = load_e5(texts, settings)
    return _embed(encoder, ids, tokenizer.pad_token_id, "cpu", encoder.config.num_hidden_layers)[0]


def evaluate(name: str, probs: np.ndarray, evidence: np.ndarray, held_probs: dict[str, np.ndarray],
             held_ev: dict[str, np.ndarray], gold: np.ndarray, labels: list[str], hits: np.ndarray,
             held: dict[str, list[Example]], held_hits: dict[str, np.ndarray], settings: Settings) -> Row:
    """The shipped safety chain on OOF probabilities (as compare_safety_garbled), reported on the held-out sets."""
    points = fit_operating_points(probs, gold, labels, hits, miss_cost=30.0)
    thresholds = {s: p.threshold for s, p in points.items()}
    ood_gate = fit_ood_gate(probs, gold, labels, thresholds, hits)
    cost = settings.nlu.safety_evidence_miss_cost
    gate = fit_evidence_gate(probs, gold, labels, thresholds, evidence, cost, ood_gate, hits) if cost > 0 else -1.0

    def cell(e: np.ndarray, g: np.ndarray) -> Cell:
        sf = np.isin(g, SAFETY_LABELS)
        return Cell(float(e[sf].mean()) if sf.any() else None, int(e[~sf].sum()), int((~sf).sum()))

    oof = escalated_with_evidence(probs, labels, thresholds, evidence, gate, ood_gate, hits)
    sets, f1, missed = {}, {}, {}
    for n, rows in held.items():
        g = np.array([e.label for e in rows])
        p = held_probs[n]
        e = escalated_with_evidence(p, labels, thresholds, held_ev[n], gate, ood_gate, held_hits[n])
        sets[n] = cell(e, g)
        missed[n] = [f"{r.text} ({r.label})" for r, x in zip(rows, e, strict=True)
                     if r.label in SAFETY_LABELS and not x]
        if n.startswith("dev"):
            f1[n] = macro_f1(per_intent_scores(list(g), [labels[i] for i in p.argmax(axis=1)], labels))
    return Row(name, thresholds, ood_gate, gate, cell(oof, gold), sets, f1, missed={n: missed[n] for n in REPORTED[:2]})


def wins(row: Row, ref: Row) -> bool:
    """The declared rule (module docstring)."""
    mine, base = row.sets, ref.sets
    return (mine["dev"].recall == 1.0 and (mine["dev_asr"].recall or 0.0) >= (base["dev_asr"].recall or 0.0)
            and mine["dev"].false < base["dev"].false and mine["dev_asr"].false < base["dev_asr"].false
            and all(mine[n].false <= base[n].false for n in ("ood", "ood_asr", "speech") if n in base))


def table(rows: list[Row]) -> str:
    sets = list(rows[0].sets)
    head = ("| variant | fine-tune s (per fit) | points n / s / m, sonstiges gate, evidence gate | train OOF | "
            + " | ".join(sets) + f" | macro-F1 {' / '.join(rows[0].macro_f1)} |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        secs = f"{np.mean(r.fine_tune_s):.0f} ({min(r.fine_tune_s):.0f}-{max(r.fine_tune_s):.0f})" if r.fine_tune_s \
            else "-"
        pts = " / ".join(f"{r.points[s]:.3f}" for s in SAFETY_LABELS)
        lines.append(f"| {r.variant} | {secs} | {pts}, {r.ood_gate:.3f}, {r.evidence_gate:.3f} | {r.train_oof.text()}"
                     f" | " + " | ".join(r.sets[n].text() for n in sets)
                     + f" | {' / '.join(f'{v:.3f}' for v in r.macro_f1.values())} |")
    return "\n".join(lines)


def write_report(rows: list[Row], out: Path, train_lines: int) -> None:
    """The rows as JSON at ``out`` and as a table, each variant judged against the first by the declared rule."""
    out.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    print(f"\n{train_lines} train lines, 5-fold OOF, miss cost 30; JSON: {out}\n")
    print(table(rows))
    for r in rows[1:]:
        print(f"{r.variant}: {'WINS' if wins(r, rows[0]) else 'does not win'} by the declared rule")
    for r in rows:
        print(f"{r.variant} misses: " + "; ".join(f"{n}: {' | '.join(t)}" for n, t in r.missed.items() if t))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, nargs="*", default=[1, 2], help="fine-tuned top layers, one variant each")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS,
                    help="with --train-only: which fine-tunes to run (folds 0-4, all = final fit)")
    ap.add_argument("--train-only", action="store_true", help="run the --parts fine-tunes and stop (no report)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/s10/ft"), help="embedding cache, logits, JSON")
    ap.add_argument("--frozen-embeddings", choices=("cache", "train"), default="cache",
                    help="frozen row: e5 vectors as compare_safety_* cache them, or as `voicebot train intent` embeds")
    ap.add_argument("--staged", nargs="*", choices=("4", "5"), default=[],
                    help="also train on the staged rounds' lines (4: staged_train*, 5: staged5_train*)")
    ap.add_argument("--ensemble", action="store_true", help="also each ftK averaged with the frozen model")
    ap.add_argument("--from-json", type=Path, help="print the table of an earlier run's JSON and stop")
    args = ap.parse_args()
    if args.from_json:
        rows = [Row(**{**r, "train_oof": Cell(**r["train_oof"]), "sets": {n: Cell(**c) for n, c in r["sets"].items()}})
                for r in json.loads(args.from_json.read_text())]
        print(table(rows))
        return 0
    args.work.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    data = REPO / "eval" / "intent"
    train = training_examples(data, "4" in args.staged, "5" in args.staged)
    held = held_sets(data)
    compare_intent_models.CACHE = args.work / "intent_embeddings.npz"  # a scratch cache, not eval/reports
    vectors, x, gold, labels, folds = embed_train(train, held, settings)
    if args.frozen_embeddings == "train":  # `voicebot train intent`'s own pass (length-sorted batches) for frozen
        texts_all = [e.text for e in train] + [e.text for rows in held.values() for e in rows]
        vectors = dict(zip(texts_all, train_pooled(texts_all, settings), strict=True))
        x = np.stack([vectors[e.text] for e in train])
    w, seed = settings.nlu.ngram_weight, settings.nlu.train_seed
    if args.train_only:
        for k in args.layers:
            fine_tune_parts(k, args.epochs, args.parts, train, held, folds, labels, settings, args.work)
        return 0
    for k in args.layers:  # whatever an earlier --train-only run left undone
        todo = [p for p in PARTS if not logits_path(args.work, k, args.epochs, p).is_file()]
        if todo:
            fine_tune_parts(k, args.epochs, todo, train, held, folds, labels, settings, args.work)

    hits = np.array([bool(any_safety_keyword(domain, e.text)) for e in train])
    held_hits = {n: np.array([bool(any_safety_keyword(domain, e.text)) for e in rows]) for n, rows in held.items()}
    texts = {n: [e.text for e in rows] for n, rows in held.items()}
    print("refit: frozen (the shipped recipe)", flush=True)
    m = refit(x, train, gold, labels, folds, np.ones(len(train), dtype=bool), w, seed)
    held_ev = {n: m.lexicon.scores(t) for n, t in texts.items()}  # the final lexicon: the same for every variant
    ngram_held = {n: m.ngram.logits(t) for n, t in texts.items()}  # ... and the final n-gram model
    frozen_probs = {n: softmax(mix_logits(np.stack([vectors[t] for t in ts]) @ m.head[0].T + m.head[1],
                                          ngram_held[n], w), m.temperature) for n, ts in texts.items()}
    rows = [evaluate("frozen", m.probs, m.evidence, frozen_probs, held_ev, gold, labels, hits, held, held_hits,
                     settings)]
    ngram_oof = np.zeros((len(train), len(labels)))
    for f in range(5):  # the fold n-gram models, as refit fits them (same lines, same seed)
        rest, part = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        ngram_oof[part] = _fit_ngram([train[i] for i in rest], labels, seed).logits([train[i].text for i in part])
    for k in args.layers:
        e5 = np.zeros((len(train), len(labels)))
        for f in range(5):
            e5[folds == f] = np.load(logits_path(args.work, k, args.epochs, str(f)))
        logits = mix_logits(e5, ngram_oof, w)
        temperature = calibrate(logits, list(gold), labels).temperature
        final, start, probs = np.load(logits_path(args.work, k, args.epochs, "all")), 0, {}
        for n, ts in texts.items():
            probs[n] = softmax(mix_logits(final[start : start + len(ts)], ngram_held[n], w), temperature)
            start += len(ts)
        row = evaluate(f"ft{k} ({args.epochs} ep)", softmax(logits, temperature), m.evidence, probs, held_ev, gold,
                       labels, hits, held, held_hits, settings)
        timings = json.loads((args.work / f"ft{k}_e{args.epochs}_timings.json").read_text())
        row.fine_tune_s = [float(timings[p]) for p in PARTS if p in timings]
        rows.append(row)
        if args.ensemble:
            both = 0.5 * (np.log(m.probs + 1e-12) + np.log(softmax(logits, temperature) + 1e-12))
            t_both = calibrate(both, list(gold), labels).temperature
            held_both = {n: softmax(0.5 * (np.log(frozen_probs[n] + 1e-12) + np.log(probs[n] + 1e-12)), t_both)
                         for n in texts}
            rows.append(evaluate(f"ft{k}+frozen", softmax(both, t_both), m.evidence, held_both, held_ev, gold,
                                 labels, hits, held, held_hits, settings))
    out = args.work / f"report_e{args.epochs}_{'_'.join(map(str, args.layers))}_{args.frozen_embeddings}.json"
    write_report(rows, out, len(train))
    return 0


if __name__ == "__main__":
    sys.exit(main())
