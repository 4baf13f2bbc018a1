"""Constructed turns (voicebot.eval.asr_cases) through the streaming recognizer, against the raw model.

Real whisper-base, real German speech (the shared sets), wideband and through the phone
line: a turn must not lose its first or last words where the raw model has them, nor say
anything twice; a turn longer than the endpointer's limit is cut at a pause, not mid-word.
"""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest

from voicebot.asr.scheduler import AsrScheduler
from voicebot.audio.channel import telephone_channel
from voicebot.audio.resample import resample
from voicebot.eval.asr import stream_transcribe
from voicebot.eval.asr_cases import RATE, AsrCase, build_cases, load_sources, speech_bounds
from voicebot.eval.asr_checks import check_edges, duplicated_ngrams, edge_regressions
from voicebot.eval.metrics import wer
from voicebot.frames import AudioFrame, SpeechEnded, SpeechStarted
from voicebot.vad import Endpointer, EndpointerSettings, SileroVadModel, build_detector


@pytest.fixture(scope="module")
def cases() -> list[AsrCase]:
    try:
        sources = load_sources()
    except FileNotFoundError as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    return build_cases(sources)


def _case(cases: list[AsrCase], name: str) -> AsrCase:
    return next(c for c in cases if c.name == name)


def _channel(audio: np.ndarray, channel: str) -> np.ndarray:
    return resample(*telephone_channel(audio, RATE), RATE) if channel == "telephone" else audio


# --- the material itself (no model) -------------------------------------------------------


def test_cases_are_deterministic_and_shaped_as_promised(cases: list[AsrCase]) -> None:
    again = build_cases(load_sources())
    assert [c.name for c in again] == [c.name for c in cases]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(again, cases, strict=True))
    kinds = {c.kind for c in cases}
    assert kinds == {"onset0", "short", "long", "straddle"}
    for c in cases:
        if c.kind == "onset0":  # speech from the very first sample
            assert c.speech_start == 0.0 and speech_bounds(c.audio)[0] == 0
        if c.kind == "long":
            assert 15.0 <= c.speech_end - c.speech_start <= 50.0 and len(c.parts) >= 3
        if c.kind == "straddle":  # the second sentence runs across the 10 s mark
            assert c.speech_start < 10.0 < c.speech_end - 1.0
    assert {c.lead for c in cases} | {c.tail for c in cases} == {"silence", "noise", "music"}


def test_edge_checks_find_lost_and_duplicated_words() -> None:
    ref = "Das wichtigste Mittel im Umgang mit Menschen ist Desinfektionsmittel."
    assert edge_regressions(ref, "mit Menschen.", ref) == ["first", "last"]
    assert edge_regressions(ref, ref, ref) == []
    doubled = "Das wichtigste Mittel im Umgang. Das wichtigste Mittel im Umgang mit Menschen ist Desinfektionsmittel."
    assert duplicated_ngrams(ref, doubled) and "duplicated" in edge_regressions(ref, doubled, ref)
    assert check_edges(ref, "Das wichtigste Mittel").last_heard is False


def test_forced_turn_end_cuts_at_a_pause_and_loses_nothing(cases: list[AsrCase], vad_model: SileroVadModel) -> None:
    """A turn over ``max_turn_s`` ends at a pause between sentences; the next turn starts right there."""
    case = _case(cases, "long-00")
    settings = EndpointerSettings(max_turn_s=8.0, end_silence_ms=1200)  # pauses do not end the turn
    ep = Endpointer(settings, build_detector(settings, vad_model))
    events = []
    for i in range(0, len(case.audio), 320):
        events += ep.process(AudioFrame(case.audio[i : i + 320], RATE, i / RATE))
    events += ep.flush()
    forced = [(a, b) for a, b in zip(events, events[1:], strict=False)
              if isinstance(a, SpeechEnded) and isinstance(b, SpeechStarted) and a.t == b.t]
    assert forced, "a 23 s turn with an 8 s limit was never forced to end"
    speech = case.audio[int(case.speech_start * RATE) : int(case.speech_end * RATE)].astype(np.float64)
    for ended, _started in forced:
        cut = int(round(ended.t * RATE))
        following = next(e for e in events[events.index(ended) + 1 :] if isinstance(e, SpeechEnded))
        # Not a sample lost or doubled: one turn's audio stops exactly where the next one's begins.
        assert np.array_equal(ended.audio[-800:], case.audio[cut - 800 : cut])
        assert np.array_equal(following.audio[:800], case.audio[cut : cut + 800])
        # The cut falls where the audio is much quieter than the speech around it (a pause, not a word).
        window = case.audio[cut - 800 : cut + 800].astype(np.float64)
        assert np.sqrt(np.mean(window**2)) < 0.5 * np.sqrt(np.mean(speech**2)), ended.t


