"""The adaptive partial rate: how often a call in speech may ask for a partial decode.

Partials only feed the live transcript (the agent console, LocalAgreement commits); the
caller's answer waits on finals. So the partial rate is what gives when the box fills up:
each call's interval stretches so that all calls' partials together keep the ASR worker
busy for at most ``asr.partial_cpu_share`` of its time, from the measured decode time of a
partial, up to ``asr.partial_max_interval_ms``. ``AsrScheduler.partial_interval_ms``
applies it (and says "not now" while finals wait).
"""

from __future__ import annotations

ACTIVE_PARTIAL_S = 3.0  # a call that asked for a partial this recently is "making partials"


def adaptive_interval_ms(base_ms: int, calls: int, decode_s: float, share: float, cap_ms: int,
                         workers: int = 1) -> int:
    """The partial interval (ms of audio) at which ``calls`` calls, each decoding a partial in
    ``decode_s``, keep the ``workers`` decode workers busy with partials for at most ``share`` of their time.

    A lone call may use the whole worker (nobody waits behind it; its own final preempts its
    queued partial); with more, the share shrinks to ``share`` as 1/calls does. Never below
    ``base_ms``, never above ``cap_ms`` (0 = no cap)."""
    calls = max(1, calls)
    budget = max(share, 1.0 / calls) * max(1, workers)
    interval = max(float(base_ms), 1000.0 * calls * decode_s / budget)
    if cap_ms > 0:
        interval = min(interval, float(max(cap_ms, base_ms)))
    return int(round(interval))
