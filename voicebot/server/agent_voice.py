"""The agent's own voice on a call it took over (``audio.start`` on ``/v1/agent``).

Two halves meet here. ``CallerLine`` sits on every live call (``LiveCall.line``,
made by the caller's connection): it sends audio to the caller in the line's own
codec and rate (native ``/v1/call`` or Twilio), through the same commit-ordered
delivery as the bot's audio, and hands each decoded caller frame to whoever
listens. ``AgentVoice`` is one agent connection's channel on one call: binary
frames from the agent's microphone go to the caller (and to a recognizer, so the
agent's words are transcribed with ``speaker: "agent"``), the caller's frames go
back to the agent converted to the agent's declared format.

The bot is silent while a human holds the call (``CallSession.take_over``);
the channel is only opened, and each frame only passed on, while the session is
in the ``human`` state, so a release closes it on the next frame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from voicebot.audio.codecs import AudioFormat, Decoder, Encoder
from voicebot.audio.errors import AudioFormatError
from voicebot.frames import AudioFrame
from voicebot.protocol.agent import AudioStartedMessage, AudioStoppedMessage
from voicebot.server.agent_asr import AgentRecognizer
from voicebot.server.delivery import CommitOrder

if TYPE_CHECKING:
    from voicebot.server.hub import LiveCall
    from voicebot.server.runtime import CallRuntime

log = logging.getLogger(__name__)

MAX_FRAME_MS = 500  # the longest agent frame: a browser sends 20-100 ms; more is a client bug


class VoiceRefused(Exception):
    """``audio.start`` or an agent frame that cannot be served; ``code`` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CallerLine:
    """A call's audio line as agents use it: speak to the caller, listen to the caller."""

    def __init__(self, fmt: AudioFormat, deliver: Callable[[bytes], None], delivery: CommitOrder,
                 closing: Callable[[], bool]) -> None:
        self.format = fmt
        self._deliver = deliver
        self._delivery = delivery
        self._closing = closing
        self._encoder = Encoder(fmt)  # its own resampler: the bot's encoder keeps its state
        self.listeners: set[Callable[[AudioFrame], None]] = set()
        self.sent_bytes = 0

    def speak(self, pcm: np.ndarray, sample_rate: int) -> None:
        """Agent audio to the caller (behind any event still waiting for its commit)."""
        if self._closing():
            return
        data = self._encoder.encode(pcm, sample_rate)
        if data:
            self.sent_bytes += len(data)
            self._delivery.after(None, lambda: self._deliver(data))

    def heard(self, frame: AudioFrame) -> None:
        """One decoded caller frame, to every agent listening."""
        for listener in list(self.listeners):
            listener(frame)


class AgentVoice:
    """One agent connection's voice channel on one call."""

    def __init__(self, runtime: CallRuntime, call: LiveCall, agent_id: str, fmt: AudioFormat,
                 send: Callable[[Any], bool]) -> None:
        self.runtime = runtime
        self.call = call
        self.agent_id = agent_id
        self.format = fmt
        self._send = send  # the agent's outbox: typed messages and bytes
        self._decoder = Decoder(fmt)
        self._to_agent = Encoder(fmt)
        self.max_bytes = fmt.bytes_for(MAX_FRAME_MS / 1000)
        self.recognizer = AgentRecognizer(runtime, call)
        self.open = False

    @classmethod
    def start(cls, runtime: CallRuntime, call: LiveCall | None, agent_id: str, holder: bool, fmt: AudioFormat,
              send: Callable[[Any], bool]) -> AgentVoice:
        """Open the channel, or ``VoiceRefused`` (the call is not live, or not held by this agent)."""
        if call is None or call.state == "ended" or call.line is None:
            raise VoiceRefused("unknown_call", "no active call with that id on this worker (an agent speaks "
                               "through the worker that holds the call)")
        if not holder or call.session is None or call.session.state != "human":
            raise VoiceRefused("not_taken_over", f"take call {call.call_id!r} over before sending audio")
        voice = cls(runtime, call, agent_id, fmt, send)
        voice.open = True
        call.line.listeners.add(voice._caller_audio)
        voice.recognizer.start()
        line = call.line.format
        send(AudioStartedMessage(call_id=call.call_id, encoding=fmt.encoding, sample_rate=fmt.sample_rate,
                                 caller_encoding=line.encoding, caller_sample_rate=line.sample_rate,
                                 max_frame_ms=MAX_FRAME_MS))
        log.info("call %s: agent %s speaks (%s %d Hz; line %s %d Hz)", call.call_id, agent_id, fmt.encoding,
                 fmt.sample_rate, line.encoding, line.sample_rate)
        return voice

    @property
    def held(self) -> bool:
        session = self.call.session
        return self.call.state != "ended" and session is not None and session.state == "human"

    def on_bytes(self, data: bytes) -> None:
        """One frame of the agent's microphone; ``VoiceRefused`` for a bad one (the channel stays)."""
        if len(data) > self.max_bytes:
            raise VoiceRefused("frame_too_large", f"an agent audio frame may hold at most {MAX_FRAME_MS} ms "
                               f"({self.max_bytes} bytes), got {len(data)}")
        try:
            frame = self._decoder.decode(data)
        except AudioFormatError as exc:
            raise VoiceRefused("bad_audio", str(exc)) from None
        if self.call.line is not None:
            self.call.line.speak(frame.pcm, frame.sample_rate)
        self.recognizer.push(frame)

    def _caller_audio(self, frame: AudioFrame) -> None:
        if not self.open:
            return
        data = self._to_agent.encode(frame.pcm, frame.sample_rate)
        if data:
            self._send(data)

    async def stop(self, reason: str, *, notify: bool = True) -> None:
        """Close the channel (idempotent): no more audio either way; the agent's last words are transcribed."""
        if not self.open:
            return
        self.open = False
        if self.call.line is not None:
            self.call.line.listeners.discard(self._caller_audio)
        if notify:
            self._send(AudioStoppedMessage(call_id=self.call.call_id, reason=reason))  # type: ignore[arg-type]
        log.info("call %s: agent %s stopped speaking (%s)", self.call.call_id, self.agent_id, reason)
        await self.recognizer.aclose()
