"""Call-evaluation scoring against a hand-worked example, the manifest loader, and one real run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.eval.calls import (
    HUMAN_ROUTE,
    Scenario,
    Turn,
    aggregate,
    load_call_manifest,
    outcome_from_events,
)

REPO = Path(__file__).resolve().parents[1]


def scenario(sid: str, intent: str, route: str, handoff: bool) -> Scenario:
    return Scenario(sid, (Turn(Path("x.wav")),), intent, route, handoff)


def final(text: str) -> dict:
    return {"type": "transcript.final", "text": text}


def latency(v2v: float) -> dict:
    return {"type": "latency", "endpoint_ms": 0.0, "asr_ms": v2v / 2, "intent_ms": 10.0,
            "tts_first_audio_ms": 40.0, "voice_to_voice_ms": v2v}


GREETING = [{"type": "bot.utterance", "text": "Guten Tag ..."}, {"type": "bot.audio.start"}]

CALLS = [
    # A: right intent, routed after the customer number (turn 2)
    (scenario("A", "rechnung", "buchhaltung", False),
     [*GREETING, final("Frage zu meiner Rechnung"), {"type": "intent", "label": "rechnung"}, latency(900),
      final("Kundennummer 4 7 1 1"), {"type": "route", "route": "buchhaltung", "intent": "rechnung"},
      latency(1100)]),
    # B: emergency, handed off at once without a team route -> the human route
    (scenario("B", "notfall", "mensch", True),
     [*GREETING, final("Hilfe, mein Mann ist umgefallen"), {"type": "intent", "label": "notfall"},
      {"type": "handoff", "reason": "safety"}, latency(700)]),
    # C: crisis first misread as sonstiges, escalated on the second turn
    (scenario("C", "seelsorge", "mensch", True),
     [*GREETING, final("Ich weiß nicht weiter"), {"type": "intent", "label": "sonstiges"},
      final("Ich will nicht mehr leben"), {"type": "intent", "label": "seelsorge"},
      {"type": "handoff", "reason": "safety"}]),
    # D: a technical fault never understood: an unwanted handoff (an empty final is not a turn)
    (scenario("D", "technik", "technik", False),
     [*GREETING, final("  "), final("Internet geht nicht"), {"type": "intent", "label": "sonstiges"},
      final("Router blinkt"), {"type": "intent", "label": "sonstiges"}, {"type": "handoff", "reason": "reask"}]),
    # E: a cancellation whose call broke before routing
    (scenario("E", "kuendigung", "kundenbindung", False),
     [*GREETING, final("Ich will kündigen"), {"type": "intent", "label": "kuendigung"},
      {"type": "error", "code": "turn_failed", "message": "boom"}]),
]


def test_outcome_from_events() -> None:
    a, b, c, d, e = (outcome_from_events(s, ev) for s, ev in CALLS)
    assert (a.first_intent, a.route, a.route_turn, a.handoff, a.turns_heard) == ("rechnung", "buchhaltung", 2, False, 2)
    assert (b.route, b.route_turn, b.handoff_turn, b.handoff_reason) == (HUMAN_ROUTE, 1, 1, "safety")
    assert (c.first_intent, c.handoff_turn, c.route) == ("sonstiges", 2, "mensch")
    assert d.turns_heard == 2 and d.route == "mensch" and not d.route_ok
    assert e.route is None and e.route_turn is None and e.error == "turn_failed: boom"
    assert a.latencies[1]["voice_to_voice_ms"] == 1100


def test_aggregate_by_hand() -> None:
    result = aggregate([outcome_from_events(s, ev) for s, ev in CALLS])
    m = result["metrics"]
    assert m["calls"] == 5 and m["errored_calls"] == 1
    assert m["first_intent_accuracy"] == pytest.approx(3 / 5)  # A, B, E
    assert m["routing_accuracy"] == pytest.approx(3 / 5)  # A, B, C
    # handed off: B, C, D; expected: B, C -> tp 2, fp 1, fn 0
    assert m["handoff_precision"] == pytest.approx(2 / 3)
    assert m["handoff_recall"] == pytest.approx(1.0)
    assert m["handoff_f1"] == pytest.approx(0.8)
    assert m["safety_escalation_recall"] == 1.0  # B and C both reached a human ...
    assert m["safety_escalation_at_once"] == 0.5  # ... but only B on the first turn
    assert m["mean_turns_to_route"] == pytest.approx((2 + 1 + 2 + 2) / 4)
    assert m["unrouted_calls"] == 1
    v2v = result["latency"]["voice_to_voice_ms"]
    assert (v2v["n"], v2v["p50"], v2v["max"]) == (3, 900.0, 1100.0)
    assert result["per_intent"]["seelsorge"]["first_intent_accuracy"] == 0.0
    conf = result["confusion"]
    i, j = conf["labels"].index("technik"), conf["labels"].index("sonstiges")
    assert conf["matrix"][i][j] == 1
    assert sum(map(sum, conf["matrix"])) == 5


def test_load_call_manifest_resolves_paths_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "calls").mkdir()
    line = {"id": "s1", "voice": "pico-de", "turns": [{"audio": "calls/t1.wav", "text": "Hallo"}],
            "first_intent": "termin", "route": "termine", "handoff": False}
    manifest = tmp_path / "calls.jsonl"
    manifest.write_text(json.dumps(line) + "\n\n", encoding="utf-8")
    (s,) = load_call_manifest(manifest)
    assert s.turns[0].audio == (tmp_path / "calls" / "t1.wav").resolve()
    assert (s.first_intent, s.route, s.handoff, s.voice) == ("termin", "termine", False, "pico-de")
    manifest.write_text('{"id": "broken"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="calls.jsonl:1"):
        load_call_manifest(manifest)


def test_checked_in_scenarios_cover_every_intent() -> None:
    rows = [json.loads(x) for x in (REPO / "eval/scenarios/scenarios.jsonl").read_text("utf-8").splitlines() if x]
    intents = {r["first_intent"] for r in rows}
    assert len(intents) == 14
    assert all(sum(r["first_intent"] == i for r in rows) >= 3 for i in intents)
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert r["turns"] and isinstance(r["handoff"], bool)
        assert r["handoff"] == (r["route"] == HUMAN_ROUTE)


@pytest.mark.slow
def test_two_real_scenarios_end_to_end(tmp_path: Path, settings) -> None:  # type: ignore[no-untyped-def]
    """Two synthesized calls through `voicebot eval calls --json` (a subprocess, real models)."""
    import voicebot.dialog.session  # noqa: F401 - an ImportError of our own code must fail, not skip
    for name in ("whisper-base", "pico-de", "silero-vad", settings.nlu.intent_model):
        if not (settings.models.dir / name).is_dir():
            pytest.skip(f"model {name} not provisioned (voicebot models pull / voicebot train intent)")
    rows = [json.loads(x) for x in (REPO / "eval/scenarios/scenarios.jsonl").read_text("utf-8").splitlines() if x]
    picked = [r for r in rows if r["id"] in ("rechnung-01", "notfall-01")]
    scenarios = tmp_path / "scenarios.jsonl"
    scenarios.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in picked), encoding="utf-8")
    gen = subprocess.run([sys.executable, str(REPO / "scripts/make_scenario_audio.py"), "--scenarios",
                          str(scenarios), "--out", str(tmp_path / "audio")], capture_output=True, text=True,
                         timeout=120)
    assert gen.returncode == 0, gen.stderr
    run = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "eval", "calls", "--manifest",
                          str(tmp_path / "audio/calls.jsonl"), "--json"], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout)
    assert result["kind"] == "calls" and result["metrics"]["calls"] == 2
    assert result["metrics"]["errored_calls"] == 0
    by_id = {c["id"]: c for c in result["calls"]}
    # The emergency must reach a human on its first turn whatever else happens.
    assert by_id["notfall-01"]["handoff"] and by_id["notfall-01"]["handoff_turn"] == 1
    assert by_id["rechnung-01"]["first_intent"] == "rechnung"
    assert result["latency"]["voice_to_voice_ms"]["n"] >= 1
