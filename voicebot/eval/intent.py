"""Intent evaluation: metric functions (pure) and the runner behind `voicebot eval intent`.

The metric functions take plain lists, so each can be checked against a
hand-worked table. ``evaluate_intent`` runs a classifier over a JSONL file and
puts every number the issue asks for into one dict; ``format_report`` prints it.

Safety numbers are measured at the level that matters to a caller: the
policy's escalation rule (top-1 safety intent, a safety runner-up above the
domain's threshold, or the keyword safety net), next to the bare classifier's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from voicebot.dialog.domain import Domain
    from voicebot.nlu.intent import IntentClassifier

SAFETY_LABELS = ("notfall", "seelsorge", "mitarbeiter")


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Share of exact matches (0.0 for empty input)."""
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def per_intent_scores(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per label (0.0 where undefined)."""
    scores: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(g != label and p == label for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label and p != label for g, p in zip(gold, pred, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    return scores


def macro_f1(scores: dict[str, dict[str, float]]) -> float:
    """Unweighted mean F1 over labels that occur in the gold data."""
    present = [s["f1"] for s in scores.values() if s["support"] > 0]
    return float(np.mean(present)) if present else 0.0


def confusion_matrix(gold: Sequence[str], pred: Sequence[str], labels: Sequence[str]) -> list[list[int]]:
    """``matrix[i][j]`` = number of items with gold ``labels[i]`` predicted as ``labels[j]``."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for g, p in zip(gold, pred, strict=True):
        matrix[index[g]][index[p]] += 1
    return matrix


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE with ``n_bins`` equal-width confidence bins.

    Sum over bins of (bin size / n) * |accuracy in bin - mean confidence in bin|.
    Bins are right-closed, ``(k/n_bins, (k+1)/n_bins]``, so a confidence of
    exactly 1.0 lands in the top bin.
    """
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    if len(conf) == 0:
        return 0.0
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.sum() / len(conf) * abs(ok[mask].mean() - conf[mask].mean())
    return float(ece)


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[dict[str, float]]:
    """The non-empty ECE bins: mean confidence, accuracy and count (a reliability diagram's points)."""
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    return [
        {"confidence": float(conf[bins == b].mean()), "accuracy": float(ok[bins == b].mean()),
         "count": int((bins == b).sum())}
        for b in range(n_bins) if (bins == b).any()
    ]


def coverage_curve(
    confidences: Sequence[float], correct: Sequence[bool], thresholds: Sequence[float]
) -> list[dict[str, float]]:
    """For each threshold ``t``: coverage = share with confidence >= t, and accuracy on those.

    ``selective_accuracy`` is 1.0 where nothing is covered (no decision, no error).
    """
    conf = np.asarray(confidences, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    curve = []
    for t in thresholds:
        mask = conf >= t
        covered = int(mask.sum())
        curve.append({
            "threshold": float(t),
            "coverage": covered / len(conf) if len(conf) else 0.0,
            "selective_accuracy": float(ok[mask].mean()) if covered else 1.0,
        })
    return curve


def decision_metrics(decisions: Sequence[str], correct: Sequence[bool]) -> dict[str, float]:
    """Coverage and accuracy of the act/confirm/re-ask decision.

    ``coverage`` = share decided without confirmation ("act");
    ``selective_accuracy`` = accuracy on those; ``confirm_accuracy`` = how often
    the intent the bot would confirm is the right one.
    """
    n = len(decisions)
    acted = [ok for d, ok in zip(decisions, correct, strict=True) if d == "act"]
    confirmed = [ok for d, ok in zip(decisions, correct, strict=True) if d == "confirm"]
    return {
        "coverage": len(acted) / n if n else 0.0,
        "selective_accuracy": sum(acted) / len(acted) if acted else 1.0,
        "confirm_rate": len(confirmed) / n if n else 0.0,
        "confirm_accuracy": sum(confirmed) / len(confirmed) if confirmed else 1.0,
        "reask_rate": sum(d == "reask" for d in decisions) / n if n else 0.0,
    }


def safety_metrics(
    gold: Sequence[str], escalated: Sequence[str | None], safety_labels: Sequence[str] = SAFETY_LABELS
) -> dict[str, Any]:
    """Recall per safety intent and the false-escalation rate.

    ``escalated[i]`` is the safety intent item ``i`` was escalated as, or None.
    A safety item counts as recalled when it is escalated at all (any safety
    route reaches a human at once). ``false_escalation_rate`` is the share of
    non-safety items that were escalated.
    """
    recall: dict[str, float] = {}
    for label in safety_labels:
        items = [e for g, e in zip(gold, escalated, strict=True) if g == label]
        recall[label] = sum(e is not None for e in items) / len(items) if items else 1.0
    ordinary = [e for g, e in zip(gold, escalated, strict=True) if g not in safety_labels]
    false_rate = sum(e is not None for e in ordinary) / len(ordinary) if ordinary else 0.0
    return {"safety_recall": recall, "false_escalation_rate": false_rate, "false_escalations": sum(
        e is not None for e in ordinary)}


def _evidence_inputs(predictions: Sequence[Any], labels: Sequence[str],
                     thresholds: dict[str, float]) -> tuple[np.ndarray, np.ndarray] | None:
    """The predictions' probabilities and safety evidence as arrays; None without a safety evidence gate."""
    if not predictions or not thresholds or not predictions[0].safety_evidence:
        return None
    probs = np.array([[p.probability(label) for label in labels] for p in predictions])
    order = [label for label, _ in predictions[0].safety_evidence]
    evidence = np.array([[dict(p.safety_evidence)[label] for label in order] for p in predictions])
    return probs, evidence


def evidence_effect(predictions: Sequence[Any], gold: Sequence[str], labels: Sequence[str],
                    thresholds: dict[str, float], keyword_hits: Sequence[bool]) -> dict[str, dict[str, float]]:
    """Safety recall and false escalations without and with the evidence gate on safety runners-up ({} if none)."""
    from voicebot.nlu.evidence import gate_effect

    if (inputs := _evidence_inputs(predictions, labels, thresholds)) is None:
        return {}
    probs, evidence = inputs
    first = predictions[0]
    return gate_effect(probs, gold, labels, thresholds, evidence, first.safety_evidence_gate, first.safety_ood_gate,
                       keyword_hits)


def evidence_curve(predictions: Sequence[Any], gold: Sequence[str], labels: Sequence[str],
                   thresholds: dict[str, float], keyword_hits: Sequence[bool]) -> list[dict[str, float]]:
    """The same at a row of gates and the fitted one (``voicebot.nlu.evidence.evidence_gate_curve``; [] if none)."""
    from voicebot.nlu.evidence import CURVE_GATES, evidence_gate_curve

    if (inputs := _evidence_inputs(predictions, labels, thresholds)) is None:
        return []
    probs, evidence = inputs
    first = predictions[0]
    gates = sorted({*CURVE_GATES, first.safety_evidence_gate})
    return evidence_gate_curve(probs, gold, labels, thresholds, evidence, gates, first.safety_ood_gate, keyword_hits)


def evaluate_intent(
    classifier: IntentClassifier, items: Sequence[tuple[str, str]], domain: Domain | None = None,
    latency_sample: int = 40,
) -> dict[str, Any]:
    """Run ``classifier`` over ``(text, gold label)`` pairs and compute every metric.

    The metrics come from one batched pass (the same numbers as one line at a
    time); the latency is measured one utterance at a time, as in a call, on
    the first ``latency_sample`` lines (0: all), which is the figure a caller
    experiences without a full unbatched pass on a shared 2-core machine.
    """
    from voicebot.dialog.escalation import any_safety_keyword, safety_escalation
    from voicebot.nlu.safety import escalation_curve

    texts = [t for t, _ in items]
    gold = [g for _, g in items]
    labels = list(classifier.labels)
    unknown = sorted(set(gold) - set(labels))
    if unknown:
        raise ValueError(f"evaluation labels unknown to the model: {', '.join(unknown)}")
    classifier.predict(texts[0] if texts else "warm-up")  # first call pays one-off allocation costs
    latencies = []
    for text in texts[: latency_sample or len(texts)]:
        started = time.perf_counter()
        classifier.predict(text)
        latencies.append((time.perf_counter() - started) * 1000.0)
    predictions = classifier.predict_batch(list(texts))
    pred = [p.label for p in predictions]
    conf = [p.confidence for p in predictions]
    correct = [g == p for g, p in zip(gold, pred, strict=True)]
    decisions = [classifier.decide(p) for p in predictions]
    scores = per_intent_scores(gold, pred, labels)
    model_escalated = [p.label if p.label in SAFETY_LABELS else None for p in predictions]
    policy_escalated = model_escalated
    triggers: dict[str, int] = {}
    keyword_hits = [False] * len(texts)
    if domain is not None:
        verdicts = [safety_escalation(domain, text, p) for text, p in zip(texts, predictions, strict=True)]
        policy_escalated = [v[0] for v in verdicts]
        keyword_hits = [bool(any_safety_keyword(domain, t)) for t in texts]
        for label, trigger, _ in verdicts:
            if label is not None:
                triggers[trigger] = triggers.get(trigger, 0) + 1
    thresholds = dict(predictions[0].safety_thresholds) if predictions else {}
    probs = np.array([[p.probability(label) for label in labels] for p in predictions]) if predictions else None
    # Nonsense and out-of-domain lines must not get a confident ordinary intent either.
    confident = [d == "act" and p.label not in SAFETY_LABELS + ("sonstiges",)
                 for d, p in zip(decisions, predictions, strict=True)]
    model_safety = safety_metrics(gold, model_escalated)
    policy_safety = safety_metrics(gold, policy_escalated)
    decided = decision_metrics(decisions, correct)
    grid = [round(x, 2) for x in np.arange(0.0, 1.0001, 0.05)]
    return {
        "model": classifier.name,
        "n": len(items),
        "accuracy": accuracy(gold, pred),
        "macro_f1": macro_f1(scores),
        "ece": expected_calibration_error(conf, correct),
        "coverage": decided["coverage"],
        "selective_accuracy": decided["selective_accuracy"],
        "decisions": decided,
        "coverage_curve": coverage_curve(conf, correct, grid),
        "reliability": reliability_bins(conf, correct),
        "per_intent": scores,
        "labels": labels,
        "confusion": confusion_matrix(gold, pred, labels),
        "safety_recall": policy_safety["safety_recall"],
        "false_escalation_rate": policy_safety["false_escalation_rate"],
        "false_escalations": policy_safety["false_escalations"],
        "model_safety_recall": model_safety["safety_recall"],
        "model_false_escalation_rate": model_safety["false_escalation_rate"],
        "escalation_triggers": triggers,
        "safety_thresholds": thresholds,
        "safety_ood_gate": predictions[0].safety_ood_gate if predictions else 1.01,
        "safety_curve": escalation_curve(probs, gold, labels, keyword_hits, thresholds=thresholds,
                                         ood_gate=predictions[0].safety_ood_gate)
        if probs is not None and thresholds else [],
        "safety_evidence_gate": predictions[0].safety_evidence_gate if predictions else -1.0,
        "safety_evidence_effect": evidence_effect(predictions, gold, labels, thresholds, keyword_hits),
        "safety_evidence_curve": evidence_curve(predictions, gold, labels, thresholds, keyword_hits),
        "escalated": sum(e is not None for e in policy_escalated),
        "confident_intent_rate": sum(confident) / len(confident) if confident else 0.0,
        "confident_wrong": sum(c and p.label != g for c, p, g in zip(confident, predictions, gold, strict=True)),
        "latency_ms": {
            "mean": float(np.mean(latencies)) if latencies else 0.0,
            "p50": float(np.percentile(latencies, 50)) if latencies else 0.0,
            "p95": float(np.percentile(latencies, 95)) if latencies else 0.0,
        },
        "errors": [
            {"text": t, "gold": g, "pred": p.label, "confidence": round(p.confidence, 4)}
            for t, g, p in zip(texts, gold, predictions, strict=True)
            if g != p.label
        ],
    }


def format_report(result: dict[str, Any]) -> str:
    """A human-readable report of ``evaluate_intent``'s result."""
    lines = [
        f"intent model {result['model']}: n={result['n']}  accuracy {result['accuracy']:.3f}  "
        f"macro-F1 {result['macro_f1']:.3f}  ECE {result['ece']:.3f}",
        f"decided without confirmation: coverage {result['coverage']:.3f} at selective accuracy "
        f"{result['selective_accuracy']:.3f}; confirm {result['decisions']['confirm_rate']:.3f} "
        f"(right {result['decisions']['confirm_accuracy']:.3f}); re-ask {result['decisions']['reask_rate']:.3f}",
        "safety recall (policy): " + ", ".join(f"{k} {v:.3f}" for k, v in result["safety_recall"].items())
        + f"; false escalations {result['false_escalations']} ({result['false_escalation_rate']:.3f})",
        f"escalated {result.get('escalated', 0)} of {result['n']} (triggers "
        + ", ".join(f"{k} {v}" for k, v in result.get("escalation_triggers", {}).items())
        + f"); confident ordinary intent {result.get('confident_intent_rate', 0.0):.3f}"
        f" ({result.get('confident_wrong', 0)} of them wrong)",
        "safety recall (model top-1): " + ", ".join(f"{k} {v:.3f}" for k, v in result["model_safety_recall"].items())
        + f"; false escalations {result['model_false_escalation_rate']:.3f}",
        f"latency per utterance: mean {result['latency_ms']['mean']:.1f} ms, p50 {result['latency_ms']['p50']:.1f} ms,"
        f" p95 {result['latency_ms']['p95']:.1f} ms",
        "",
        f"{'intent':16} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>4}",
    ]
    for label, s in result["per_intent"].items():
        lines.append(f"{label:16} {s['precision']:6.3f} {s['recall']:6.3f} {s['f1']:6.3f} {int(s['support']):4d}")
    labels = result["labels"]
    short = [label[:4] for label in labels]
    lines += ["", "confusion (rows gold, columns predicted):", " " * 17 + " ".join(f"{s:>4}" for s in short)]
    for label, row in zip(labels, result["confusion"], strict=True):
        lines.append(f"{label:16} " + " ".join(f"{v:4d}" if v else "   ." for v in row))
    if result.get("safety_curve"):
        points = ", ".join(f"{k} {v:.3f}" for k, v in result["safety_thresholds"].items())
        gate = result.get("safety_ood_gate", 1.01)
        lines += ["", f"safety escalation curve (operating points x scale; scale 1 = {points}; keywords always"
                  + (f"; runners-up gated at sonstiges >= {gate:.3f}" if gate <= 1.0 else "") + "):"]
        for point in result["safety_curve"]:
            lines.append(f"  x{point['scale']:<5} recall {point['recall']:.3f}  "
                         f"false escalations {point['false_escalation_rate']:.3f}")
    effect = result.get("safety_evidence_effect") or {}
    if effect:
        lines += ["", f"safety evidence gate on runners-up (lexicon share >= {result['safety_evidence_gate']:.3f}):"]
        for name in ("without", "with"):
            lines.append(f"  {name:7} recall {effect[name]['recall']:.3f}  false escalations "
                         f"{effect[name]['false_escalation_rate']:.3f}  escalated {effect[name]['escalated']}")
    if result.get("safety_evidence_curve"):
        lines += ["", "safety evidence curve (runner-up gate: recall, false escalations; 2.0 = top-1 only; read only,"
                  " the gate is fitted out of fold on train):"]
        for point in result["safety_evidence_curve"]:
            shown = "none" if point["gate"] < 0 else f"{point['gate']:.3f}"
            lines.append(f"  gate {shown:>5}  recall {point['recall']:.3f}  false escalations "
                         f"{point['false_escalation_rate']:.3f} ({point['false_escalations']})")
    lines += ["", "coverage curve (confidence >= t):"]
    for point in result["coverage_curve"][::2]:
        lines.append(f"  t={point['threshold']:.2f}  coverage {point['coverage']:.3f}  "
                     f"accuracy {point['selective_accuracy']:.3f}")
    if result["errors"]:
        lines += ["", f"errors ({len(result['errors'])}, first 15):"]
        for e in result["errors"][:15]:
            lines.append(f"  {e['gold']:>13} -> {e['pred']:<13} {e['confidence']:.2f}  {e['text']}")
    return "\n".join(lines)
