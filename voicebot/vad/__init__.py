"""Voice activity detection and endpointing.

Detectors (``WebRtcVad``, ``SileroVad``) say per frame whether there is speech;
``Endpointer`` turns that into caller turns (``SpeechStarted`` / ``SpeechEnded``).
"""

from voicebot.vad.endpointing import (
    Endpointer,
    EndpointerSettings,
    EndpointEvent,
    VoiceActivityDetector,
    build_detector,
    rms_dbfs,
)
from voicebot.vad.silero import SileroVad, SileroVadModel, default_model_path
from voicebot.vad.webrtc import WebRtcVad

__all__ = [
    "EndpointEvent",
    "Endpointer",
    "EndpointerSettings",
    "SileroVad",
    "SileroVadModel",
    "VoiceActivityDetector",
    "WebRtcVad",
    "build_detector",
    "default_model_path",
    "rms_dbfs",
]
