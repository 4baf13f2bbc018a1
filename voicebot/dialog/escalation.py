"""The safety-escalation decision for one caller turn: calibrated operating points plus the keyword net."""

from __future__ import annotations

import hashlib
import json

from voicebot.dialog.domain import Domain, normalize, safety_keyword
from voicebot.nlu.intent import IntentPrediction
from voicebot.nlu.safety import fuzzy_phrase_match

__all__ = ["any_safety_keyword", "fuzzy_safety_keyword", "keyword_net_digest", "safety_escalation"]


def keyword_net_digest(domain: Domain) -> str:
    """sha256 of the domain's safety keyword nets (phrases, short-utterance phrases, what counts as short).

    The classifier's operating points are fitted with the lines these nets catch left out (they need no score),
    so a classifier trained with another net must be retrained: `voicebot train intent --if-stale` compares it.
    """
    net = {label: [sorted(domain.intents[label].keywords), sorted(domain.intents[label].short_keywords)]
           for label in domain.safety_labels}
    text = json.dumps({"nets": net, "short_words": domain.policy.short_utterance_words}, sort_keys=True,
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fuzzy_safety_keyword(domain: Domain, text: str) -> tuple[str, str] | None:
    """The safety keyword net up to ASR errors ("not arzt", "mitarbeita", "nich mehr lebn")."""
    short = len(normalize(text).split()) <= domain.policy.short_utterance_words
    for label in domain.safety_labels:
        spec = domain.intents[label]
        heard = fuzzy_phrase_match(tuple(spec.keywords) + (tuple(spec.short_keywords) if short else ()),
                                   normalize(text))
        if heard:
            return label, heard
    return None


def any_safety_keyword(domain: Domain, text: str) -> tuple[str, str] | None:
    """The safety keyword net: a keyword as listed, else as a recognizer misheard it; ``(label, phrase)``."""
    return safety_keyword(domain, text) or fuzzy_safety_keyword(domain, text)


def safety_escalation(
    domain: Domain, text: str, prediction: IntentPrediction | None, midcall: bool = False
) -> tuple[str | None, str, str]:
    """``(safety label or None, trigger, matched phrase)`` for one caller turn.

    Triggers: ``intent`` (the safety top-1 passes its operating point),
    ``score`` (a lower-ranked safety intent passes its operating point, unless
    ``sonstiges`` reaches the prediction's ``safety_ood_gate`` or the line's
    ``safety_evidence`` for that intent is below ``safety_evidence_gate``),
    ``keyword`` (the exact net, then the fuzzy one). The operating points come
    with the prediction (``safety_thresholds``, from the classifier's
    calibration); a prediction without them (made without a trained
    classifier) escalates on a safety top-1. ``midcall`` turns (slot answers,
    yes/no) escalate on the classifier only at ``policy.safety_midcall``;
    keywords always do. Where rules disagree, the most severe safety intent
    (domain order) wins.
    """
    safety = domain.safety_labels
    found: dict[str, tuple[str, str]] = {}
    if prediction is not None:
        thresholds = dict(prediction.safety_thresholds)
        # A confident out-of-domain top-1 silences safety runners-up (nonsense, line checks); never a safety top-1.
        gated = prediction.probability("sonstiges") >= prediction.safety_ood_gate
        evidence = dict(prediction.safety_evidence)
        for label in safety:
            p = prediction.probability(label)
            passes = p >= thresholds.get(label, 1.0) if thresholds else prediction.label == label
            # A runner-up also needs safety evidence from outside the softmax (issue 14: a stranger's sentence
            # spreads the softmax until some safety intent passes its low operating point).
            backed = evidence.get(label, 1.0) >= prediction.safety_evidence_gate
            passes = passes and (prediction.label == label or (not gated and backed))
            if passes and (not midcall or p >= domain.policy.safety_midcall):
                found[label] = ("intent" if prediction.label == label else "score", "")
    keyword = any_safety_keyword(domain, text)
    if keyword is not None:
        found.setdefault(keyword[0], ("keyword", keyword[1]))
    for label in safety:
        if label in found:
            return label, *found[label]
    return None, "", ""
