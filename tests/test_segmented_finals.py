"""Pause-segmented finals: real German sentences through the phone line, real Silero VAD, real whisper-base.

A caller turn of two or three speech-de-more sentences with short pauses (line hiss in them) goes in
as 8 kHz µ-law frames; each part before a pause is decoded at final quality while the caller goes on,
and the final is the parts joined (``voicebot.asr.segments``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

import numpy as np
import pytest

from voicebot.asr.scheduler import AsrScheduler
from voicebot.asr.segments import join_results, pad_to_turn_window
from voicebot.asr.streaming import StreamingRecognizer
from voicebot.asr.transcriber import TranscriptionResult
from voicebot.audio.channel import telephone_channel
from voicebot.config import Settings
from voicebot.eval.metrics import wer
from voicebot.frames import (
    AudioFrame,
    SpeculationDropped,
    SpeculativeFinal,
    SpeechEnded,
    SpeechStarted,
    Transcript,
    Word,
)

RATE = 16000
CLIPS = ("cv61_17332094.flac", "cv61_17345166.flac", "cv61_17361931.flac")  # Hafen, Reinhold, Aussage
PAUSE_S = 0.4  # between sentences: longer than asr.segment_pause_ms, shorter than vad.end_silence_ms


@pytest.fixture(scope="module")
def sentences() -> list[tuple[str, np.ndarray]]:
    """Three real German sentences (speech-de-more, 4-5 s each), trimmed to their speech and levelled."""
    from voicebot.eval.asr_cases import load_sources, trimmed

    try:
        clips = {c.path.name: c for c in load_sources(sets=("speech-de-more",))}
    except FileNotFoundError as exc:
        pytest.skip(f"shared German speech not found: {exc}")
    return [(clips[n].text, trimmed(clips[n], margin_s=0.0)) for n in CLIPS]


def _turn(parts: list[np.ndarray], pause_s: float = PAUSE_S) -> tuple[np.ndarray, list[float]]:
    """Lead-in hiss, the sentences with hiss pauses, trailing hiss; and each sentence's start (s)."""
    from voicebot.eval.asr_cases import line_noise

    pieces, starts, at = [line_noise(1.0, seed=1)], [], 1.0
    for i, speech in enumerate(parts):
        if i:
            pieces.append(line_noise(pause_s, seed=10 + i))
            at += pause_s
        starts.append(at)
        pieces.append(speech)
        at += len(speech) / RATE
    pieces.append(line_noise(1.5, seed=99))
    return np.concatenate(pieces), starts


def _settings(settings: Settings, *, partials: bool = False, **asr: object) -> Settings:
    base = {"segment_pause_ms": 250}
    if not partials:
        base.update(partial_interval_ms=10**7, min_partial_audio_ms=10**7)
    return replace(settings, asr=replace(settings.asr, **{**base, **asr}))


async def _phone_call(
    transcriber, settings: Settings, vad_model, audio16k: np.ndarray,
) -> tuple[list, StreamingRecognizer]:
    """Push the audio through the phone line as 20 ms 8 kHz frames; every result, in stream order."""
    phone, rate = telephone_channel(audio16k, RATE)
    frames: list = []
    async with AsrScheduler(transcriber, settings.asr) as scheduler:
        recognizer = StreamingRecognizer(scheduler, settings, "segments", vad_model)
        step = rate // 50
        for i in range(0, len(phone), step):
            frames += await recognizer.push(AudioFrame(phone[i : i + step], rate, i / rate))
            frames += await recognizer.wait_partials()
        frames += await recognizer.flush()
        await recognizer.aclose()
    return frames, recognizer


def _finals(frames: list) -> list[Transcript]:
    return [f for f in frames if isinstance(f, Transcript) and f.is_final]


async def test_a_turn_with_pauses_is_decoded_in_segments_with_absolute_word_times(
        transcriber, settings, vad_model, sentences) -> None:
    s = _settings(settings, partials=True)
    audio, starts = _turn([sentences[0][1], sentences[2][1]])
    frames, recognizer = await _phone_call(transcriber, s, vad_model, audio)
    assert [type(f).__name__ for f in frames if isinstance(f, SpeechStarted | SpeechEnded)] == \
        ["SpeechStarted", "SpeechEnded"], "one turn: the pause is shorter than vad.end_silence_ms"
    assert recognizer.segment_stats["kept"] >= 1 and recognizer.segment_stats["segmented_turns"] == 1
    (final,) = _finals(frames)
    ref = f"{sentences[0][0]} {sentences[2][0]}"
    assert wer([ref], [final.text]) <= 0.3, final.text
    # Words in order, on the caller's timeline: the second sentence's words after its start.
    assert all(a.start <= b.start for a, b in zip(final.words, final.words[1:], strict=False))
    second = final.words[-len(sentences[2][0].split()) + 1:]
    assert min(w.start for w in second) >= starts[1] - 0.4, [(w.text, w.start) for w in final.words]
    assert max(w.end for w in final.words) <= starts[1] + len(sentences[2][1]) / RATE + 0.8
    # Partials still come before the turn's end and their committed text only grows.
    partials = [f for f in frames if isinstance(f, Transcript) and not f.is_final]
    assert partials
    for before, after in zip(partials, partials[1:], strict=False):
        assert after.committed.startswith(before.committed)


