"""What one simulated caller of the load benchmark sees on its line (``voicebot.eval.load``).

``_Line`` is one call's state, shared by the caller's sending loop and its receiving task: when
the caller's last word left, whether the bot answered that turn (only audio of an utterance begun
after it counts), the server's own latency breakdown, and, with ``--trace``, the call's timeline.
``CallerStats`` is everything one caller slot measured over all the calls it made.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

FRAME_MS = 20
REFUSAL_CODES = frozenset({"busy", "not_ready", "shutting_down"})
SPANS = ("endpoint_ms", "asr_ms", "intent_ms", "tts_first_audio_ms", "voice_to_voice_ms", "eot_model_ms")


@dataclass(frozen=True)
class TraceEvent:
    """One moment of a call as the caller saw it (``--trace``): to tell a slow answer from a missing one."""

    call: str
    t: float  # seconds since the call's websocket opened
    kind: str  # a server event type, or caller.speech.start / caller.speech.end / bot.audio.first
    text: str = ""


@dataclass
class CallerStats:
    """Everything one caller slot measured (over all the calls it made)."""

    calls_started: int = 0
    calls_completed: int = 0  # ended cleanly, by the server or at the end of the run
    calls_dropped: int = 0
    calls_refused: int = 0  # the server was full (503, or busy + close 1013): the caller redials
    calls_errored: int = 0
    turns: int = 0
    unanswered_turns: int = 0
    handoffs: int = 0
    cut_ins: int = 0  # bot utterances begun while the caller was still speaking a turn (before its last word)
    # Turns whose answer the bot began before their last voiced frame and was still playing at it: answered,
    # without a voice->voice sample (they are cut-ins; timed to the next utterance they read as 8-16 s waits).
    answered_in_turn: int = 0
    voice_to_voice: list[float] = field(default_factory=list)
    final_latency: list[float] = field(default_factory=list)
    partial_lag: list[float] = field(default_factory=list)
    client_late: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    spans: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in SPANS})
    trace: list[TraceEvent] | None = None  # kept only when asked for (``run_load(trace=True)``)


class _Line:
    """One call's state, shared by the sending loop and the receiving task."""

    def __init__(self, sample_rate: int, bytes_per_sample: int, frame_ms: int = FRAME_MS, call_id: str = "") -> None:
        self.call_id = call_id
        self.opened = time.perf_counter()
        self.rate = sample_rate
        self.frame_ms = frame_ms
        self.bps = bytes_per_sample
        self.sent_at: list[float] = []  # wall time each frame went out (index = frame number)
        self.bot_until = 0.0  # when the bot audio received so far finishes playing
        self.bot_heard = False
        self.speech_end: float | None = None  # wall time the last turn's speech ended
        self.caller_talking = False  # between a turn's first frame and its last voiced frame
        self.answered = True
        self.final_seen = True
        self.reply_started = False  # the bot began a new utterance after the caller's last turn
        self.cut_in = False  # the bot began an utterance while the caller was speaking the current turn
        self.ended = False
        self.handed_off = False
        self.error = False
        self.refused = False  # a ``busy`` error: the server was full after all

    def bot_speaking(self, now: float) -> bool:
        return now < self.bot_until

    def turn_ended(self, stats: CallerStats, now: float) -> None:
        """The caller's last voiced frame of a turn left at ``now``: wait for the bot's answer to it.

        A bot utterance begun during the turn and still playing now is that answer (a cut-in at the turn's
        very end, counted in ``cut_ins``); audio of it that arrives later counts as the reply."""
        self.speech_end = now
        self.note(stats, now, "caller.speech.end")
        self.final_seen = False
        self.reply_started = self.cut_in
        self.answered = self.cut_in and self.bot_speaking(now)
        if self.answered:
            stats.answered_in_turn += 1
        self.cut_in = False

    def note(self, stats: CallerStats, now: float, kind: str, text: str = "") -> None:
        if stats.trace is not None:
            stats.trace.append(TraceEvent(self.call_id, round(now - self.opened, 3), kind, text[:120]))

    def on_audio(self, data: bytes, now: float, stats: CallerStats) -> None:
        self.bot_heard = True
        self.bot_until = max(self.bot_until, now) + len(data) / self.bps / self.rate
        # Only audio of an utterance begun after the turn counts: a late tail of an earlier answer
        # (a busy server, a caller who stopped waiting) must not pass for a fast reply.
        if self.speech_end is not None and not self.answered and self.reply_started:
            self.note(stats, now, "bot.audio.first")
            self.answered = True
            stats.voice_to_voice.append((now - self.speech_end) * 1000.0)

    def on_event(self, event: dict[str, Any], now: float, stats: CallerStats) -> None:
        kind = event.get("type")
        if kind not in ("transcript.partial", "bot.audio.chunk"):
            self.note(stats, now, str(kind), str(event.get("text") or event.get("code") or event.get("intent") or ""))
        if kind == "transcript.partial" and self.sent_at:
            end = float(event.get("end") or 0.0)
            frame = min(len(self.sent_at) - 1, int(end * 1000 / self.frame_ms))
            if end > 0:
                stats.partial_lag.append((now - self.sent_at[frame]) * 1000.0)
        elif kind == "transcript.final" and self.speech_end is not None and not self.final_seen:
            self.final_seen = True
            stats.final_latency.append((now - self.speech_end) * 1000.0)
        elif kind in ("bot.utterance", "bot.audio.start") and self.speech_end is not None:
            self.reply_started = True
        if kind == "bot.utterance" and self.caller_talking:
            stats.cut_ins += 1
            self.cut_in = True
        elif kind == "handoff":
            self.handed_off = True
            stats.handoffs += 1
        elif kind == "latency":
            for name in SPANS:
                value = event.get(name)
                if isinstance(value, int | float) and value >= 0:
                    stats.spans[name].append(float(value))
        elif kind == "error":
            if event.get("code") in REFUSAL_CODES:
                self.refused = True
                return
            self.error = True
            stats.problems.append(f"error event: {event.get('code')}: {event.get('message')}")
        elif kind == "call.end":
            self.ended = True