def test_quiet_callers_turn_is_not_ended_by_the_energy_gate(cases: list[AsrCase], vad_model: SileroVadModel) -> None:
    """A -55 dBFS caller through the phone band: the turn starts on its loud onset and runs to the last word."""
    from voicebot.audio.io import load_for_asr

    clip = next(c for c in load_sources() if c.path.name == "cv61_17345166.flac")  # "... aus dem Teich gezogen."
    audio = _channel(load_for_asr(clip.path, RATE), "telephone")
    settings = EndpointerSettings(threshold=0.3)  # the narrowband threshold
    ep = Endpointer(settings, build_detector(settings, vad_model))
    events = [e for i in range(0, len(audio), 320) for e in ep.process(AudioFrame(audio[i : i + 320], RATE, i / RATE))]
    ends = [e for e in [*events, *ep.flush()] if isinstance(e, SpeechEnded)]
    assert len(ends) == 1 and ends[0].t > 3.0, [(e.start, e.t) for e in ends]


# --- through the real recognizer, against the raw model -------------------------------------------


async def _streaming_text(transcriber, settings, vad_model, audio: np.ndarray, channel: str,
                          partials: bool) -> tuple[str, dict]:
    async with AsrScheduler(transcriber, settings.asr, adaptive_beam=False) as scheduler:
        out = await stream_transcribe(scheduler, settings, vad_model, audio, "case", partials=partials,
                                      narrowband=channel == "telephone")
    return " ".join(f["text"] for f in out["finals"]), out


def _raw_text(transcriber, settings, audio: np.ndarray) -> str:
    segments, _ = transcriber.model.transcribe(audio.astype(np.float32) / 32768.0, language=settings.asr.language,
                                               beam_size=5, condition_on_previous_text=False, vad_filter=False)
    return " ".join(s.text.strip() for s in segments).strip()


@pytest.mark.parametrize(("name", "channel", "partials"), [
    ("onset0-00", "telephone", False),
    ("onset0-02", "wideband", False),  # (onset0-01 is a -50 dBFS recording: under the energy gate)
    ("short-01", "telephone", False),  # an EmoDB sentence under 2.5 s, in line noise (in the raw model's window)
    ("straddle-00", "telephone", True),  # partials, commits, speculative finals and the final meet
    ("long-01", "telephone", False),  # a 39 s turn: longer than the endpointer's limit
])
async def test_turn_keeps_its_first_and_last_words(transcriber, settings, vad_model, cases, name, channel,
                                                   partials) -> None:
    case = _case(cases, name)
    if case.kind == "short":
        # The streaming path itself (VAD cut, pre/post-roll, segments), in the raw model's own 30 s window. The
        # short final's window (asr.final_short_window_s, 20 s) is a question for many turns, not one clip: at
        # 20 s this clip's last two words come out misheard ("Mittwoch-Abtäse"), while over 336 short phone turns
        # 20 s is as accurate as 30 s (scripts/bench_short_turns.py; guarded by tests/test_short_turns.py).
        settings = replace(settings, asr=replace(settings.asr, final_short_window_s=30))
    audio = _channel(case.audio, channel)
    streamed, out = await _streaming_text(transcriber, settings, vad_model, audio, channel, partials)
    raw = _raw_text(transcriber, settings, audio)
    assert streamed, f"{name}: nothing heard (guards: {out['guards']})"
    assert edge_regressions(case.text, streamed, raw) == [], (case.text, streamed, raw)
    assert wer([case.text], [streamed]) <= wer([case.text], [raw]) + 0.1, (streamed, raw)


async def test_short_window_turn_straddling_the_window_is_not_duplicated(transcriber, settings, vad_model,
                                                                        cases) -> None:
    """With partials and a rolling buffer on a 6 s window, the final still says every word once."""
    case = _case(cases, "straddle-01")
    small = replace(settings, asr=replace(settings.asr, chunk_length=6))
    streamed, _ = await _streaming_text(transcriber, small, vad_model, case.audio, "wideband", True)
    assert not duplicated_ngrams(case.text, streamed), streamed
    assert check_edges(case.text, streamed).first_heard and check_edges(case.text, streamed).last_heard
