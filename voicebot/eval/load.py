"""Load benchmark: N simulated callers talking to `voicebot serve` over the native websocket protocol.

Each caller behaves like a phone line with a person on it: it sends audio frames
continuously in real time (silence between turns, as a line does), waits for the
bot's greeting to finish, pauses as people do (0.4–1.2 s), then speaks a real
German clip from ../shared/data/speech-de, and so on. When the server ends a call
(a handoff or goodbye), the caller dials again, so N calls stay up for the whole
duration. Measured per turn, on the caller's side of the socket:

* voice→voice: from the moment the caller's last speech sample was sent to the
  first byte of bot audio received after it (includes the endpointer's silence);
* final transcript latency: end of speech → ``transcript.final`` received;
* partial lag: ``transcript.partial`` arrival minus the send time of the audio
  its ``end`` refers to (how far the live transcript trails the speech);
* the server's own breakdown of each turn (its ``latency`` events: endpoint, ASR,
  intent, first TTS audio, end-of-turn model), so a slow turn shows where it waited;
* refused calls (the server was full: HTTP 503 on the upgrade, or a ``busy`` error and
  close 1013 when another caller took the last line between upgrade and ``start``),
  dropped calls (could not connect, or closed abnormally) and errored calls
  (an ``error`` event arrived); server CPU and memory sampled with psutil.

The client shares the machine with the server; ``client_late_ms`` reports how far
its own frame clock slipped, so a saturated client is visible and not mistaken
for a slow server.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicebot.eval.procsample import progress_bar, sample_processes
from voicebot.eval.stats import summarize

FRAME_MS = 20
GREETING_WAIT_S = 6.0  # speak anyway if the bot has said nothing by then
RESPONSE_WAIT_S = 8.0  # ... or if it has not answered a turn by then
PAUSE_S = (0.4, 1.2)  # natural pause before speaking once the bot is quiet
REDIAL_S = 0.5
CLOSE_TRY_LATER = 1013  # the server is full or going away: a refusal, not a drop
REFUSAL_CODES = frozenset({"busy", "not_ready", "shutting_down"})
SPANS = ("endpoint_ms", "asr_ms", "intent_ms", "tts_first_audio_ms", "voice_to_voice_ms", "eot_model_ms")


@dataclass(frozen=True)
class Clip:
    """One caller utterance, already in the line's encoding and rate."""

    name: str
    payload: bytes  # encoded audio
    seconds: float


def load_clips(speech_dir: Path, *, encoding: str = "pcm_s16le", sample_rate: int = 16000,
               min_seconds: float = 1.2, limit: int | None = None) -> list[Clip]:
    """Real German clips from the shared speech manifest, encoded for the wire."""
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.codecs import mulaw_encode
    from voicebot.audio.io import read_audio
    from voicebot.audio.resample import resample

    manifest = speech_dir / "manifest.jsonl"
    rows = [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if float(r.get("seconds", 0)) >= min_seconds][: limit or None]
    clips = []
    for row in rows:
        pcm, rate = read_audio(speech_dir / row["audio"])
        if encoding == "mulaw":
            pcm, rate = telephone_channel(pcm, rate)
            payload = mulaw_encode(resample(pcm, rate, sample_rate))
        else:
            payload = resample(pcm, rate, sample_rate).astype("<i2").tobytes()
        bytes_per_sample = 1 if encoding == "mulaw" else 2
        clips.append(Clip(row["audio"], payload, len(payload) / bytes_per_sample / sample_rate))
    if not clips:
        raise ValueError(f"no clips of at least {min_seconds} s in {manifest}")
    return clips


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
    voice_to_voice: list[float] = field(default_factory=list)
    final_latency: list[float] = field(default_factory=list)
    partial_lag: list[float] = field(default_factory=list)
    client_late: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    spans: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in SPANS})


class _Line:
    """One call's state, shared by the sending loop and the receiving task."""

    def __init__(self, sample_rate: int, bytes_per_sample: int, frame_ms: int = FRAME_MS) -> None:
        self.rate = sample_rate
        self.frame_ms = frame_ms
        self.bps = bytes_per_sample
        self.sent_at: list[float] = []  # wall time each frame went out (index = frame number)
        self.bot_until = 0.0  # when the bot audio received so far finishes playing
        self.bot_heard = False
        self.speech_end: float | None = None  # wall time the last turn's speech ended
        self.answered = True
        self.final_seen = True
        self.reply_started = False  # the bot began a new utterance after the caller's last turn
        self.ended = False
        self.handed_off = False
        self.error = False
        self.refused = False  # a ``busy`` error: the server was full after all

    def bot_speaking(self, now: float) -> bool:
        return now < self.bot_until

    def on_audio(self, data: bytes, now: float, stats: CallerStats) -> None:
        self.bot_heard = True
        self.bot_until = max(self.bot_until, now) + len(data) / self.bps / self.rate
        # Only audio of an utterance begun after the turn counts: a late tail of an earlier answer
        # (a busy server, a caller who stopped waiting) must not pass for a fast reply.
        if self.speech_end is not None and not self.answered and self.reply_started:
            self.answered = True
            stats.voice_to_voice.append((now - self.speech_end) * 1000.0)

    def on_event(self, event: dict[str, Any], now: float, stats: CallerStats) -> None:
        kind = event.get("type")
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


