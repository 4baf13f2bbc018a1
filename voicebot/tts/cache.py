"""Synthesized sentences shared across calls: the bot's prompts are templated and repeat.

The greeting, the questions and the confirmations come out of the domain's prompt templates, so
most sentences a busy box speaks were spoken before, by another call, in the same voice. A bounded
LRU keyed by (voice, sentence) hands those back without a synthesis (Pico's child-process round
trip, or a piper run). Bounded by the audio it holds (``tts.cache_mb``), not by a count: one long
confirmation must not push out a hundred short prompts' worth of memory unnoticed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from voicebot.tts.base import SynthesizedAudio


class SentenceCache:
    """LRU of ``SynthesizedAudio`` by (voice, sentence), at most ``max_bytes`` of PCM. Thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._items: OrderedDict[tuple[str, str], SynthesizedAudio] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def get(self, voice: str, sentence: str) -> SynthesizedAudio | None:
        key = (voice, sentence)
        with self._lock:
            audio = self._items.get(key)
            if audio is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return audio

    def put(self, voice: str, sentence: str, audio: SynthesizedAudio) -> None:
        size = int(audio.pcm.nbytes)
        if size > self.max_bytes:
            return  # larger than the whole cache: never kept
        pcm = audio.pcm.copy()
        pcm.flags.writeable = False  # shared by every call that speaks it: nobody may change it in place
        key = (voice, sentence)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= int(old.pcm.nbytes)
            self._items[key] = SynthesizedAudio(pcm, audio.sample_rate)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= int(dropped.pcm.nbytes)
