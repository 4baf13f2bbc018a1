"""Simulate one inbound call offline: each audio file is the caller's next turn.

Used by `voicebot call` and `voicebot eval calls`. The audio goes through exactly the
pipeline a live call uses (CallSession: VAD → streaming ASR → intent → policy → TTS);
only the clock differs (as fast as possible, unless ``realtime``).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicebot.audio.channel import telephone_channel
from voicebot.audio.io import read_audio
from voicebot.call.clients import EngineClients
from voicebot.config import Settings
from voicebot.dialog.domain import Domain, load_domain
from voicebot.dialog.session import CallSession
from voicebot.frames import AudioFrame, BotAudio
from voicebot.protocol.events import CallEvent, dump

FRAME_MS = 20
# Silence after each turn: long enough for the endpointer to close it.
TRAILING_SILENCE_S = 1.2


@dataclass
class SimulatedCall:
    call_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    bot_audio: list[np.ndarray] = field(default_factory=list)
    out_rate: int = 16000
    turns: list[dict[str, Any]] = field(default_factory=list)
    first_intent: str | None = None
    route: str | None = None
    handoff: dict[str, Any] | None = None

    def summary(self) -> dict[str, Any]:
        """The `voicebot call --json` object."""
        latencies = [e for e in self.events if e["type"] == "latency"]
        return {
            "call_id": self.call_id,
            "turns": self.turns,
            "first_intent": self.first_intent,
            "route": self.route,
            "handoff": self.handoff is not None,
            "handoff_reason": self.handoff["reason"] if self.handoff else None,
            "context": self.handoff["context"] if self.handoff else None,
            "latency": [{k: v for k, v in e.items() if k.endswith("_ms")} for e in latencies],
            "greeting": next((e["text"] for e in self.events if e["type"] == "bot.utterance"), ""),
        }


def load_turn_audio(path: Path, channel: str | None) -> tuple[np.ndarray, int]:
    pcm, rate = read_audio(path)
    if channel == "telephone":
        pcm, rate = telephone_channel(pcm, rate)
    return pcm, rate


async def _feed(session: CallSession, pcm: np.ndarray, rate: int, t0: float, realtime: bool) -> float:
    step = rate * FRAME_MS // 1000
    t = t0
    for start in range(0, len(pcm), step):
        chunk = pcm[start : start + step]
        await session.push_audio(AudioFrame(np.ascontiguousarray(chunk), rate, t))
        t += len(chunk) / rate
        if realtime:
            await asyncio.sleep(len(chunk) / rate)
        elif start % (step * 25) == 0:
            await asyncio.sleep(0)  # let background decodes and playback make progress
    return t


async def simulate_call(
    clients: EngineClients,
    settings: Settings,
    audio_files: list[Path],
    *,
    domain: Domain | None = None,
    channel: str | None = None,
    realtime: bool = False,
    call_id: str | None = None,
) -> SimulatedCall:
    """Run one call; each file is played after the bot has finished speaking.

    ``clients``: started engine clients (``Engines.load(settings).clients()``); ``domain``:
    the loaded domain config (default: ``settings.dialog.domain``)."""
    out_rate = 8000 if channel == "telephone" else 16000
    result = SimulatedCall(call_id=call_id or f"sim-{uuid.uuid4().hex[:8]}", out_rate=out_rate)

    async def emit(event: CallEvent) -> None:
        result.events.append(dump(event))

    async def send_audio(audio: BotAudio) -> None:
        result.bot_audio.append(audio.pcm)

    session = CallSession(clients, settings, result.call_id, domain=domain or load_domain(settings.dialog.domain),
                          emit=emit, send_audio=send_audio,
                          out_rate=out_rate, realtime=realtime, metadata={"simulated": True, "channel": channel})
    await session.start()
    await session.wait_idle()
    t = 0.0
    for path in audio_files:
        if session.state == "ended" or session.record.handoff is not None:
            break
        pcm, rate = load_turn_audio(path, channel)
        t = await _feed(session, pcm, rate, t, realtime)
        t = await _feed(session, np.zeros(int(rate * TRAILING_SILENCE_S), dtype=np.int16), rate, t, realtime)
        await session.flush()
    await session.end("completed")
    result.turns = session.record.turns
    result.first_intent = session.record.first_intent
    result.route = session.record.route
    result.handoff = session.record.handoff
    return result
