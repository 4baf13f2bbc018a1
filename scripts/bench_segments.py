#!/usr/bin/env python
"""Pause-segmented finals on the phone line: WER, CPU and end-of-turn → final latency per setting.

Streams real German multi-sentence caller turns (``scripts/phone_turns.py``: 1-4 speech-de-more
sentences joined with 0.3-0.8 s pauses, line hiss, through the telephone channel: 8 kHz µ-law and
back to 16 kHz) through the real ``StreamingRecognizer`` (Silero VAD, scheduler, whisper-base),
partials off, every turn through every setting in turn (interleaved: the machine's load falls on
all alike). Up to the caller's last voiced sample the audio goes in as fast as the decodes started
at pauses finish (as a live call, where a sentence takes longer to say than to decode); the trailing
1.5 s of line hiss goes in at the speed of speech, and the wall time from the last voiced sample to
the end of the turn and to the final is measured. As in a call session, the endpointer waits
``turn.max_silence_ms`` and the end-of-turn models end the turn: here ``--end-turn-ms`` after the
last voiced sample (their confident decision; ``--end-turn-ms 0``: the endpointer's silence alone).

    python scripts/bench_segments.py [--turns 30] [--config NAME:KEY=VALUE,KEY=VALUE ...]

A config sets ``[asr]`` fields, e.g. ``seg300:segment_pause_ms=300,final_beam_size=1``;
``segment_window=1`` runs the scheduler with the ``window_s`` keyword (segments after a cut in the
turn-sized window; ``voicebot.asr.segments``). Defaults compare the whole-turn final with segments
at 200/300 ms pauses, beam 5 and greedy (with the temperature fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_asr_window import phone  # noqa: E402
from phone_turns import PhoneTurn, build_turns  # noqa: E402

from voicebot.asr.scheduler import AsrScheduler  # noqa: E402
from voicebot.asr.streaming import StreamingRecognizer  # noqa: E402
from voicebot.asr.transcriber import Transcriber, TranscriptionResult  # noqa: E402
from voicebot.config import Settings, load_settings  # noqa: E402
from voicebot.eval.asr_cases import RATE, line_noise  # noqa: E402
from voicebot.eval.metrics import word_errors  # noqa: E402
from voicebot.eval.stats import percentile  # noqa: E402
from voicebot.frames import AudioFrame, SpeechEnded, Transcript  # noqa: E402
from voicebot.vad import SileroVadModel  # noqa: E402

DEFAULT_CONFIGS = (
    "whole:segment_pause_ms=0", "seg200:segment_pause_ms=200", "seg200-w:segment_pause_ms=200,segment_window=1",
    "seg300-w:segment_pause_ms=300,segment_window=1", "whole-greedy:segment_pause_ms=0,final_beam_size=1",
    "seg200-w-greedy:segment_pause_ms=200,segment_window=1,final_beam_size=1",
)
LEAD_S = 1.0  # line hiss before the turn (the recognizer's pre-roll comes from it)
TRAIL_S = 1.5  # line hiss after it, at the speed of speech
FRAME = RATE // 50  # 20 ms


class TimedTranscriber(Transcriber):
    """The real engine, adding up the wall seconds of every decode (one thread each: ~ CPU seconds)."""

    decode_s = 0.0
    decodes = 0
    windows: dict[int, int] = {}  # id(audio) -> window_s asked for by WindowScheduler

    def transcribe_batch(self, audios: Any, **kw: Any) -> list[TranscriptionResult]:
        started = time.perf_counter()
        window = self.windows.pop(id(audios[0]), None)
        if window is not None and kw.get("window_s") is None:
            kw["window_s"] = window
        try:
            return super().transcribe_batch(audios, **kw)
        finally:
            self.decode_s += time.perf_counter() - started
            self.decodes += 1


class WindowScheduler(AsrScheduler):
    """The scheduler with the ``window_s`` keyword asked for in the report (bench only): a segment after a
    cut decodes in the turn-sized window instead of the 30 s one a short whole turn needs."""

    async def transcribe(  # type: ignore[override]
        self, audio16k: np.ndarray, *, call_id: str, final: bool, offset: float = 0.0,
        initial_prompt: str | None = None, word_timestamps: bool | None = None, speculative: bool = False,
        window_s: int | None = None,
    ) -> TranscriptionResult | None:
        if window_s is not None:
            TimedTranscriber.windows[id(audio16k)] = window_s
        return await super().transcribe(audio16k, call_id=call_id, final=final, offset=offset,
                                        initial_prompt=initial_prompt, word_timestamps=word_timestamps,
                                        speculative=speculative)


def parse_config(spec: str, base: Settings, end_silence_ms: int) -> tuple[str, Settings, bool]:
    name, _, body = spec.partition(":")
    fields: dict[str, Any] = {}
    for kv in filter(None, body.split(",")):
        key, value = kv.split("=", 1)
        if key == "segment_window":  # not a setting: use WindowScheduler
            fields[key] = bool(int(value))
            continue
        current = getattr(base.asr, key)
        fields[key] = type(current)(float(value)) if isinstance(current, (int, float)) else value
    window = fields.pop("segment_window", False)
    # Partials off: this measures finals only.
    asr = replace(base.asr, partial_interval_ms=10**7, min_partial_audio_ms=10**7, **fields)
    return name, replace(base, asr=asr, vad=replace(base.vad, end_silence_ms=end_silence_ms)), window


async def stream_turn(recognizer: StreamingRecognizer, pcm: np.ndarray, speech_end: int,
                      end_turn_ms: float | None) -> dict[str, Any]:
    """Fast up to ``speech_end`` (waiting for early decodes), then real time; returns texts and timings.

    ``end_turn_ms``: the end-of-turn models' decision, this long after the last voiced sample
    (``recognizer.end_turn()``); ``None``: the endpointer's silence ends the turn."""
    frames: list[Any] = []
    for i in range(0, speech_end, FRAME):
        frames += await recognizer.push(AudioFrame(pcm[i : min(i + FRAME, speech_end)], RATE, i / RATE))
        frames += await recognizer.wait_partials()  # the segment decodes: a live caller gives them time
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ended_at = final_at = None
    finals_before = sum(1 for f in frames if isinstance(f, Transcript) and f.is_final)

    def seen(new: list[Any]) -> None:
        nonlocal ended_at, final_at
        for f in new:
            if isinstance(f, SpeechEnded) and ended_at is None:
                ended_at = loop.time()
            if isinstance(f, Transcript) and f.is_final and final_at is None:
                final_at = loop.time()
        frames.extend(new)

    for i in range(speech_end, len(pcm), FRAME):
        delay = t0 + (i - speech_end) / RATE - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        seen(await recognizer.push(AudioFrame(pcm[i : i + FRAME], RATE, i / RATE)))
        if end_turn_ms is not None and ended_at is None and (i + FRAME - speech_end) / RATE * 1000 >= end_turn_ms:
            seen(recognizer.end_turn())
        if final_at is not None:
            break
    if final_at is None and ended_at is not None:  # the final still decodes: wait for it
        pending = [p for p in recognizer._out if isinstance(p, asyncio.Task)]
        if pending:
            await asyncio.wait(pending)
        seen(await recognizer.poll())
    frames += await recognizer.flush()
    finals = [f for f in frames if isinstance(f, Transcript) and f.is_final]
    return {
        "text": " ".join(f.text for f in finals if f.text),
        "finals": len(finals) - finals_before,
        "end_ms": None if ended_at is None else 1000 * (ended_at - t0),
        "final_ms": None if final_at is None else 1000 * (final_at - t0),
        "eot_to_final_ms": None if ended_at is None or final_at is None else 1000 * (final_at - ended_at),
    }


