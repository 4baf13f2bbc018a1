"""One typed settings tree: defaults, then a TOML file, then environment variables.

Environment overrides use ``VOICEBOT_<SECTION>__<KEY>`` (e.g.
``VOICEBOT_ASR__BEAM_SIZE=1``), plus ``VOICEBOT_MODELS_DIR`` as a shorthand
for ``models.dir``. Settings are passed explicitly to whoever needs them;
nothing here is a global.

The sections are frozen dataclasses (so ``dataclasses.replace`` keeps working);
every value from a file or the environment is validated by pydantic against the
field's type: ``VOICEBOT_STORE__REDACT_PII=ture`` or ``asr.backend = "cuda"``
fail at start with one line naming the setting, instead of silently becoming
``False`` or failing deep inside an engine.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, is_dataclass, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, Field, TypeAdapter, ValidationError

REPO_ROOT = Path(__file__).resolve().parent.parent

# A path from a file or the environment: "~" expanded.
UserPath = Annotated[Path, AfterValidator(lambda p: p.expanduser())]
Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


def default_models_dir() -> Path:
    return Path(os.environ.get("VOICEBOT_MODELS_DIR", REPO_ROOT / "models" / "store"))


@dataclass(frozen=True)
class ModelSettings:
    dir: UserPath = field(default_factory=default_models_dir)
    registry: UserPath = REPO_ROOT / "models" / "registry.toml"


@dataclass(frozen=True)
class AsrSettings:
    # A registry name or a path to any CTranslate2 Whisper directory. whisper-base-de is whisper-base with its
    # output vocabulary cut to German (the same weights): finals decode ~10 % faster at the same phone-line WER
    # (docs/capacity/asr-decoding.md "Thirteenth round"); "whisper-base" is the full model.
    model: str = "whisper-base-de"
    backend: Literal["ctranslate2", "torch", "auto"] = "ctranslate2"
    device: Literal["cpu", "cuda", "auto"] = "cpu"
    compute_type: Literal["int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32", "default"] = "int8"  # int8 on CPU, float16 on CUDA
    cpu_threads: Positive = 2
    language: str = "de"
    beam_size: Positive = 1
    final_beam_size: Positive = 5
    # Whisper pads every call to 30 s; short windows are the main latency lever.
    chunk_length: Annotated[int, Field(ge=1, le=30)] = 10
    initial_prompt: str = (
        "Kundenservice-Telefonat auf Deutsch: Kundennummer, Rechnung, Bestellung, Kündigung, "
        "Reklamation, Termin, Panne, Schaden, Router, Mitarbeiter."
    )
    hotwords: str = ""
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    # The hallucination guards blank an *unsure* decode (confidence < 0.5, or a loop) above this no-speech
    # probability (Whisper's own rule stays no_speech_threshold + log_prob_threshold). Short phone turns that were
    # heard right ("Ja.", "Nein.", "Ich kann nicht mehr.") carry 0.6-0.75 in their 20 s window, and were blanked
    # at 0.6; noise decodes carry >= 0.88 (docs/capacity/asr-decoding.md "The guards on short phone turns").
    unsure_no_speech_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    partial_interval_ms: int = 400
    min_partial_audio_ms: int = 600
    # LocalAgreement-n: text is committed once n consecutive partial hypotheses agree on it.
    commit_agreement: Positive = 2
    # Scheduler: a queued partial older than this is dropped (the caller has moved on).
    partial_max_age_ms: int = 1000
    # Scheduler: most requests decoded in one CTranslate2 batch (1 = no batching).
    max_batch: Positive = 1
    # Start the final decode after this much trailing silence, before the endpointer
    # declares the turn over (vad.end_silence_ms); used if the caller stays silent. 0 = off.
    speculative_final_ms: int = 200
    # Finals' least encoder window (s); longer turns take the next window_buckets step. Measured on phone-line
    # speech with the recognizer's pre/post-roll (scripts/bench_asr_window.py --pad, 40 turns of 3-20 s, beam 5):
    # WER 0.365 at 10 s (bucketed), 0.374 at 20 s, 0.389 at 30 s; CPU 0.46x of 30 s
    # (docs/capacity/asr-decoding.md "Finals on the phone line").
    final_chunk_length: Annotated[int, Field(ge=1, le=30)] = 10
    # ...but a final shorter than this (s, padding included) decodes in a longer window (final_short_window_s on a
    # phone call, final_short_window_wideband_s otherwise): a short noisy phone turn lost its last word in 10 s.
    final_short_turn_s: Annotated[float, Field(ge=0)] = 4.0
    # The encoder window (s) of those short finals on a phone call (narrowband; the recognizer asks for it). On 336
    # short phone turns (scripts/bench_short_turns.py, paired against 30 s): 20 s as accurate (WER 0.237 vs 0.252
    # with the hiss around the speech, 0.305 vs 0.306 EmoDB with it under) at 0.55x the CPU, ~0.3 s sooner; 10 s 3
    # points worse with the hiss under. The 193 shared clips through the phone line: WER 0.223 vs 0.225, half the
    # decode time. Guarded by tests/test_short_turns.py (docs/capacity/asr-decoding.md "Short whole turns").
    final_short_window_s: Annotated[int, Field(ge=1, le=30)] = 20
    # ...and on a wideband call (browser), or wherever the line is not known: the same 193 clips read 0.167 at 20 s
    # against 0.156 at Whisper's native 30 s (`voicebot eval asr --channel wideband --no-partials`, both windows).
    final_short_window_wideband_s: Annotated[int, Field(ge=1, le=30)] = 30
    # Encoder windows grow in these steps (s) past the minimum (chunk_length / final_chunk_length), not per second.
    window_buckets: tuple[int, ...] = (10, 15, 20, 30)
    # Adaptive partial rate (scheduler): a call's partial interval grows with load so partials use at most
    # this share of the ASR worker; no partials at all while a final waits. The interval never exceeds
    # partial_max_interval_ms (0 = no cap). adaptive_partials = false keeps partial_interval_ms fixed.
    adaptive_partials: bool = True
    # Decodes run at once (CTranslate2 workers), splitting cpu_threads between them. On 2 cores two one-thread
    # decodes beat one two-thread decode: 6 phone-turn finals in 3.8 vs 6.9 s
    # (docs/capacity/asr-decoding.md "Two one-thread decodes").
    decode_workers: Positive = 2
    partial_cpu_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.35
    partial_max_interval_ms: NonNegative = 4000
    # Pause-segmented finals (voicebot.asr.segments, docs/SEGMENTED_FINALS.md): each part of a turn that ends in a
    # pause of at least this (ms) is decoded at final quality while the caller goes on; at the end of the turn only
    # the tail since the last cut is decoded. 0 = decode the whole turn at its end. Measured on 14 phone turns
    # (scripts/bench_segments.py): 300 ms gave WER 0.483 vs 0.472 whole, 0.75x the CPU, ~0.6x end of turn -> final.
    segment_pause_ms: NonNegative = 300
    # A part shorter than this (s) is not kept as a segment: decoded alone, a short "Ja." or one digit loses
    # Whisper's context (telephone scenarios: "Ja. Genau." came back at confidence 0.19 and was re-asked).
    segment_min_s: Annotated[float, Field(ge=0)] = 2.0
    # The decode of the part since the last cut starts after this much silence (ms), before the end-of-turn models
    # decide (turn.min_silence_ms + Smart Turn, ~260 ms): at 300 ms the tail was decoded only after the turn ended.
    # Kept as a segment only if the pause reaches segment_pause_ms; voided if the caller goes on sooner.
    # 0 = start at segment_pause_ms.
    pause_decode_ms: NonNegative = 120
    # Nice increment for the CTranslate2 decode threads (Linux): the event loop (caller audio, VAD, end of turn)
    # and the light models (Smart Turn, intent, TTS) go first, decodes take the rest of the cores. 0 = off.
    decode_nice: Annotated[int, Field(ge=0, le=19)] = 5
    # A decode that starts while no other runs on the finals' model is encoded on a model object of this many
    # threads (the beam search stays on one: a second thread made it slower, voicebot/asr/replicas.py). One more
    # copy of the weights (~115 MB). 0 or 1 = off. Measured: docs/capacity/asr-decoding.md "Threads of a lone decode".
    lone_encode_threads: NonNegative = 2
    # Partials on a model object of their own (one thread, ~115 MB more) whose CTranslate2 thread runs at nice
    # partial_nice: the scheduler gives them a worker of their own and they take only the CPU that finals, the
    # event loop and the light models leave. false = partials share the decode_workers with finals. Off: at 16 phone
    # calls it did not beat sharing (voice->voice p95 7.4 vs 6.4 s, partial lag p95 2.6 vs 1.3 s;
    # docs/capacity/asr-decoding.md "Threads of a lone decode").
    partial_lane: bool = False
    partial_nice: Annotated[int, Field(ge=0, le=19)] = 19
    # A hurried final (decoded greedily because other finals wait, the scheduler's adaptive_beam) also gets the
    # temperature fallback (voicebot/asr/fallback.py: up to 5 temperatures x 5 samples for a loop or a very
    # unsure decode). false: under load it goes without, and the hallucination guards judge its one pass. Greedy
    # finals of 28 phone turns (scripts/bench_asr_window.py --beams 1 --fallback 1,0 --pad): 2 took the fallback;
    # without it 0.633 vs 0.669 CPU-s a turn (-5 %), WER 0.436 vs 0.434.
    hurried_fallback: bool = False
    # Which served finals (the scheduler's, pause decodes included) get the temperature fallback: "always";
    # "alone" (only while no other final-quality decode runs); "never" (a decode that fails its checks keeps its
    # one pass; the guards judge it). On phone turns the fallback mostly ran all 5 temperatures x 5 samples and
    # passed none: 1-5 s added to the turn's answer
    # (docs/capacity/cost-and-load.md "Eighth round"). Offline decodes keep it.
    final_fallback: Literal["always", "alone", "never"] = "never"
    # A caller's 8 kHz audio reaches 16 kHz through a polyphase FIR that returns every 20 ms frame at once
    # (voicebot/audio/resample.py). false: soxr "HQ", which hands it back in ~100 ms blocks, so the VAD, the
    # silence clock and barge-in heard the caller up to 100 ms late (scripts/bench_resample.py).
    low_latency_resample: bool = True


@dataclass(frozen=True)
class VadSettings:
    detector: Literal["silero", "webrtc"] = "silero"
    threshold: Probability = 0.5
    webrtc_aggressiveness: Annotated[int, Field(ge=0, le=3)] = 2
    pre_roll_ms: int = 300
    min_speech_ms: int = 200
    end_silence_ms: int = 600
    max_turn_s: float = 20.0
    energy_floor_dbfs: float = -50.0
    # Silero's speech probabilities on 8 kHz (telephone) audio peak at 0.6-0.8 instead of
    # ~1.0; with the wideband threshold whole turns go unheard. Used for narrowband calls
    # (StreamingRecognizer(narrowband=True), or 8 kHz frames): streaming WER on the
    # shared set through the phone channel 0.34 -> 0.24.
    narrowband_threshold: Probability = 0.3
    # After a turn, once this long passed without speech, the VAD's recurrent state starts afresh (Silero carries
    # the last turn in it: the next phone turn's onset came up to 1.9 s late, voicebot/vad/settings.py). 0 = never.
    idle_reset_ms: NonNegative = 1000
    # Narrowband calls, inside a turn: a frame under this is silence (the hysteresis' lower threshold). None =
    # narrowband_threshold - 0.15 (0.15). Why a setting: Silero's telephone-band probabilities decay slowly after
    # the last word, so at 0.15 the last frame called speech came p50 136 / p90 196 ms after the caller's last
    # voiced frame, and every turn's end (and its tail decode) waits that long; higher ends sooner but risks
    # ending in a quiet last syllable or a short word gap
    # (docs/capacity/turn-latency.md "Tenth round: the phone VAD's end lag").
    narrowband_neg_threshold: Probability | None = None

    def __post_init__(self) -> None:
        neg = self.narrowband_neg_threshold
        if neg is not None and neg > self.narrowband_threshold:
            raise ValueError(f"vad.narrowband_neg_threshold ({neg}) must not exceed vad.narrowband_threshold "
                             f"({self.narrowband_threshold})")


@dataclass(frozen=True)
class TtsSettings:
    voice: str = "pico-de"  # a registry name (pico-de, piper-joe-en) or a path to a piper .onnx voice
    piper_volume: float = 0.8
    length_scale: float = 1.0
    frame_ms: Positive = 20
    backchannel_max_ms: int = 600  # caller speech shorter than this during playback is a backchannel
    # Bot audio may leave this far ahead of real time, so a gateway's jitter buffer never runs dry
    # (loop stalls while Pico holds the GIL). A barge-in pause drops it at the caller (native
    # "paused", Twilio "clear") and the player sends it again on resume.
    playback_lead_ms: Annotated[int, Field(ge=0)] = 200
    # Barge-in: caller voice this long (0: one VAD frame at the threshold) pauses the bot at once;
    # not confirmed as a turn within bargein_confirm_ms, the bot resumes.
    bargein_onset_ms: Annotated[int, Field(ge=0)] = 0
    bargein_confirm_ms: Annotated[int, Field(gt=0)] = 400
    # Pico in a child process: in-process its synthesis holds the GIL (120-180 ms loop stalls on a
    # loaded machine, scripts/bench_playback.py); false runs it in-process.
    pico_process: bool = True
    # Synthesized sentences kept for every call (voicebot/tts/cache.py): the bot's prompts are templated and
    # repeat across calls (greeting, questions, confirmations), so a busy box mostly re-speaks what it said
    # before. LRU by (voice, sentence), at most this many MB of PCM (16 kHz Pico: ~32 s of audio per MB). 0 = off.
    cache_mb: NonNegative = 32


@dataclass(frozen=True)
class NluSettings:
    encoder: str = "e5-small"  # a registry name or a path to a Hugging Face encoder checkpoint
    intent_model: str = "intent-e5"  # trained artefact dir under models.dir, or a path
    fallback: str = "intent-ngram"
    threads: Positive = 2
    device: Literal["cpu", "cuda", "auto"] = "cpu"  # cpu | cuda | auto (inference; training picks CUDA itself when present)
    # Decision thresholds are fitted at training time for this target precision
    # and stored in the artefact's calibration.json.
    target_precision: float = 0.97
    confirm_threshold: float = 0.4  # below it the bot re-asks instead of confirming
    min_margin: float = 0.1  # top-1 minus top-2 needed to act without confirming
    # The e5 model's log-probabilities are mixed with the char-n-gram model's at this
    # weight (0 = e5 alone): the two err differently, and the mix is the better classifier.
    ngram_weight: float = 0.5
    quantize: bool = False  # int8 dynamic quantization of the encoder's linear layers at load (CPU)
    # Use only the lower encoder layers: with 10 of e5-small's 12 the mixed model's out-of-fold
    # accuracy is the same (0.870 vs 0.869) and a turn is classified a sixth faster. 0 = all.
    encoder_layers: int = 10
    # `voicebot train intent`. With all 12 layers frozen (the CPU default) the e5 part is a
    # linear head on mean-pooled e5 embeddings, calibrated on 5-fold out-of-fold predictions;
    # fewer frozen layers fine-tune the rest (a GPU's job), calibrated on a held-out share.
    train_freeze_layers: int = 12
    train_epochs: int = 3
    train_batch_size: int = 32
    train_learning_rate: float = 1e-4
    train_max_length: int = 64
    train_seed: int = 13
    calibration_share: float = 0.2  # fine-tuning only: share of train held out for calibration
    # torch intra-op threads once a server (or `voicebot call`) has loaded its models: e5 runs once a turn for
    # the intent and twice for the agents' suggestions. With 2 threads on 2 busy cores one pass costs ~8x the
    # CPU (0.41 vs 0.05 CPU-s, OpenMP waiting for the other core) and ~9x the wall time. `threads` stays
    # the training setting.
    serve_threads: Positive = 1
    # Issue 14: a safety runner-up escalates only with safety evidence from outside the softmax (words learned
    # from train, ``voicebot.nlu.evidence``); the gate is fitted out of fold at this cost of one lost safety
    # line in false escalations. At 15 or more (the operating points use 30) no gate pays. The out-of-fold
    # cost is flat between gates 0.19 and 0.34: at 10 the retrained artefact's gate landed at 0.34 and lost a
    # dev safety line, at 12 it is 0.19 (a choice made after seeing that dev line). 0 = no evidence gate.
    safety_evidence_miss_cost: Annotated[float, Field(ge=0)] = 12.0


@dataclass(frozen=True)
class DialogSettings:
    domain: UserPath = REPO_ROOT / "pipelines" / "default"
    no_input_s: Annotated[float, Field(ge=0)] = 8.0  # caller silence after the bot spoke before it asks again; 0 = off
    no_input_hold_s: Annotated[float, Field(ge=0)] = 30.0  # ...after "Gern, ich warte." (the caller looks a number up)


@dataclass(frozen=True)
class StoreSettings:
    path: UserPath = REPO_ROOT / "var" / "calls.sqlite3"
    redact_pii: bool = True
    url: str = ""  # postgresql://user@host:port/db (PostgreSQL store, many workers); empty = SQLite at path
    worker_id: str = ""  # unique per live worker process; empty = host:port of the server (else the host name)
    lease_s: Annotated[float, Field(gt=0)] = 15.0  # a worker silent this long is gone: its open calls get closed


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8765
    # Comma-separated agent tokens; empty means "generate one at start and print it".
    agent_tokens: str = ""
    max_frame_bytes: int = 64000
    # Calls one box takes before new ones are refused (HTTP 503 with Retry-After). Sized from a load run, not
    # guessed: the knee of `scripts/bench_load.py --phone --calls 1,2,4,...` (the most calls whose caller
    # voice->voice p95 stays within 1.5 s), at most the CPU bound `scripts/bench_cost.py` prints. 2 on the 2-core
    # reference box with whisper-base (4 calls: p95 1.85 s; 32 offered at 2: admitted p95 1.47 s;
    # docs/capacity/cost-and-load.md "Eighth round"). Set it per machine.
    max_calls: Positive = 2
    # Mask personal data in what agents see (the store has its own switch, store.redact_pii).
    redact_agent_view: bool = True
    # Per-connection bounded send queue (messages); a client that lets it fill up is dropped.
    send_queue_max: int = 512
    # A single send that takes longer than this means the client stopped reading.
    send_timeout_s: float = 5.0
    # Caller audio frames waiting for the session; beyond this the server is overloaded.
    inbound_queue_max: int = 500
    # An agent must authenticate within this time (token in the URL or an "auth" message).
    auth_timeout_s: float = 10.0
    # Protocol errors one connection may cause before it is closed.
    max_errors: int = 50
    # Events kept per call for agents who subscribe late; ended calls kept in the agents' list.
    replay_max_events: int = 2000
    recent_calls: int = 20
    # The agents' wrap-up codes, "code:Label" comma-separated (agent page after a call; stored with it).
    wrapup_codes: str = ("geloest:Anliegen gelöst,rueckruf:Rückruf vereinbart,weitergeleitet:Weitergeleitet,"
                         "termin:Termin vereinbart,beschwerde:Beschwerde aufgenommen,sonstiges:Sonstiges")
    # Graceful shutdown: how long to wait for calls to finish their in-flight events.
    shutdown_timeout_s: float = 10.0
    # "module:attr" of the call-session class (CallSession's signature); empty = voicebot.dialog.session:CallSession.
    # A class with a `load_engines(settings)` classmethod brings its own engines.
    session_factory: str = ""
    # "module:function" returning the process's Engines (models); empty = the session class's
    # `load_engines`, else voicebot.engines.Engines.load. The orchestration tests load fake engines here.
    engines_loader: str = ""
    # Access (docs/PROTOCOL.md, "Access"); every check is off by default.
    caller_tokens: str = ""  # comma-separated tokens /v1/call wants (Authorization: Bearer, or "token" in start)
    twilio_validate: bool = False  # check X-Twilio-Signature on /v1/twilio (key: telephony.twilio_auth_token)
    public_url: str = ""  # the URL Twilio signs, e.g. wss://bot.example.com; empty: this request's scheme and Host
    allowed_origins: str = ""  # comma-separated browser Origins; others get HTTP 403 (pages and websockets)
    start_timeout_s: Annotated[float, Field(gt=0)] = 10.0  # a caller socket without "start" is closed after this
    metrics_token: str = ""  # /metrics wants "Authorization: Bearer" with it; empty: open
    login_max_failures: Positive = 5  # failed agent logins per client address within login_window_s ...
    login_window_s: Annotated[float, Field(gt=0)] = 60.0
    login_cooldown_s: Annotated[float, Field(ge=0)] = 60.0  # ... refuse that address this long (too_many_attempts)


@dataclass(frozen=True)
class TelephonySettings:
    # Transfer on handoff (voicebot/telephony, docs/TELEPHONY.md). Empty URL = no webhook.
    handoff_webhook: str = ""
    webhook_secret: str = ""  # HMAC-SHA256 key of X-Voicebot-Signature; empty = unsigned (warned at start)
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 3.0  # one attempt, connect to last byte
    webhook_retries: Annotated[int, Field(ge=0, le=10)] = 3  # after the first, on 5xx/429/timeouts/network errors
    webhook_backoff_s: Annotated[float, Field(ge=0, le=10)] = 0.25  # before the first retry; doubles, at most 4 s
    # Where a handoff goes: "route=target,..." (target: +49..., sip:..., queue:name), else
    # handoff_number, else handoff_queue, else a Twilio queue named after the route.
    handoff_targets: str = ""
    handoff_number: str = ""
    handoff_queue: str = ""
    handoff_language: str = "de-DE"  # <Say language> of the TwiML announcement
    # The Twilio redirect waits for the handover phrase to be played, at most this long.
    handover_max_wait_s: Annotated[float, Field(gt=0, le=120)] = 15.0
    twilio_api_base: str = "https://api.twilio.com"  # tests point it at a local fake
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_key_sid: str = ""  # authenticate with an API key (SK...) instead of the account SID
    twilio_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    # A call update is not idempotent: only attempts that never reached Twilio, and its 5xx/429, are retried.
    twilio_retries: Annotated[int, Field(ge=0, le=5)] = 2


@dataclass(frozen=True)
class TurnSettings:
    """Where a caller's turn ends (voicebot.turn; the operating point of `voicebot eval turn`)."""

    # smart+text: Smart Turn (audio) and the German text model, with text cues; text: the text
    # model and cues only (no 70 ms audio model per pause); silence: the endpointer's silence alone.
    detector: Literal["smart+text", "text", "silence"] = "smart+text"
    min_silence_ms: Annotated[float, Field(ge=0)] = 200.0  # the first decision after this much silence
    # The models are asked after this much silence (ms, at most min_silence_ms; 0 = at min_silence_ms), so
    # Smart Turn's run (~60 ms) could be over when the decision is due. Asked at 100 and deciding at 150, the
    # German turn-end set looked better (false cut-offs 2.2 / 2.4 % vs 3.1 / 3.5 %, scripts/bench_turn_early.py),
    # but live phone calls mostly waited for the fallback (server endpoint p50 1259 vs 344 ms, one call side by
    # side, scripts/bench_load.py --phone --variant): off by default.
    model_silence_ms: Annotated[float, Field(ge=0)] = 0.0
    slow_silence_ms: Annotated[float, Field(ge=0)] = 300.0
    max_silence_ms: Annotated[float, Field(ge=0)] = 1200.0  # the fallback: end whatever the models say
    fast_threshold: Probability = 0.8
    slow_threshold: Probability = 0.8
    audio_weight: Probability = 0.6  # Smart Turn's share in the combined P(complete)
    use_cues: bool = True  # hold on "und", "weil", articles, prepositions, mid-number
    smart_turn_threads: Positive = 1
    # Speculative answers (voicebot.call.speculation): at the caller's first pause decode the final,
    # run intent + policy and synthesize the first sentence; release it when the turn is confirmed
    # over, throw it away if the caller goes on. False: the final is decoded after the post-roll.
    # Was off: before pause-segmented finals it measured no faster with the end-of-turn models (1 call, p50 1589
    # vs 1663 ms). On by default since the tail's decode starts at the pause (asr.pause_decode_ms): the same decode
    # is the speculation, partials pause while it runs, and its final-quality text re-asks the text end-of-turn
    # model. One quiet phone call (bench_load --variant): server voice->voice p50 570 vs 723 ms, end of turn ->
    # final 217 vs 323 ms. scripts/bench_speculation.py --modes default,round5,silence-default measures it.
    speculate: bool = True
    speculate_after_ms: Annotated[float, Field(ge=0)] = 120.0  # silence before a speculation starts
    # Continuations (voicebot.call.continuation): caller voice that starts within this (ms) of the first audio
    # of the bot's answer and stops it means the caller was not done (a pause between two sentences looked
    # like the end of the turn). That answer is taken back (unless it routed or handed off) and both parts
    # are answered as one turn. A caller answering the bot's question has heard it first. 0 = off.
    continuation_ms: NonNegative = 1200
    # A confident end of turn also waits out this caller's own pauses (voicebot.turn.pauses): once the caller went on
    # P ms after a turn the models ended (a new turn within 1.5 s of their last voice) in this call, a confident end
    # needs max(min_silence_ms, P + 100) ms of silence, at most this (ms). 0 = off.
    adaptive_wait_ms: Annotated[float, Field(ge=0)] = 0.0


