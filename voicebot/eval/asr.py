"""ASR evaluation: WER/CER of the streaming call pipeline (or plain faster-whisper) on a manifest.

A manifest is JSONL, one ``{"audio": path relative to the manifest, "text": reference}``
per line (extra keys are ignored). Each file goes through exactly what a call uses:
optional telephone channel (8 kHz µ-law, then back to 16 kHz; the VAD is told the
call is narrowband, as the server does for 8 kHz calls), VAD + endpointing,
streaming ASR with partials and the hallucination guards; the turn finals are
joined into the hypothesis. ``raw=True`` instead runs faster-whisper's own
``transcribe`` on the whole file (beam 5, German, no VAD, no guards) for comparison.

``compare=True`` (``voicebot eval asr --compare``) does both on the same audio and adds the
per-clip comparison, worst clip first (``voicebot.eval.asr_compare``); ``channel="both"``
runs wideband and telephone in one go. Constructed long/short/onset test turns:
``python -m voicebot.eval.asr_cases`` writes them with a manifest (``voicebot.eval.asr_cases``).

Texts are compared after ``voicebot.eval.metrics.normalize_german``. ``rtf`` is
processing wall time over audio duration (model loading excluded). Files are fed
as fast as possible, so latencies here mean nothing: ``scripts/bench_asr.py``
measures them with real-time callers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.asr.transcriber import ASR_SAMPLE_RATE
from voicebot.config import Settings
from voicebot.eval.metrics import char_errors, word_errors

CHANNELS = ("wideband", "telephone")  # wideband: the file as it is, at 16 kHz


@dataclass(frozen=True)
class AsrItem:
    audio: Path
    reference: str
    kind: str = ""  # constructed cases (voicebot.eval.asr_cases): onset0, short, long, straddle


def load_asr_manifest(path: Path | str, limit: int | None = None) -> list[AsrItem]:
    """Read a JSONL manifest; audio paths are resolved relative to the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    items: list[AsrItem] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                audio = (path.parent / row["audio"]).resolve()
                items.append(AsrItem(audio, str(row["text"]), str(row.get("kind", ""))))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: expected {{\"audio\": ..., \"text\": ...}}: {exc}") from exc
            if limit is not None and len(items) >= limit:
                break
    return items


def prepare_audio(path: Path | str, channel: str = "wideband") -> np.ndarray:
    """A file as 16 kHz int16, optionally through the telephone channel first."""
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.io import read_audio
    from voicebot.audio.resample import resample

    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    pcm, rate = read_audio(path)
    if channel == "telephone":
        pcm, rate = telephone_channel(pcm, rate)
    return resample(pcm, rate, ASR_SAMPLE_RATE)


def load_vad_model(settings: Settings) -> Any:
    """The shared Silero session (provisioned copy if present), or None for the WebRTC detector."""
    if settings.vad.detector != "silero":
        return None
    from voicebot.vad import SileroVadModel

    path = settings.models.dir / "silero-vad" / "silero_vad_v6.onnx"
    return SileroVadModel(path if path.is_file() else None).load()


async def stream_transcribe(
    scheduler: Any, settings: Settings, vad_model: Any, pcm16k: np.ndarray, call_id: str, *,
    realtime: bool = False, partials: bool = True, on_event: Callable[[str, dict[str, Any]], None] | None = None,
    narrowband: bool = False,
) -> dict[str, Any]:
    """One recording through the call pipeline; finals, partials and per-turn latencies.

    ``on_event(kind, item)`` sees each partial/final as it comes (live printing);
    ``narrowband`` tells the VAD that the audio came through a telephone channel.
    """
    from voicebot.asr.streaming import StreamingRecognizer, run_stream
    from voicebot.frames import SpeechEnded, SpeechStarted, Transcript

    if not partials:
        from dataclasses import replace

        # An interval beyond any turn: no partial decodes (finals are unaffected).
        settings = replace(settings, asr=replace(settings.asr, partial_interval_ms=10**9, min_partial_audio_ms=10**9))
    recognizer = StreamingRecognizer(scheduler, settings, call_id, vad_model, narrowband=narrowband)
    finals: list[dict[str, Any]] = []
    partial_list: list[dict[str, Any]] = []
    turns = 0
    ended_wall: float | None = None
    try:
        async for wall, frame in run_stream(recognizer, pcm16k, realtime=realtime):
            if isinstance(frame, SpeechStarted):
                turns += 1
            elif isinstance(frame, SpeechEnded):
                ended_wall = wall
            elif isinstance(frame, Transcript) and frame.is_final:
                if frame.text:  # a turn that was noise has an empty final: no words, nothing to report
                    finals.append({
                        "text": frame.text, "start": round(frame.start, 3), "end": round(frame.end, 3),
                        "confidence": round(frame.confidence, 4), "wall": round(wall, 3),
                        "latency": round(wall - ended_wall, 3) if ended_wall is not None else None,
                        "words": [[w.text, round(w.start, 3), round(w.end, 3), round(w.probability, 4)]
                                  for w in frame.words],
                    })
                    if on_event is not None:
                        on_event("final", finals[-1])
            elif isinstance(frame, Transcript):
                partial_list.append({"text": frame.text, "committed": frame.committed, "end": round(frame.end, 3),
                                     "wall": round(wall, 3)})
                if on_event is not None:
                    on_event("partial", partial_list[-1])
    finally:
        await recognizer.aclose()
    # Why the hallucination guards changed a final (per turn), to measure false blanking on real speech.
    guards = [{"turn": g.turn, "reasons": list(g.reasons), "before": g.before}
              for g in getattr(recognizer, "guard_log", ())]
    return {"finals": finals, "partials": partial_list, "turns": turns, "guards": guards}


def evaluate_asr(
    settings: Settings,
    manifest: Path | str,
    *,
    channel: str = "wideband",
    raw: bool = False,
    limit: int | None = None,
    partials: bool = True,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
    compare: bool = False,
    raw_results: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run the evaluation; returns ``n, wer, cer, rtf, items`` and the details.

    ``compare``: decode every file both ways (streaming and raw) and add the per-clip
    comparison (``voicebot.eval.asr_compare``). ``channel="both"``: wideband and telephone,
    as ``{"kind": "asr", "channels": {name: result}}``. ``raw_results``: ``{channel: a stored
    --raw result of the same manifest}`` to compare against instead of decoding again.
    """
    from voicebot.asr.factory import make_transcriber

    items = load_asr_manifest(manifest, limit)
    if not items:
        raise ValueError(f"{manifest}: no items")
    channels = CHANNELS if channel == "both" else (channel,)
    t0 = time.perf_counter()
    transcriber = make_transcriber(settings).load()  # asr.backend: ctranslate2 | torch | auto
    vad_model = None if raw and not compare else load_vad_model(settings)
    load_seconds = time.perf_counter() - t0
    results = {}
    for name in channels:
        audios = [prepare_audio(item.audio, name) for item in items]
        if compare:
            from voicebot.eval.asr_compare import merge_compare

            stream = _evaluate(transcriber, vad_model, settings, items, audios, name, False, partials, None)
            plain = (raw_results or {}).get(name) or _evaluate(transcriber, vad_model, settings, items, audios,
                                                               name, True, partials, None)
            result = merge_compare(stream, plain)
            if progress is not None:
                for i, entry in enumerate(result["items"]):
                    progress(i + 1, len(items), entry)
        else:
            result = _evaluate(transcriber, vad_model, settings, items, audios, name, raw, partials, progress)
        results[name] = {**result, "manifest": str(manifest), "load_seconds": load_seconds}
    if len(results) == 1:
        return next(iter(results.values()))
    return {"kind": "asr", "mode": "compare" if compare else ("raw" if raw else "streaming"),
            "manifest": str(manifest), "channels": results}


def _evaluate(
    transcriber: Any, vad_model: Any, settings: Settings, items: list[AsrItem], audios: list[np.ndarray],
    channel: str, raw: bool, partials: bool, progress: Callable[[int, int, dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """One mode on one channel's audio."""
    if raw:
        rows, seconds = _run_raw(transcriber, settings, audios)
    else:
        rows, seconds = asyncio.run(
            _run_streaming(transcriber, settings, vad_model, audios, partials, channel == "telephone")
        )
    out_items = []
    for i, (item, row, pcm) in enumerate(zip(items, rows, audios, strict=True)):
        counts = word_errors([item.reference], [row["hypothesis"]])
        entry = {"audio": str(item.audio), "reference": item.reference, **row,
                 "seconds": round(len(pcm) / ASR_SAMPLE_RATE, 3), "errors": counts.errors,
                 "reference_words": counts.reference_units,
                 "wer": counts.rate if counts.reference_units else None}
        if item.kind:
            entry["case"] = item.kind
        out_items.append(entry)
        if progress is not None:
            progress(i + 1, len(items), entry)
    refs = [it["reference"] for it in out_items]
    hyps = [it["hypothesis"] for it in out_items]
    words, chars = word_errors(refs, hyps), char_errors(refs, hyps)
    audio_seconds = sum(len(a) for a in audios) / ASR_SAMPLE_RATE
    return {
        "kind": "asr",
        "mode": "raw" if raw else "streaming",
        "channel": channel,
        "n": len(items),
        "wer": words.rate,
        "cer": chars.rate,
        "word_errors": {"substitutions": words.substitutions, "deletions": words.deletions,
                        "insertions": words.insertions, "reference_words": words.reference_units},
        "rtf": seconds / audio_seconds if audio_seconds else 0.0,
        "audio_seconds": audio_seconds,
        "processing_seconds": seconds,
        "settings": {"model": settings.asr.model, "beam": settings.asr.final_beam_size,
                     "chunk_length": settings.asr.chunk_length, "vad": settings.vad.detector,
                     "vad_threshold": settings.vad.narrowband_threshold if channel == "telephone"
                     else settings.vad.threshold},
        "items": out_items,
    }


def _run_raw(transcriber: Any, settings: Settings, audios: list[np.ndarray]) -> tuple[list[dict[str, Any]], float]:
    rows = []
    started = time.perf_counter()
    for pcm in audios:
        segments, _info = transcriber.model.transcribe(
            pcm.astype(np.float32) / 32768.0, language=settings.asr.language, beam_size=5,
            condition_on_previous_text=False, vad_filter=False,
        )
        rows.append({"hypothesis": " ".join(s.text.strip() for s in segments).strip()})
    return rows, time.perf_counter() - started


async def _run_streaming(
    transcriber: Any, settings: Settings, vad_model: Any, audios: list[np.ndarray], partials: bool,
    narrowband: bool,
) -> tuple[list[dict[str, Any]], float]:
    from voicebot.asr.scheduler import AsrScheduler

    rows = []
    # Files are fed faster than real time, so finals can queue up: no greedy fallback
    # (adaptive_beam) here, every final is decoded as on a machine that keeps up.
    async with AsrScheduler(transcriber, settings.asr, adaptive_beam=False) as scheduler:
        started = time.perf_counter()
        for i, pcm in enumerate(audios):
            out = await stream_transcribe(scheduler, settings, vad_model, pcm, f"eval-{i}", partials=partials,
                                          narrowband=narrowband)
            rows.append({
                "hypothesis": " ".join(f["text"] for f in out["finals"]).strip(),
                "turns": out["turns"], "partials": len(out["partials"]),
                "finals": [{k: f[k] for k in ("text", "start", "end", "confidence", "latency")} for f in out["finals"]],
                "guards": out["guards"],
            })
        return rows, time.perf_counter() - started


def format_asr(result: dict[str, Any], show_items: bool = False) -> str:
    """A short human-readable summary (per channel; with the per-clip comparison where there is one)."""
    if "channels" in result:
        return "\n".join(format_asr(block, show_items) for block in result["channels"].values())
    lines = [
        f"ASR {result['mode']} on {result['n']} files ({result['audio_seconds']:.1f} s audio, "
        f"channel {result['channel']}): WER {result['wer']:.3f}  CER {result['cer']:.3f}  RTF {result['rtf']:.3f}",
        f"  errors: {result['word_errors']}",
    ]
    if "compare" in result:
        from voicebot.eval.asr_compare import format_compare

        lines.append(format_compare(result))
    if show_items:
        for it in result["items"]:
            lines.append(f"  REF {it['reference']}\n  HYP {it['hypothesis']}")
            if "raw_hypothesis" in it:
                lines.append(f"  RAW {it['raw_hypothesis']}")
    return "\n".join(lines)
