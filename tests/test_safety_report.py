"""scripts/safety_report.py: the per-line listing of false escalations, misses and the hardest safety lines."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np

from voicebot.config import REPO_ROOT
from voicebot.dialog.domain import load_domain
from voicebot.nlu.intent import IntentPrediction

SCRIPT = REPO_ROOT / "scripts" / "safety_report.py"
LABELS = ("notfall", "seelsorge", "mitarbeiter", "rechnung", "sonstiges")
SAFETY = ("notfall", "seelsorge", "mitarbeiter")


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("safety_report", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["safety_report"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _prediction(probs: list[float]) -> IntentPrediction:
    p = IntentPrediction.from_probabilities(LABELS, np.array(probs))
    return IntentPrediction(p.label, p.confidence, p.ranking, p.margin, "act", "e5",
                            (("notfall", 0.1), ("seelsorge", 0.1), ("mitarbeiter", 0.2)))


def test_report_lists_each_false_escalation_with_its_rule_and_the_cost_of_the_hardest_line() -> None:
    report = _module()
    domain = load_domain(REPO_ROOT / "pipelines" / "default")
    lines = [  # (text, gold, probabilities in LABELS order)
        ("Die Rechnung ist zu hoch.", "rechnung", [0.15, 0.0, 0.0, 0.85, 0.0]),  # notfall runner-up: a false one
        ("Die Mahnung ist falsch.", "rechnung", [0.05, 0.0, 0.0, 0.95, 0.0]),
        ("Mein Vater ist umgekippt.", "notfall", [0.3, 0.0, 0.0, 0.7, 0.0]),  # the hardest notfall line
        ("Mir geht es so schlecht.", "seelsorge", [0.0, 0.05, 0.0, 0.0, 0.95]),  # below its point: missed
    ]
    rows = []
    for text, gold, probs in lines:
        prediction = _prediction(probs)
        label, trigger, phrase = report.safety_escalation(domain, text, prediction)
        rows.append(report.Verdict(text, gold, prediction, label, trigger, phrase, False))
    out = "\n".join(report.report("toy", rows, SAFETY, hardest=2, width=60))
    assert "false escalations 1/2 (0.500); missed safety lines 1" in out
    assert "FALSE        rechnung -> notfall     score" in out and "Die Rechnung ist zu hoch." in out
    assert "MISSED      seelsorge" in out and "Mir geht es so schlecht." in out
    # 0.3 for the hardest notfall line: no ordinary line scores that high, so recall 1.0 there costs nothing.
    assert "notf=0.300 ordinary lines at or above:   0" in out


def test_a_missing_data_file_is_a_clear_error() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--data", "no/such/file.jsonl"], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=120)
    assert done.returncode == 2
    assert "not found:" in done.stderr and "no/such/file.jsonl" in done.stderr and "Traceback" not in done.stderr
