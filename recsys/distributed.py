"""Row-sharded work on a Dask cluster: the half-steps of row-separable models and batch scoring.

A half-step of ALS-type training solves every row of one side against the other side's
factors, each row independently. :func:`map_row_blocks` cuts the CSR rows into contiguous
blocks, broadcasts the shared arrays (the other side's factors) to the workers once, runs the
same Cython kernel on each block in a task and returns the blocks in order, so a distributed
half-step computes exactly what the single-process one does (the kernels draw their per-row
randomness from the global row index). :func:`dask_client` opens a client on a scheduler
address or on a LocalCluster of single-threaded worker processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger(__name__)


@contextmanager
def dask_client(scheduler=None, n_workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client``: ``scheduler`` itself when it is one, a client of the
    ``tcp://host:port`` address it names, or (None / ``"local"``) of a LocalCluster of
    ``n_workers`` single-threaded processes (default: the cores); closed on exit unless it was
    passed in."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None and not isinstance(scheduler, str):
        yield scheduler
        return
    cluster = None
    if scheduler in (None, "local"):
        cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1,
                               threads_per_worker=1, processes=True, dashboard_address=None)
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


@dataclass(frozen=True)
class Shards:
    """An open cluster and how work is cut for it: ``n_shards`` blocks per step, ``threads``
    OpenMP threads for the kernel inside each task (the workers' own)."""

    client: Any
    n_shards: int
    threads: int


@contextmanager
def open_shards(cluster=None, n_shards: int | None = None) -> Iterator[Shards | None]:
    """``None`` when ``cluster`` is None (the work stays in this process); else the
    :class:`Shards` of :func:`dask_client` ``(cluster)``, ``n_shards`` defaulting to two per
    worker. Models take ``fit(X, cluster=..., n_shards=...)`` and open it once per fit."""
    if cluster is None:
        yield None
        return
    with dask_client(cluster) as client:
        yield Shards(client, n_shards or 2 * _n_workers(client), _worker_threads(client))


def shard_bounds(n_rows: int, n_shards: int) -> np.ndarray:
    """Boundaries of ``n_shards`` contiguous, near-equal row blocks (``n_shards + 1`` ints)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    return np.linspace(0, n_rows, min(n_shards, max(n_rows, 1)) + 1).astype(np.int64)


def _run_block(fn, indptr, indices, entries, rows, shared, scalars, start):
    """One task: the block's CSR structure rebased to start at 0."""
    local = (indptr - indptr[0]).astype(np.int32)
    return fn(local, indices, entries, rows, start=start, **shared, **scalars)


def map_row_blocks(client, fn: Callable, X: sp.csr_matrix, n_shards: int,
                   entries: dict[str, np.ndarray] | None = None,
                   rows: dict[str, np.ndarray] | None = None,
                   shared: dict[str, np.ndarray] | None = None, **scalars) -> list:
    """``fn`` on each row block of ``X`` as a Dask task, results in block order.

    ``fn(indptr, indices, entries, rows, start=..., **shared, **scalars)`` receives the block's
    CSR structure (``indptr`` from 0), the block's slices of the per-entry arrays ``entries``
    (aligned with ``X.indices``) and of the per-row arrays ``rows``, the broadcast ``shared``
    arrays (sent to every worker once) and the block's first global row ``start``.
    """
    entries, rows, shared = entries or {}, rows or {}, shared or {}
    bounds = shard_bounds(X.shape[0], n_shards)
    shared_futures = {name: client.scatter(value, broadcast=True)
                      for name, value in shared.items()}
    futures = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        lo, hi = X.indptr[start], X.indptr[stop]
        futures.append(client.submit(
            _run_block, fn, X.indptr[start:stop + 1], X.indices[lo:hi],
            {name: value[lo:hi] for name, value in entries.items()},
            {name: value[start:stop] for name, value in rows.items()},
            shared_futures, scalars, int(start), pure=False))
    return client.gather(futures)


def update_row_blocks(shards: Shards, fn: Callable, X: sp.csr_matrix,
                      outputs: list[tuple[np.ndarray, str]], **kwargs) -> list[tuple]:
    """:func:`map_row_blocks` over ``shards`` (``fn`` also gets ``threads``), then each
    block's results written back in place: the block's i-th returned array goes into
    ``outputs[i]`` (``(array, "rows")``: rows ``start:stop``; ``(array, "entries")``: the
    block's stored entries). Returns what each block returned beyond ``outputs`` (e.g. a
    count of failed rows)."""
    blocks = map_row_blocks(shards.client, fn, X, shards.n_shards, threads=shards.threads,
                            **kwargs)
    bounds = shard_bounds(X.shape[0], shards.n_shards)
    extras = []
    for result, start, stop in zip(blocks, bounds[:-1], bounds[1:]):
        values = result if isinstance(result, tuple) else (result,)
        for (array, kind), value in zip(outputs, values):
            if kind == "rows":
                array[start:stop] = value
            else:
                array[X.indptr[start]:X.indptr[stop]] = value
        extras.append(values[len(outputs):])
    return extras


def _worker_threads(client) -> int:
    """Threads per worker of ``client``'s cluster (the kernels inside a task use that many)."""
    info = client.scheduler_info().get("workers", {})
    return max((int(w.get("nthreads", 1)) for w in info.values()), default=1)


def _n_workers(client) -> int:
    return max(len(client.scheduler_info().get("workers", {})), 1)


__all__ = ["Shards", "dask_client", "map_row_blocks", "open_shards", "shard_bounds",
           "update_row_blocks"]
