"""A serving process's numpy BLAS threads (engines.blas_threads), set with the other serving thread counts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from voicebot.config import Settings
from voicebot.engines import serve_threads


def _blas_threads() -> set[int]:
    return {int(pool["num_threads"]) for pool in threadpool_info() if pool.get("user_api") == "blas"}


def test_serve_threads_sets_numpy_blas_threads(settings: Settings) -> None:
    assert np.ones((64, 64)) @ np.ones((64, 64)) is not None  # numpy's BLAS is loaded
    before = threadpool_limits(limits=None)  # the limits as they are, to put back afterwards
    try:
        serve_threads(replace(settings, engines=replace(settings.engines, blas_threads=1)))
        assert _blas_threads() == {1}
        kept = _blas_threads()
        serve_threads(replace(settings, engines=replace(settings.engines, blas_threads=0)))  # 0: left alone
        assert _blas_threads() == kept
    finally:
        before.restore_original_limits()
