"""The engines on real models: whisper-base on real German speech, Pico and piper voices, e5 embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from voicebot.audio.io import read_audio
from voicebot.audio.resample import resample
from voicebot.eval.metrics import normalize_german


def test_whisper_transcribes_real_german_clip(transcriber, speech_dir, speech_manifest) -> None:
    item = next(m for m in speech_manifest if m["text"] == "Das will sie am Mittwoch abgeben." )
    pcm, rate = read_audio(speech_dir / item["audio"])
    result = transcriber.transcribe(resample(pcm, rate, 16000))
    assert normalize_german(result.text) == normalize_german(item["text"])
    assert result.words and 0.3 < result.confidence <= 1.0
    assert result.words[0].start < result.words[-1].end <= len(pcm) / rate + 0.5


def test_pico_speaks_german_that_whisper_understands(pico, transcriber) -> None:
    sentence = "Ihre Bestellung wird morgen geliefert."
    audio = pico.synthesize(sentence)
    assert audio.sample_rate == 16000 and audio.pcm.dtype == np.int16
    assert 1.0 < audio.duration < 6.0
    result = transcriber.transcribe(audio.pcm)
    assert normalize_german(result.text) == normalize_german(sentence)


def test_pico_respells_loanwords(pico) -> None:
    from voicebot.tts.lexicon import respell

    assert respell("Bitte prüfen Sie den Router und Ihre E-Mail.") == "Bitte prüfen Sie den Rauter und Ihre I-Mäil."
    assert pico.synthesize("Kundenservice").duration > 0.3


def test_piper_voice_speaks(settings) -> None:
    from voicebot.tts import make_synthesizer

    if not (settings.models.dir / "piper-joe-en").is_dir():
        pytest.skip("piper-joe-en not provisioned")
    piper = make_synthesizer(settings.tts, settings.models, "piper-joe-en").load()
    audio = piper.synthesize("Hello, this is a test of the piper voice.")
    assert audio.sample_rate == 22050
    assert audio.duration > 1.0
    # volume 0.8 leaves headroom: no clipping
    assert np.abs(audio.pcm.astype(np.int32)).max() < 32767 * 0.85


def test_e5_paraphrases_score_above_unrelated(encoder) -> None:
    vectors = encoder.encode([
        "Ich möchte meinen Vertrag kündigen.",
        "Ich will mein Abo beenden.",
        "Mein Auto springt nicht an.",
        "Der Wagen startet nicht mehr, ich stehe auf der Autobahn.",
    ])
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] and sims[0, 1] > sims[0, 3]
    assert sims[2, 3] > sims[2, 0] and sims[2, 3] > sims[2, 1]


async def test_local_clients_run_each_kind_of_work_on_named_timed_pools(settings, transcriber, pico, speech_dir,
                                                                         speech_manifest) -> None:
    """Decodes on the ASR pool, Smart Turn and speech on the light-model pool; each job timed by kind."""
    import os
    from pathlib import Path

    from voicebot.engines import Engines
    from voicebot.turn.smart_turn import SmartTurnModel

    smart = SmartTurnModel.from_settings(settings.models).load()
    engines = Engines(settings=settings, transcriber=transcriber, vad_model=None, synthesizer=pico, intent=None,
                      smart_turn=smart)
    item = next(m for m in speech_manifest if m["text"] == "Das will sie am Mittwoch abgeben.")
    pcm, rate = read_audio(speech_dir / item["audio"])
    audio = resample(pcm, rate, 16000)
    clients = engines.clients()
    await clients.start()
    try:
        result = await clients.asr.transcribe(audio, call_id="pools", final=True)
        p_complete = await clients.end_of_turn.audio_complete(audio)
        spoken = await clients.speech.synthesize("Guten Tag.")
        threads = {(task / "comm").read_text().strip() for task in Path(f"/proc/{os.getpid()}/task").iterdir()}
        profile = {(t.pool, t.kind): t for t in clients.profile()}
        asr = clients.asr.stats()
    finally:
        await clients.aclose()
    assert normalize_german(result.text) == normalize_german(item["text"])
    assert p_complete is not None and 0.0 <= p_complete <= 1.0 and spoken.duration > 0.3
    assert profile[("engine-light", "smart_turn")].jobs == 1 and profile[("engine-light", "tts")].jobs == 1
    assert profile[("engine-light", "smart_turn")].run_p50_ms > 0
    assert asr["final"]["served"] == 1 and asr["final"]["decode_p50"] > 0 and asr["final"]["wait_p50"] >= 0
    if os.name == "posix" and Path("/proc/self/task").is_dir():
        assert {"asr-decode", "engine-light"} <= threads  # per-thread CPU says whose it is


def test_renice_threads_lowers_only_the_named_threads() -> None:
    import os
    import threading
    from pathlib import Path

    from voicebot.call.pools import renice_threads, set_native_thread_name

    if not Path("/proc/self/task").is_dir():
        pytest.skip("[optional] per-thread nice needs Linux /proc")
    ready, done = threading.Event(), threading.Event()
    tid: list[int] = []

    def probe() -> None:
        set_native_thread_name("renice-probe")
        tid.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        assert ready.wait(10)
        base = os.getpriority(os.PRIO_PROCESS, tid[0])
        mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        assert renice_threads("renice-probe", 3) == 1
        assert os.getpriority(os.PRIO_PROCESS, tid[0]) == min(19, base + 3)
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    finally:
        done.set()
        thread.join()


def test_a_server_runs_torch_at_the_serving_thread_count(settings) -> None:
    """Loading the intent model sets torch to the training figure (nlu.threads); serving sets nlu.serve_threads."""
    import torch

    from voicebot.engines import serve_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(settings.nlu.threads)
        serve_threads(settings)
        assert torch.get_num_threads() == settings.nlu.serve_threads
    finally:
        torch.set_num_threads(before)
