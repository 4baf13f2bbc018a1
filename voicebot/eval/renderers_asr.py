"""Report sections for `voicebot eval asr` results: WER/CER per channel and WER by clip length.

Kept apart from ``renderers`` because the ASR result has its own shape: one
block of numbers per channel (wideband, telephone) with per-clip detail.
The per-clip fields are read tolerantly (``seconds``/``duration``,
``reference``/``ref``/``text``, ``hypothesis``/``hyp``) so the renderer does not
break when the evaluation grows a field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from voicebot.eval import plots
from voicebot.eval.report import Figure, KeyNumbers, Paragraph, Section, Table

LENGTH_EDGES = (0.0, 1.5, 2.5, 4.0, 6.0, 60.0)


def _first(item: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in item and item[key] is not None:
            return item[key]
    return None


def _items(block: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    for key in ("items", "clips", "utterances", "per_clip"):
        value = block.get(key)
        if isinstance(value, list):
            return [v for v in value if isinstance(v, Mapping)]
    return []


def wer_by_length(items: Sequence[Mapping[str, Any]], edges: Sequence[float] = LENGTH_EDGES
                  ) -> tuple[list[float | None], list[int]]:
    """Corpus WER per clip-length bin: summed word errors / summed reference words where the items carry
    those counts, else the mean of the per-clip WERs (the bin then weighs clips, not words)."""
    values: list[float | None] = []
    counts: list[int] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        group = [i for i in items if (s := _first(i, "seconds", "duration")) is not None and lo <= float(s) < hi]
        counts.append(len(group))
        errors = [_first(i, "errors", "word_errors") for i in group]
        words = [_first(i, "words", "reference_words", "ref_words") for i in group]
        if group and all(isinstance(e, (int, float)) for e in errors) and all(isinstance(w, (int, float))
                                                                               for w in words):
            total = sum(words)  # type: ignore[arg-type]
            values.append(sum(errors) / total if total else None)  # type: ignore[arg-type]
        else:
            wers = [float(w) for i in group if (w := _first(i, "wer")) is not None]
            values.append(sum(wers) / len(wers) if wers else None)
    return values, counts


def _channels(result: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``{channel: block}``: the result may hold channels under ``channels``, or be one block itself."""
    channels = result.get("channels")
    if isinstance(channels, Mapping):
        return {str(k): v for k, v in channels.items() if isinstance(v, Mapping)}
    if isinstance(channels, list):
        return {str(c.get("channel", i)): c for i, c in enumerate(channels) if isinstance(c, Mapping)}
    name = str((result.get("config") or {}).get("channel") or result.get("channel") or "wideband")
    return {name: result}


def render_asr(result: Mapping[str, Any]) -> list[Section]:
    channels = _channels(result)
    summary_rows = []
    tiles: list[tuple[str, Any]] = []
    for name, block in channels.items():
        wer, cer = block.get("wer"), block.get("cer")
        rtf = _first(block, "rtf", "real_time_factor")
        clips = _first(block, "n", "clips", "count") or len(_items(block))
        summary_rows.append([name, block.get("mode", ""), clips, block.get("audio_seconds"), wer, cer, rtf,
                             block.get("final_latency_p50"), block.get("final_latency_p95")])
        if wer is not None:
            tiles.append((f"WER {name}", f"{100 * float(wer):.1f}%"))
    sections = [Section("Accuracy per channel", [
        KeyNumbers(tiles),
        Table(["channel", "mode", "clips", "audio s", "WER", "CER", "RTF", "final latency p50 s",
               "final latency p95 s"], summary_rows),
        Paragraph("WER and CER are corpus-level (total edits / total reference words) after the German "
                  "normalization of voicebot.eval.metrics (numbers to digits, case and punctuation folded). "
                  "Final latency: from the end of a turn to its final transcript (streaming mode)."),
    ])]
    series = {}
    for name, block in channels.items():
        items = _items(block)
        if not items:
            continue
        values, counts = wer_by_length(items)
        sections.append(Section(f"WER by clip length: {name}", [
            Figure(plots.binned_bar_png(LENGTH_EDGES, values, counts, "clip length (s)", "WER"),
                   f"WER by clip length ({name})"),
        ]))
        series[name] = ([float(_first(i, "seconds", "duration") or 0) for i in items],
                        [float(_first(i, "wer") or 0) for i in items])
        worst = sorted((i for i in items if _first(i, "wer")), key=lambda i: -float(_first(i, "wer") or 0))[:25]
        sections[-1].blocks.append(Table(
            ["audio", "seconds", "WER", "reference", "hypothesis"],
            [[PurePath(str(_first(i, "audio", "id", "path"))).name, _first(i, "seconds", "duration"), _first(i, "wer"),
              _first(i, "reference", "ref", "text"), _first(i, "hypothesis", "hyp")] for i in worst],
            title="Worst clips"))
    for name, block in channels.items():
        if isinstance(block.get("compare"), Mapping):
            sections.append(_compare_section(name, block))
    if series:
        sections.append(Section("Per-clip WER", [
            Figure(plots.scatter_png([], [], "clip seconds", "WER", series=series), "WER per clip by length")]))
    return sections


def _compare_section(name: str, block: Mapping[str, Any]) -> Section:
    """Streaming finals against the raw model on the same audio, worst clip first (``eval asr --compare``)."""
    c = block["compare"]
    reg = c.get("regressions", {})
    rows = [[PurePath(str(w.get("audio"))).name, w.get("case", ""), w.get("seconds"), w.get("wer"), w.get("raw_wer"),
             w.get("error_delta"), ", ".join(w.get("regressions", ())), w.get("reference"), w.get("hypothesis"),
             w.get("raw_hypothesis")] for w in c.get("worst", [])[:40]]
    return Section(f"Streaming vs raw model per clip: {name}", [
        KeyNumbers([("streaming WER", f"{100 * float(c['streaming_wer']):.1f}%"),
                    ("raw WER", f"{100 * float(c['raw_wer']):.1f}%"),
                    ("clips worse / better", f"{c['clips_worse']} / {c['clips_better']}"),
                    ("lost first / last words", f"{reg.get('first', 0)} / {reg.get('last', 0)}"),
                    ("duplicated text", str(reg.get("duplicated", 0)))]),
        Table(["audio", "case", "seconds", "streaming WER", "raw WER", "Δ errors", "regressions", "reference",
               "streaming", "raw"], rows, title="Worst clips first (streaming errors minus raw errors)"),
        Paragraph("Both decode the same audio (after the channel). Raw: faster-whisper transcribe on the whole "
                  "file (beam 5, no VAD, no guards). A regression is a loss the raw model does not have: none of "
                  "the first (last) two reference words heard, or a word 3-gram said more often than the "
                  "reference says it."),
    ])
