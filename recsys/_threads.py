"""Thread-count resolution and BLAS thread limits around our own OpenMP loops."""

from __future__ import annotations

import math
import numbers
import os
import time
from contextlib import AbstractContextManager
from functools import lru_cache

from threadpoolctl import ThreadpoolController

from recsys._ext._openmp import max_threads


def available_cores() -> int:
    """The cores this process may use: its CPU affinity mask, capped by a cgroup CPU quota
    (a container limited to 1.5 CPUs gets 1; v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
    quota = _cgroup_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def _cgroup_quota(root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs granted by the cgroup's quota, or None when unlimited / unknown."""
    try:
        with open(f"{root}/cpu.max") as fh:  # cgroup v2: "max 100000" or "150000 100000"
            quota, period = fh.read().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        with open(f"{root}/cpu/cpu.cfs_quota_us") as q, \
                open(f"{root}/cpu/cpu.cfs_period_us") as p:
            quota, period = int(q.read()), int(p.read())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _cpu_times() -> list[tuple[int, int]] | None:
    """(busy, total) jiffies of every CPU from /proc/stat (None off Linux)."""
    try:
        with open("/proc/stat") as fh:
            lines = [line.split() for line in fh if line.startswith("cpu") and
                     line[3:4].isdigit()]
    except OSError:
        return None
    out = []
    for parts in lines:
        values = [int(v) for v in parts[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        out.append((sum(values) - idle, sum(values)))
    return out


def idle_cores(sample_s: float = 0.05) -> float | None:
    """How many of this process's cores sat idle over the last ``sample_s`` seconds
    (``/proc/stat``; None where it cannot be read). Counts CPUs in the affinity mask only."""
    first = _cpu_times()
    if not first:
        return None
    time.sleep(sample_s)
    second = _cpu_times()
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        range(len(first))
    idle = 0.0
    for cpu in allowed:
        if cpu >= len(first) or cpu >= len(second):
            continue
        busy = second[cpu][0] - first[cpu][0]
        total = second[cpu][1] - first[cpu][1]
        idle += 1.0 - busy / total if total > 0 else 1.0
    return idle


#: Below this many floating-point operations a LAPACK/BLAS call runs on one thread: threads
#: do not pay there (the measurement: benchmarks/README.md, "Measurements behind design choices"),
#: and sampling the idle cores would cost more than the call.
THREADED_FLOPS = 5e9


def blas_threads(num_threads: int | None, flops: float = float("inf")) -> int:
    """Threads for a LAPACK/BLAS call of about ``flops`` operations: ``num_threads`` when
    given; for ``0``/``None``, 1 below :data:`THREADED_FLOPS`, else the available cores that
    are idle right now (at least 1). OpenBLAS threads spin and wait on each other, so one
    preempted by a competing process stalls them all (a 2-thread Cholesky with the second core
    busy was reported 28-65x slower than on 1 thread), while our OpenMP kernels, dynamically
    scheduled, only slow down in proportion."""
    if num_threads:
        return resolve_num_threads(num_threads)
    n = resolve_num_threads(0)
    if n == 1 or flops < THREADED_FLOPS:
        return 1
    idle = idle_cores(0.02)
    return n if idle is None else int(min(n, max(1, math.floor(idle + 0.25))))


def resolve_num_threads(num_threads: int | None) -> int:
    """Number of OpenMP threads to use: ``0``/``None`` means all available cores.

    "All" is ``omp_get_max_threads()`` (which honours ``OMP_NUM_THREADS``; 1 in a build without
    OpenMP) capped by :func:`available_cores` (affinity mask and cgroup CPU quota) unless
    ``OMP_NUM_THREADS`` asks for more.
    """
    if num_threads is None or num_threads == 0:
        limit = max(1, max_threads())
        return limit if "OMP_NUM_THREADS" in os.environ else min(limit, available_cores())
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