@dataclass(frozen=True)
class EngineSettings:
    """Where the ASR, intent and TTS models run (docs/SCALING.md): in this process, or on Ray Serve."""

    backend: Literal["local", "ray"] = "local"  # ray: the call core reaches Serve deployments through handles
    ray_address: str = ""  # the Ray cluster: "127.0.0.1:6379" (a node of it) or "ray://head:10001"; empty: "auto"
    ray_namespace: str = "voicebot"
    app_name: str = "voicebot-engines"  # the Serve application `voicebot engines serve` deploys
    asr_deployment: str = "Asr"
    intent_deployment: str = "Intent"
    tts_deployment: str = "Speech"
    asr_replicas: Positive = 1
    intent_replicas: Positive = 1
    tts_replicas: Positive = 1
    asr_max_batch: Positive = 4  # @serve.batch: decodes of many calls (and workers) in one engine batch
    asr_batch_wait_ms: Annotated[float, Field(ge=0)] = 10.0  # how long a lone request waits for company
    asr_cpus: Annotated[float, Field(ge=0)] = 1.0  # Ray CPUs reserved per replica
    intent_cpus: Annotated[float, Field(ge=0)] = 0.5
    tts_cpus: Annotated[float, Field(ge=0)] = 0.5
    # numpy's BLAS (OpenBLAS) threads in a serving process, set once its models are loaded (threadpoolctl): the
    # mel features of Whisper and Smart Turn are small matrix products, and a second BLAS thread doubled their
    # CPU for the same wall time (Whisper 10 s features 7.3 vs 3.7 CPU-ms), and at 16 phone calls OpenBLAS's second
    # thread spun at ~10 % of a core beside the event loop (/proc per-thread CPU). 0 = the library's default.
    blas_threads: NonNegative = 1


