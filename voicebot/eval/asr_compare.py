"""Streaming finals against the raw model on the same audio, clip by clip.

``voicebot eval asr --compare`` decodes every file twice: through the call pipeline
(VAD, streaming recognizer, guards) and with plain faster-whisper on the whole file.
The corpus WERs alone hide regressions (a turn that lost its first words can hide
behind a clip the pipeline happens to do better on), so the comparison is per clip,
worst first: the difference in word errors, and whether the pipeline lost the first
or last words or duplicated text where the raw model did not
(``voicebot.eval.asr_checks``).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from voicebot.eval.asr_checks import edge_regressions


def merge_compare(stream: dict[str, Any], raw: dict[str, Any]) -> dict[str, Any]:
    """The streaming result with the raw model's numbers per clip and a ``compare`` summary."""
    if [PurePath(i["audio"]).name for i in stream["items"]] != [PurePath(i["audio"]).name for i in raw["items"]]:
        raise ValueError("the raw result is not of the same clips (same manifest and --limit needed)")
    items = []
    for s, r in zip(stream["items"], raw["items"], strict=True):
        regressions = edge_regressions(s["reference"], s["hypothesis"], r["hypothesis"])
        items.append({**s, "raw_hypothesis": r["hypothesis"], "raw_wer": r["wer"], "raw_errors": r["errors"],
                      "error_delta": s["errors"] - r["errors"], "regressions": regressions})
    worst = sorted(range(len(items)), key=lambda i: (-items[i]["error_delta"], -(items[i]["wer"] or 0.0)))
    counts = {k: sum(k in it["regressions"] for it in items) for k in ("first", "last", "duplicated")}
    summary = {
        "streaming_wer": stream["wer"],
        "raw_wer": raw["wer"],
        "clips_worse": sum(it["error_delta"] > 0 for it in items),
        "clips_better": sum(it["error_delta"] < 0 for it in items),
        "clips_same": sum(it["error_delta"] == 0 for it in items),
        "regressions": counts,
        "worst": [
            {"audio": items[i]["audio"], "seconds": items[i]["seconds"], "wer": items[i]["wer"],
             "raw_wer": items[i]["raw_wer"], "error_delta": items[i]["error_delta"],
             "regressions": items[i]["regressions"], "reference": items[i]["reference"],
             "hypothesis": items[i]["hypothesis"], "raw_hypothesis": items[i]["raw_hypothesis"],
             **({"case": items[i]["case"]} if "case" in items[i] else {})}
            for i in worst
        ],
    }
    return {
        **stream, "items": items,
        "raw": {k: raw[k] for k in ("wer", "cer", "word_errors", "rtf", "processing_seconds")},
        "compare": summary,
    }


def format_compare(result: dict[str, Any], top: int = 12) -> str:
    """Per-clip table, worst first (streaming errors minus raw errors)."""
    c = result["compare"]
    lines = [
        f"  streaming WER {c['streaming_wer']:.3f} vs raw WER {c['raw_wer']:.3f} (channel {result['channel']}): "
        f"{c['clips_worse']} clips worse, {c['clips_better']} better, {c['clips_same']} same; "
        f"lost first words {c['regressions']['first']}, lost last words {c['regressions']['last']}, "
        f"duplicated text {c['regressions']['duplicated']}",
        f"  {'clip':32} {'sec':>6} {'stream':>7} {'raw':>7} {'Δerr':>5}  regressions",
    ]
    for w in c["worst"][:top]:
        if w["error_delta"] <= 0 and not w["regressions"]:
            break
        lines.append(f"  {PurePath(w['audio']).name[:32]:32} {w['seconds']:6.1f} {w['wer'] or 0:7.3f} "
                     f"{w['raw_wer'] or 0:7.3f} {w['error_delta']:+5d}  {','.join(w['regressions'])}")
    return "\n".join(lines)
