"""Audio in/out: G.711 codecs, formats, resampling, files and the telephone channel."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from voicebot.audio import (
    AudioFileError,
    AudioFormat,
    AudioFormatError,
    Decoder,
    Encoder,
    StreamResampler,
    alaw_decode,
    alaw_encode,
    decode,
    encode,
    load_for_asr,
    mulaw_decode,
    mulaw_encode,
    read_audio,
    resample,
    telephone_channel,
    write_wav,
)

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> tuple[np.ndarray, int]:
    return read_audio(speech_dir / "clips" / "emodb_03a01Nc.flac")


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    ref64, err = ref.astype(np.float64), ref.astype(np.float64) - test.astype(np.float64)
    return float(10 * np.log10(np.sum(ref64**2) / max(np.sum(err**2), 1e-9)))


# --- G.711 ---------------------------------------------------------------------------


def test_g711_known_values() -> None:
    zero = np.zeros(1, dtype=np.int16)
    assert mulaw_encode(zero) == b"\xff"
    assert alaw_encode(zero) == b"\xd5"
    # Full-scale codes and silence codes as in ITU-T G.711 / Sun g711.c.
    assert mulaw_decode(b"\xff\x7f\x80\x00").tolist() == [0, 0, 32124, -32124]
    assert alaw_decode(b"\xd5\x55\xaa\x2a").tolist() == [8, -8, 32256, -32256]
    assert mulaw_encode(np.array([32767, -32768], dtype=np.int16)) == b"\x80\x00"
    assert alaw_encode(np.array([32767, -32768], dtype=np.int16)) == b"\xaa\x2a"


@pytest.mark.parametrize(
    "enc, dec, max_abs_err",
    [(mulaw_encode, mulaw_decode, 1024), (alaw_encode, alaw_decode, 1024)],
)
def test_g711_round_trip_error_bounds(enc, dec, max_abs_err: int) -> None:
    out = dec(enc(ALL_INT16)).astype(np.int64)
    x = ALL_INT16.astype(np.int64)
    err = np.abs(out - x)
    # Logarithmic companding: the error grows with the magnitude, about 1/32 of it at most
    # (1/16 step in each segment), plus a small absolute floor near zero.
    assert np.all(err <= np.abs(x) / 32 + 16)
    assert err.max() <= max_abs_err
    # Decoding is monotonic: companding never reorders levels.
    assert np.all(np.diff(out) >= 0)
    # A code survives a second round trip (µ-law has two zero codes, 0x7F and 0xFF).
    codes = bytes(c for c in range(256) if not (enc is mulaw_encode and c == 0x7F))
    assert enc(dec(codes)) == codes


def test_g711_matches_audioop_where_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop", reason="[optional] audioop was removed in Python 3.13")
    raw = ALL_INT16.astype("<i2").tobytes()
    assert mulaw_encode(ALL_INT16) == audioop.lin2ulaw(raw, 2)
    assert alaw_encode(ALL_INT16) == audioop.lin2alaw(raw, 2)
    codes = bytes(range(256))
    assert mulaw_decode(codes).astype("<i2").tobytes() == audioop.ulaw2lin(codes, 2)
    assert alaw_decode(codes).astype("<i2").tobytes() == audioop.alaw2lin(codes, 2)


def test_g711_on_real_speech(clip: tuple[np.ndarray, int]) -> None:
    pcm, _ = clip
    assert snr_db(pcm, mulaw_decode(mulaw_encode(pcm))) > 30
    assert snr_db(pcm, alaw_decode(alaw_encode(pcm))) > 30


def test_pcm_s16le_round_trip_is_exact() -> None:
    data = encode(ALL_INT16, "pcm_s16le")
    assert data[:2] == b"\x00\x80"  # little-endian -32768
    assert np.array_equal(decode(data, "pcm_s16le"), ALL_INT16)


# --- formats -------------------------------------------------------------------------


def test_audio_format_normalizes_aliases() -> None:
    assert AudioFormat("PCMU", 8000).encoding == "mulaw"
    assert AudioFormat("audio/x-mulaw", 8000).encoding == "mulaw"
    assert AudioFormat("linear16", 16000).encoding == "pcm_s16le"
    fmt = AudioFormat("alaw", 8000)
    assert fmt.bytes_per_sample == 1 and fmt.bytes_for(0.02) == 160
    assert AudioFormat("pcm_s16le", 16000).bytes_for(0.02) == 640


@pytest.mark.parametrize(
    "encoding, rate, message",
    [
        ("pcm_s16le", 11025, "unsupported sample_rate 11025; use one of 8000, 16000, 22050, 24000, 44100, 48000"),
        ("opus", 16000, "unsupported encoding 'opus'; use one of pcm_s16le, mulaw, alaw"),
        ("mulaw", "8000", "sample_rate must be an integer"),
        ("mulaw", True, "sample_rate must be an integer"),
    ],
)
def test_bad_formats_raise_helpful_errors(encoding, rate, message: str) -> None:
    with pytest.raises(AudioFormatError) as info:
        AudioFormat(encoding, rate)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_odd_pcm_byte_count_is_rejected() -> None:
    with pytest.raises(AudioFormatError, match="even number of bytes.*got 3 bytes"):
        decode(b"\x00\x01\x02", "pcm_s16le")
    with pytest.raises(AudioFormatError, match="even number of bytes"):
        Decoder(AudioFormat("pcm_s16le", 16000)).decode(b"\x00" * 321)


def test_decoder_keeps_stream_time() -> None:
    dec = Decoder(AudioFormat("mulaw", 8000), t0=1.5)
    first = dec.decode(b"\xff" * 160)
    second = dec.decode(b"\xff" * 80)
    assert (first.sample_rate, first.t, len(first.pcm)) == (8000, 1.5, 160)
    assert second.t == pytest.approx(1.52)
    assert dec.time == pytest.approx(1.53)
    assert not second.pcm.any()


def test_encoder_resamples_bot_audio_to_caller_format(clip: tuple[np.ndarray, int]) -> None:
    pcm, rate = clip
    enc = Encoder(AudioFormat("mulaw", 8000))
    chunks = [enc.encode(pcm[i : i + 1234], rate) for i in range(0, len(pcm), 1234)]
    data = b"".join(chunks) + enc.flush()
    assert len(data) == pytest.approx(len(pcm) / 2, abs=2)  # one byte per 8 kHz sample
    reference = resample(pcm, rate, 8000)
    assert snr_db(reference, mulaw_decode(data)[: len(reference)]) > 25


# --- resampling ----------------------------------------------------------------------


def _test_signal(rate: int, seconds: float = 1.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1234.5 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
    return np.round(x * 32767).astype(np.int16)


@pytest.mark.parametrize("src, dst", [(8000, 16000), (48000, 16000), (22050, 16000), (16000, 8000)])
def test_streaming_resampler_matches_one_shot(src: int, dst: int) -> None:
    x = _test_signal(src)
    one_shot = resample(x, src, dst)
    assert abs(len(one_shot) - len(x) * dst / src) <= 1
    stream = StreamResampler(src, dst)
    sizes = [1, 37, 160, 441, 1000, 2049]  # odd chunk sizes, as a network delivers them
    parts, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)]
        parts.append(stream.process(x[i : i + n], last=i + n >= len(x)))
        i, k = i + n, k + 1
    streamed = np.concatenate(parts)
    assert abs(len(streamed) - len(one_shot)) <= 1
    n = min(len(streamed), len(one_shot))
    assert np.abs(streamed[:n].astype(int) - one_shot[:n].astype(int)).max() <= 2
    # The tones survive: the output is the same signal at the new rate.
    assert snr_db(_test_signal(dst)[100 : n - 100], streamed[100 : n - 100]) > 30


def test_low_latency_upsampler_returns_every_frame_at_once() -> None:
    # soxr "HQ" hands 8 kHz phone audio back in ~100 ms blocks; the VAD then hears the caller late.
    x = _test_signal(8000)
    reference = resample(x, 8000, 16000)
    stream = StreamResampler(8000, 16000, low_latency=True)
    frames = [stream.process(x[i : i + 160]) for i in range(0, len(x), 160)]
    assert all(len(f) == 2 * len(x[i * 160 : i * 160 + 160]) for i, f in enumerate(frames))
    streamed = np.concatenate(frames)
    # Any chunking gives the same samples (a FIR with carried history).
    other = StreamResampler(8000, 16000, low_latency=True)
    sizes = [1, 37, 441]
    parts, i, k = [], 0, 0
    while i < len(x):
        parts.append(other.process(x[i : i + sizes[k % 3]]))
        i, k = i + sizes[k % 3], k + 1
    assert np.array_equal(np.concatenate(parts), streamed)
    # The same signal as soxr's one-shot, 48 samples (3 ms) later.
    n = len(reference) - 200
    assert snr_db(reference[100:n], streamed[148 : n + 48]) > 50
    # Rates that are not an integer upsampling keep soxr.
    assert len(StreamResampler(16000, 8000, low_latency=True).process(_test_signal(16000))) > 0
    # After ``last`` the stream starts afresh.
    again = StreamResampler(8000, 16000, low_latency=True)
    first = again.process(x, last=True)
    assert np.array_equal(again.process(x), first)


def test_resampler_identity_and_reuse() -> None:
    x = _test_signal(16000, 0.1)
    assert np.array_equal(resample(x, 16000, 16000), x)
    assert np.array_equal(StreamResampler(16000, 16000).process(x), x)
    stream = StreamResampler(16000, 8000)
    a = stream.process(x, last=True)
    b = stream.process(x, last=True)  # after ``last`` the stream starts afresh
    assert np.array_equal(a, b)
    with pytest.raises(AudioFormatError, match="1-D int16"):
        resample(x.astype(np.float32), 16000, 8000)


# --- files and the telephone channel -------------------------------------------------


def test_read_write_and_load_for_asr(tmp_path: Path, clip: tuple[np.ndarray, int]) -> None:
    pcm, rate = clip
    assert rate == 16000 and pcm.dtype == np.int16 and pcm.ndim == 1
    path = tmp_path / "clip48k.wav"
    write_wav(path, resample(pcm, 16000, 48000), 48000)
    back, back_rate = read_audio(path)
    assert back_rate == 48000 and len(back) == pytest.approx(3 * len(pcm), abs=3)
    asr = load_for_asr(path)
    assert asr.dtype == np.int16 and len(asr) == pytest.approx(len(pcm), abs=2)
    assert snr_db(pcm[200:-200], asr[200 : len(pcm) - 200]) > 20


def test_stereo_is_downmixed(tmp_path: Path) -> None:
    import soundfile as sf

    left = np.full(800, 1000, dtype=np.int16)
    right = np.full(800, 3000, dtype=np.int16)
    sf.write(str(tmp_path / "stereo.flac"), np.stack([left, right], axis=1), 8000, subtype="PCM_16")
    mono, rate = read_audio(tmp_path / "stereo.flac")
    assert rate == 8000 and mono.shape == (800,) and np.all(mono == 2000)


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="audio file not found: .*nope.wav"):
        read_audio(tmp_path / "nope.wav")
    bogus = tmp_path / "notes.wav"
    bogus.write_text("this is not audio")
    with pytest.raises(AudioFileError, match="cannot read .*notes.wav as audio.*WAV, FLAC or OGG"):
        read_audio(bogus)


def test_telephone_channel(clip: tuple[np.ndarray, int]) -> None:
    pcm, rate = clip
    tel, tel_rate = telephone_channel(pcm, rate)
    assert tel_rate == 8000 and tel.dtype == np.int16
    assert len(tel) == pytest.approx(len(pcm) / 2, abs=1)
    assert np.array_equal(tel, telephone_channel(pcm, rate)[0])  # deterministic
    # Every sample is a G.711 µ-law level.
    assert np.array_equal(mulaw_decode(mulaw_encode(tel)), tel)
    # Band-limited: almost no energy below 300 Hz, and the voice band kept.
    spectrum = np.abs(np.fft.rfft(tel.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(tel), 1 / 8000)
    low = spectrum[freqs < 200].sum()
    band = spectrum[(freqs >= 400) & (freqs <= 3200)].sum()
    assert low / band < 0.01
    # Full-band white noise comes out band-limited too.
    noise = np.random.default_rng(0).normal(0, 3000, 48000).astype(np.int16)
    tel_noise, _ = telephone_channel(noise, 48000)
    s = np.abs(np.fft.rfft(tel_noise.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(tel_noise), 1 / 8000)
    assert s[f < 150].mean() < 0.01 * s[(f > 500) & (f < 3000)].mean()
    assert s[f > 3800].mean() < 0.01 * s[(f > 500) & (f < 3000)].mean()