async def _receive(ws: Any, line: _Line, stats: CallerStats) -> None:
    async for message in ws:
        now = time.perf_counter()
        if isinstance(message, bytes):
            line.on_audio(message, now, stats)
        else:
            try:
                line.on_event(json.loads(message), now, stats)
            except ValueError:
                stats.problems.append("unparseable text message")


async def _one_call(url: str, call_id: str, clips: Sequence[Clip], rng: random.Random, deadline: float,
                    encoding: str, sample_rate: int, frame_ms: int, stats: CallerStats) -> None:
    """One call until the server ends it or the deadline passes."""
    import websockets

    bps = 1 if encoding == "mulaw" else 2
    frame_bytes = sample_rate * frame_ms // 1000 * bps
    silence = (b"\xff" if encoding == "mulaw" else b"\x00") * frame_bytes  # µ-law 0xFF is digital silence
    line = _Line(sample_rate, bps, frame_ms)
    stats.calls_started += 1
    async with websockets.connect(url, max_size=None, open_timeout=20, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "start", "encoding": encoding, "sample_rate": sample_rate,
                                  "call_id": call_id, "caller": {"load_test": True}}))
        receiver = asyncio.create_task(_receive(ws, line, stats))
        started = time.perf_counter()
        speech: bytes = b""
        speak_at: float | None = None
        tick = started
        try:
            while not line.ended and not receiver.done():
                now = time.perf_counter()
                if now >= deadline:
                    break
                if line.handed_off and not speech and not line.bot_speaking(now):
                    break  # a human would take it from here; the simulated caller hangs up and dials again
                last_of_turn = False
                if speech:
                    chunk, speech = speech[:frame_bytes], speech[frame_bytes:]
                    last_of_turn = not speech
                else:
                    chunk = silence
                    speaking = line.bot_speaking(now)
                    if line.speech_end is None:  # the greeting: wait until it is over
                        ready = (line.bot_heard and not speaking) or now - started > GREETING_WAIT_S
                    else:  # wait for the answer to be over, or give up waiting for one
                        ready = (line.answered and not speaking) or now - line.speech_end > RESPONSE_WAIT_S
                    if speaking:
                        speak_at = None
                    elif speak_at is None and ready:
                        speak_at = now + rng.uniform(*PAUSE_S)
                    elif speak_at is not None and now >= speak_at:
                        if not line.answered:
                            stats.unanswered_turns += 1
                        clip = rng.choice(clips)
                        speech, speak_at = clip.payload, None
                        stats.turns += 1
                        chunk, speech = speech[:frame_bytes], speech[frame_bytes:]
                await ws.send(chunk)
                sent = time.perf_counter()
                line.sent_at.append(sent)
                if last_of_turn:
                    # A frame leaves once its 20 ms have been spoken: the caller fell silent now.
                    line.speech_end = sent
                    line.answered, line.final_seen, line.reply_started = False, False, False
                # An absolute frame clock: sending late does not shift later frames (no drift).
                tick += frame_ms / 1000.0
                delay = tick - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    stats.client_late.append(-delay * 1000.0)
            if not line.ended:
                await ws.send(json.dumps({"type": "stop"}))
                await asyncio.wait_for(asyncio.shield(receiver), timeout=5.0)
        except TimeoutError:
            pass
        except websockets.exceptions.ConnectionClosedOK:
            line.ended = True  # the server closed the line cleanly (handoff, goodbye) while we sent
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
        failure = receiver.exception() if receiver.done() and not receiver.cancelled() else None
        if failure is not None:
            if line.refused or _is_refusal(failure):
                raise CallRefused(str(failure)) from failure
            raise failure  # an abnormal close: the caller counts the call as dropped
    if line.refused:
        raise CallRefused("busy")
    if line.error:
        stats.calls_errored += 1
    stats.calls_completed += 1


class CallRefused(Exception):
    """The server turned the call away as full: counted apart from drops, the caller redials."""