async def test_a_part_shorter_than_segment_min_s_is_not_kept(transcriber, settings, vad_model, sentences) -> None:
    """A part shorter than ``asr.segment_min_s`` is decoded with what follows, not alone: a short "Ja." decoded
    on its own loses Whisper's context (a telephone scenario's "Ja. Genau." came back at confidence 0.19)."""
    s = _settings(settings, segment_min_s=30.0)  # longer than any part of this turn
    audio, _ = _turn([sentences[0][1], sentences[2][1]])
    frames, recognizer = await _phone_call(transcriber, s, vad_model, audio)
    assert recognizer.segment_stats["kept"] == 0 and recognizer.segment_stats["segmented_turns"] == 0
    (final,) = _finals(frames)
    assert wer([f"{sentences[0][0]} {sentences[2][0]}"], [final.text]) <= 0.3, final.text


async def test_the_speculative_final_is_the_joined_text(transcriber, settings, vad_model, sentences) -> None:
    """turn.speculate: a speculation at a sentence pause is dropped as an answer but kept as a segment;
    the last speculative final holds both sentences and is exactly the final."""
    s = _settings(settings)
    s = replace(s, turn=replace(s.turn, speculate=True, speculate_after_ms=120.0))
    audio, _ = _turn([sentences[0][1], sentences[2][1]])
    frames, recognizer = await _phone_call(transcriber, s, vad_model, audio)
    speculative = [f for f in frames if isinstance(f, SpeculativeFinal)]
    dropped = {f.seq for f in frames if isinstance(f, SpeculationDropped)}
    assert dropped and recognizer.segment_stats["kept"] >= 1
    (final,) = _finals(frames)
    last = speculative[-1]
    assert last.seq not in dropped
    assert (last.transcript.text, last.transcript.confidence) == (final.text, final.confidence)
    assert recognizer.speculation["used"] == 1
    assert wer([f"{sentences[0][0]} {sentences[2][0]}"], [final.text]) <= 0.3, final.text


async def test_a_forced_cut_still_splits_a_long_turn_without_duplicated_words(
        transcriber, settings, vad_model, sentences) -> None:
    s = _settings(settings)
    s = replace(s, vad=replace(s.vad, max_turn_s=7.0))
    audio, _ = _turn([sentences[0][1], sentences[2][1], sentences[1][1]], pause_s=0.35)
    frames, _recognizer = await _phone_call(transcriber, s, vad_model, audio)
    finals = _finals(frames)
    assert len(finals) >= 2, "vad.max_turn_s cut the turn"
    ref = " ".join(text for text, _ in (sentences[0], sentences[2], sentences[1]))
    hyp = " ".join(f.text for f in finals)
    assert wer([ref], [hyp]) <= 0.45, hyp  # "Reinhold ..." is a quiet, hard clip (0.36 here)
    assert len(hyp.split()) <= len(ref.split()) + 2, "no part decoded twice"


async def test_a_cancelled_decode_still_queued_is_never_decoded(transcriber, settings, sentences) -> None:
    """A voided speculation whose decode waits in the queue costs nothing: cancelling its task drops it."""
    speech = sentences[2][1]
    async with AsrScheduler(transcriber, settings.asr, workers=1) as scheduler:
        first = asyncio.create_task(scheduler.transcribe(speech, call_id="a", final=True))
        voided = asyncio.create_task(scheduler.transcribe(speech, call_id="b", final=True, speculative=True))
        await asyncio.sleep(0)  # both requests are queued; one worker: b waits behind a
        assert scheduler.queued_finals >= 1
        voided.cancel()
        after = asyncio.create_task(scheduler.transcribe(speech, call_id="c", final=True))
        assert (await first).text and (await after).text
        assert voided.cancelled()
        assert scheduler.stats()["final"]["served"] == 2, "the cancelled request was not decoded"


async def _ended_by_the_models(transcriber, settings: Settings, vad_model, audio16k: np.ndarray, after_s: float,
                               end_after_ms: float) -> tuple[list, StreamingRecognizer, int]:
    """As ``_phone_call``, but the end-of-turn models end the turn (``end_turn()``) once the recognizer has counted
    ``end_after_ms`` of pause after ``after_s``; also the final decodes the scheduler served."""
    phone, rate = telephone_channel(audio16k, RATE)
    frames: list = []
    async with AsrScheduler(transcriber, settings.asr) as scheduler:
        recognizer = StreamingRecognizer(scheduler, settings, "pause-decode", vad_model)
        step, ended = rate // 50, False
        for i in range(0, len(phone), step):
            frames += await recognizer.push(AudioFrame(phone[i : i + step], rate, i / rate))
            frames += await recognizer.wait_partials()
            turn = recognizer._turn
            pause_ms = turn.silence_frames * recognizer._frame_ms if turn is not None else 0.0
            if not ended and i / rate > after_s and pause_ms >= end_after_ms:
                frames += recognizer.end_turn()
                ended = True
        frames += await recognizer.flush()
        await recognizer.aclose()
        served = scheduler.stats()["final"]["served"]
    return frames, recognizer, served


