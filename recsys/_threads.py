"""Thread-count resolution and BLAS thread limits around our own OpenMP loops."""

from __future__ import annotations

import numbers
from contextlib import AbstractContextManager
from functools import lru_cache

from threadpoolctl import ThreadpoolController

from recsys._ext._openmp import max_threads


def resolve_num_threads(num_threads: int | None) -> int:
    """Number of OpenMP threads to use: ``0``/``None`` means all available cores.

    "All" is ``omp_get_max_threads()``, which honours ``OMP_NUM_THREADS`` and is 1 in a build
    without OpenMP.
    """
    if num_threads is None or num_threads == 0:
        return max(1, max_threads())
    if isinstance(num_threads, bool) or not isinstance(num_threads, numbers.Integral):
        raise TypeError(f"num_threads must be an int, got {type(num_threads).__name__}")
    if num_threads < 0:
        raise ValueError(f"num_threads must be >= 0 (0 means all cores), got {num_threads}")
    return int(num_threads)


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    return ThreadpoolController()


def blas_limit(limit: int = 1) -> AbstractContextManager:
    """Context manager capping BLAS threads (all loaded OpenBLAS/MKL copies) at ``limit``.

    Used around our parallel loops so BLAS worker threads do not fight OpenMP threads for cores.
    """
    return _controller().limit(limits=limit, user_api="blas")