@dataclass(frozen=True)
class Settings:
    models: ModelSettings = field(default_factory=ModelSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)
    vad: VadSettings = field(default_factory=VadSettings)
    tts: TtsSettings = field(default_factory=TtsSettings)
    nlu: NluSettings = field(default_factory=NluSettings)
    dialog: DialogSettings = field(default_factory=DialogSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    telephony: TelephonySettings = field(default_factory=TelephonySettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    engines: EngineSettings = field(default_factory=EngineSettings)


class SettingsError(ValueError):
    """A config file or environment variable names an unknown key or a bad value."""


@cache
def _adapter(section_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(section_type)


def _one_line(exc: ValidationError, where: str, values: Mapping[str, Any]) -> str:
    """The first validation problem as one line: where, which key, what was given, what is wanted."""
    err = exc.errors(include_url=False)[0]
    key = ".".join(str(part) for part in err["loc"])
    given = values.get(str(err["loc"][0]), err.get("input")) if err["loc"] else err.get("input")
    return f"{where}.{key}: {given!r} is not valid: {err['msg']}"


def _apply(section: Any, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name for f in fields(section)}
    nested: dict[str, Any] = {}
    scalars: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise SettingsError(f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})")
        current = getattr(section, key)
        if is_dataclass(current):
            if not isinstance(value, Mapping):
                raise SettingsError(f"{where}.{key}: expected a table")
            nested[key] = _apply(current, value, f"{where}.{key}")
        else:
            scalars[key] = value
    if not scalars:
        return replace(section, **nested)
    merged = {f.name: getattr(section, f.name) for f in fields(section)} | nested | scalars
    try:
        return _adapter(type(section)).validate_python(merged)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc, where, scalars)) from None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    tree: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("VOICEBOT_") or "__" not in name:
            continue
        section, _, key = name[len("VOICEBOT_") :].partition("__")
        tree.setdefault(section.lower(), {})[key.lower()] = value
    return tree


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings tree from defaults, an optional TOML file and the environment."""
    settings = Settings()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise SettingsError(f"config file not found: {path}")
        with path.open("rb") as fh:
            try:
                data = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"{path}: invalid TOML: {exc}") from exc
        settings = _apply(settings, data, str(path))
    env = os.environ if environ is None else environ
    settings = _apply(settings, _env_overrides(env), "environment")
    return settings
