"""The load benchmark's measurements (hand-timed), its table, and one short real run against `voicebot serve`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from voicebot.eval.load import CallerStats, _Line, load_result, markdown_table

REPO = Path(__file__).resolve().parents[1]


def test_voice_to_voice_and_final_latency_by_hand() -> None:
    stats = CallerStats()
    line = _Line(sample_rate=16000, bytes_per_sample=2)
    line.speech_end, line.answered, line.final_seen = 10.0, False, False
    line.on_event({"type": "transcript.final", "text": "hallo"}, 10.7, stats)
    line.on_event({"type": "transcript.final", "text": "noch mal"}, 10.9, stats)  # only the first counts
    line.on_audio(b"\x00" * 640, 11.0, stats)  # the tail of an earlier answer: not a reply to this turn
    line.on_event({"type": "bot.audio.start"}, 11.2, stats)
    line.on_audio(b"\x00" * 640, 11.25, stats)  # 320 samples = 20 ms of bot audio
    line.on_audio(b"\x00" * 640, 11.26, stats)
    assert stats.final_latency == [pytest.approx(700.0)]
    assert stats.voice_to_voice == [pytest.approx(1250.0)]
    # playback clock: 11.0 + 0.02, then 11.25 + 0.02, then max(11.27, 11.26) + 0.02
    assert line.bot_until == pytest.approx(11.29)
    assert line.bot_speaking(11.28) and not line.bot_speaking(11.30)


def test_an_answer_begun_at_the_turns_very_end_is_its_answer_not_the_next_one() -> None:
    """The bot cut in 0.3 s before the caller's last voiced frame and is still speaking then: the turn is
    answered (a cut-in, no voice->voice sample), not timed to the bot's next utterance seconds later."""
    stats = CallerStats()
    line = _Line(8000, 1)
    line.caller_talking = True
    line.on_event({"type": "bot.utterance", "text": "Verstanden."}, 20.0, stats)
    line.on_audio(b"\xff" * 8000, 20.0, stats)  # one second of bot audio: playing until 21.0
    line.caller_talking = False
    line.turn_ended(stats, 20.3)
    assert stats.cut_ins == 1 and stats.answered_in_turn == 1 and line.answered
    line.on_event({"type": "bot.utterance", "text": "Was kann ich tun?"}, 28.0, stats)
    line.on_audio(b"\xff" * 160, 28.0, stats)
    assert stats.voice_to_voice == []
    # A cut-in that was over before the turn ended: the turn waits for an answer, and the next one times it.
    line.caller_talking = True
    line.on_event({"type": "bot.utterance", "text": "Ja?"}, 30.0, stats)
    line.on_audio(b"\xff" * 800, 30.0, stats)  # 0.1 s: over at 30.1
    line.caller_talking = False
    line.turn_ended(stats, 31.0)
    assert not line.answered and stats.answered_in_turn == 1
    line.on_audio(b"\xff" * 160, 31.4, stats)  # more of the utterance begun in the turn (resumed after a pause)
    assert stats.voice_to_voice == [pytest.approx(400.0)]


def test_partial_lag_uses_the_send_time_of_the_audio_it_covers() -> None:
    stats = CallerStats()
    line = _Line(16000, 2)
    line.sent_at = [100.0 + 0.02 * i for i in range(200)]  # frame i sent at 100 + 20 ms * i
    # a partial covering the stream up to 1.00 s: frame 50, sent at 101.0; it arrives at 101.35
    line.on_event({"type": "transcript.partial", "text": "der", "end": 1.0}, 101.35, stats)
    assert stats.partial_lag == [pytest.approx(350.0)]
    line.on_event({"type": "error", "code": "x", "message": "y"}, 102.0, stats)
    line.on_event({"type": "handoff", "reason": "safety"}, 102.0, stats)
    line.on_event({"type": "call.end"}, 102.0, stats)
    assert line.error and line.ended and line.handed_off and stats.handoffs == 1


def test_markdown_table() -> None:
    s = {"n": 3, "mean": 1.0, "p50": 900.0, "p95": 1500.4, "p99": 1600.0, "min": 1.0, "max": 2.0}
    run = {"concurrency": 4, "completed_calls": 4, "dropped_calls": 0, "errored_calls": 1, "turns": 12,
           "unanswered_turns": 2, "handoffs": 3, "voice_to_voice_ms": s, "final_latency_ms": s, "partial_lag_ms": s,
           "client_late_ms": s, "server": {"cpu_percent": s, "rss_mb": s}}
    table = markdown_table(load_result({4: run}, {"duration_s": 10}))
    lines = table.splitlines()
    assert len(lines) == 3 and lines[1].count("---") == lines[0].count("|") - 1
    assert lines[2].startswith("| 4 | 4 | 0 | 1 | 12 (2) | 3 | 900 / 1500 / 1600 |")


@pytest.mark.slow
def test_short_real_load_run(settings, speech_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One caller for 30 s (the greeting alone takes ~13 s) against a real `voicebot serve` child process."""
    import voicebot.server.app  # noqa: F401 - an ImportError of our own code must fail, not skip
    for name in ("whisper-base", "pico-de", "silero-vad", settings.nlu.intent_model):
        if not (settings.models.dir / name).is_dir():
            pytest.skip(f"model {name} not provisioned")
    out = tmp_path / "load.json"
    run = subprocess.run([sys.executable, "-m", "voicebot.cli.main", "bench", "load", "--calls", "1", "--duration",
                          "30", "--out", str(out), "--speech-dir", str(speech_dir)],
                         capture_output=True, text=True, timeout=400, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())
    level = result["by_calls"]["1"]
    assert level["dropped_calls"] == 0 and level["errored_calls"] == 0
    assert level["turns"] >= 1
    assert level["voice_to_voice_ms"]["n"] >= 1 and level["voice_to_voice_ms"]["p50"] > 0
    assert level["server"]["cpu_percent"]["n"] > 0 and level["server"]["rss_mb"]["max"] > 50
    assert "| 1 |" in run.stdout


def test_a_full_server_is_a_refusal_not_a_drop() -> None:
    """HTTP 503 on the upgrade, a ``busy`` error, a close 1013: the caller was refused, the call not dropped."""
    from websockets.datastructures import Headers
    from websockets.exceptions import ConnectionClosedError, InvalidStatus
    from websockets.frames import Close
    from websockets.http11 import Response

    from voicebot.eval.load import _is_refusal

    stats = CallerStats()
    line = _Line(8000, 1)
    line.on_event({"type": "error", "code": "busy", "message": "all 13 lines are busy"}, 1.0, stats)
    assert line.refused and not line.error and not stats.problems
    assert _is_refusal(InvalidStatus(Response(503, "Service Unavailable", Headers())))
    assert _is_refusal(ConnectionClosedError(Close(1013, "try again later"), None))
    assert not _is_refusal(ConnectionClosedError(Close(1011, "internal error"), None))
    assert not _is_refusal(TimeoutError())


def test_the_servers_own_turn_breakdown_is_kept() -> None:
    stats = CallerStats()
    line = _Line(8000, 1)
    line.on_event({"type": "latency", "endpoint_ms": 210.0, "asr_ms": 900.5, "intent_ms": -1,
                   "tts_first_audio_ms": 40.0, "voice_to_voice_ms": 1200.0}, 5.0, stats)
    assert stats.spans["endpoint_ms"] == [210.0] and stats.spans["asr_ms"] == [900.5]
    assert stats.spans["intent_ms"] == [] and stats.spans["eot_model_ms"] == []  # -1 / absent: not measured
