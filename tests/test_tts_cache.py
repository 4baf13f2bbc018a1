"""The sentence cache shared by all calls (voicebot/tts/cache.py), on real Pico speech."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from voicebot.call.clients import LocalSpeechClient
from voicebot.call.pools import EnginePool
from voicebot.tts.base import SynthesizedAudio
from voicebot.tts.cache import SentenceCache

GREETING = "Guten Tag, Sie sprechen mit dem automatischen Assistenten."
QUESTION = "Wie lautet Ihre Kundennummer?"


@pytest.fixture()
def pool():
    pool = EnginePool("test-light", 1)
    yield pool
    pool.shutdown()


def test_second_call_gets_the_same_audio_without_synthesis(pico, pool) -> None:
    cache = SentenceCache(8_000_000)
    a = LocalSpeechClient(pico, pool, cache=cache)
    b = LocalSpeechClient(pico, pool, cache=cache)  # another call's client, same process

    async def speak() -> tuple[SynthesizedAudio, SynthesizedAudio, SynthesizedAudio]:
        return await a.synthesize(GREETING), await b.synthesize(GREETING), await b.synthesize(QUESTION)

    first, again, other = asyncio.run(speak())
    assert len(first.pcm) > first.sample_rate  # real speech, over a second of it
    assert np.array_equal(first.pcm, again.pcm) and again.sample_rate == first.sample_rate
    assert not np.array_equal(other.pcm[: len(first.pcm)], first.pcm[: len(other.pcm)])
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 2)
    assert [t.jobs for t in pool.stats() if t.kind == "tts"] == [2]  # the repeat never reached the synthesizer
    with pytest.raises(ValueError):
        again.pcm[0] = 1  # shared by every call that speaks it: read-only


def test_bounded_by_bytes_least_recent_out(pico) -> None:
    greeting, question = pico.synthesize(GREETING), pico.synthesize(QUESTION)
    cache = SentenceCache(greeting.pcm.nbytes + question.pcm.nbytes)
    cache.put("pico-de", GREETING, greeting)
    cache.put("pico-de", QUESTION, question)
    assert cache.get("pico-de", GREETING) is not None  # the greeting is now the most recent
    cache.put("pico-de", "Danke.", pico.synthesize("Danke."))
    assert cache.get("pico-de", QUESTION) is None
    assert cache.get("pico-de", GREETING) is not None and cache.get("pico-de", "Danke.") is not None
    assert cache.bytes <= cache.max_bytes
    assert cache.get("piper-joe-en", GREETING) is None  # keyed by voice too
    tiny = SentenceCache(100)
    tiny.put("pico-de", GREETING, greeting)  # larger than the whole cache: not kept
    assert len(tiny) == 0 and tiny.bytes == 0