async def run_configs(configs: list[tuple[str, Settings, bool]], asr: TimedTranscriber, vad: SileroVadModel,
                      turns: list[tuple[PhoneTurn, np.ndarray, int]], end_turn_ms: float | None,
                      ) -> list[dict[str, Any]]:
    """Every turn through every config, interleaved (the machine's load falls on all alike)."""
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in configs}
    schedulers = [await (WindowScheduler if window else AsrScheduler)(asr, s.asr).start() for _, s, window in configs]
    try:
        for k, (turn, pcm, speech_end) in enumerate(turns):
            for (name, settings, _), scheduler in zip(configs, schedulers, strict=True):
                asr.settings = settings.asr
                decode0, decodes0, cpu0 = asr.decode_s, asr.decodes, time.process_time()
                recognizer = StreamingRecognizer(scheduler, settings, f"bench-{k}", vad, narrowband=True)
                row = await stream_turn(recognizer, pcm, speech_end, end_turn_ms)
                await recognizer.aclose()
                row.update(kept=recognizer.segment_stats["kept"], cpu_s=time.process_time() - cpu0,
                           decode_s=asr.decode_s - decode0, decodes=asr.decodes - decodes0)
                rows[name].append(row)
                print(json.dumps({"config": name, "turn": turn.name, "s": round(turn.seconds, 1), **row},
                                 ensure_ascii=False), file=sys.stderr, flush=True)
    finally:
        for scheduler in schedulers:
            await scheduler.aclose()
    out = []
    for name, rs in rows.items():
        err = word_errors([t.text for t, _, _ in turns], [r["text"] for r in rs])
        lat = [r["final_ms"] for r in rs if r["final_ms"] is not None]
        eot = [r["eot_to_final_ms"] for r in rs if r["eot_to_final_ms"] is not None]
        n = len(rs)
        out.append({"config": name, "wer": round(err.rate, 3),
                    "decode_s_per_turn": round(sum(r["decode_s"] for r in rs) / n, 3),
                    "decodes_per_turn": round(sum(r["decodes"] for r in rs) / n, 2),
                    "cpu_s_per_turn": round(sum(r["cpu_s"] for r in rs) / n, 3),
                    "kept_per_turn": round(sum(r["kept"] for r in rs) / n, 2),
                    "voice_to_final_p50": percentile(lat, 50), "voice_to_final_p95": percentile(lat, 95),
                    "eot_to_final_p50": percentile(eot, 50), "eot_to_final_p95": percentile(eot, 95)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--config", action="append", default=None, metavar="NAME:KEY=VALUE,...")
    ap.add_argument("--end-turn-ms", type=float, default=250.0,
                    help="the end-of-turn models end the turn this long after the last voiced sample; 0: never")
    ap.add_argument("--end-silence-ms", type=int, default=None,
                    help="the endpointer's silence (default: turn.max_silence_ms, as a call session sets it)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    base = load_settings()
    turns = []
    for i, turn in enumerate(build_turns(args.turns, seed=args.seed)):
        pcm = np.concatenate([line_noise(LEAD_S, seed=2 * i), turn.audio, line_noise(TRAIL_S, seed=2 * i + 1)])
        turns.append((turn, phone(pcm), int(LEAD_S * RATE) + len(turn.audio)))
    asr = TimedTranscriber(base.asr, base.models).load()
    asr.transcribe(np.zeros(RATE, np.float32), beam_size=1)  # warm-up
    vad = SileroVadModel().load()
    end_silence = args.end_silence_ms or int(base.turn.max_silence_ms)
    configs = [parse_config(spec, base, end_silence) for spec in args.config or DEFAULT_CONFIGS]
    results = asyncio.run(run_configs(configs, asr, vad, turns, args.end_turn_ms or None))
    secs = [t.seconds for t, _, _ in turns]
    print(f"{len(turns)} phone turns of {min(secs):.1f}-{max(secs):.1f} s (mean {np.mean(secs):.1f} s), "
          f"partials off, endpointer silence {end_silence} ms, end of turn decided "
          f"{args.end_turn_ms:.0f} ms after the last voiced sample\n")
    print("| config | WER | decode s / turn | decodes / turn | CPU s / turn | kept segments / turn | "
          "last voice → final p50 / p95 ms | end of turn → final p50 / p95 ms |")
    print("|---|---|---|---|---|---|---|---|")

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.0f}"

    for r in results:
        print(f"| {r['config']} | {r['wer']:.3f} | {r['decode_s_per_turn']:.2f} | {r['decodes_per_turn']:.2f} | "
              f"{r['cpu_s_per_turn']:.2f} | {r['kept_per_turn']:.2f} | {f(r['voice_to_final_p50'])} / "
              f"{f(r['voice_to_final_p95'])} | {f(r['eot_to_final_p50'])} / {f(r['eot_to_final_p95'])} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
