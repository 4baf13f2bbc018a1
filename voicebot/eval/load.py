"""Load benchmark: N simulated callers talking to `voicebot serve` over the native websocket protocol.

Each caller behaves like a phone line with a person on it: it sends audio frames
continuously in real time (silence between turns, as a line does), waits for the
bot's greeting to finish, pauses as people do (0.4–1.2 s), then speaks a real
German clip from ../shared/data/speech-de, and so on. When the server ends a call
(a handoff or goodbye), the caller dials again, so N calls stay up for the whole
duration. Measured per turn, on the caller's side of the socket:

* voice→voice: from the moment the caller's last voiced frame was sent (the clip's end, or
  its manifest's ``voiced_end_s``: phone turns may end in their recording's room noise) to the
  first byte of bot audio received after it (includes the endpointer's silence);
* cut-ins: bot utterances begun while the caller was still speaking a turn (the bot
  took a pause between two sentences for the end of the turn);
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voicebot.eval.load_line import FRAME_MS, SPANS, CallerStats, _Line
from voicebot.eval.procsample import progress_bar, sample_processes
from voicebot.eval.stats import summarize

GREETING_WAIT_S = 6.0  # speak anyway if the bot has said nothing by then
RESPONSE_WAIT_S = 8.0  # ... or if it has not answered a turn by then
PAUSE_S = (0.4, 1.2)  # natural pause before speaking once the bot is quiet
REDIAL_S = 0.5
CLOSE_TRY_LATER = 1013  # the server is full or going away: a refusal, not a drop


@dataclass(frozen=True)
class Clip:
    """One caller utterance, already in the line's encoding and rate."""

    name: str
    payload: bytes  # encoded audio
    seconds: float
    # Where the last voiced frame ends (s), when the manifest says (``voiced_end_s``, phone turns): a clip
    # may end in its recording's room noise, and voice->voice counts from the caller's last word.
    voiced_s: float | None = None


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
        voiced = row.get("voiced_end_s")
        clips.append(Clip(row["audio"], payload, len(payload) / bytes_per_sample / sample_rate,
                          None if voiced is None else float(voiced)))
    if not clips:
        raise ValueError(f"no clips of at least {min_seconds} s in {manifest}")
    return clips


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
                    encoding: str, sample_rate: int, frame_ms: int, stats: CallerStats,
                    idle_line: bytes | None = None) -> None:
    """One call until the server ends it or the deadline passes; ``idle_line`` (encoded audio, looped) is what
    the line carries while the caller is quiet (default: digital silence)."""
    import websockets

    bps = 1 if encoding == "mulaw" else 2
    frame_bytes = sample_rate * frame_ms // 1000 * bps
    silence = (b"\xff" if encoding == "mulaw" else b"\x00") * frame_bytes  # µ-law 0xFF is digital silence
    idle_at = 0  # where in idle_line the next quiet frame comes from
    line = _Line(sample_rate, bps, frame_ms, call_id)
    stats.calls_started += 1
    async with websockets.connect(url, max_size=None, open_timeout=20, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "start", "encoding": encoding, "sample_rate": sample_rate,
                                  "call_id": call_id, "caller": {"load_test": True}}))
        receiver = asyncio.create_task(_receive(ws, line, stats))
        started = time.perf_counter()
        speech: bytes = b""
        speak_at: float | None = None
        voiced_left: int | None = None  # bytes of this turn until its last voiced frame has been sent
        tick = started
        try:
            while not line.ended and not receiver.done():
                now = time.perf_counter()
                if now >= deadline:
                    break
                if line.handed_off and not speech and not line.bot_speaking(now):
                    break  # a human would take it from here; the simulated caller hangs up and dials again
                if speech:
                    chunk, speech = speech[:frame_bytes], speech[frame_bytes:]
                else:
                    chunk = silence
                    if idle_line:  # the line's own noise between turns, looped
                        chunk = idle_line[idle_at : idle_at + frame_bytes]
                        idle_at = (idle_at + frame_bytes) % (len(idle_line) - len(idle_line) % frame_bytes)
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
                        voiced_left = len(speech) if clip.voiced_s is None else int(clip.voiced_s * sample_rate) * bps
                        line.note(stats, now, "caller.speech.start", f"{clip.seconds:.1f} s {clip.name}")
                        line.caller_talking = True
                        stats.turns += 1
                        chunk, speech = speech[:frame_bytes], speech[frame_bytes:]
                await ws.send(chunk)
                sent = time.perf_counter()
                line.sent_at.append(sent)
                last_voiced = False
                if voiced_left is not None:  # a turn is being spoken
                    voiced_left -= len(chunk)
                    last_voiced = voiced_left <= 0 or not speech
                if last_voiced:
                    # A frame leaves once its 20 ms have been spoken: the caller's last word ended now (the
                    # clip's own room noise after it, if any, is still sent).
                    voiced_left = None
                    line.caller_talking = False
                    line.turn_ended(stats, sent)
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


