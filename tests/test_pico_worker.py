"""Pico in a child process (``tts.pico_process``): the same audio as in-process, and it survives a dead worker."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import replace

import numpy as np

from voicebot.tts import make_synthesizer
from voicebot.tts.pico import PicoSynthesizer

SENTENCES = ("Hier ist der automatische Assistent, für einen Menschen sagen Sie Mitarbeiter.", "Genau.")
# In-process Pico in a fresh interpreter (a long-lived process's heap may already differ: see
# pin_mmap_threshold), printing a digest of each sentence's samples.
INLINE = """
import hashlib, json, sys
from dataclasses import replace
from voicebot.config import load_settings
from voicebot.tts import make_synthesizer
s = load_settings()
p = make_synthesizer(replace(s.tts, pico_process=False), s.models, "pico-de").load()
print(json.dumps([hashlib.sha256(p.synthesize(t).pcm.tobytes()).hexdigest() for t in json.loads(sys.argv[1])]))
"""


def test_worker_speaks_the_same_bytes_as_in_process(pico: PicoSynthesizer, settings) -> None:  # type: ignore[no-untyped-def]
    worker = make_synthesizer(replace(settings.tts, pico_process=True), settings.models, "pico-de").load()
    try:
        assert isinstance(worker, PicoSynthesizer) and worker._process is not None and worker._process.alive
        audio = [worker.synthesize(text) for text in SENTENCES]
    finally:
        worker.close()
    assert all(a.sample_rate == 16000 and len(a.pcm) > 16000 * 0.3 for a in audio)
    inline = subprocess.run([sys.executable, "-c", INLINE, json.dumps(SENTENCES)], capture_output=True, text=True,
                            check=True, timeout=120)
    assert json.loads(inline.stdout.strip().splitlines()[-1]) == [
        hashlib.sha256(a.pcm.tobytes()).hexdigest() for a in audio]


def test_a_dead_worker_is_replaced(settings) -> None:  # type: ignore[no-untyped-def]
    synth = make_synthesizer(replace(settings.tts, pico_process=True), settings.models, "pico-de").load()
    assert isinstance(synth, PicoSynthesizer)
    try:
        first = synth.synthesize("Genau.")
        process = synth._process
        assert process is not None and process._proc is not None
        process._proc.kill()
        process._proc.wait()
        again = synth.synthesize("Genau.")  # a new worker answers
        assert np.array_equal(first.pcm, again.pcm)
        assert synth._process is not None and synth._process.alive
    finally:
        synth.close()
    assert synth._process is None