def _is_refusal(exc: BaseException) -> bool:
    """HTTP 503 on the upgrade, or a close with 1013 (try again later)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None) == 503:
        return True
    rcvd = getattr(exc, "rcvd", None)
    return rcvd is not None and getattr(rcvd, "code", None) == CLOSE_TRY_LATER


_RUN_ID = uuid.uuid4().hex[:8]


async def _caller(index: int, url: str, clips: Sequence[Clip], deadline: float, start_delay: float,
                  encoding: str, sample_rate: int, frame_ms: int, seed: int) -> CallerStats:
    import websockets

    stats = CallerStats()
    run_id = _RUN_ID  # call ids are never reused on a server: one nonce per benchmark process
    rng = random.Random(seed * 1000 + index)  # each caller its own, repeatable choice of clips and pauses
    await asyncio.sleep(start_delay)
    attempt = 0
    while time.perf_counter() < deadline - 1.0:
        attempt += 1
        try:
            await _one_call(url, f"load-{run_id}-{index}-{attempt}", clips, rng, deadline, encoding, sample_rate,
                            frame_ms, stats)
        except CallRefused:
            stats.calls_refused += 1
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
            if _is_refusal(exc):
                stats.calls_refused += 1
            else:
                stats.calls_dropped += 1
                stats.problems.append(f"call {index}-{attempt}: {type(exc).__name__}: {exc}")
        await asyncio.sleep(REDIAL_S)
    return stats


async def run_load(url: str, calls: int, duration: float, clips: Sequence[Clip], *, server_pid: int | None = None,
                   encoding: str = "pcm_s16le", sample_rate: int = 16000, frame_ms: int = FRAME_MS,
                   seed: int = 1, progress: bool = True) -> dict[str, Any]:
    """``calls`` concurrent callers for ``duration`` seconds; the JSON-ready numbers for this N."""
    ramp = min(2.0, duration / 10)  # arrivals spread over a moment, not one thundering herd
    deadline = time.perf_counter() + duration
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_processes(server_pid, stop))
    ticker = asyncio.create_task(progress_bar(calls, duration, stop)) if progress else None
    results = await asyncio.gather(*(
        _caller(i, url, clips, deadline, ramp * i / max(1, calls), encoding, sample_rate, frame_ms, seed)
        for i in range(calls)
    ))
    stop.set()
    server = await sampler
    if ticker is not None:
        await ticker
    merged = CallerStats()
    for s in results:
        for name in ("calls_started", "calls_completed", "calls_dropped", "calls_refused", "calls_errored", "turns",
                     "unanswered_turns", "handoffs"):
            setattr(merged, name, getattr(merged, name) + getattr(s, name))
        for name in ("voice_to_voice", "final_latency", "partial_lag", "client_late", "problems"):
            getattr(merged, name).extend(getattr(s, name))
        for name in SPANS:
            merged.spans[name].extend(s.spans[name])
    return {
        "concurrency": calls,
        "started_calls": merged.calls_started,
        "completed_calls": merged.calls_completed - merged.calls_errored,
        "dropped_calls": merged.calls_dropped,
        "refused_calls": merged.calls_refused,
        "errored_calls": merged.calls_errored,
        "turns": merged.turns,
        "unanswered_turns": merged.unanswered_turns,
        "handoffs": merged.handoffs,
        "voice_to_voice_ms": summarize(merged.voice_to_voice, 1),
        "final_latency_ms": summarize(merged.final_latency, 1),
        "partial_lag_ms": summarize(merged.partial_lag, 1),
        "client_late_ms": summarize(merged.client_late, 1),
        # The server's own per-turn breakdown (its latency events), to see where a slow turn waited.
        "server_spans_ms": {name: summarize(values, 1) for name, values in merged.spans.items()},
        "server": {"cpu_percent": summarize(server["cpu"], 1), "rss_mb": summarize(server["rss"], 1)},
        "client_cpu_percent": summarize(server["client_cpu"], 1),
        # What went wrong, by kind (call ids stripped), so a collapse can be told apart from a few hiccups.
        "problem_counts": dict(Counter(re.sub(r"^call \S+: ", "", p) for p in merged.problems).most_common(10)),
    }


def load_result(runs: dict[int, dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """The ``kind: "load"`` result: one entry per concurrency, keyed by N (as a string, for JSON)."""
    return {"kind": "load", "config": config, "by_calls": {str(n): runs[n] for n in sorted(runs)}}


def markdown_table(result: dict[str, Any]) -> str:
    """The benchmark as a markdown table (milliseconds; CPU 100 % = one core)."""
    head = ("| calls | completed | dropped | errored | turns (unanswered) | handoffs | "
            "voice→voice p50 / p95 / p99 ms | final p50 / p95 ms | partial lag p50 / p95 ms | "
            "server CPU % mean / max | RSS MB max | client CPU % mean / late p95 ms |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def f(x: float | None) -> str:
        return "–" if x is None else f"{x:.0f}"

    for n, r in result["by_calls"].items():
        v, fin, lag = r["voice_to_voice_ms"], r["final_latency_ms"], r["partial_lag_ms"]
        cpu, rss = r["server"]["cpu_percent"], r["server"]["rss_mb"]
        lines.append(
            f"| {n} | {r['completed_calls']} | {r['dropped_calls']} | {r['errored_calls']} | "
            f"{r['turns']} ({r['unanswered_turns']}) | {r.get('handoffs', 0)} | "
            f"{f(v['p50'])} / {f(v['p95'])} / {f(v['p99'])} | "
            f"{f(fin['p50'])} / {f(fin['p95'])} | {f(lag['p50'])} / {f(lag['p95'])} | "
            f"{f(cpu['mean'])} / {f(cpu['max'])} | {f(rss['max'])} | "
            f"{f(r.get('client_cpu_percent', {}).get('mean'))} / {f(r['client_late_ms']['p95'])} |"
        )
    return "\n".join(lines)

