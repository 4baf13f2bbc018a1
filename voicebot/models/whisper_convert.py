"""CTranslate2 Whisper directory -> Hugging Face ``WhisperForConditionalGeneration`` checkpoint.

The torch ASR backend (the GPU path on CUDA-13 hosts, where CTranslate2's PyPI
build cannot load ``libcublas.so.12``) needs the very weights faster-whisper runs,
and no hub is reachable. So the provisioned CTranslate2 ``model.bin`` is read
directly and re-laid out as a transformers checkpoint.

``model.bin`` layout (``ctranslate2/specs/model_spec.py::ModelSpec._serialize``),
little-endian: uint32 binary version, string spec name, uint32 spec revision,
uint32 variable count, then per variable: string name, uint8 rank, uint32 dims,
uint8 dtype id (float32, int8, int16, int32, float16, bfloat16), uint32 byte count,
raw bytes; then uint32 alias count and (alias, target) string pairs. A string is
a uint16 length (including a trailing NUL), the UTF-8 bytes and the NUL.

The name mapping is the inverse of ``ctranslate2/converters/transformers.py``
(``WhisperLoader``/``BartLoader``): self-attention q/k/v are fused in
``linear_0`` (k has no bias in Whisper, so CT2 stores zeros there), cross-attention
has q in ``linear_0`` and k/v fused in ``linear_1``; int8 weights carry a
per-row ``weight_scale`` (value = int8 / scale).
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
# Special tokens every multilingual Whisper tokenizer has; the no-speech token was
# renamed from <|nocaptions|> to <|nospeech|> with large-v3.
_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>", "<|translate|>", "<|transcribe|>",
             "<|startoflm|>", "<|startofprev|>", "<|notimestamps|>")
_NO_SPEECH = ("<|nospeech|>", "<|nocaptions|>")
# verify_conversion() limits: CTranslate2 float32 vs the checkpoint agree to ~1e-3 on the
# encoder and ~7e-3 in token probability; a wrong mapping gives gaps well above 0.1.
MAX_ENCODER_GAP = 0.01
MAX_PROB_GAP = 0.03
HF_FILES = ("model.safetensors", "config.json", "generation_config.json", "preprocessor_config.json",
            "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@dataclass(frozen=True)
class Ct2Model:
    """The variables of a CTranslate2 ``model.bin`` (aliases resolved)."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]


@dataclass(frozen=True)
class WhisperTokens:
    """Special token ids of a Whisper vocabulary, derived from ``tokenizer.json``."""

    eot: int
    sot: int
    translate: int
    transcribe: int
    sot_lm: int
    sot_prev: int
    no_speech: int
    no_timestamps: int
    languages: dict[str, int]  # "de" -> id of <|de|>

    @property
    def timestamp_begin(self) -> int:
        return self.no_timestamps + 1


