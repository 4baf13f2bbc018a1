"""Calibrating a trained intent model on its held-out predictions, and re-fitting the safety operating points."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.config import NluSettings
from voicebot.nlu.calibration import Calibration, calibrate, softmax
from voicebot.nlu.intent import CALIBRATION_FILE

OOF_FILE = "oof.npz"  # the held-out predictions calibration was fitted on


def safety_calibration(probs: np.ndarray, gold: Sequence[str], labels: Sequence[str],
                       keyword_hits: Sequence[bool] | None, typed: Sequence[bool] | None = None,
                       evidence: np.ndarray | None = None, evidence_miss_cost: float = 0.0) -> dict[str, Any]:
    """The safety operating points (recall 1.0 out of fold) and their curve, for ``calibration.extra``.

    With held-out ``evidence`` (``voicebot.nlu.evidence``) and a positive
    ``evidence_miss_cost`` the evidence gate on safety runners-up is fitted too.
    """
    from voicebot.nlu.evidence import NO_GATE, fit_evidence_gate, gate_effect
    from voicebot.nlu.safety import SAFETY_LABELS, escalation_curve, fit_ood_gate, fit_operating_points

    if not set(SAFETY_LABELS) <= set(labels):
        return {}
    points = fit_operating_points(probs, gold, labels, keyword_hits)
    thresholds = {label: point.threshold for label, point in points.items()}
    gate = fit_ood_gate(probs, gold, labels, thresholds, keyword_hits)
    curve = escalation_curve(probs, gold, labels, keyword_hits, thresholds=thresholds, ood_gate=gate)
    if typed is not None:  # the same curve on the typed and on the recognized lines
        for name, mask in (("typed", np.asarray(typed, dtype=bool)), ("asr", ~np.asarray(typed, dtype=bool))):
            if mask.any():
                part = escalation_curve(probs[mask], np.asarray(gold)[mask], labels,
                                        None if keyword_hits is None else np.asarray(keyword_hits)[mask],
                                        thresholds=thresholds, ood_gate=gate)
                for point, sub in zip(curve, part, strict=True):
                    point.update({f"{name}_recall": sub["recall"],
                                  f"{name}_false_escalation_rate": sub["false_escalation_rate"]})
    out = {"safety_thresholds": thresholds, "safety_ood_gate": gate,
           "safety_operating_points": {label: asdict(point) for label, point in points.items()},
           "safety_curve_oof": curve, "safety_evidence_gate": NO_GATE}
    if evidence is not None and evidence_miss_cost > 0:
        evidence_gate = fit_evidence_gate(probs, gold, labels, thresholds, evidence, evidence_miss_cost, gate,
                                          keyword_hits)
        effect = gate_effect(probs, gold, labels, thresholds, evidence, evidence_gate, gate, keyword_hits)
        out.update(safety_evidence_gate=evidence_gate, safety_evidence_miss_cost=evidence_miss_cost,
                   safety_evidence_oof=effect)
    return out


def finish_calibration(kind: str, directory: Path, logits: np.ndarray, gold: Sequence[str] | np.ndarray,
                       labels: Sequence[str], nlu: NluSettings, meta: dict[str, Any],
                       keyword_hits: Sequence[bool] | None = None,
                       typed: Sequence[bool] | None = None, evidence: np.ndarray | None = None) -> Calibration:
    """Calibrate on held-out ``logits``, add the safety operating points and ``meta``, save with the predictions.

    ``evidence``: held-out safety-evidence scores of the same lines (the gate on safety runners-up).
    """
    calibration = calibrate(logits, [str(g) for g in gold], labels, target_precision=nlu.target_precision,
                            confirm_threshold=nlu.confirm_threshold, min_margin=nlu.min_margin)
    probs = softmax(logits, calibration.temperature)
    safety = safety_calibration(probs, [str(g) for g in gold], labels, keyword_hits, typed, evidence,
                                nlu.safety_evidence_miss_cost)
    # The held-out predictions travel with the artefact: operating points can be re-fitted and inspected.
    np.savez_compressed(directory / OOF_FILE, probs=probs.astype(np.float32), gold=np.asarray(gold, dtype=str),
                        keyword_hits=np.asarray(keyword_hits if keyword_hits is not None else [], dtype=bool),
                        typed=np.asarray(typed if typed is not None else [], dtype=bool),
                        evidence=np.asarray(evidence if evidence is not None else np.zeros((0, 3)), dtype=np.float32))
    calibration = replace(calibration, extra={**calibration.extra, **meta, **safety, "kind": kind})
    calibration.save(directory / CALIBRATION_FILE)
    return calibration


def refit_safety(directory: Path, evidence_miss_cost: float | None = None) -> Calibration:
    """Re-fit the safety operating points of a trained artefact from its saved held-out predictions.

    Seconds instead of a retrain, for a change of the operating-point rule;
    the result is the same as the one training would store.
    """
    path = directory / CALIBRATION_FILE
    with np.load(directory / OOF_FILE, allow_pickle=False) as oof:
        probs, gold = oof["probs"].astype(np.float64), [str(g) for g in oof["gold"]]
        hits = oof["keyword_hits"] if len(oof["keyword_hits"]) else None
        typed = oof["typed"] if len(oof["typed"]) else None
        evidence = oof["evidence"].astype(np.float64) if "evidence" in oof.files and len(oof["evidence"]) else None
    calibration = Calibration.load(path)
    cost = float(calibration.extra.get("safety_evidence_miss_cost", 0.0)) if evidence_miss_cost is None \
        else evidence_miss_cost
    safety = safety_calibration(probs, gold, calibration.labels, hits, typed, evidence, cost)
    calibration = replace(calibration, extra={**calibration.extra, **safety})
    calibration.save(path)
    return calibration
