"""The CT2 → Hugging Face Whisper conversion and the torch ASR backend, against CTranslate2, on real German speech.

Runs on CPU (float32). Everything is built from the provisioned CTranslate2
``whisper-base``; the converted checkpoint is the provisioned ``whisper-base-hf``
when present, else converted into a temporary folder (the same files, same sha256).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicebot.asr import word_align
from voicebot.config import Settings
from voicebot.models.registry import load_registry, sha256_of

torch = pytest.importorskip("torch")

# Every k-th clip of at most 6 s: EmoDB sentences across speakers and emotions.
PARITY_CLIPS = 12


@pytest.fixture(scope="module")
def ct2_dir(settings: Settings) -> Path:
    path = settings.models.dir / "whisper-base"
    if not (path / "model.bin").is_file():
        pytest.skip("whisper-base not provisioned: run `voicebot models pull`")
    return path


@pytest.fixture(scope="module")
def hf_dir(settings: Settings, ct2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from voicebot.models.whisper_convert import convert_ct2_whisper

    provisioned = settings.models.dir / "whisper-base-hf"
    if (provisioned / "provenance.json").is_file():
        return provisioned
    out = tmp_path_factory.mktemp("whisper-base-hf")
    convert_ct2_whisper(ct2_dir, out)
    return out


@pytest.fixture(scope="module")
def clips(speech_manifest: list[dict], speech_dir: Path) -> list[tuple[np.ndarray, str]]:
    import soundfile as sf

    short = [r for r in speech_manifest if float(r["seconds"]) <= 6.0]
    step = max(1, len(short) // PARITY_CLIPS)
    picked = short[::step][:PARITY_CLIPS]
    return [(sf.read(str(speech_dir / r["audio"]), dtype="int16")[0], r["text"]) for r in picked]


@pytest.fixture(scope="module")
def torch_asr(settings: Settings, hf_dir: Path) -> Any:
    from voicebot.asr.torch_backend import TorchTranscriber

    return TorchTranscriber(replace(settings.asr, model=str(hf_dir), device="cpu"), settings.models).load()


def test_checkpoint_files_match_the_registry(settings: Settings, hf_dir: Path) -> None:
    """The conversion is deterministic: its files have the sha256 pinned in models/registry.toml."""
    entry = load_registry(settings.models).get("whisper-base-hf")
    assert entry.recipe == "ct2-whisper-to-hf" and entry.files
    for file in entry.files:
        assert sha256_of(hf_dir / file.path) == file.sha256, file.path


def test_tensors_match_ct2_values(ct2_dir: Path, hf_dir: Path) -> None:
    from safetensors.torch import load_file

    from voicebot.models.whisper_convert import read_ct2_model

    ct2 = read_ct2_model(ct2_dir / "model.bin").variables
    hf = load_file(str(hf_dir / "model.safetensors"))
    assert hf["model.encoder.conv1.weight"].shape == (512, 80, 3)
    np.testing.assert_array_equal(hf["model.encoder.conv1.weight"].numpy(), ct2["encoder/conv1/weight"])
    qkv = ct2["encoder/layer_2/self_attention/linear_0/weight"]  # fused [3*512, 512]
    np.testing.assert_array_equal(hf["model.encoder.layers.2.self_attn.k_proj.weight"].numpy(), qkv[512:1024])
    np.testing.assert_array_equal(hf["model.encoder.layers.2.self_attn.v_proj.bias"].numpy(),
                                  ct2["encoder/layer_2/self_attention/linear_0/bias"][1024:])
    assert "model.encoder.layers.2.self_attn.k_proj.bias" not in hf  # Whisper keys have no bias
    kv = ct2["decoder/layer_4/attention/linear_1/weight"]  # cross-attention k|v
    np.testing.assert_array_equal(hf["model.decoder.layers.4.encoder_attn.v_proj.weight"].numpy(), kv[512:])
    np.testing.assert_array_equal(hf["model.decoder.embed_tokens.weight"].numpy(), ct2["decoder/embeddings/weight"])
    assert "proj_out.weight" not in hf  # tied to the embedding, as CT2's alias says


def test_checkpoint_loads_offline_with_whisper_config(hf_dir: Path) -> None:
    from transformers import AutoProcessor, GenerationConfig, WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(str(hf_dir), local_files_only=True)
    assert model.dtype == torch.float16  # the checkpoint's own dtype
    assert model.config.num_mel_bins == 80 and model.config.decoder_start_token_id == 50258
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    gen = GenerationConfig.from_pretrained(str(hf_dir), local_files_only=True)
    assert getattr(gen, "lang_to_id", {}).get("<|de|>") == 50261
    assert getattr(gen, "no_timestamps_token_id", None) == 50363
    assert getattr(gen, "alignment_heads", None) == [[3, 1], [4, 2], [4, 3], [4, 7], [5, 1], [5, 2], [5, 4], [5, 6]]
    processor = AutoProcessor.from_pretrained(str(hf_dir), local_files_only=True)
    assert processor.feature_extractor.feature_size == 80
    ids = processor.tokenizer(" Guten Tag", add_special_tokens=False).input_ids
    assert processor.tokenizer.decode(ids) == " Guten Tag"


def test_hf_generate_reproduces_ct2_greedy(ct2_dir: Path, hf_dir: Path, clips: list) -> None:
    """Same features, same forced prompt: transformers' own generate() gives CTranslate2's tokens."""
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(str(hf_dir), local_files_only=True,
                                                            dtype=torch.float32).eval()
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32", intra_threads=2)
    extractor = FeatureExtractor()
    prompt = [50258, 50261, 50359, 50363]
    for pcm, _ in clips[:2]:
        mel = extractor(pcm.astype(np.float32) / 32768.0)[:, :-1]
        features = np.zeros((1, 80, 3000), dtype=np.float32)
        features[0, :, : mel.shape[1]] = mel
        ref = ct2.generate(ctranslate2.StorageView.from_array(features), [prompt], beam_size=1)[0].sequences_ids[0]
        with torch.inference_mode():
            out = model.generate(torch.from_numpy(features), language="de", task="transcribe",
                                 do_sample=False, num_beams=1, max_new_tokens=100)
        got = [t for t in out[0].tolist() if t not in prompt and t != 50257]
        assert got == ref


def test_torch_backend_matches_ctranslate2(torch_asr: Any, ct2_dir: Path, clips: list) -> None:
    """The torch engine vs CTranslate2 (float32) decoding the same window, prompt and suppressions greedily:
    the same transcript on every clip, the same no-speech probability, close mean log-probabilities.

    (Against the shipped CTranslate2 engine, which decodes with timestamp tokens and
    int8 weights on CPU, transcripts differ more: 65 clips, WER 17.5 % torch vs
    17.3 % CT2 float32 / 18.4 % CT2 int8; 62/65 and 54/65 identical.)
    """
    import ctranslate2
    from faster_whisper.feature_extractor import FeatureExtractor

    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32", intra_threads=2)
    extractor = FeatureExtractor()
    prompt = torch_asr.prompt_ids(None)
    suppress = torch_asr._suppress.nonzero()[:, 0].tolist()
    ours = torch_asr.transcribe_batch([pcm for pcm, _ in clips], word_timestamps=False)
    for (pcm, _), mine in zip(clips, ours, strict=True):
        window = torch_asr.window_for(len(pcm) / 16000)
        audio = np.zeros(window * 16000, dtype=np.float32)  # as the CTranslate2 engine builds its window
        audio[: len(pcm)] = pcm / 32768.0
        mel = extractor(audio, padding=0)[None, :, : window * 100]
        ref = ct2.generate(ctranslate2.StorageView.from_array(np.ascontiguousarray(mel)), [prompt], beam_size=1,
                           suppress_tokens=suppress, suppress_blank=True, max_length=len(prompt) + 100,
                           return_scores=True, return_no_speech_prob=True)[0]
        tokens = ref.sequences_ids[0]
        assert mine.text == torch_asr._decode_text([t for t in tokens if t < 50257]).strip()
        assert abs(mine.no_speech_prob - ref.no_speech_prob) < 1e-3
        assert abs(mine.avg_logprob - ref.scores[0] * len(tokens) / (len(tokens) + 1)) < 0.03


@pytest.fixture()
def short_windows(torch_asr: Any) -> Iterator[Any]:
    """The same engine with per-utterance windows (several window sizes, so padding masks, in one batch)."""
    default = torch_asr.min_window_s
    torch_asr.min_window_s = 2
    yield torch_asr
    torch_asr.min_window_s = default


def test_batched_equals_unbatched(short_windows: Any, clips: list) -> None:
    audios = [pcm for pcm, _ in clips[:4]]
    batched = short_windows.transcribe_batch(audios, offsets=[1.0] * len(audios))
    assert len({r.extra["window_s"] for r in batched}) > 1  # several window groups in one batch
    for pcm, together in zip(audios, batched, strict=True):
        alone = short_windows.transcribe(pcm, offset=1.0)
        assert alone.text == together.text
        assert [w.text for w in alone.words] == [w.text for w in together.words]
        for a, b in zip(alone.words, together.words, strict=True):
            assert abs(a.start - b.start) <= 0.021 and abs(a.end - b.end) <= 0.021
            assert abs(a.probability - b.probability) < 1e-3
        assert abs(alone.avg_logprob - together.avg_logprob) < 1e-3
        assert abs(alone.no_speech_prob - together.no_speech_prob) < 1e-3


def test_result_fields_are_sane(torch_asr: Any, clips: list) -> None:
    pcm, _ = clips[0]
    result = torch_asr.transcribe(pcm, offset=10.0)
    assert result.text and result.words
    assert all(10.0 <= w.start <= w.end <= 10.0 + result.duration + 0.5 for w in result.words)
    assert all(0.0 < w.probability <= 1.0 for w in result.words)
    assert -2.0 < result.avg_logprob < 0.0 and 0.0 <= result.no_speech_prob < 0.5
    assert 0.3 < result.confidence <= 1.0
    silence = torch_asr.transcribe(np.zeros(16000, dtype=np.int16), word_timestamps=False)
    assert silence.no_speech_prob > result.no_speech_prob


def test_dtw_matches_reference_implementation() -> None:
    rng = np.random.default_rng(0)
    costs = [rng.normal(size=(int(rng.integers(1, 12)), int(rng.integers(1, 40)))) for _ in range(12)]
    costs.append(np.round(rng.normal(size=(4, 7))))  # ties
    for cost, (ti, fi) in zip(costs, word_align.dtw_batch(costs), strict=True):
        ref_t, ref_f = _dtw_reference(cost)
        assert np.array_equal(ti, ref_t) and np.array_equal(fi, ref_f)


def test_factory_picks_backends(settings: Settings) -> None:
    from voicebot.asr.factory import BackendUnavailableError, ct2_cuda_usable, make_transcriber
    from voicebot.asr.torch_backend import TorchTranscriber
    from voicebot.asr.transcriber import Transcriber

    def with_asr(**kw: Any) -> Settings:
        return replace(settings, asr=replace(settings.asr, **kw))

    assert isinstance(make_transcriber(with_asr(backend="auto", device="cpu")), Transcriber)
    assert isinstance(make_transcriber(with_asr(backend="torch", device="cpu")), TorchTranscriber)
    if not ct2_cuda_usable():
        with pytest.raises(BackendUnavailableError):
            make_transcriber(with_asr(backend="ctranslate2", device="cuda"))
    with pytest.raises(ValueError):
        make_transcriber(with_asr(backend="onnx"))


def _dtw_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OpenAI whisper's ``dtw_cpu`` + ``backtrace``, verbatim in logic."""
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf)
    trace = -np.ones((n + 1, m + 1))
    cost[0, 0] = 0
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t
    i, j = n, m
    trace[0, :] = 2
    trace[:, 0] = 1
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        if trace[i, j] == 0:
            i, j = i - 1, j - 1
        elif trace[i, j] == 1:
            i -= 1
        else:
            j -= 1
    arr = np.array(path)[::-1].T
    return arr[0], arr[1]

