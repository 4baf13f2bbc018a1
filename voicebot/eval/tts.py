"""TTS evaluation: synthesis speed and intelligibility by ASR round trip, per voice.

Speed: the real-time factor (synthesis seconds / audio seconds; below 1 is
faster than real time) and the time to first audio, i.e. how long the caller
waits for the first sentence of a prompt, since playback synthesizes sentence by
sentence. Intelligibility: each prompt is synthesized, resampled to 16 kHz
(optionally sent through the telephone channel first, as a caller would hear
it), transcribed by the project's own ASR, and scored by WER/CER with the
German normalization. The ASR is the listener here, so the numbers mix TTS
and ASR quality; they are for comparing voices and settings, not absolute.

English voices (piper-joe-en, the only piper voice here) read German text with
English phonetics; their WER shows that, and is expected to be poor.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.config import REPO_ROOT, Settings
from voicebot.eval.stats import summarize

DEFAULT_VOICES = ("pico-de", "piper-joe-en")
DEFAULT_SENTENCES = REPO_ROOT / "eval" / "tts" / "sentences.txt"
ASR_RATE = 16000


def load_sentences(path: Path | str = DEFAULT_SENTENCES) -> list[str]:
    """One prompt per line; blank lines and lines starting with ``#`` are skipped."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    sentences = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not sentences:
        raise ValueError(f"{path}: no sentences")
    return sentences


def _to_asr_audio(pcm: np.ndarray, rate: int, channel: str | None) -> np.ndarray:
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.resample import resample

    if channel == "telephone":
        pcm, rate = telephone_channel(pcm, rate)
    return resample(pcm, rate, ASR_RATE)


def evaluate_voice(
    settings: Settings,
    voice: str,
    prompts: Sequence[str],
    transcriber: Any,
    *,
    channel: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Speed and round-trip intelligibility of one voice over ``prompts``."""
    from tqdm import tqdm

    from voicebot.eval.metrics import cer, wer
    from voicebot.tts import make_synthesizer, split_sentences

    started = time.perf_counter()
    synth = make_synthesizer(settings.tts, settings.models, voice).load()
    load_seconds = time.perf_counter() - started
    # The first synthesis pays one-off costs (ONNX session warm-up, lingware reads): measured apart.
    t0 = time.perf_counter()
    synth.synthesize("Guten Tag.")
    cold_first_seconds = time.perf_counter() - t0

    items: list[dict[str, Any]] = []
    for prompt in tqdm(prompts, desc=f"tts {voice}", unit="prompt", file=sys.stderr, disable=not progress):
        chunks: list[np.ndarray] = []
        first_audio: float | None = None
        t0 = time.perf_counter()
        rate = synth.sample_rate
        for sentence in split_sentences(prompt):
            audio = synth.synthesize(sentence)
            rate = audio.sample_rate
            if first_audio is None and len(audio.pcm):
                first_audio = time.perf_counter() - t0
            chunks.append(audio.pcm)
        synth_seconds = time.perf_counter() - t0
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        audio_seconds = len(pcm) / rate
        heard = _to_asr_audio(pcm, rate, channel)
        result = transcriber.transcribe(heard, word_timestamps=False)
        items.append({
            "text": prompt,
            "hypothesis": result.text,
            "wer": round(wer([prompt], [result.text]), 4),
            "audio_seconds": round(audio_seconds, 3),
            "synth_seconds": round(synth_seconds, 4),
            "first_audio_ms": None if first_audio is None else round(first_audio * 1000.0, 2),
        })
    total_synth = sum(i["synth_seconds"] for i in items)
    total_audio = sum(i["audio_seconds"] for i in items)
    refs = [i["text"] for i in items]
    hyps = [i["hypothesis"] for i in items]
    return {
        "voice": voice,
        "sample_rate": int(synth.sample_rate),
        "load_seconds": round(load_seconds, 3),
        "cold_first_seconds": round(cold_first_seconds, 4),
        "audio_seconds": round(total_audio, 3),
        "synth_seconds": round(total_synth, 4),
        "rtf": round(total_synth / total_audio, 5) if total_audio else None,
        "first_audio_ms": summarize(i["first_audio_ms"] for i in items),
        "wer": round(wer(refs, hyps), 4),
        "cer": round(cer(refs, hyps), 4),
        "items": items,
    }


def evaluate_tts(
    settings: Settings,
    voices: Sequence[str] = DEFAULT_VOICES,
    sentences: Path | str = DEFAULT_SENTENCES,
    *,
    channel: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate every voice on the same prompts with one loaded ASR model; JSON-ready (``kind: "tts"``)."""
    from voicebot.asr.transcriber import Transcriber

    prompts = load_sentences(sentences)[: limit or None]
    transcriber = Transcriber(settings.asr, settings.models).load()
    per_voice = {v: evaluate_voice(settings, v, prompts, transcriber, channel=channel, progress=progress)
                 for v in voices}
    return {
        "kind": "tts",
        "config": {
            "voices": list(voices),
            "sentences": str(sentences),
            "prompts": len(prompts),
            "channel": channel or "wideband",
            "asr_model": settings.asr.model,
            "asr_beam_size": settings.asr.final_beam_size,
            "length_scale": settings.tts.length_scale,
        },
        "voices": per_voice,
    }


def format_tts(result: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    lines = [
        f"{result['config']['prompts']} prompts, ASR {result['config']['asr_model']}, "
        f"channel {result['config']['channel']}",
        f"{'voice':16} {'rate':>6} {'RTF':>8} {'x real':>7} {'first audio p50/p95 ms':>23} {'WER':>7} {'CER':>7}",
    ]
    for name, v in result["voices"].items():
        fa = v["first_audio_ms"]
        speed = f"{1 / v['rtf']:.0f}" if v["rtf"] else "–"
        lines.append(
            f"{name:16} {v['sample_rate']:>6} {v['rtf']:>8.4f} {speed:>7} {fa['p50']:>11.1f} / {fa['p95']:<9.1f} "
            f"{100 * v['wer']:>6.1f}% {100 * v['cer']:>6.1f}%"
        )
    return "\n".join(lines)
