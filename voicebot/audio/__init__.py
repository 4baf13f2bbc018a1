"""Audio in and out: wire codecs, resampling, files and the telephone channel.

The pipeline's one sample format is mono int16 with an explicit rate; these
modules convert everything else to and from it.
"""

from voicebot.audio.channel import telephone_channel
from voicebot.audio.codecs import (
    SUPPORTED_ENCODINGS,
    SUPPORTED_RATES,
    AudioFormat,
    Decoder,
    Encoder,
    alaw_decode,
    alaw_encode,
    decode,
    encode,
    float32_to_pcm,
    mulaw_decode,
    mulaw_encode,
    pcm_to_float32,
)
from voicebot.audio.errors import AudioError, AudioFileError, AudioFormatError
from voicebot.audio.io import load_for_asr, read_audio, write_wav
from voicebot.audio.resample import StreamResampler, resample

__all__ = [
    "SUPPORTED_ENCODINGS",
    "SUPPORTED_RATES",
    "AudioError",
    "AudioFileError",
    "AudioFormat",
    "AudioFormatError",
    "Decoder",
    "Encoder",
    "StreamResampler",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "float32_to_pcm",
    "load_for_asr",
    "mulaw_decode",
    "mulaw_encode",
    "pcm_to_float32",
    "read_audio",
    "resample",
    "telephone_channel",
    "write_wav",
]
