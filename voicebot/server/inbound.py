"""Caller audio waiting for its session: queued frames are pushed together.

A connection decodes each caller message into an ``AudioFrame`` and queues it; one task
feeds the queue to the call's session. Frames queue up only when the server is behind (a
busy event loop), and then one push per backlog instead of one per 20 ms frame spends the
loop's time on the audio rather than on per-frame overhead (resampler calls, frame-bus
dispatch), so a loaded server catches up instead of falling further behind. Audio is
never reordered, and frames are joined only where they continue each other in time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from voicebot.frames import AudioFrame

COALESCE_S = 0.2  # at most this much queued caller audio goes to the session in one push


async def feed_session(queue: asyncio.Queue[AudioFrame | None], push: Callable[[AudioFrame], Awaitable[None]],
                       log: logging.Logger | Any) -> None:
    """Push the queued caller audio to the session in arrival order until the end of input (``None``)."""
    held: AudioFrame | None = None
    while True:
        frame = held if held is not None else await queue.get()
        if frame is None:
            return
        frame, held, last = take_coalesced(queue, frame)
        try:
            await push(frame)
        except Exception:  # noqa: BLE001 - one bad frame must not end the call
            log.exception("session failed on caller audio")
        if last:
            return


def take_coalesced(
    queue: asyncio.Queue[AudioFrame | None], frame: AudioFrame, limit_s: float = COALESCE_S,
) -> tuple[AudioFrame, AudioFrame | None, bool]:
    """``frame`` joined with the contiguous frames queued behind it (up to ``limit_s`` of audio); a
    queued frame that does not continue it (frames were shed in between), to be pushed next on its
    own; and whether the end of input (``None``) came."""
    pieces, samples = [frame.pcm], len(frame.pcm)
    limit = int(limit_s * frame.sample_rate)
    while samples < limit and not queue.empty():
        nxt = queue.get_nowait()
        if nxt is None:
            return _joined(frame, pieces), None, True
        if nxt.sample_rate != frame.sample_rate or abs(nxt.t - (frame.t + samples / frame.sample_rate)) > 1e-3:
            return _joined(frame, pieces), nxt, False
        pieces.append(nxt.pcm)
        samples += len(nxt.pcm)
    return _joined(frame, pieces), None, False


def _joined(frame: AudioFrame, pieces: list[np.ndarray]) -> AudioFrame:
    return frame if len(pieces) == 1 else AudioFrame(np.concatenate(pieces), frame.sample_rate, frame.t)
