"""The one top-k used by every model, metric and pipeline.

Two entry points over the same Cython kernel (ext/_topk.pyx):

- :func:`topk_factors` for factor models: scores ``U @ V.T`` are produced batch by batch inside the
  kernel (single-threaded BLAS per OpenMP thread) and never materialised for all users;
- :func:`topk_scores` for models that produce a dense score block (EASE, item-kNN, ...).

- :func:`topk_history` for item-item models (EASE): scores ``X[users] @ W`` are accumulated
  per user in a thread-local buffer, again without a dense score block.

All exclude items given as a CSR pattern (the users' seen items) by setting their score to -inf,
return ``(ids int32, scores)`` of shape ``(n_rows, k)`` sorted best first, break ties by the lower
item index, and pad rows that have fewer than ``k`` candidates with id ``-1`` and score ``-inf``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys._ext import _topk
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import check_k, check_structure

_EMPTY = np.zeros(0, dtype=np.int32)
# Scores buffered per thread: about 16 MiB, 32..256 rows. Measured on 20k users x 10k/40k items:
# smaller batches starve the GEMM, larger ones stop paying (benchmarks/bench_topk.py).
_BUFFER_BYTES = 16 << 20


def rows_per_batch(n_cols: int) -> int:
    """Rows per dense block of scores over ``n_cols`` columns: about 64 MiB of float32."""
    return max(1, (64 << 20) // (4 * max(n_cols, 1)))


def _exclusion_arrays(exclude, n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    if exclude is None:
        return _EMPTY, _EMPTY
    if not sp.issparse(exclude) or exclude.format != "csr":
        raise TypeError("exclude must be a CSR matrix with one row per query row")
    if exclude.shape[0] != n_rows:
        raise ValueError(f"exclude has {exclude.shape[0]} rows but there are {n_rows} query rows")
    if exclude.shape[1] > n_cols:
        raise ValueError(f"exclude has {exclude.shape[1]} columns but there are {n_cols} items")
    check_structure(exclude, "exclude")  # the kernel walks indptr without the GIL
    indices = np.ascontiguousarray(exclude.indices, dtype=np.int32)
    if indices.size and (indices.min() < 0 or indices.max() >= n_cols):
        raise ValueError("exclude holds item indices outside [0, n_items)")
    return np.ascontiguousarray(exclude.indptr, dtype=np.int32), indices


def _outputs(n_rows: int, k: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    return np.empty((n_rows, k), dtype=np.int32), np.empty((n_rows, k), dtype=dtype)


def _raise_on_nan(nan_rows: int) -> None:
    if nan_rows:
        raise ValueError(f"scores of {nan_rows} rows hold NaN: the model produced invalid scores")


def topk_scores(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None,
                num_threads: int = 0, copy: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns of each row of a dense score block.

    Parameters
    ----------
    scores : ndarray (n_rows, n_items), float32 or float64
    k : int
        Clipped to ``n_items`` (then every item is returned, ranked).
    exclude : CSR (n_rows, n_items), optional
        Entries to exclude per row (seen items); their scores are treated as -inf.
    num_threads : int
        OpenMP threads, 0 for all cores.
    copy : bool
        When False, ``scores`` may be overwritten (excluded entries set to -inf).

    Returns
    -------
    ids : ndarray (n_rows, k) int32, best first, ``-1`` where a row ran out of candidates.
    values : ndarray (n_rows, k), the matching scores (``-inf`` for padding).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {scores.shape}")
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float32)
    elif copy or not scores.flags.c_contiguous or not scores.flags.writeable:
        scores = np.array(scores, order="C", copy=True)
    n_rows, n_items = scores.shape
    k = check_k(k, n_items)
    indptr, indices = _exclusion_arrays(exclude, n_rows, n_items)
    ids, values = _outputs(n_rows, k, scores.dtype)
    nan_rows = _topk.topk_dense(scores, k, indptr, indices, resolve_num_threads(num_threads),
                                ids, values)
    _raise_on_nan(nan_rows)
    return ids, values


def topk_factors(user_factors: np.ndarray, item_factors: np.ndarray, k: int,
                 exclude: sp.csr_matrix | None = None, num_threads: int = 0,
                 batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items of ``user_factors @ item_factors.T`` per row, without the full matrix.

    Parameters
    ----------
    user_factors : ndarray (n_rows, f)
    item_factors : ndarray (n_items, f), same dtype (float32 or float64)
    k, exclude, num_threads :
        as in :func:`topk_scores`.
    batch_size : int, optional
        Rows scored per GEMM; default sizes one thread's buffer to about 16 MiB.

    Returns
    -------
    ids, values : as in :func:`topk_scores`.
    """
    user_factors = np.asarray(user_factors)
    item_factors = np.asarray(item_factors)
    if user_factors.ndim != 2 or item_factors.ndim != 2:
        raise ValueError("user_factors and item_factors must be 2-D")
    if user_factors.shape[1] != item_factors.shape[1]:
        raise ValueError(f"factor sizes differ: users have {user_factors.shape[1]}, "
                         f"items {item_factors.shape[1]}")
    dtype = np.result_type(user_factors.dtype, item_factors.dtype)
    if dtype not in (np.float32, np.float64):
        dtype = np.dtype(np.float32)
    user_factors = np.ascontiguousarray(user_factors, dtype=dtype)
    item_factors = np.ascontiguousarray(item_factors, dtype=dtype)
    n_rows, n_items = user_factors.shape[0], item_factors.shape[0]
    if n_items == 0:
        raise ValueError("item_factors is empty")
    k = check_k(k, n_items)
    indptr, indices = _exclusion_arrays(exclude, n_rows, n_items)
    if batch_size is None:
        batch_size = int(np.clip(_BUFFER_BYTES // (n_items * dtype.itemsize), 32, 256))
    elif batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ids, values = _outputs(n_rows, k, dtype)
    if user_factors.shape[1] == 0:  # BLAS cannot take a zero inner dimension
        user_factors = np.zeros((n_rows, 1), dtype=dtype)
        item_factors = np.zeros((n_items, 1), dtype=dtype)
    with blas_limit(1):
        nan_rows = _topk.topk_factors(user_factors, item_factors, k, indptr, indices,
                                      resolve_num_threads(num_threads), int(batch_size),
                                      ids, values)
    _raise_on_nan(nan_rows)
    return ids, values


def topk_history(history: sp.csr_matrix, weights: np.ndarray, k: int,
                 exclude: sp.csr_matrix | None = None,
                 num_threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` items of ``history @ weights`` per row (item-item models such as EASE).

    Parameters
    ----------
    history : CSR (n_rows, n_items)
        The users' rows of the history matrix (float32 values, int32 sorted indices).
    weights : ndarray (n_items, n_items), float32 or float64
        Dense item-item weights ``W``; scores are ``x_u @ W``.
    k, exclude, num_threads :
        as in :func:`topk_scores`.

    Returns
    -------
    ids, values : as in :func:`topk_scores`.
    """
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.dtype not in (np.float32, np.float64):
        raise TypeError("weights must be a 2-D float32 or float64 array")
    if not weights.flags.c_contiguous:
        raise ValueError("weights must be C-contiguous")
    if not sp.issparse(history) or history.format != "csr":
        raise TypeError("history must be a CSR matrix")
    if history.shape[1] != weights.shape[0]:
        raise ValueError(f"history has {history.shape[1]} item columns but weights has "
                         f"{weights.shape[0]} rows")
    if history.dtype != np.float32 or history.indices.dtype != np.int32 \
            or history.indptr.dtype != np.int32:
        raise TypeError("history must hold float32 values and int32 indices")
    n_rows, n_items = history.shape[0], weights.shape[1]
    k = check_k(k, n_items)
    indptr, indices = _exclusion_arrays(exclude, n_rows, n_items)
    ids, values = _outputs(n_rows, k, weights.dtype)
    nan_rows = _topk.topk_history(history.indptr, history.indices, history.data, weights, k,
                                  indptr, indices, resolve_num_threads(num_threads), ids, values)
    _raise_on_nan(nan_rows)
    return ids, values
