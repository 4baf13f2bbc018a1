"""End-to-end call evaluation: scripted callers through the real `CallSession`.

A scenario is a list of caller turns (audio files) with what should happen: the
first intent the bot recognizes, the route the call ends up on, and whether a
human takes over. Each scenario runs through the whole pipeline (VAD, streaming
ASR, intent, policy, TTS) with ``realtime=False``, so audio goes in as fast as
the machine can take it and the bot's audio comes out unpaced; between turns
the caller waits until the bot has finished speaking, as a polite caller does.

Scoring is split from running: ``outcome_from_events`` turns one call's event
stream into a ``CallOutcome`` and ``aggregate`` turns outcomes into metrics, both
pure and tested by hand-worked examples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from voicebot.config import Settings
from voicebot.eval.stats import mean, precision_recall, ratio, summarize

log = logging.getLogger(__name__)

# Missing one of these is the worst error the product can make (TRIAGE.md): they escalate at once.
SAFETY_INTENTS = frozenset({"notfall", "seelsorge", "mitarbeiter"})
# The route a call is on once a human has it and no team route was chosen (CallSession's convention).
HUMAN_ROUTE = "mensch"
NO_INTENT = "(none)"
# The per-turn stages of CallSession's ``latency`` event, in pipeline order.
LATENCY_STAGES = ("endpoint_ms", "asr_ms", "intent_ms", "tts_first_audio_ms", "voice_to_voice_ms")


@dataclass(frozen=True)
class Turn:
    audio: Path
    text: str = ""
    sha256: str = ""  # of the audio file, as the manifest's maker recorded it ("" when it did not)


@dataclass(frozen=True)
class Scenario:
    """One scripted call: caller turns and the expected outcome."""

    id: str
    turns: tuple[Turn, ...]
    first_intent: str
    route: str
    handoff: bool
    voice: str = ""


def load_call_manifest(path: Path | str) -> list[Scenario]:
    """Read a calls manifest (JSONL; turn audio paths relative to the manifest's folder)."""
    manifest = Path(path)
    base = manifest.resolve().parent
    scenarios = []
    with manifest.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                turns = tuple(
                    Turn(audio=(base / t["audio"]).resolve(), text=t.get("text", ""), sha256=t.get("sha256", ""))
                    for t in raw["turns"]
                )
                scenarios.append(
                    Scenario(
                        id=str(raw["id"]),
                        turns=turns,
                        first_intent=raw["first_intent"],
                        route=raw["route"],
                        handoff=bool(raw["handoff"]),
                        voice=raw.get("voice", ""),
                    )
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{manifest}:{number}: not a call scenario ({exc})") from exc
    if not scenarios:
        raise ValueError(f"{manifest}: no scenarios")
    return scenarios


@dataclass
class CallOutcome:
    """What happened in one scripted call, next to what should have happened."""

    id: str
    expected_first_intent: str
    expected_route: str
    expected_handoff: bool
    first_intent: str | None = None
    route: str | None = None
    handoff: bool = False
    handoff_reason: str | None = None
    route_turn: int | None = None  # 1-based caller turn after which the call was routed or handed off
    handoff_turn: int | None = None
    turns_heard: int = 0  # caller turns with a non-empty final transcript
    transcripts: list[str] = field(default_factory=list)
    latencies: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    voice: str = ""
    # The caller turns' audio (the manifest's sha256s): a baseline says which audio it was measured on, since
    # eval/audio/ is made, not versioned, and stale audio once gave a baseline another call's words.
    audio_sha256: list[str] = field(default_factory=list)

    @property
    def first_intent_ok(self) -> bool:
        return self.first_intent == self.expected_first_intent

    @property
    def route_ok(self) -> bool:
        return self.route == self.expected_route


def outcome_from_events(scenario: Scenario, events: Iterable[dict[str, Any]]) -> CallOutcome:
    """Score one call from its event stream (CallSession's event dicts, in order).

    Caller turns are counted as the bot heard them: each non-empty
    ``transcript.final`` opens a turn, and the events after it (intent, route,
    handoff, latency) belong to that turn. This works the same for simulated
    calls and for a recorded live call, without any annotation. The first
    ``intent`` event gives the first intent; the first ``route`` or ``handoff``
    fixes the route and the turn it happened in (a handoff without a team route
    means a human has the call: ``HUMAN_ROUTE``).
    """
    outcome = CallOutcome(
        id=scenario.id,
        expected_first_intent=scenario.first_intent,
        expected_route=scenario.route,
        expected_handoff=scenario.handoff,
        voice=scenario.voice,
        audio_sha256=[t.sha256 for t in scenario.turns],
    )
    turn = 0
    for event in events:
        kind = event.get("type")
        if kind == "transcript.final" and str(event.get("text", "")).strip():
            turn += 1
            outcome.transcripts.append(str(event["text"]))
        elif kind == "intent" and outcome.first_intent is None:
            outcome.first_intent = event.get("label")
        elif kind == "route" and outcome.route is None:
            outcome.route = event.get("route")
            outcome.route_turn = outcome.route_turn or turn
        elif kind == "handoff" and not outcome.handoff:
            outcome.handoff = True
            outcome.handoff_reason = event.get("reason")
            outcome.handoff_turn = turn
            outcome.route_turn = outcome.route_turn or turn
        elif kind == "latency":
            outcome.latencies.append({k: float(event[k]) for k in LATENCY_STAGES if k in event})
        elif kind == "error" and outcome.error is None:
            outcome.error = f"{event.get('code')}: {event.get('message')}"
    outcome.turns_heard = turn
    if outcome.handoff and outcome.route is None:
        outcome.route = HUMAN_ROUTE
    return outcome


def confusion(expected: Sequence[str], predicted: Sequence[str | None]) -> dict[str, Any]:
    """Confusion counts over the union of labels (rows expected, columns predicted)."""
    pred = [p if p is not None else NO_INTENT for p in predicted]
    labels = sorted(set(expected) | set(pred), key=lambda x: (x == NO_INTENT, x))
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for e, p in zip(expected, pred, strict=True):
        matrix[index[e]][index[p]] += 1
    return {"labels": labels, "matrix": matrix}


def aggregate(outcomes: Sequence[CallOutcome]) -> dict[str, Any]:
    """Metrics over scored calls (errored calls count as wrong, never silently dropped)."""
    n = len(outcomes)
    handoff = precision_recall([o.handoff for o in outcomes], [o.expected_handoff for o in outcomes])
    safety = [o for o in outcomes if o.expected_first_intent in SAFETY_INTENTS]
    routed = [o.route_turn for o in outcomes if o.route_turn is not None]
    metrics: dict[str, Any] = {
        "calls": n,
        "errored_calls": sum(1 for o in outcomes if o.error),
        "first_intent_accuracy": ratio(sum(o.first_intent_ok for o in outcomes), n),
        "routing_accuracy": ratio(sum(o.route_ok for o in outcomes), n),
        "handoff_precision": handoff["precision"],
        "handoff_recall": handoff["recall"],
        "handoff_f1": handoff["f1"],
        # Escalated at all, and escalated after the very first caller turn (what TRIAGE.md asks for).
        "safety_escalation_recall": ratio(sum(o.handoff for o in safety), len(safety)),
        "safety_escalation_at_once": ratio(sum(o.handoff_turn == 1 for o in safety), len(safety)),
        "mean_turns_to_route": mean(routed),
        "unrouted_calls": n - len(routed),
    }
    latency = {
        stage: summarize(v for o in outcomes for t in o.latencies if (v := t.get(stage)) is not None and v >= 0)
        for stage in LATENCY_STAGES
    }
    per_intent: dict[str, dict[str, Any]] = {}
    counts = Counter(o.expected_first_intent for o in outcomes)
    for label in sorted(counts):
        group = [o for o in outcomes if o.expected_first_intent == label]
        per_intent[label] = {
            "calls": len(group),
            "first_intent_accuracy": ratio(sum(o.first_intent_ok for o in group), len(group)),
            "routing_accuracy": ratio(sum(o.route_ok for o in group), len(group)),
        }
    return {
        "metrics": metrics,
        "latency": latency,
        "per_intent": per_intent,
        "confusion": confusion([o.expected_first_intent for o in outcomes], [o.first_intent for o in outcomes]),
    }


def outcome_dict(outcome: CallOutcome) -> dict[str, Any]:
    data = asdict(outcome)
    data["first_intent_ok"] = outcome.first_intent_ok
    data["route_ok"] = outcome.route_ok
    return data


async def _run_scenarios(
    settings: Settings, scenarios: Sequence[Scenario], channel: str | None, progress: bool
) -> tuple[list[CallOutcome], dict[str, float]]:
    from tqdm import tqdm

    from voicebot.dialog.simulate import simulate_call
    from voicebot.engines import Engines

    # The encoder only serves agent-assist retrieval; the calls themselves do not need it.
    from voicebot.dialog.domain import load_domain

    engines = Engines.load(settings, with_encoder=False)
    domain = load_domain(settings.dialog.domain)
    clients = engines.clients()
    await clients.start()
    outcomes: list[CallOutcome] = []
    try:
        for scenario in tqdm(scenarios, desc="calls", unit="call", file=sys.stderr, disable=not progress):
            try:
                call = await simulate_call(
                    clients, settings, [t.audio for t in scenario.turns], domain=domain, channel=channel,
                    call_id=scenario.id,
                )
                outcomes.append(outcome_from_events(scenario, call.events))
            except Exception as exc:  # noqa: BLE001 - one broken call is a scored failure, not a crashed eval
                log.exception("scenario %s failed", scenario.id)
                outcome = outcome_from_events(scenario, [])
                outcome.error = f"{type(exc).__name__}: {exc}"
                outcomes.append(outcome)
    finally:
        await clients.aclose()
    return outcomes, dict(engines.load_seconds)


def evaluate_calls(
    settings: Settings,
    manifest: Path | str,
    *,
    channel: str | None = None,
    limit: int | None = None,
    only: Sequence[str] = (),
    progress: bool = True,
) -> dict[str, Any]:
    """Run every scenario of a calls manifest and return the JSON-ready result (``kind: "calls"``)."""
    scenarios = load_call_manifest(manifest)
    if only:
        wanted = set(only)
        scenarios = [s for s in scenarios if s.id in wanted]
    if limit:
        scenarios = scenarios[:limit]
    missing = [str(t.audio) for s in scenarios for t in s.turns if not t.audio.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} turn audio files are missing (first: {missing[0]}); "
            "run `python scripts/make_scenario_audio.py` to synthesize them"
        )
    started = time.perf_counter()
    outcomes, load_seconds = asyncio.run(_run_scenarios(settings, scenarios, channel, progress))
    result: dict[str, Any] = {
        "kind": "calls",
        "config": {
            "manifest": str(manifest),
            "channel": channel or "wideband",
            "scenarios": len(scenarios),
            "asr_model": settings.asr.model,
            "intent_model": settings.nlu.intent_model,
            "voice": settings.tts.voice,
            "end_silence_ms": settings.vad.end_silence_ms,
            "realtime": False,
        },
        **aggregate(outcomes),
        "timing": {"load_seconds": load_seconds, "run_seconds": round(time.perf_counter() - started, 2)},
        "calls": [outcome_dict(o) for o in outcomes],
    }
    return result


def format_calls(result: dict[str, Any]) -> str:
    """A short plain-text summary for the terminal."""
    m = result["metrics"]
    turns = m["mean_turns_to_route"]

    def pct(x: float | None) -> str:
        return "–" if x is None else f"{100 * x:.1f}%"

    lines = [
        f"calls: {m['calls']} ({result['config']['channel']}), errored {m['errored_calls']}",
        f"first-intent accuracy   {pct(m['first_intent_accuracy'])}",
        f"routing accuracy        {pct(m['routing_accuracy'])}",
        f"handoff precision       {pct(m['handoff_precision'])}   recall {pct(m['handoff_recall'])}",
        f"safety escalation       {pct(m['safety_escalation_recall'])}   at once {pct(m['safety_escalation_at_once'])}",
        f"mean turns to route     {'–' if turns is None else f'{turns:.2f}'}",
        "latency per turn (ms)   p50 / p95 / max  (offline run: endpoint silence of "
        f"{result['config']['end_silence_ms']} ms comes on top in a live call)",
    ]
    for stage, s in result["latency"].items():
        if s["n"]:
            lines.append(f"  {stage:22} {s['p50']:8.0f} {s['p95']:8.0f} {s['max']:8.0f}   (n={s['n']})")
    wrong = [c for c in result["calls"] if not (c["first_intent_ok"] and c["route_ok"])]
    for c in wrong:
        lines.append(
            f"  ✗ {c['id']}: intent {c['first_intent']} (want {c['expected_first_intent']}), "
            f"route {c['route']} (want {c['expected_route']}){' error ' + c['error'] if c['error'] else ''}"
        )
    return "\n".join(lines)
