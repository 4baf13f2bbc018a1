"""Streaming ASR: LocalAgreement, real German clips through VAD + streaming recognizer, and no words from noise."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from voicebot.asr.commit import LocalAgreement
from voicebot.asr.scheduler import AsrScheduler
from voicebot.asr.streaming import MIN_PRE_ROLL_MS, StreamingRecognizer, run_stream
from voicebot.audio.io import load_for_asr
from voicebot.eval.metrics import wer
from voicebot.frames import SpeechEnded, SpeechStarted, Transcript

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


# --- LocalAgreement (pure) --------------------------------------------------------------


def test_local_agreement_commits_agreed_prefix_and_never_changes_it() -> None:
    la = LocalAgreement(2)
    hyps = [
        "Der", "Der Lacken", "Der Lappen liegt", "Der Lappen liegt auf", "der Lappen liegt auf dem Eis",
        "Der Lappen liegt auf dem Eisschrank.", "Der Lappen liegt auf dem Eisschrank.",
    ]
    committed = []
    for h in hyps:
        update = la.update(h.split())
        committed.append(update.committed_text)
    assert committed == [
        "", "Der", "Der", "Der Lappen liegt", "Der Lappen liegt auf", "Der Lappen liegt auf dem",
        "Der Lappen liegt auf dem Eisschrank.",
    ]


def test_local_agreement_survives_a_hypothesis_that_revises_committed_words() -> None:
    la = LocalAgreement(2)
    la.update("ich möchte meinen Vertrag".split())
    la.update("ich möchte meinen Vertrag kündigen".split())
    assert la.committed == tuple("ich möchte meinen Vertrag".split())
    # Whisper changes its mind about an early word: committed text stays, the tail is found after it.
    # ("kündigen" agrees with the previous tail and is committed; the committed "meinen" stays).
    update = la.update("ich möchte meinem Vertrag kündigen bitte".split())
    assert update.committed_text == "ich möchte meinen Vertrag kündigen"
    assert update.tentative == ("bitte",)
    update = la.update("ich möchte meinem Vertrag kündigen bitte schön".split())
    assert update.committed_text == "ich möchte meinen Vertrag kündigen bitte"
    # A hypothesis that drops a committed word is aligned, not shifted.
    update = la.update("ich möchte Vertrag kündigen bitte schön".split())
    assert update.committed_text == "ich möchte meinen Vertrag kündigen bitte schön"


def test_local_agreement_n3_needs_three_votes() -> None:
    la = LocalAgreement(3)
    assert la.update(["a", "b"]).committed == ()
    assert la.update(["a", "b"]).committed == ()
    assert la.update(["a", "c"]).committed == ("a",)


# --- the real pipeline ------------------------------------------------------------------


def _clip(speech_dir: Path, item: dict) -> np.ndarray:
    pcm = load_for_asr(speech_dir / item["audio"])
    silence = np.zeros(RATE // 2, dtype=np.int16)
    return np.concatenate([silence, pcm, silence, silence])


async def _stream(transcriber, settings, vad_model, audio: np.ndarray, stats: dict | None = None,
                  narrowband: bool = False) -> list:
    async with AsrScheduler(transcriber, settings.asr) as scheduler:
        recognizer = StreamingRecognizer(scheduler, settings, "test-call", vad_model, narrowband=narrowband)
        frames = [frame async for _, frame in run_stream(recognizer, audio)]
    if stats is not None:
        for key, value in recognizer.speculation.items():
            stats[key] = stats.get(key, 0) + value
    return frames


def _pick(manifest: list[dict]) -> list[dict]:
    """A handful of clips: the two long VoxForge prompts and three EmoDB sentences."""
    longest = sorted(manifest, key=lambda m: -m["seconds"])[:2]
    neutral = [m for m in manifest if m.get("emotion") == "neutral" and m["seconds"] > 1.8][:3]
    return longest + neutral


async def test_real_german_clips_stream_to_accurate_finals(transcriber, settings, vad_model, speech_dir,
                                                           speech_manifest) -> None:
    refs, hyps = [], []
    speculation: dict[str, int] = {}
    for item in _pick(speech_manifest):
        frames = await _stream(transcriber, settings, vad_model, _clip(speech_dir, item), speculation)
        kinds = [type(f).__name__ for f in frames]
        assert kinds[0] == "SpeechStarted" and "SpeechEnded" in kinds, kinds
        finals = [f for f in frames if isinstance(f, Transcript) and f.is_final]
        partials = [f for f in frames if isinstance(f, Transcript) and not f.is_final]
        # Stream order: every final follows its SpeechEnded; partials come before it.
        assert kinds.index("SpeechEnded") < max(i for i, f in enumerate(frames) if f in finals)
        assert all(frames.index(p) < kinds.index("SpeechEnded") for p in partials)
        if item["seconds"] > 2.0:
            assert len(partials) >= 2, f"no partials for a {item['seconds']} s clip"
        # Committed text only ever grows by appending.
        for before, after in zip(partials, partials[1:], strict=False):
            assert after.committed.startswith(before.committed), (before.committed, after.committed)
            assert after.text.startswith(after.committed)
        final = finals[0]
        assert final.words and 0.0 < final.confidence <= 1.0
        started = next(f for f in frames if isinstance(f, SpeechStarted))
        ended = next(f for f in frames if isinstance(f, SpeechEnded))
        # Words may begin inside the pre-roll (the VAD hears speech late; the pre-roll keeps its start).
        assert started.t - MIN_PRE_ROLL_MS / 1000 <= final.words[0].start and final.words[-1].end <= ended.t + 0.6
        refs.append(item["text"])
        hyps.append(" ".join(f.text for f in finals))
    assert wer(refs, hyps) <= 0.25, list(zip(refs, hyps, strict=True))
    # The caller went silent after each clip: the early (speculative) final decode was the final.
    assert speculation["used"] >= len(refs) - 1, speculation


async def test_long_turn_uses_a_rolling_buffer(transcriber, settings, vad_model, speech_dir, speech_manifest) -> None:
    """With a 6 s window the longest clip (6.6 s) is cut after committed words; commits still only grow."""
    from dataclasses import replace

    item = max(speech_manifest, key=lambda m: m["seconds"])
    small = replace(settings, asr=replace(settings.asr, chunk_length=6))
    async with AsrScheduler(transcriber, small.asr) as scheduler:
        recognizer = StreamingRecognizer(scheduler, small, "rolling", vad_model)
        frames = [f async for _, f in run_stream(recognizer, _clip(speech_dir, item))]
    partials = [f for f in frames if isinstance(f, Transcript) and not f.is_final]
    assert recognizer.buffer_cuts >= 1
    for before, after in zip(partials, partials[1:], strict=False):
        assert after.committed.startswith(before.committed)
    assert wer([item["text"]], [partials[-1].text]) <= 0.5
    final = " ".join(f.text for f in frames if isinstance(f, Transcript) and f.is_final)
    assert wer([item["text"]], [final]) <= 0.3  # a hard clip: "insgeheim" comes out as "ins Geheim"


async def test_telephone_call_at_8khz_is_heard(transcriber, settings, vad_model, speech_dir, speech_manifest) -> None:
    """8 kHz µ-law frames (as from a phone gateway): the recognizer resamples and uses the narrowband VAD."""
    from voicebot.audio.channel import telephone_channel
    from voicebot.frames import AudioFrame

    item = _pick(speech_manifest)[2]
    phone, rate = telephone_channel(_clip(speech_dir, item), RATE)
    frames = []
    async with AsrScheduler(transcriber, settings.asr) as scheduler:
        recognizer = StreamingRecognizer(scheduler, settings, "phone", vad_model)
        for i in range(0, len(phone), 160):  # 20 ms at 8 kHz
            frames += await recognizer.push(AudioFrame(phone[i : i + 160], rate, i / rate))
            frames += await recognizer.wait_partials()
        frames += await recognizer.flush()
    assert recognizer.narrowband
    assert recognizer.endpointer.settings.threshold == settings.vad.narrowband_threshold
    finals = [f.text for f in frames if isinstance(f, Transcript) and f.is_final]
    assert finals and wer([item["text"]], [" ".join(finals)]) <= 0.4, finals


async def test_input_ending_mid_turn_still_gives_speech_ended_then_final(transcriber, settings, vad_model,
                                                                        speech_dir, speech_manifest) -> None:
    item = _pick(speech_manifest)[2]
    audio = load_for_asr(speech_dir / item["audio"])  # no trailing silence: flush() ends the turn
    frames = await _stream(transcriber, settings, vad_model, audio)
    kinds = [type(f).__name__ for f in frames if not (isinstance(f, Transcript) and not f.is_final)]
    assert kinds == ["SpeechStarted", "SpeechEnded", "Transcript"], kinds


def _hold_music(seconds: float) -> np.ndarray:
    """A synthetic hold loop: a melody of harmonic tones with tremolo, at -20 dBFS-ish."""
    notes = [261.6, 329.6, 392.0, 523.3, 392.0, 329.6, 293.7, 349.2]
    t = np.arange(int(seconds * RATE)) / RATE
    note = ((t * 2.5).astype(int)) % len(notes)
    f0 = np.array(notes)[note]
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    tone = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    tremolo = 0.7 + 0.3 * np.sin(2 * np.pi * 5.0 * t)
    return (3000 * tone * tremolo).astype(np.int16)


def _noise(seconds: float, dbfs: float, pink: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(int(seconds * RATE))
    if pink:
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        white = np.fft.irfft(spectrum, len(white))
    white /= np.sqrt(np.mean(white**2))
    return np.clip(white * 32768 * 10 ** (dbfs / 20), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("channel", ["wideband", "telephone"])
async def test_silence_noise_and_hold_music_yield_no_words(transcriber, settings, vad_model, channel) -> None:
    from voicebot.audio.channel import telephone_channel
    from voicebot.audio.resample import resample

    parts = [np.zeros(10 * RATE, dtype=np.int16)]
    parts += [_noise(6, db, pink=False, seed=i) for i, db in enumerate((-60, -45, -30, -20))]
    parts += [_noise(6, db, pink=True, seed=10 + i) for i, db in enumerate((-45, -30, -20))]
    parts += [_hold_music(15)]
    audio = np.concatenate(parts)
    assert len(audio) / RATE >= 60
    if channel == "telephone":  # through the phone line, heard with the (more sensitive) narrowband VAD
        audio = resample(*telephone_channel(audio, RATE), RATE)
    frames = await _stream(transcriber, settings, vad_model, audio, narrowband=channel == "telephone")
    words = [w for f in frames if isinstance(f, Transcript) for w in f.text.split()]
    assert words == [], [f for f in frames if isinstance(f, Transcript) and f.text]


def test_transcribe_cli_json(speech_dir, speech_manifest, settings) -> None:
    if not (settings.models.dir / "whisper-base").is_dir():
        pytest.skip("whisper-base not provisioned")
    item = sorted(speech_manifest, key=lambda m: -m["seconds"])[1]
    out = subprocess.run(
        [sys.executable, "-m", "voicebot.cli.main", "transcribe", str(speech_dir / item["audio"]), "--json"],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["finals"] and {"text", "start", "end", "confidence"} <= set(result["finals"][0])
    assert wer([item["text"]], [" ".join(f["text"] for f in result["finals"])]) <= 0.35
    assert result["audio_seconds"] == pytest.approx(item["seconds"], abs=0.05)


def test_guards_blank_noise_even_when_it_is_decoded(transcriber) -> None:
    """Defence in depth: if noise got past the VAD, the decode result is still blanked."""
    from voicebot.asr.guards import clean_transcript

    prompt = transcriber.settings.initial_prompt
    for audio in (np.zeros(3 * RATE, dtype=np.int16), _noise(3, -30, pink=False, seed=5),
                  _noise(3, -25, pink=True, seed=6), _hold_music(4)):
        raw = transcriber.transcribe(audio)
        assert clean_transcript(raw, prompt=prompt).text == "", raw.text
