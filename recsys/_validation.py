"""Input checks shared by data, models and metrics: every bad input gets a named, clear error."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import scipy.sparse as sp


def as_csr(X, name: str = "X", *, allow_empty: bool = False, nonnegative: bool = False,
           n_items: int | None = None) -> sp.csr_matrix:
    """Return ``X`` as a canonical CSR matrix (float32 data, int32 indices, sorted, no zeros).

    Accepts an :class:`~recsys.data.Interactions` (its matrix), any SciPy sparse matrix or array
    (non-CSR is converted with a warning) or a dense 2-D array (converted with a warning). Copies
    only when something has to change.

    Raises
    ------
    TypeError
        for anything that is not a matrix, or a non-numeric dtype.
    ValueError
        for NaN/inf values, an empty matrix (unless ``allow_empty``), negative values when
        ``nonnegative``, or a column count different from ``n_items``.
    """
    X = getattr(X, "matrix", X)  # Interactions
    if isinstance(X, np.ndarray | np.matrix):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (users x items), got shape {X.shape}")
        warnings.warn(f"{name} is a dense array; converting to CSR", stacklevel=3)
        X = sp.csr_matrix(np.asarray(X))
    elif not sp.issparse(X):
        raise TypeError(f"{name} must be a scipy.sparse CSR matrix (users x items), "
                        f"got {type(X).__name__}")
    elif X.format != "csr":
        warnings.warn(f"{name} is in {X.format.upper()} format; converting to CSR "
                      "(pass CSR to avoid the copy)", stacklevel=3)
        X = X.tocsr()
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (users x items), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
    if not allow_empty and (X.shape[0] == 0 or X.shape[1] == 0 or X.nnz == 0):
        raise ValueError(f"{name} is empty (shape {X.shape}, {X.nnz} stored values)")
    if n_items is not None and X.shape[1] != n_items:
        raise ValueError(f"{name} has {X.shape[1]} item columns but the model was fitted on "
                         f"{n_items} items")
    if X.dtype != np.float32 or X.indices.dtype != np.int32 or X.indptr.dtype != np.int32:
        if X.nnz >= 2**31:
            raise ValueError(f"{name} has {X.nnz} stored values; at most 2**31 - 1 are supported")
        X = sp.csr_matrix(
            (X.data.astype(np.float32), X.indices.astype(np.int32), X.indptr.astype(np.int32)),
            shape=X.shape)
    if not np.isfinite(X.data).all():
        bad = int(np.count_nonzero(~np.isfinite(X.data)))
        raise ValueError(f"{name} holds {bad} NaN or infinite values")
    if nonnegative and X.nnz and X.data.min() < 0:
        raise ValueError(f"{name} holds negative values ({int((X.data < 0).sum())} entries) but "
                         "this model needs nonnegative ones")
    if not X.has_sorted_indices:
        X = X.copy()
        X.sort_indices()
    if X.nnz and not X.data.all():
        X = X.copy()
        X.eliminate_zeros()
    return X


def check_users(users, n_rows: int, name: str = "users") -> tuple[np.ndarray, bool]:
    """Validate row indices; returns ``(int32 array, was_scalar)``."""
    scalar = np.ndim(users) == 0
    arr = np.atleast_1d(np.asarray(users))
    if arr.ndim != 1:
        raise ValueError(f"{name} must be an int or a 1-D array of row indices")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integer row indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0:
            raise ValueError(f"{name} holds negative index {lo}")
        if hi >= n_rows:
            raise ValueError(
                f"{name} holds index {hi} but the history matrix X has only {n_rows} rows. "
                "`users` are row indices into the full X: pass X itself, not X[users]")
    return arr.astype(np.int32), scalar


def check_k(k, n_candidates: int) -> int:
    """Validate ``k``; a ``k`` above the number of candidates is clipped to it."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    return int(min(k, n_candidates))


def check_random_state(random_state) -> np.random.Generator:
    """An ``np.random.Generator`` from ``None``, an int seed or a Generator."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None or isinstance(random_state, numbers.Integral):
        return np.random.default_rng(random_state)
    raise TypeError("random_state must be None, an int or a numpy.random.Generator, "
                    f"got {type(random_state).__name__}")