def read_ct2_model(path: Path) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` into numpy arrays (bfloat16 comes back as float32)."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 0

        def take(fmt: str) -> int:
            nonlocal pos
            (value,) = struct.unpack_from("<" + fmt, buf, pos)
            pos += struct.calcsize(fmt)
            return int(value)

        def string() -> str:
            nonlocal pos
            size = take("H")
            text = bytes(buf[pos : pos + size - 1]).decode("utf-8")
            pos += size
            return text

        version = take("I")
        if version < 5:
            raise ValueError(f"{path}: CTranslate2 binary version {version} is too old (need >= 5)")
        spec = string()
        revision = take("I")
        variables: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = string()
            shape = tuple(take("I") for _ in range(take("B")))
            dtype = _CT2_DTYPES[take("B")]
            nbytes = take("I")
            raw = bytes(buf[pos : pos + nbytes])
            pos += nbytes
            if dtype == "bfloat16":
                bits = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16)
                array = bits.float().numpy()
            else:
                array = np.frombuffer(raw, dtype=dtype).copy()
            variables[name] = array.reshape(shape)
        for _ in range(take("I")):
            alias, target = string(), string()
            variables[alias] = variables[target]
    return Ct2Model(spec=spec, revision=revision, variables=variables)


def whisper_tokens(tokenizer_json: dict, lang_ids: list[int]) -> WhisperTokens:
    """Find the special ids by their text, so any Whisper vocabulary (v1-v3) works."""
    by_text = {t["content"]: int(t["id"]) for t in tokenizer_json.get("added_tokens", ())}
    by_id = {v: k for k, v in by_text.items()}
    missing = [s for s in _SPECIALS if s not in by_text]
    no_speech = next((by_text[s] for s in _NO_SPEECH if s in by_text), None)
    if missing or no_speech is None:
        raise ValueError(f"tokenizer.json lacks Whisper special tokens: {missing or list(_NO_SPEECH)}")
    languages = {by_id[i][2:-2]: i for i in lang_ids if i in by_id}
    return WhisperTokens(eot=by_text["<|endoftext|>"], sot=by_text["<|startoftranscript|>"],
                         translate=by_text["<|translate|>"], transcribe=by_text["<|transcribe|>"],
                         sot_lm=by_text["<|startoflm|>"], sot_prev=by_text["<|startofprev|>"],
                         no_speech=no_speech, no_timestamps=by_text["<|notimestamps|>"], languages=languages)


def non_speech_token_ids(encode: Callable[[str], list[int]]) -> set[int]:
    """faster-whisper's ``Tokenizer.non_speech_tokens``: speaker tags, music notes, brackets."""
    symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    misc = "♩♪♫♬♭♮♯"  # multi-token symbols: their first token is safe to suppress
    ids = {encode(" -")[0], encode(" '")[0]}
    for symbol in symbols + list(misc):
        for tokens in (encode(symbol), encode(" " + symbol)):
            if len(tokens) == 1 or symbol in misc:
                ids.add(tokens[0])
    return ids


def _weight(v: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A linear/conv weight as float32, dequantizing int8/int16 with its per-row scale."""
    w = v[name]
    if w.dtype in (np.int8, np.int16):
        scale = v[name + "_scale"].astype(np.float32)
        scale = scale.reshape((-1,) + (1,) * (w.ndim - 1)) if scale.ndim else scale
        return w.astype(np.float32) / scale
    return w.astype(np.float32)


def _count_layers(v: dict[str, np.ndarray], prefix: str) -> int:
    n = 0
    while f"{prefix}/layer_{n}/ffn/linear_0/bias" in v:
        n += 1
    return n


def ct2_to_hf_state_dict(model: Ct2Model, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """Rename and split CT2 Whisper variables into transformers' parameter names.

    ``proj_out.weight`` is left out: it is tied to the token embedding (CT2 aliases
    ``decoder/projection/weight`` to it as well).
    """
    if model.spec != "WhisperSpec":
        raise ValueError(f"not a Whisper model: spec {model.spec!r}")
    v = model.variables
    out: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = _weight(v, f"{src}/weight")
        out[f"{dst}.bias"] = v[f"{src}/bias"].astype(np.float32)

    def norm(dst: str, src: str) -> None:
        out[f"{dst}.weight"] = v[f"{src}/gamma"].astype(np.float32)
        out[f"{dst}.bias"] = v[f"{src}/beta"].astype(np.float32)

    def split_fused(dst_prefix: str, src: str, names: tuple[str, ...]) -> None:
        weights = np.split(_weight(v, f"{src}/weight"), len(names))
        biases = np.split(v[f"{src}/bias"].astype(np.float32), len(names))
        for name, w, b in zip(names, weights, biases, strict=True):
            out[f"{dst_prefix}.{name}.weight"] = w
            if name == "k_proj":
                # Whisper's key projection has no bias; CT2 fills zeros when fusing.
                if np.abs(b).max() > 1e-6:
                    raise ValueError(f"{src}: non-zero key bias, not a Whisper attention layer")
            else:
                out[f"{dst_prefix}.{name}.bias"] = b

    enc, dec = "model.encoder", "model.decoder"
    for i in (1, 2):
        out[f"{enc}.conv{i}.weight"] = _weight(v, f"encoder/conv{i}/weight")
        out[f"{enc}.conv{i}.bias"] = v[f"encoder/conv{i}/bias"].astype(np.float32)
    out[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"].astype(np.float32)
    norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(_count_layers(v, "encoder")):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        split_fused(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    out[f"{dec}.embed_tokens.weight"] = _weight(v, "decoder/embeddings/weight")
    out[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"].astype(np.float32)
    norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(_count_layers(v, "decoder")):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        split_fused(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
        split_fused(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k_proj", "v_proj"))
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")
    return {k: torch.from_numpy(np.ascontiguousarray(a)).to(dtype) for k, a in out.items()}


def hf_configs(model: Ct2Model, ct2_config: dict, tokenizer_json: dict,
               dtype: torch.dtype = torch.float16) -> dict[str, dict]:
    """config.json, generation_config.json, preprocessor_config.json, tokenizer_config.json
    and special_tokens_map.json, all derived from the CT2 directory.

    Only architecture fields are written (no ``transformers_version``), so the files,
    and their sha256, do not change with the installed transformers.
    """
    v = model.variables
    tok = whisper_tokens(tokenizer_json, list(ct2_config.get("lang_ids", ())))
    d_model = int(v["encoder/layer_norm/gamma"].shape[0])
    n_mels = int(v["encoder/conv1/weight"].shape[1])
    eot_text = "<|endoftext|>"
    config = {
        "architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper",
        "activation_function": "gelu", "d_model": d_model, "num_mel_bins": n_mels,
        "encoder_layers": _count_layers(v, "encoder"), "decoder_layers": _count_layers(v, "decoder"),
        "encoder_attention_heads": int(v["encoder/num_heads"]), "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/bias"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/bias"].shape[0]),
        "vocab_size": int(v["decoder/embeddings/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
        "bos_token_id": tok.eot, "eos_token_id": tok.eot, "pad_token_id": tok.eot,
        "decoder_start_token_id": tok.sot, "scale_embedding": False, "tie_word_embeddings": True,
        "is_encoder_decoder": True, "use_cache": True, "median_filter_width": 7,
        "suppress_tokens": list(ct2_config.get("suppress_ids", ())),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin", ())),
        "dtype": str(dtype).removeprefix("torch."),
    }
    generation = {
        "alignment_heads": [list(h) for h in ct2_config.get("alignment_heads", ())],
        "begin_suppress_tokens": config["begin_suppress_tokens"], "suppress_tokens": config["suppress_tokens"],
        "bos_token_id": tok.eot, "eos_token_id": tok.eot, "pad_token_id": tok.eot,
        "decoder_start_token_id": tok.sot,
        "is_multilingual": len(tok.languages) > 1,
        "lang_to_id": {f"<|{code}|>": i for code, i in tok.languages.items()},
        "task_to_id": {"transcribe": tok.transcribe, "translate": tok.translate},
        "no_timestamps_token_id": tok.no_timestamps, "prev_sot_token_id": tok.sot_prev,
        "max_initial_timestamp_index": 50, "max_length": config["max_target_positions"],
        "return_timestamps": False,
    }
    preprocessor = {
        "feature_extractor_type": "WhisperFeatureExtractor", "processor_class": "WhisperProcessor",
        "feature_size": n_mels, "sampling_rate": 16000, "hop_length": 160, "n_fft": 400,
        "chunk_length": 30, "n_samples": 480000, "nb_max_frames": 3000,
        "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False,
    }
    specials = [t["content"] for t in tokenizer_json["added_tokens"] if t.get("special")]
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer", "add_prefix_space": False, "errors": "replace",
        "bos_token": eot_text, "eos_token": eot_text, "unk_token": eot_text, "pad_token": eot_text,
        "additional_special_tokens": specials, "model_max_length": 1024,
        "clean_up_tokenization_spaces": False, "processor_class": "WhisperProcessor",
    }
    special_map = {"bos_token": eot_text, "eos_token": eot_text, "unk_token": eot_text,
                   "pad_token": eot_text, "additional_special_tokens": specials}
    return {"config.json": config, "generation_config.json": generation,
            "preprocessor_config.json": preprocessor, "tokenizer_config.json": tokenizer_config,
            "special_tokens_map.json": special_map}


def hf_tokenizer_json(tokenizer_json: dict, vocab_size: int, tokens: WhisperTokens) -> dict:
    """CT2's tokenizer.json plus the timestamp tokens as (non-special) added tokens.

    The Hub's Whisper tokenizers carry <|0.00|> ... <|30.00|> so that ids and the
    model's vocabulary size agree; CT2's copy stops at <|notimestamps|>.
    """
    out = json.loads(json.dumps(tokenizer_json))
    present = {int(t["id"]) for t in out["added_tokens"]}
    for i, token_id in enumerate(range(tokens.timestamp_begin, vocab_size)):
        if token_id not in present:
            out["added_tokens"].append({"id": token_id, "content": f"<|{i * 0.02:.2f}|>", "single_word": False,
                                        "lstrip": False, "rstrip": False, "normalized": False, "special": False})
    return out


def _dump(obj: dict) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def load_ct2_dir(src: Path) -> tuple[Ct2Model, dict, dict]:
    """(model, config.json, tokenizer.json) of a CTranslate2 Whisper directory."""
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src} is not a CTranslate2 Whisper directory: {name} missing")
    model = read_ct2_model(src / "model.bin")
    ct2_config = json.loads((src / "config.json").read_text(encoding="utf-8"))
    tokenizer_json = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    return model, ct2_config, tokenizer_json


def convert_ct2_whisper(src: Path, dst: Path, dtype: torch.dtype = torch.float16) -> list[Path]:
    """Write a Hugging Face Whisper checkpoint converted from the CT2 directory ``src``.

    Deterministic: the same input gives byte-identical files (sorted JSON keys, a
    fixed safetensors metadata block), so their sha256 can be pinned in the registry.
    """
    from safetensors.torch import save_file

    model, ct2_config, tokenizer_json = load_ct2_dir(src)
    state = ct2_to_hf_state_dict(model, dtype)
    configs = hf_configs(model, ct2_config, tokenizer_json, dtype)
    tokens = whisper_tokens(tokenizer_json, list(ct2_config.get("lang_ids", ())))
    dst.mkdir(parents=True, exist_ok=True)
    save_file({k: state[k].contiguous() for k in sorted(state)}, str(dst / "model.safetensors"),
              metadata={"format": "pt"})
    vocab_size = configs["config.json"]["vocab_size"]
    (dst / "tokenizer.json").write_bytes(_dump(hf_tokenizer_json(tokenizer_json, vocab_size, tokens)))
    for name, obj in configs.items():
        (dst / name).write_bytes(_dump(obj))
    return [dst / name for name in HF_FILES]


def hf_state_dict_from_ct2_dir(src: Path, dtype: torch.dtype) -> tuple[dict[str, torch.Tensor], dict[str, dict]]:
    """In-memory conversion (no files written), for loading any CT2 Whisper dir into torch."""
    model, ct2_config, tokenizer_json = load_ct2_dir(src)
    return ct2_to_hf_state_dict(model, dtype), hf_configs(model, ct2_config, tokenizer_json, dtype)


def verify_conversion(hf_dir: Path, ct2_dir: Path, seconds: float = 4.0) -> dict[str, float]:
    """Run CTranslate2 (float32) and the converted checkpoint on the same input; return the gaps.

    The input is the log-mel of a deterministic synthetic signal (harmonic tones
    with a gliding pitch plus noise), so no audio file is needed at provisioning
    time. Compared: the encoder output, and the decoder's probabilities of a fixed
    German token sequence (CT2 ``align`` returns them teacher-forced).
    """
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor
    from tokenizers import Tokenizer
    from transformers import WhisperForConditionalGeneration

    tokenizer_json = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))
    ct2_config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    tok = whisper_tokens(tokenizer_json, list(ct2_config.get("lang_ids", ())))
    hf = WhisperForConditionalGeneration.from_pretrained(str(hf_dir), local_files_only=True,
                                                         dtype=torch.float32).eval()
    n_mels = hf.config.num_mel_bins
    rng = np.random.default_rng(7)
    t = np.arange(int(16000 * seconds)) / 16000
    pitch = 140 + 60 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 16000
    audio = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.1 + rng.normal(0, 0.01, t.size)
    mel = FeatureExtractor(feature_size=n_mels)(audio.astype(np.float32))[:, :-1]  # what CT2 is fed
    features = np.zeros((1, n_mels, 3000), dtype=np.float32)
    features[0, :, : mel.shape[1]] = mel
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32", intra_threads=2)
    ct2_enc = np.array(ct2.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    text = " Guten Tag, ich möchte meine Rechnung prüfen."
    text_ids = list(Tokenizer.from_str(json.dumps(tokenizer_json)).encode(text, add_special_tokens=False).ids)
    # CT2's align appends <|notimestamps|> itself; its probability of the last text
    # token is computed differently (not comparable), so that one is left out.
    start = [tok.sot, tok.languages.get("de", tok.sot + 1), tok.transcribe]
    aligned = ct2.align(ctranslate2.StorageView.from_array(features), start, [text_ids], int(seconds * 50))[0]
    with torch.inference_mode():
        hf_enc = hf.model.encoder(torch.from_numpy(features)).last_hidden_state
        ids = torch.tensor([start + [tok.no_timestamps] + text_ids])
        probs = hf(encoder_outputs=(hf_enc,), decoder_input_ids=ids).logits[0].float().softmax(-1)
        rows = torch.arange(len(start), len(start) + len(text_ids))
        hf_probs = probs[rows, torch.tensor(text_ids)].numpy()
    gap = np.abs(np.array(aligned.text_token_probs) - hf_probs)[:-1]
    return {"encoder_max_abs": float(np.abs(ct2_enc - hf_enc.numpy()).max()), "token_prob_max_abs": float(gap.max())}

