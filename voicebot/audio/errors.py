"""Typed errors of the audio package.

Every message is meant to be shown to a user as is: it says what was wrong and
what would be accepted instead.
"""

from __future__ import annotations


class AudioError(Exception):
    """Base class of all errors raised by ``voicebot.audio``."""


class AudioFormatError(AudioError, ValueError):
    """Audio bytes or a declared format (encoding, sample rate) are not usable.

    A ``ValueError`` so that protocol code validating a ``start`` message can
    treat it like any other bad value.
    """


class AudioFileError(AudioError, OSError):
    """An audio file is missing, unreadable or in a format libsndfile cannot read."""
