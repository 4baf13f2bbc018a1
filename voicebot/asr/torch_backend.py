"""The torch ASR engine: Whisper from a Hugging Face checkpoint, batched greedy decoding.

Same interface as the CTranslate2 ``Transcriber`` (``load``, ``transcribe``,
``transcribe_batch`` → ``TranscriptionResult``); the GPU path where CTranslate2
cannot run (CUDA 13 hosts lack its ``libcublas.so.12``). Many calls' turns share
one encoder pass per window size and one decoding loop.

* Weights: the converted ``whisper-base-hf`` (``voicebot models pull``) or, given a
  CTranslate2 directory, the same conversion in memory. float32 on CPU, float16 on CUDA.
* Features: faster-whisper's log-mel (audio zero-padded to the window), via ``torch.stft``.
* Windows: ``max(min_window_s, ceil(duration + 0.5))`` s (``min_window_s`` defaults to
  ``asr.chunk_length``, the CTranslate2 engine's rule) by slicing the encoder's
  positional embedding. Shorter windows cost accuracy (65 speech-de clips, greedy,
  WER: 15.0 % with windows of at least 30, 20 or 15 s; 17.5 % at 10 s; 20.0 % at 5 s;
  21.9 % at ceil(d + 0.5) s with the loop guard below, 61 % without it). Items of
  different windows decode together under a key mask over padded encoder frames,
  so a result never depends on its batch.
* Decoding: our own greedy loop over the HF modules' weights, preallocated KV cache,
  cross-attention K/V computed once, finished rows masked and dropped as the batch
  shrinks; ``[<|startofprev|> prompt] <|startoftranscript|> <|de|> <|transcribe|>
  <|notimestamps|>`` forced; faster-whisper's non-speech symbols and all special and
  timestamp tokens suppressed (blank and EOT at the first step); in windows < 10 s a
  repeated 8-token run ends an item (a loop). No beam search: ``beam_size`` is ignored.
* Confidences: raw-softmax token probabilities; ``avg_logprob`` = (text tokens + EOT)
  log-probability / (tokens + 1), as faster-whisper reports it; ``no_speech_prob`` =
  P(<|nocaptions|>) at the <|startoftranscript|> position.
* Word timings: the alignment heads' cross-attention, captured while decoding, through
  DTW (``word_align``); a word's probability is the mean of its tokens'.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from voicebot.asr import word_align
from voicebot.asr.transcriber import TranscriptionResult
from voicebot.asr.windows import (  # one window rule for every backend
    ASR_SAMPLE_RATE,
    NATIVE_WINDOW_S,
    WINDOW_MARGIN_S,
    batch_samples,
    encoder_window_s,
    to_float32,
)
from voicebot.config import AsrSettings, ModelSettings
from voicebot.frames import Word
from voicebot.models.registry import resolve_model_dir
from voicebot.models.whisper_convert import WhisperTokens, non_speech_token_ids, whisper_tokens
from voicebot.models.whisper_vocab import cut_from

MAX_TOKENS_PER_S = 12  # generation cap per second of audio: bounds a runaway repetition loop
ENCODER_BATCH = 128
REPEAT_NGRAM, LOOP_GUARD_BELOW_S = 8, 10  # a repeated 8-token run ends an item in a window < 10 s
N_FFT, HOP = 400, 160

class TorchTranscriber:
    """Whisper under torch (CPU float32 / CUDA float16), German forced, batched greedy decoding."""

    def __init__(self, settings: AsrSettings, models: ModelSettings, device: str | None = None,
                 min_window_s: int | None = None) -> None:
        self.settings, self.models = settings, models
        # Shortest encoder window; like the CTranslate2 engine, asr.chunk_length by default.
        self.min_window_s = settings.chunk_length if min_window_s is None else min_window_s
        requested = device or settings.device
        if requested == "auto":
            requested = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(requested)
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model_dir: Path | None = None
        self.model: Any = None
        self._tokenizer: Any = None
        self.tokens: WhisperTokens | None = None
        self._lock = threading.Lock()  # one decode at a time: parallel ones only thrash the device

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> TorchTranscriber:
        from tokenizers import Tokenizer
        from transformers import WhisperConfig, WhisperForConditionalGeneration

        if self.device.type == "cpu":
            torch.set_num_threads(max(1, self.settings.cpu_threads))
        self.model_dir = self._resolve_dir()
        if (self.model_dir / "model.safetensors").is_file():
            model = WhisperForConditionalGeneration.from_pretrained(
                str(self.model_dir), local_files_only=True, dtype=self.dtype
            )
            gen = json.loads((self.model_dir / "generation_config.json").read_text(encoding="utf-8"))
            heads = [tuple(h) for h in gen.get("alignment_heads", ())]
            lang_ids = sorted(gen.get("lang_to_id", {}).values())
        else:  # a CTranslate2 directory: convert in memory, nothing written
            from voicebot.models.whisper_convert import hf_state_dict_from_ct2_dir

            state, configs = hf_state_dict_from_ct2_dir(self.model_dir, self.dtype)
            with torch.device("meta"):
                model = WhisperForConditionalGeneration(WhisperConfig(**configs["config.json"]))
            state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
            model.load_state_dict(state, strict=True, assign=True)
            heads = [tuple(h) for h in configs["generation_config.json"]["alignment_heads"]]
            lang_ids = sorted(configs["generation_config.json"]["lang_to_id"].values())
        self.model = model.to(self.device).eval()  # type: ignore[arg-type]  # transformers' stub of .to
        tok_json = json.loads((self.model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        self._tokenizer = Tokenizer.from_str(json.dumps(tok_json))
        self.tokens = whisper_tokens(tok_json, lang_ids)
        if self.settings.language not in self.tokens.languages:
            raise ValueError(f"language {self.settings.language!r} is not in this Whisper vocabulary")
        n_dec = self.model.config.decoder_layers
        heads = heads or [(layer, h) for layer in range(n_dec // 2, n_dec)
                          for h in range(self.model.config.decoder_attention_heads)]
        self._align_heads = {layer: [h for l_, h in heads if l_ == layer] for layer in {l_ for l_, _ in heads}}
        self._suppress = self._suppress_mask()
        # faster-whisper's suppress_blank: no leading space and no empty transcript at the first step
        self._begin_suppress = [self._encode_text(" ")[0], self.tokens.eot]
        from transformers.audio_utils import mel_filter_bank

        mel = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=self.model.config.num_mel_bins,
                              min_frequency=0.0, max_frequency=8000.0, sampling_rate=ASR_SAMPLE_RATE,
                              norm="slaney", mel_scale="slaney")
        self._mel = torch.from_numpy(np.asarray(mel, dtype=np.float32).T).to(self.device)
        self._window = torch.hann_window(N_FFT, device=self.device)
        return self

    def _resolve_dir(self) -> Path:
        """The converted checkpoint ``<name>-hf`` of a registry name if provisioned, else the name itself
        (a German-vocabulary cut copy stands for the full model it was cut from)."""
        name = self.settings.model
        if "/" not in name:
            name = cut_from(self.models.dir / name) or name
        if "/" not in name and (self.models.dir / f"{name}-hf" / "model.safetensors").is_file():
            name = f"{name}-hf"
        path = resolve_model_dir(name, self.models)
        if not (path / "model.safetensors").is_file() and not (path / "model.bin").is_file():
            raise FileNotFoundError(f"{path} holds neither a Hugging Face nor a CTranslate2 Whisper model")
        return path

    def _encode_text(self, text: str) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def _decode_text(self, ids: list[int]) -> str:
        return str(self._tokenizer.decode(ids, skip_special_tokens=False))

    def _suppress_mask(self) -> torch.Tensor:
        """faster-whisper's non-speech symbols plus every id above EOT (specials, timestamps)."""
        assert self.tokens is not None
        mask = torch.zeros(self.model.config.vocab_size, dtype=torch.bool)
        mask[sorted(non_speech_token_ids(self._encode_text))] = True
        mask[self.tokens.eot + 1 :] = True
        return mask.to(self.device)

    def window_for(self, duration: float) -> int:
        """Encoder window (s) for one utterance: ``max(min_window_s, ceil(duration + 0.5))``, at most 30."""
        return encoder_window_s(duration, self.min_window_s)

    def prompt_ids(self, initial_prompt: str | None) -> list[int]:
        """The decoder prefix; the <|startoftranscript|> sequence is always its last four tokens."""
        assert self.tokens is not None
        tok = self.tokens
        text = self.settings.initial_prompt if initial_prompt is None else initial_prompt
        prev = self._encode_text(" " + text.strip()) if text and text.strip() else []
        hot = self._encode_text(" " + self.settings.hotwords.strip()) if self.settings.hotwords.strip() else []
        half = self.model.config.max_target_positions // 2
        prefix = ([tok.sot_prev] + hot[: half - 1] + prev[-(half - 1) :]) if (prev or hot) else []
        return prefix + [tok.sot, tok.languages[self.settings.language], tok.transcribe, tok.no_timestamps]

    def transcribe(self, audio: np.ndarray, *, beam_size: int | None = None, word_timestamps: bool = True,
                   initial_prompt: str | None = None, offset: float = 0.0) -> TranscriptionResult:
        """Transcribe one 16 kHz mono utterance. Audio over 29.5 s (never a turn) is hard-cut into
        windows and joined; Whisper without timestamps may skip text there: use CTranslate2 for files."""
        samples = to_float32(audio)
        piece = int((NATIVE_WINDOW_S - WINDOW_MARGIN_S) * ASR_SAMPLE_RATE)
        if len(samples) <= piece:
            return self.transcribe_batch([samples], word_timestamps=word_timestamps,
                                         initial_prompt=initial_prompt, offsets=[offset])[0]
        starts = range(0, len(samples), piece)
        parts = self.transcribe_batch([samples[s : s + piece] for s in starts], word_timestamps=word_timestamps,
                                      initial_prompt=initial_prompt, offsets=[offset + s / 16000 for s in starts])
        return TranscriptionResult(
            " ".join(p.text for p in parts if p.text), tuple(w for p in parts for w in p.words),
            float(np.mean([p.avg_logprob for p in parts])), max(p.no_speech_prob for p in parts),
            len(samples) / ASR_SAMPLE_RATE, parts[0].decode_seconds, sum(p.segments for p in parts),
            {"window_s": float(NATIVE_WINDOW_S), "batch": float(len(parts)), "beam": 1.0})

    def transcribe_batch(self, audios: Sequence[np.ndarray], *, beam_size: int | None = None,
                         word_timestamps: bool = True, initial_prompt: str | None = None,
                         offsets: Sequence[float] | None = None) -> list[TranscriptionResult]:
        """Decode many utterances (each ≤ 29.5 s) in one encoder pass per window size and one greedy loop.

        Results equal one-at-a-time calls'. ``decode_seconds`` is the whole batch's wall time."""
        if not audios:
            return []
        samples, durations, offsets = batch_samples(audios, offsets)
        windows = [self.window_for(d) for d in durations]
        started = time.perf_counter()
        with self._lock, torch.inference_mode():
            decoded = self._decode(samples, windows, self.prompt_ids(initial_prompt), word_timestamps)
        elapsed = time.perf_counter() - started
        results = []
        for (text, words, avg_lp, no_speech), dur, off, win in zip(decoded, durations, offsets, windows, strict=True):
            results.append(TranscriptionResult(
                text=text, words=tuple(Word(w.text, off + w.start, off + w.end, w.probability) for w in words),
                avg_logprob=avg_lp, no_speech_prob=no_speech, duration=dur, decode_seconds=elapsed,
                segments=1 if text else 0,
                extra={"window_s": float(win), "batch": float(len(samples)), "beam": 1.0}))
        return results

    # -- model math ------------------------------------------------------------------------------

    def log_mel(self, samples: list[np.ndarray], window: int) -> torch.Tensor:
        """[B, n_mels, 100*window] features, each item zero-padded to the window before the STFT."""
        n = window * ASR_SAMPLE_RATE
        audio = torch.zeros(len(samples), n, dtype=torch.float32)
        for i, s in enumerate(samples):
            audio[i, : min(n, len(s))] = torch.from_numpy(s[:n])
        spec = torch.stft(audio.to(self.device), N_FFT, HOP, window=self._window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        logmel = (self._mel @ power).clamp(min=1e-10).log10()
        logmel = torch.maximum(logmel, logmel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return ((logmel + 4.0) / 4.0)[..., : window * 100]

    def encode(self, features: torch.Tensor) -> torch.Tensor:
        """Encoder on [B, n_mels, T] for any T ≤ 3000: the positional embedding is sliced to T/2."""
        enc = self.model.model.encoder
        n_heads = self.model.config.encoder_attention_heads
        x = F.gelu(enc.conv1(features.to(self.dtype)))
        x = F.gelu(enc.conv2(x)).transpose(1, 2)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        for layer in enc.layers:
            h = layer.self_attn_layer_norm(x)
            att = layer.self_attn
            q, k, v = (self._heads(p(h), n_heads) for p in (att.q_proj, att.k_proj, att.v_proj))
            x = x + att.out_proj(self._merge(F.scaled_dot_product_attention(q, k, v)))
            x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
        return enc.layer_norm(x)

    @staticmethod
    def _heads(x: torch.Tensor, h: int) -> torch.Tensor:
        b, t, d = x.shape
        return x.view(b, t, h, d // h).transpose(1, 2)

    @staticmethod
    def _merge(x: torch.Tensor) -> torch.Tensor:
        b, h, t, dh = x.shape
        return x.transpose(1, 2).reshape(b, t, h * dh)

    def _decoder(self, ids: torch.Tensor, pos: int, cache: list[list[torch.Tensor]], cross: list[list[torch.Tensor]],
                 key_mask: torch.Tensor | None, capture: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Decoder over ``ids`` [R, T] at positions pos.., filling the KV cache → (hidden states, the alignment
        heads' cross-attention over the first ``capture`` encoder frames [R, heads, T, capture] if capture)."""
        dec = self.model.model.decoder
        n_heads = self.model.config.decoder_attention_heads
        t = ids.shape[1]
        x = dec.embed_tokens(ids) + dec.embed_positions.weight[pos : pos + t]
        captured = []
        for li, layer in enumerate(dec.layers):
            h = layer.self_attn_layer_norm(x)
            sa = layer.self_attn
            q, k, v = (self._heads(p(h), n_heads) for p in (sa.q_proj, sa.k_proj, sa.v_proj))
            cache[li][0][:, :, pos : pos + t] = k
            cache[li][1][:, :, pos : pos + t] = v
            keys, values = cache[li][0][:, :, : pos + t], cache[li][1][:, :, : pos + t]
            x = x + sa.out_proj(self._merge(F.scaled_dot_product_attention(q, keys, values, is_causal=t > 1)))
            h = layer.encoder_attn_layer_norm(x)
            ca = layer.encoder_attn
            q = self._heads(ca.q_proj(h), n_heads)
            ck, cv = cross[li]
            if capture and li in self._align_heads:
                scores = (q @ ck.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
                if key_mask is not None:
                    scores = scores.masked_fill(~key_mask, float("-inf"))
                probs = scores.float().softmax(-1)
                captured.append(probs[:, self._align_heads[li], :, :capture].to(self.dtype))
                out = probs.to(cv.dtype) @ cv
            else:
                out = F.scaled_dot_product_attention(q, ck, cv, attn_mask=key_mask)
            x = x + ca.out_proj(self._merge(out))
            x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
        return dec.layer_norm(x), (torch.cat(captured, 1) if captured else None)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return (hidden @ self.model.model.decoder.embed_tokens.weight.T).float()

    def _decode(self, samples: list[np.ndarray], windows: list[int], prompt: list[int],
                word_timestamps: bool) -> list[tuple[str, list[Word], float, float]]:
        """Encoder per window group → one masked greedy loop → texts, words, avg_logprob, no_speech_prob."""
        assert self.tokens is not None
        tok, cfg, dev = self.tokens, self.model.config, self.device
        b = len(samples)
        frames = [w * 50 for w in windows]
        s_max = max(frames)
        enc_out = torch.zeros(b, s_max, cfg.d_model, dtype=self.dtype, device=dev)
        for window in sorted(set(windows)):
            group = [i for i, w in enumerate(windows) if w == window]
            for k in range(0, len(group), ENCODER_BATCH):  # bounds activation memory
                idx = group[k : k + ENCODER_BATCH]
                enc_out[idx, : window * 50] = self.encode(self.log_mel([samples[i] for i in idx], window))
        key_mask = None
        if min(frames) != s_max:  # mask each item's padding frames: results then don't depend on the batch
            key_mask = (torch.arange(s_max, device=dev)[None, :] < torch.tensor(frames, device=dev)[:, None])
            key_mask = key_mask[:, None, None, :]
        nh = cfg.decoder_attention_heads
        cross = [[self._heads(lay.encoder_attn.k_proj(enc_out), nh), self._heads(lay.encoder_attn.v_proj(enc_out), nh)]
                 for lay in self.model.model.decoder.layers]
        del enc_out
        # Token cap from the audio's own length (German: ~5 tokens/s); bounds a runaway loop.
        caps = torch.tensor([min(cfg.max_target_positions - len(prompt),
                                 MAX_TOKENS_PER_S * math.ceil(len(x) / ASR_SAMPLE_RATE + WINDOW_MARGIN_S) + 10)
                             for x in samples], device=dev)
        steps = int(caps.max())
        hd = cfg.d_model // nh
        cache = [[torch.zeros(b, nh, len(prompt) + steps, hd, dtype=self.dtype, device=dev) for _ in range(2)]
                 for _ in range(cfg.decoder_layers)]
        audio_frames = [max(1, min(f, len(x) // HOP // 2)) for f, x in zip(frames, samples, strict=True)]
        capture = max(audio_frames) if word_timestamps else 0
        lead = 3  # <|startoftranscript|>, language, task rows: used for standardisation only
        n_align = sum(len(v) for v in self._align_heads.values())
        attn = torch.zeros(b, n_align, lead + 1 + steps, capture, dtype=self.dtype, device=dev) if capture else None
        hidden, cap = self._decoder(torch.tensor([prompt] * b, device=dev), 0, cache, cross, key_mask, capture)
        sot_at = len(prompt) - 4
        no_speech = self._logits(hidden[:, sot_at]).softmax(-1)[:, tok.no_speech].cpu().numpy()
        if attn is not None and cap is not None:
            attn[:, :, : lead + 1] = cap[:, :, sot_at:]
        logits = self._logits(hidden[:, -1])
        rows = torch.arange(b, device=dev)  # batch row -> item
        guarded = torch.tensor([w < LOOP_GUARD_BELOW_S for w in windows], device=dev)
        out_tokens = torch.full((b, steps), tok.eot, dtype=torch.long, device=dev)
        out_logprob = torch.zeros(b, steps, device=dev)
        lengths = torch.zeros(b, dtype=torch.long, device=dev)
        alive = torch.ones(b, dtype=torch.bool, device=dev)
        for step in range(steps):
            logprobs = logits.log_softmax(-1)
            masked = logits.masked_fill(self._suppress, float("-inf"))
            if step == 0:
                masked[:, self._begin_suppress] = float("-inf")
            nxt = masked.argmax(-1)
            live = rows[alive]
            out_tokens[live, step] = nxt[alive]
            out_logprob[live, step] = logprobs.gather(1, nxt[:, None])[alive, 0]
            lengths[live] += 1
            alive = alive & (nxt != tok.eot) & (lengths[rows] < caps[rows])
            alive &= ~self._repeating(out_tokens, rows, alive & guarded[rows], step, lengths)
            n_alive = int(alive.sum())  # the loop's one host sync per step
            if n_alive == 0:
                break
            if n_alive <= 0.75 * len(rows):  # drop finished rows: later steps cost less
                keep = alive.nonzero()[:, 0]
                rows, alive, nxt = rows[keep], alive[keep], nxt[keep]
                cache = [[c[keep] for c in pair] for pair in cache]
                cross = [[c[keep] for c in pair] for pair in cross]
                key_mask = key_mask[keep] if key_mask is not None else None
            hidden, cap = self._decoder(nxt[:, None], len(prompt) + step, cache, cross, key_mask, capture)
            logits = self._logits(hidden[:, -1])
            if attn is not None and cap is not None:
                attn[rows, :, lead + 1 + step] = cap[:, :, 0]
        return self._results(out_tokens.cpu(), out_logprob.cpu(), lengths.cpu(), no_speech, attn, samples,
                             audio_frames, lead)

    def _repeating(self, out_tokens: torch.Tensor, rows: torch.Tensor, alive: torch.Tensor, step: int,
                   lengths: torch.Tensor) -> torch.Tensor:
        """Rows (of ``alive``) whose last ``REPEAT_NGRAM`` tokens occurred before: greedy Whisper loops on
        windows < 10 s. They end, cut before the repeat. Not applied to longer windows, where
        loops were not seen and real repeats ("Hallo? Hallo? ...") would be cut."""
        n = REPEAT_NGRAM
        if step + 1 < 2 * n:
            return torch.zeros_like(alive)
        seq = out_tokens[rows, : step + 1]
        hit = (seq[:, :-1].unfold(1, n, 1) == seq[:, None, -n:]).all(-1).any(-1) & alive
        if bool(hit.any()):
            items = rows[hit]
            lengths[items] = step + 2 - n  # keep the tokens before the repeat, then EOT
            out_tokens[items, step + 1 - n] = self.tokens.eot if self.tokens else 0
        return hit

    def _results(self, out_tokens: torch.Tensor, out_logprob: torch.Tensor, lengths: torch.Tensor,
                 no_speech: np.ndarray, attn: torch.Tensor | None, samples: list[np.ndarray], frames: list[int],
                 lead: int) -> list[tuple[str, list[Word], float, float]]:
        assert self.tokens is not None
        eot = self.tokens.eot
        texts, probs, avg, ended = [], [], [], []
        for i, n in enumerate(lengths.tolist()):
            toks, lp = out_tokens[i, :n].tolist(), out_logprob[i, :n].numpy()
            texts.append([t for t in toks if t < eot])
            ended.append(bool(toks) and toks[-1] == eot)
            probs.append(np.exp(lp[: len(texts[-1])]))
            avg.append(float(lp.sum() / (len(texts[-1]) + 1)))
        words: list[list[Word]] = [[] for _ in samples]
        if attn is not None:
            # A row exists for each fed token; a sequence cut at its cap never fed its last one.
            aligned = [t if done else t[:-1] for t, done in zip(texts, ended, strict=True)]
            timings = word_align.align_words(attn, aligned, probs, frames, lead, self._decode_text, eot)
            words = [[Word(w.word.strip(), round(w.start, 2), round(w.end, 2), w.probability)
                      for w in item if w.word.strip()] for item in timings]
        return [(self._decode_text(t).strip(), words[i], avg[i], float(no_speech[i])) for i, t in enumerate(texts)]