def _retry_after(exc: BaseException) -> float | None:
    """The seconds a refusal's ``Retry-After`` header asks the caller to wait (HTTP 503 on the upgrade), if any."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _is_refusal(exc: BaseException) -> bool:
    """HTTP 503 on the upgrade, or a close with 1013 (try again later)."""
    response = getattr(exc, "response", None)
    if response is not None and getattr(response, "status_code", None) == 503:
        return True
    rcvd = getattr(exc, "rcvd", None)
    return rcvd is not None and getattr(rcvd, "code", None) == CLOSE_TRY_LATER


_RUN_ID = uuid.uuid4().hex[:8]


async def _caller(index: int, url: str, clips: Sequence[Clip], deadline: float, start_delay: float,
                  encoding: str, sample_rate: int, frame_ms: int, seed: int, trace: bool = False,
                  idle_line: bytes | None = None, honor_retry_after: bool = False) -> CallerStats:
    """``honor_retry_after``: a refused caller waits what the server's ``Retry-After`` says before dialling again
    (as a gateway's retry policy would), not ``REDIAL_S``."""
    import websockets

    stats = CallerStats(trace=[] if trace else None)
    run_id = _RUN_ID  # call ids are never reused on a server: one nonce per benchmark process
    rng = random.Random(seed * 1000 + index)  # each caller its own, repeatable choice of clips and pauses
    await asyncio.sleep(start_delay)
    attempt = 0
    while time.perf_counter() < deadline - 1.0:
        attempt += 1
        wait = REDIAL_S
        try:
            await _one_call(url, f"load-{run_id}-{index}-{attempt}", clips, rng, deadline, encoding, sample_rate,
                            frame_ms, stats, idle_line)
        except CallRefused:
            stats.calls_refused += 1
        except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
            if _is_refusal(exc):
                stats.calls_refused += 1
                asked = _retry_after(exc)
                if honor_retry_after and asked is not None:
                    wait = max(REDIAL_S, asked)
            else:
                stats.calls_dropped += 1
                stats.problems.append(f"call {index}-{attempt}: {type(exc).__name__}: {exc}")
        await asyncio.sleep(wait)
    return stats


async def run_load(url: str, calls: int, duration: float, clips: Sequence[Clip], *, server_pid: int | None = None,
                   encoding: str = "pcm_s16le", sample_rate: int = 16000, frame_ms: int = FRAME_MS,
                   seed: int = 1, progress: bool = True, trace: bool = False,
                   idle_line: bytes | None = None, honor_retry_after: bool = False) -> dict[str, Any]:
    """``calls`` concurrent callers for ``duration`` seconds; the JSON-ready numbers for this N.

    ``idle_line``: encoded audio (the line's hiss) each caller loops while quiet, instead of digital silence."""
    ramp = min(2.0, duration / 10)  # arrivals spread over a moment, not one thundering herd
    deadline = time.perf_counter() + duration
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_processes(server_pid, stop))
    ticker = asyncio.create_task(progress_bar(calls, duration, stop)) if progress else None
    results = await asyncio.gather(*(
        _caller(i, url, clips, deadline, ramp * i / max(1, calls), encoding, sample_rate, frame_ms, seed, trace,
                idle_line, honor_retry_after)
        for i in range(calls)
    ))
    stop.set()
    server = await sampler
    if ticker is not None:
        await ticker
    merged = CallerStats()
    for s in results:
        for name in ("calls_started", "calls_completed", "calls_dropped", "calls_refused", "calls_errored", "turns",
                     "unanswered_turns", "handoffs", "cut_ins", "answered_in_turn"):
            setattr(merged, name, getattr(merged, name) + getattr(s, name))
        for name in ("voice_to_voice", "final_latency", "partial_lag", "client_late", "problems"):
            getattr(merged, name).extend(getattr(s, name))
        for name in SPANS:
            merged.spans[name].extend(s.spans[name])
    result: dict[str, Any] = {
        "concurrency": calls,
        "started_calls": merged.calls_started,
        "completed_calls": merged.calls_completed - merged.calls_errored,
        "dropped_calls": merged.calls_dropped,
        "refused_calls": merged.calls_refused,
        "errored_calls": merged.calls_errored,
        "turns": merged.turns,
        "unanswered_turns": merged.unanswered_turns,
        "handoffs": merged.handoffs,
        "cut_ins": merged.cut_ins,
        "answered_in_turn": merged.answered_in_turn,  # cut-ins still playing at the turn's end: no voice->voice
        "voice_to_voice_ms": summarize(merged.voice_to_voice, 1),
        "final_latency_ms": summarize(merged.final_latency, 1),
        "partial_lag_ms": summarize(merged.partial_lag, 1),
        "client_late_ms": summarize(merged.client_late, 1),
        # The server's own per-turn breakdown (its latency events), to see where a slow turn waited.
        "server_spans_ms": {name: summarize(values, 1) for name, values in merged.spans.items()},
        "server": {"cpu_percent": summarize(server["cpu"], 1), "rss_mb": summarize(server["rss"], 1)},
        "client_cpu_percent": summarize(server["client_cpu"], 1),
        "machine_cpu_percent": summarize(server.get("machine_cpu", []), 1),
        # What went wrong, by kind (call ids stripped), so a collapse can be told apart from a few hiccups.
        "problem_counts": dict(Counter(re.sub(r"^call \S+: ", "", p) for p in merged.problems).most_common(10)),
    }
    if trace:  # every call's timeline, in order: which turn went unanswered, and what the server did instead
        result["trace"] = [asdict(e) for s in results for e in (s.trace or [])]
    return result


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

