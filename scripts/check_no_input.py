#!/usr/bin/env python3
"""A silent caller on a real phone line: when does the bot ask again, and when does a person get the call?

Real engines (Silero VAD, Whisper, the intent model, the configured TTS voice) in a real-time
``CallSession`` on the telephone channel; the caller's line carries only its hiss
(``voicebot.eval.asr_cases.line_noise``, 8 kHz through the telephone channel) and nobody speaks.
Prints, from the end of each bot utterance's audio, when the next utterance came, the handoff
reason, and how many of the line's frames the VAD called voiced (a voiced frame would stop the
no-input wait: hiss must not look like a caller). Settings as usual (``VOICEBOT_DIALOG__NO_INPUT_S``).

    flock /tmp/voicebot-cpu.lock nice -n 10 .venv/bin/python scripts/check_no_input.py [--noise-dbfs -45]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from voicebot.audio.channel import telephone_channel  # noqa: E402
from voicebot.audio.resample import resample  # noqa: E402
from voicebot.config import load_settings  # noqa: E402
from voicebot.dialog.domain import load_domain  # noqa: E402
from voicebot.dialog.session import CallSession  # noqa: E402
from voicebot.engines import Engines  # noqa: E402
from voicebot.eval.asr_cases import RATE, line_noise  # noqa: E402
from voicebot.frames import AudioFrame, BotAudio, VoiceActivity  # noqa: E402
from voicebot.protocol.events import CallEvent, dump  # noqa: E402

LINE_RATE = 8000
FRAME = LINE_RATE // 50  # 20 ms


async def run(noise_dbfs: float, limit_s: float) -> dict[str, Any]:
    settings = load_settings()
    engines = Engines.load(settings, with_encoder=False)
    clients = engines.clients()
    await clients.start()
    pcm, rate = telephone_channel(line_noise(limit_s + 1.0, dbfs=noise_dbfs, seed=7), RATE)
    line = resample(pcm, rate, LINE_RATE)
    events: list[tuple[float, dict[str, Any]]] = []
    voiced = frames = 0
    t0 = time.perf_counter()

    async def emit(event: CallEvent) -> None:
        events.append((time.perf_counter() - t0, dump(event)))

    async def send_audio(audio: BotAudio) -> None:
        return None

    session = CallSession(clients, settings, "no-input-check", domain=load_domain(settings.dialog.domain),
                          emit=emit, send_audio=send_audio, out_rate=LINE_RATE, realtime=True)

    async def on_voice(frame: VoiceActivity) -> None:
        nonlocal voiced, frames
        frames += 1
        voiced += frame.voiced

    session.bus.subscribe(on_voice, VoiceActivity)
    try:
        await session.start()
        tick = time.perf_counter()
        for i in range(0, len(line) - FRAME, FRAME):
            if session.record.handoff is not None and not session.speaker.busy:
                break
            if time.perf_counter() - t0 > limit_s:
                break
            await session.push_audio(AudioFrame(line[i : i + FRAME], LINE_RATE, i / LINE_RATE))
            tick += FRAME / LINE_RATE
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
        await session.end("completed")
    finally:
        await clients.aclose()
    timeline = [(round(t, 2), e["type"], e.get("action") or e.get("reason") or "") for t, e in events
                if e["type"] in ("bot.utterance", "bot.audio.end", "handoff", "speech.started")]
    utterances = [(t, e) for t, e in events if e["type"] == "bot.utterance"]
    ends = [t for t, e in events if e["type"] == "bot.audio.end"]
    waits = [round(u[0] - max(x for x in ends if x < u[0]), 2) for u in utterances[1:] if any(x < u[0] for x in ends)]
    handoff = next((e for _, e in events if e["type"] == "handoff"), None)
    return {
        "no_input_s": settings.dialog.no_input_s, "noise_dbfs": noise_dbfs,
        "actions": [e["action"] for _, e in utterances], "texts": [e["text"] for _, e in utterances],
        "wait_after_bot_audio_end_s": waits, "handoff_reason": handoff["reason"] if handoff else None,
        "vad_voiced_frames": voiced, "vad_frames": frames, "timeline": timeline,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--noise-dbfs", type=float, default=-45.0, help="line hiss level (bench_load --phone's default)")
    ap.add_argument("--limit-s", type=float, default=60.0, help="give up after this long")
    args = ap.parse_args()
    result = asyncio.run(run(args.noise_dbfs, args.limit_s))
    print(json.dumps(result, ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
