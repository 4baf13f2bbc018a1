#!/usr/bin/env python3
"""Which e5 layers the frozen intent head reads (issue 14, item 4): the last layer against several, side by side.

The shipped head is a logistic regression on the mean-pooled output of e5's 10th layer (``nlu.encoder_layers``),
mixed with the n-gram model. A linear probe often separates better on lower layers too: they keep more of the
words ("verwählt" against "gequält") where the top layer keeps the gist. Each variant here pools the named layers
of the *same* forward pass (no extra cost at inference), each mean-pooled and scaled to unit length, concatenated,
and runs the shipped chain on it as ``scripts/compare_intent_finetune.py`` does: 5-fold out-of-fold head + n-gram
mix, temperature, per-safety-intent operating points (miss cost 30), ``sonstiges`` gate, lexicon gate; a sixth fit
on all of train scores the held-out sets. Cells: safety recall / false-escalation rate (count).

Decision rule (declared before the first run, as compare_intent_finetune's): a variant wins when dev recall stays
1.000, dev_asr recall is not below the last layer's, false escalations are lower on dev AND dev_asr, and ood and
ood_asr get no more escalations.

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/compare_intent_layers.py --variants 10 6,10 4,7,10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from compare_intent_finetune import evaluate, held_sets, load_e5, write_report  # noqa: E402
from compare_safety_garbled import refit  # noqa: E402
from compare_safety_scores import training_examples  # noqa: E402

from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.escalation import any_safety_keyword  # noqa: E402
from voicebot.nlu.calibration import softmax  # noqa: E402
from voicebot.nlu.intent import mean_pool, mix_logits, pad_ids  # noqa: E402
from voicebot.nlu.training_data import fold_assignment  # noqa: E402


def pooled_layers(texts: list[str], layers: list[int], settings, cache: Path) -> dict[int, np.ndarray]:  # type: ignore[no-untyped-def]
    """Unit-length mean-pooled outputs of ``layers`` (1-based) for ``texts``, one forward pass, cached."""
    import torch

    if cache.is_file():
        with np.load(cache) as z:
            if list(z["layers"]) == layers and int(z["n"]) == len(texts):
                return {k: z[f"l{k}"] for k in layers}
    tokenizer, encoder, ids = load_e5(texts, settings)
    out = {k: np.zeros((len(ids), encoder.config.hidden_size), dtype=np.float32) for k in layers}
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    encoder.eval()
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            chunk = order[start : start + 64]
            input_ids, mask = pad_ids([ids[i] for i in chunk], tokenizer.pad_token_id)
            hidden = encoder(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states
            for k in layers:
                out[k][chunk] = mean_pool(hidden[k], mask).float().numpy()  # unit length already
    np.savez(cache, layers=np.array(layers), n=len(texts), **{f"l{k}": v for k, v in out.items()})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=["10", "6,10", "4,7,10"],
                    help="comma-separated 1-based e5 layers per variant; the first is the reference")
    ap.add_argument("--work", type=Path, default=Path("/tmp/s14/layers"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    settings = load_settings()
    domain = load_domain(settings.dialog.domain)
    data = REPO / "eval" / "intent"
    train = training_examples(data, False)
    held = held_sets(data)
    variants = [[int(k) for k in v.split(",")] for v in args.variants]
    layers = sorted({k for v in variants for k in v})
    if max(layers) > settings.nlu.encoder_layers:
        ap.error(f"the encoder is truncated to {settings.nlu.encoder_layers} layers (nlu.encoder_layers)")
    texts = [e.text for e in train] + [e.text for rows in held.values() for e in rows]
    pooled = pooled_layers(texts, layers, settings, args.work / "pooled.npz")
    gold = np.array([e.label for e in train])
    labels = sorted(set(gold.tolist()))
    folds = fold_assignment(train, 5, settings.nlu.train_seed)
    w, seed = settings.nlu.ngram_weight, settings.nlu.train_seed
    hits = np.array([bool(any_safety_keyword(domain, e.text)) for e in train])
    held_hits = {n: np.array([bool(any_safety_keyword(domain, e.text)) for e in rows]) for n, rows in held.items()}
    rows = []
    for variant in variants:
        x_all = np.concatenate([pooled[k] for k in variant], axis=1) / np.sqrt(len(variant))
        x, start = x_all[: len(train)], len(train)
        print(f"layers {variant}: refit", flush=True)
        m = refit(x, train, gold, labels, folds, np.ones(len(train), dtype=bool), w, seed)
        held_probs, held_ev = {}, {}
        for n, examples in held.items():
            xs = x_all[start : start + len(examples)]
            start += len(examples)
            ts = [e.text for e in examples]
            held_probs[n] = softmax(mix_logits(xs @ m.head[0].T + m.head[1], m.ngram.logits(ts), w), m.temperature)
            held_ev[n] = m.lexicon.scores(ts)
        rows.append(evaluate("layers " + "+".join(map(str, variant)), m.probs, m.evidence, held_probs, held_ev,
                             gold, labels, hits, held, held_hits, settings))
    out = args.work / "report.json"
    write_report(rows, out, len(train))
    return 0


if __name__ == "__main__":
    sys.exit(main())
