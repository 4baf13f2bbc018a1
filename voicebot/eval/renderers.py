"""Turn each evaluation's JSON result into report sections (one function per kind).

The renderers read the dicts the ``voicebot eval`` subcommands print with
``--json`` and never recompute a metric, so a report always shows the numbers
the command printed. Unknown keys are tolerated; unknown kinds get a generic
rendering of their numbers, so a new evaluation has a report on day one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from voicebot.config import Settings
from voicebot.eval import plots
from voicebot.eval.report import Figure, KeyNumbers, Paragraph, Report, Section, Table

Renderer = Callable[[Mapping[str, Any]], list[Section]]

_TITLES = {
    "asr": "Speech recognition evaluation",
    "intent": "Intent evaluation",
    "calls": "End-to-end call evaluation",
    "tts": "Speech synthesis evaluation",
    "load": "Load benchmark",
}


def _pct(x: Any) -> Any:
    return None if x is None else f"{100 * float(x):.1f}%"


def _scalars(data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in data.items() if isinstance(v, (int, float, str, bool)) or v is None]


def _generic(result: Mapping[str, Any]) -> list[Section]:
    """Any result: top-level numbers as tiles, nested flat dicts as two-column tables."""
    blocks: list[Any] = [KeyNumbers([(k, v) for k, v in _scalars(result) if k != "kind"])]
    for key, value in result.items():
        if isinstance(value, Mapping) and key != "config":
            rows = _scalars(value)
            if rows:
                blocks.append(Table(["name", "value"], rows, title=key))
    return [Section("Results", blocks)]


# ------------------------------------------------------------------- calls
def _calls(result: Mapping[str, Any]) -> list[Section]:
    m = result["metrics"]
    head = KeyNumbers([
        ("calls", m["calls"]),
        ("first-intent accuracy", _pct(m["first_intent_accuracy"])),
        ("routing accuracy", _pct(m["routing_accuracy"])),
        ("handoff precision", _pct(m["handoff_precision"])),
        ("handoff recall", _pct(m["handoff_recall"])),
        ("safety escalation recall", _pct(m["safety_escalation_recall"])),
        ("safety escalated at once", _pct(m["safety_escalation_at_once"])),
        ("mean turns to route", m["mean_turns_to_route"]),
        ("errored calls", m["errored_calls"]),
    ])
    conf = result["confusion"]
    outcome = Section("Outcome", [
        head,
        Figure(plots.confusion_matrix_png(conf["labels"], conf["matrix"]), "First intent per call",
               "rows: the scenario's expected first intent; columns: the first intent the bot recognized"),
        Table(["intent", "calls", "first-intent accuracy", "routing accuracy"],
              [[k, v["calls"], _pct(v["first_intent_accuracy"]), _pct(v["routing_accuracy"])]
               for k, v in result.get("per_intent", {}).items()], title="Per expected intent"),
    ])
    stages = result["latency"]
    samples = {s: [t[s] for c in result.get("calls", []) for t in c.get("latencies", []) if t.get(s, -1) >= 0]
               for s in stages}
    latency = Section("Latency per caller turn", [
        Paragraph("From the end of the caller's speech to the final transcript, the intent decision and the "
                  "first byte of bot audio (CallSession's latency events). The calls ran offline "
                  f"(realtime=False): in a live call the endpointer's silence of "
                  f"{result.get('config', {}).get('end_silence_ms', '?')} ms comes before the final transcript."),
        Table(["stage", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
              [[k, s["n"], s["p50"], s["p95"], s["p99"], s["max"]] for k, s in stages.items()]),
        Figure(plots.distributions_png(samples, "milliseconds"), "Latency distributions"),
    ])
    rows = [
        [c["id"], c.get("voice", ""), c["expected_first_intent"], c["first_intent"], c["expected_route"], c["route"],
         c["expected_handoff"], c["handoff"], c.get("route_turn"), " | ".join(c.get("transcripts", [])),
         c.get("error") or ""]
        for c in result.get("calls", [])
    ]
    calls = Section("Calls", [Table(
        ["id", "voice", "want intent", "got intent", "want route", "got route", "want handoff", "handoff",
         "routed at turn", "what the bot heard", "error"], rows)])
    return [outcome, latency, calls]


# --------------------------------------------------------------------- tts
def _tts(result: Mapping[str, Any]) -> list[Section]:
    voices = result["voices"]
    table = Table(
        ["voice", "sample rate", "RTF", "× real time", "first audio p50 ms", "first audio p95 ms", "WER", "CER",
         "load s", "cold first s"],
        [[name, v["sample_rate"], v["rtf"], (1 / v["rtf"]) if v["rtf"] else None, v["first_audio_ms"]["p50"],
          v["first_audio_ms"]["p95"], _pct(v["wer"]), _pct(v["cer"]), v["load_seconds"], v["cold_first_seconds"]]
         for name, v in voices.items()])
    series = {name: ([i["audio_seconds"] for i in v["items"]], [i["wer"] for i in v["items"]])
              for name, v in voices.items()}
    ttfa = {name: [i["first_audio_ms"] for i in v["items"] if i["first_audio_ms"] is not None]
            for name, v in voices.items()}
    sections = [Section("Speed and intelligibility", [
        Paragraph("RTF = synthesis time / audio time (below 1 is faster than real time). First audio = time to "
                  "synthesize a prompt's first sentence, which is what a caller waits for. Intelligibility is an "
                  f"ASR round trip ({result['config'].get('asr_model')}, channel "
                  f"{result['config'].get('channel')}): it mixes TTS and ASR quality, so compare voices, not "
                  "absolute values. English voices read German text with English phonetics."),
        table,
        Figure(plots.distributions_png(ttfa, "milliseconds"), "Time to first audio per prompt"),
        Figure(plots.scatter_png([], [], "prompt audio seconds", "WER", series=series), "Round-trip WER by length"),
    ])]
    for name, v in voices.items():
        sections.append(Section(f"Prompts: {name}", [Table(
            ["prompt", "heard by the ASR", "WER", "audio s", "synth s", "first audio ms"],
            [[i["text"], i["hypothesis"], i["wer"], i["audio_seconds"], i["synth_seconds"], i["first_audio_ms"]]
             for i in v["items"]])]))
    return sections


# -------------------------------------------------------------------- load
def _load(result: Mapping[str, Any]) -> list[Section]:
    runs = result["by_calls"]
    ns = sorted(runs, key=int)
    cols = ["calls", "completed", "dropped", "errored", "handoffs", "voice→voice p50", "p95", "p99",
            "partial lag p50", "p95", "final p50", "p95", "server CPU % mean", "max", "RSS MB max",
            "client CPU % mean", "client late p95 ms"]
    rows = []
    for n in ns:
        r = runs[n]
        v2v, lag, fin = r["voice_to_voice_ms"], r["partial_lag_ms"], r["final_latency_ms"]
        cpu = r["server"]["cpu_percent"]
        rows.append([int(n), r["completed_calls"], r["dropped_calls"], r["errored_calls"], r.get("handoffs"),
                     v2v["p50"], v2v["p95"], v2v["p99"], lag["p50"], lag["p95"], fin["p50"], fin["p95"], cpu["mean"],
                     cpu["max"], r["server"]["rss_mb"]["max"], r.get("client_cpu_percent", {}).get("mean"),
                     r["client_late_ms"]["p95"]])
    problems = [[int(n), msg, count] for n in ns for msg, count in runs[n].get("problem_counts", {}).items()]
    xs = [int(n) for n in ns]
    v2v_plot = plots.lines_png(
        xs, {f"voice→voice {p}": [runs[n]["voice_to_voice_ms"][p] for n in ns] for p in ("p50", "p95", "p99")}
        | {"final transcript p95": [runs[n]["final_latency_ms"]["p95"] for n in ns]},
        "concurrent calls", "milliseconds", "Latency vs concurrent calls", logx=True)
    cpu_plot = plots.lines_png(
        xs, {"server CPU % (mean)": [runs[n]["server"]["cpu_percent"]["mean"] for n in ns],
             "server CPU % (max)": [runs[n]["server"]["cpu_percent"]["max"] for n in ns]},
        "concurrent calls", "percent of one core", "Server CPU", logx=True)
    cfg = result.get("config", {})
    return [Section("Latency and resources by number of concurrent calls", [
        Paragraph("Voice→voice: from the moment a simulated caller stops speaking to the first byte of bot audio. "
                  "Partial lag: how far the newest partial transcript trails the audio sent. Final: from the end "
                  f"of speech to the final transcript. Each caller speaks real German clips in real time with "
                  f"pauses and continuous silence frames for {cfg.get('duration_s', '?')} s; percentiles by linear "
                  "interpolation."),
        Table(cols, rows),
        Paragraph("A client whose CPU nears 100 % or whose frame clock runs late is measuring itself: run the "
                  "callers on another machine (--url) before reading the server's limits off such a row."),
        Figure(v2v_plot, "Voice-to-voice latency"),
        Figure(cpu_plot, "Server CPU (100 % = one core)"),
        Table(["calls", "problem", "count"], problems, title="Problems"),
    ])]


# ------------------------------------------------------------------ intent
def reliability_from_curve(curve: Sequence[Mapping[str, float]], n: int) -> list[dict[str, float]]:
    """Reliability bins from a coverage curve (threshold grid, coverage, selective accuracy).

    Items with confidence in ``[t_k, t_k+1)`` number ``n (cov_k - cov_k+1)``, of which
    ``n (cov_k acc_k - cov_k+1 acc_k+1)`` are right. The bin's mean confidence is
    not in the curve, so the bin midpoint stands in for it; an exact ``reliability``
    list in the result is preferred where the evaluation provides one.
    """
    pts = sorted(curve, key=lambda p: p["threshold"])
    bins = []
    for lo, hi in zip(pts, [*pts[1:], None], strict=True):
        cov_hi = hi["coverage"] if hi else 0.0
        right_hi = hi["coverage"] * hi["selective_accuracy"] if hi else 0.0
        count = round(n * (lo["coverage"] - cov_hi))
        if count <= 0:
            continue
        right = n * (lo["coverage"] * lo["selective_accuracy"] - right_hi)
        top = hi["threshold"] if hi else 1.0
        bins.append({"confidence": (lo["threshold"] + top) / 2, "accuracy": max(0.0, min(1.0, right / count)),
                     "count": count})
    return bins


def _intent_one(result: Mapping[str, Any], name: str) -> list[Section]:
    head = KeyNumbers([
        ("utterances", result.get("n")), ("accuracy", _pct(result.get("accuracy"))),
        ("macro-F1", _pct(result.get("macro_f1"))), ("ECE", result.get("ece")),
        ("coverage (act)", _pct(result.get("coverage"))),
        ("selective accuracy", _pct(result.get("selective_accuracy"))),
        ("false escalations", _pct(result.get("false_escalation_rate"))),
    ])
    blocks: list[Any] = [head]
    if "labels" in result and "confusion" in result:
        blocks.append(Figure(plots.confusion_matrix_png(result["labels"], result["confusion"]), "Confusion matrix"))
    bins = result.get("reliability") or reliability_from_curve(result.get("coverage_curve", []), int(result["n"]))
    blocks.append(Figure(plots.reliability_png(bins, result.get("ece")), "Reliability diagram",
                         "" if result.get("reliability") else "bins from the coverage curve; x = bin midpoint"))
    curve = result.get("coverage_curve", [])
    if curve:
        point = (result["coverage"], result["selective_accuracy"]) if "coverage" in result else None
        blocks.append(Figure(plots.coverage_png([p["coverage"] for p in curve],
                                                [p["selective_accuracy"] for p in curve], point),
                             "Coverage vs selective accuracy", "red: the act/confirm decision's operating point"))
    per = result.get("per_intent", {})
    blocks.append(Table(["intent", "precision", "recall", "F1", "support"],
                        [[k, v["precision"], v["recall"], v["f1"], v["support"]] for k, v in per.items()],
                        title="Per intent"))
    safety = result.get("safety_recall", {})
    model_safety = result.get("model_safety_recall", {})
    blocks.append(Table(["safety intent", "recall (policy)", "recall (model top-1)"],
                        [[k, v, model_safety.get(k)] for k, v in safety.items()], title="Safety"))
    errors = result.get("errors", [])
    if errors:
        blocks.append(Table(["gold", "predicted", "confidence", "text"],
                            [[e["gold"], e["pred"], e["confidence"], e["text"]] for e in errors[:40]],
                            title=f"Errors ({len(errors)}, first 40)"))
    return [Section(f"Intent model {name}", blocks)]


def _intent(result: Mapping[str, Any]) -> list[Section]:
    many = result.get("models") or result.get("results")
    if isinstance(many, Mapping):
        return [s for name, r in many.items() for s in _intent_one(r, str(name))]
    if isinstance(many, list):
        return [s for r in many for s in _intent_one(r, str(r.get("model", "?")))]
    return _intent_one(result, str(result.get("model", "")))


RENDERERS: dict[str, Renderer] = {"calls": _calls, "tts": _tts, "load": _load, "intent": _intent}


def _config_sections(kind: str, result: Mapping[str, Any], settings: Settings) -> list[Section]:
    from voicebot.eval.provenance import models_for, settings_dict

    voices = list(result.get("voices", {})) if kind == "tts" else None
    rows = []
    for model in models_for(kind, settings, voices):
        files = model.get("files") or [{"path": "", "sha256": "", "present": None}]
        for f in files:
            rows.append([model["role"], model["id"], f["path"], f["sha256"], f["present"]])
        if model.get("calibration"):
            rows.append([model["role"], model["id"], "calibration", str(model["calibration"]), None])
    from voicebot.eval.compare import configuration

    config_rows = [[k, v] for k, v in configuration(result).items()]
    tree = settings_dict(settings)
    setting_rows = [[f"{section}.{k}", v] for section, values in tree.items() for k, v in values.items()
                    if section in {"asr", "vad", "tts", "nlu", "dialog"}]
    return [
        Section("Models", [Table(["role", "model", "file", "sha256", "present"], rows)]),
        Section("Configuration", [Table(["option", "value"], config_rows, title="This run"),
                                  Table(["setting", "value"], setting_rows, title="Settings")]),
    ]


def build_report(kind: str, result: Mapping[str, Any], settings: Settings) -> Report:
    """The report for one result: the kind's own sections, then models and configuration."""
    from voicebot.eval.renderers_asr import render_asr

    renderers: dict[str, Renderer] = {**RENDERERS, "asr": render_asr}
    sections = renderers.get(kind, _generic)(result)
    from voicebot.eval.compare import configuration

    cfg = configuration(result)
    subtitle = ", ".join(f"{k} {v}" for k, v in cfg.items()
                         if isinstance(v, (str, int, float)) and k not in ("sentences", "manifest"))
    return Report(_TITLES.get(kind, f"{kind} evaluation"), sections + _config_sections(kind, result, settings),
                  subtitle=subtitle[:300])
