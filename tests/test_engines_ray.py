"""The engines on Ray Serve (engines.backend = "ray"): a real single-node Ray with the real
models (whisper-base, the intent model, Pico) as Serve deployments, reached through the Ray
engine clients, and a real `voicebot serve` worker taking a call with real German speech.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fakes import ServeProcess
from websockets.sync.client import connect

from voicebot.audio.io import load_for_asr
from voicebot.config import Settings

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")]

MORE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "speech-de-more"
CLIPS = {
    "clips/cv61_17332094.flac": "Der Hafen bietet mit all seinen Lichtern einen einzigartigen Anblick bei Nacht.",
    "clips/cv61_17345166.flac": "Reinhold hat einen richtig dicken Oschi aus dem Teich gezogen.",
}


def words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


@pytest.fixture(scope="module")
def ray_settings(settings: Settings) -> Iterator[Settings]:
    """A single-node Ray on this machine (2 CPUs, no dashboard, a small object store) running the app."""
    try:
        from voicebot.engines_ray import cluster
    except ModuleNotFoundError as exc:
        pytest.skip(f"Ray is not installed ({exc.name}): pip install -e '.[ray]'")
    for model in ("whisper-base", "pico-de", "e5-small"):
        if not (settings.models.dir / model).is_dir():
            pytest.skip(f"model {model} not provisioned: run `voicebot models pull`")
    if not (MORE_DIR / "manifest.jsonl").is_file():
        pytest.skip(f"shared German speech not found at {MORE_DIR}")
    # The three replicas share the 2 CPUs the test cluster has (1 + 0.5 + 0.5).
    engines = replace(settings.engines, backend="ray", asr_cpus=1.0, intent_cpus=0.5, tts_cpus=0.5,
                      asr_max_batch=4, asr_batch_wait_ms=20.0)
    ray_settings = replace(settings, engines=engines)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves the machine
    cluster.start_local(ray_settings, num_cpus=2)
    try:
        cluster.deploy(ray_settings)
        yield ray_settings
    finally:
        cluster.shutdown()


def test_ray_engine_clients_with_real_models(ray_settings: Settings) -> None:
    from voicebot.engines_ray.clients import RayAsrClient, RayEngineClients
    from voicebot.engines_ray.worker import RayEngines

    engines = RayEngines.load(ray_settings, with_encoder=False)
    clients = engines.clients()
    assert isinstance(clients, RayEngineClients) and isinstance(clients.asr, RayAsrClient)
    audios = {clip: load_for_asr(MORE_DIR / clip) for clip in CLIPS}

    async def run() -> tuple[list[Any], list[Any], Any, Any]:
        await clients.start()
        try:
            # Two calls' finals at once: both decoded on the deployment (one @serve.batch when they meet).
            finals = await asyncio.gather(*(
                clients.asr.transcribe(audio, call_id=f"call-{i}", final=True, offset=1.0)
                for i, audio in enumerate(audios.values())))
            # One call's partials piling up: one in flight, the newest waits, the one between is dropped.
            first = next(iter(audios.values()))
            partials = await asyncio.gather(*(
                clients.asr.transcribe(first[: 16000 * n], call_id="call-p", final=False) for n in (2, 3, 4)))
            prediction = await clients.intent.predict(
                "Ich hatte einen Unfall mit meinem Auto und möchte den Schaden melden.")
            speech = await clients.speech.synthesize("Guten Tag, wie kann ich Ihnen helfen?")
            return finals, partials, prediction, speech
        finally:
            await clients.aclose()

    # A partial that waited more than partial_max_age_ms is dropped: not what this checks.
    clients.asr.settings = replace(clients.asr.settings, partial_max_age_ms=600_000)
    finals, partials, prediction, speech = asyncio.run(run())
    for (clip, expected), result in zip(CLIPS.items(), finals, strict=True):
        assert result is not None
        assert len(words(result.text) & words(expected)) >= len(words(expected)) // 2, (clip, result.text)
        assert result.words and result.words[0].start >= 1.0, "word times are shifted onto the call's timeline"
    assert partials[0] is not None and partials[0].text
    assert partials[1] is None, "a partial replaced by a newer one of the same call resolves to None"
    assert partials[2] is not None and words(partials[2].text) & words(next(iter(CLIPS.values())))
    assert prediction.label == "schadensmeldung" and prediction.confidence > 0.5
    assert speech.sample_rate == clients.speech.sample_rate
    assert speech.duration > 0.5 and int(np.abs(speech.pcm).max()) > 1000, "audible speech"
    assert clients.asr.stats()["final"]["served"] == 2


def test_call_on_a_worker_with_ray_engines(ray_settings: Settings, tmp_path: Path) -> None:
    """`voicebot serve` with engines.backend=ray joins the cluster and takes a real call."""
    import ray
    from test_server_e2e import PhoneLine, wait_for

    from voicebot.audio.resample import resample
    from voicebot.store.sqlite import get_call

    address = ray.get_runtime_context().gcs_address
    server = ServeProcess(tmp_path, env={
        "VOICEBOT_ENGINES__BACKEND": "ray", "VOICEBOT_ENGINES__RAY_ADDRESS": address,
        "RAY_AUTH_MODE": "token"})  # the test's Ray enabled token auth; the worker must send the token
    try:
        clip, expected = next(iter(CLIPS.items()))
        pcm = resample(load_for_asr(MORE_DIR / clip), 16000, 8000)
        events: list[dict[str, Any]] = []
        with connect(server.ws_url("/v1/call")) as ws:
            ws.send(json.dumps({"type": "start", "protocol": "voicebot.v1", "encoding": "mulaw",
                                "sample_rate": 8000, "call_id": "ray-call"}))
            wait_for(ws, "call.started", 10, events)
            line = PhoneLine(ws.send, 8000, "mulaw")
            wait_for(ws, "bot.audio.end", 60, events)  # the greeting, spoken by the Speech deployment
            line.say(pcm)
            wait_for(ws, "intent", 60, events)
            line.hang_up()
            ws.send(json.dumps({"type": "stop"}))
            wait_for(ws, "call.end", 30, events)
    finally:
        assert server.stop() in (0, 130, -2)
    final = next(e for e in events if e["type"] == "transcript.final")
    assert len(words(final["text"]) & words(expected)) >= len(words(expected)) // 2, final["text"]
    intent = next(e for e in events if e["type"] == "intent")
    assert intent["label"] and 0.0 <= intent["confidence"] <= 1.0
    record = get_call(server.store_path, "ray-call")
    assert record is not None and record["status"] == "completed"
    assert record["intents"][0]["label"] == intent["label"]