async def test_the_tail_decoded_at_a_short_pause_is_the_final(transcriber, settings, vad_model, sentences) -> None:
    """``asr.pause_decode_ms``: the decode of the part since the last cut starts at a short pause, before the
    end-of-turn models decide (~260 ms into it); that decode IS the final's tail, nothing is decoded twice."""
    s = _settings(settings, segment_pause_ms=300, pause_decode_ms=100)
    s = replace(s, turn=replace(s.turn, speculate=False))  # the recognizer's own early decode, no speculation
    audio, starts = _turn([sentences[0][1], sentences[2][1]])
    frames, recognizer, served = await _ended_by_the_models(transcriber, s, vad_model, audio, starts[1] + 0.5, 250.0)
    (final,) = _finals(frames)
    assert wer([f"{sentences[0][0]} {sentences[2][0]}"], [final.text]) <= 0.3, final.text
    assert recognizer.segment_stats["kept"] == 1
    assert recognizer.speculation["used"] == 1, "the tail's decode had started before the end of the turn"
    # Every final decode served is a part of the final (the kept segment and the tail, once each) or a voided one.
    assert served == 2 + recognizer.speculation["wasted"]


def test_join_results_keeps_one_part_and_joins_several_in_order() -> None:
    a = TranscriptionResult("Guten Tag.", (Word("Guten", 1.0, 1.3, 0.9), Word("Tag.", 1.3, 1.6, 0.8)), -0.2, 0.1,
                            3.0, 0.4)
    b = TranscriptionResult("Meine Nummer.", (Word("Meine", 4.0, 4.2, 0.7), Word("Nummer.", 4.2, 4.6, 0.9)), -0.4,
                            0.2, 2.0, 0.3)
    empty = TranscriptionResult("", (), -10.0, 0.95, 1.0, 0.2)
    assert join_results([a]) is a
    joined = join_results([a, empty, b])
    assert joined.text == "Guten Tag. Meine Nummer."
    assert [w.text for w in joined.words] == ["Guten", "Tag.", "Meine", "Nummer."]
    assert joined.no_speech_prob == pytest.approx(0.15) and joined.avg_logprob == pytest.approx(-0.3)
    assert joined.duration == pytest.approx(6.0)
    probs = np.array([0.9, 0.8, 0.7, 0.9])
    assert joined.confidence == pytest.approx(float(np.exp(np.mean(np.log(probs)))) * (1 - 0.5 * 0.15))
    assert join_results([empty, empty]).text == ""


def test_a_turns_confidence_leaves_out_the_first_words_alignment_probability() -> None:
    """The alignment pass scores the first word without the prompt the decode had: "Kundennummer 526108" on the
    phone line came back 0.01 and 0.75, and a right answer was re-asked (``TranscriptionResult.turn_confidence``)."""
    number = TranscriptionResult("Kundennummer 526108", (Word("Kundennummer", 0.3, 1.1, 0.01),
                                                         Word("526108", 1.2, 2.4, 0.75)), -0.55, 0.006, 2.9, 0.4)
    assert number.confidence < 0.35 <= number.turn_confidence == pytest.approx(0.75 * (1 - 0.5 * 0.006))
    one = TranscriptionResult("Ja.", (Word("Ja.", 0.3, 0.6, 0.2),), -0.9, 0.1, 1.2, 0.2)
    assert one.turn_confidence == one.confidence  # a lone word is all there is to judge
    assert TranscriptionResult("", (), -10.0, 0.9, 1.0, 0.1).turn_confidence == 0.0


def test_a_short_segment_is_padded_into_the_turn_sized_window(transcriber) -> None:
    """Without ``window_s`` on the ASR client, trailing silence takes a short segment past
    ``asr.final_short_turn_s``, so the engine decodes it in the 10 s window, not the short whole turn's
    longer one (``asr.final_short_window_wideband_s``; a phone call's recognizer asks for its own)."""
    short = np.ones(2 * RATE, dtype=np.int16)
    padded = pad_to_turn_window(short, 4.0)
    assert len(padded) / RATE > 4.0 and np.array_equal(padded[: len(short)], short)
    assert not padded[len(short) :].any()  # the zeros the engine pads every window with
    short_window = transcriber.settings.final_short_window_wideband_s
    assert short_window > transcriber.settings.final_chunk_length
    assert transcriber.window_for(len(short) / RATE, final=True) == short_window
    assert transcriber.window_for(len(padded) / RATE, final=True) == transcriber.settings.final_chunk_length
    long = np.ones(5 * RATE, dtype=np.int16)
    assert pad_to_turn_window(long, 4.0) is long
