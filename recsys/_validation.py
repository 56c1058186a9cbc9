"""Input checks shared by data, models and metrics: every bad input gets a named, clear error.

Every public entry point funnels its matrices through :func:`as_csr` before any kernel runs
(and so before any kernel drops the GIL): the structure of a sparse matrix is checked in Python
first, since a corrupt ``indptr``/``indices`` pair is what makes compiled code read or write
out of bounds.
"""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
import scipy.sparse as sp

from recsys._ext._csr import row_order

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes: float, what: str, hint: str = "") -> None:
    """Raise ``MemoryError`` naming ``what`` and its size when ``nbytes`` would not fit.

    Called before large allocations (and before compiled code allocates scratch buffers), so
    that an impossible request fails at once instead of being killed by the OOM killer later.
    """
    free = available_memory()
    if nbytes >= 2**63 or (free is not None and nbytes > 0.9 * free):
        have = "" if free is None else f" but only {free / 2**30:.1f} GiB are available"
        raise MemoryError(f"{what} needs {nbytes / 2**30:.1f} GiB{have}"
                          + (f". {hint}" if hint else ""))


def check_structure(X, name: str = "X") -> None:
    """Check that a sparse matrix's index arrays describe a valid matrix of its shape.

    Compressed formats (CSR, CSC): ``indptr`` has one entry per major row plus one, starts at
    0, never decreases and ends at the number of stored values; every minor index lies in
    ``[0, n_minor)``. COO: every row and column index is in range. Raises ``ValueError``
    naming the first problem found. Costs O(nnz) and touches nothing out of bounds.
    """
    fmt = X.format
    if fmt in ("csr", "csc"):
        n_major, n_minor = X.shape if fmt == "csr" else X.shape[::-1]
        major, minor = ("row", "column") if fmt == "csr" else ("column", "row")
        indptr, indices, data = X.indptr, X.indices, X.data
        for part, arr in (("indptr", indptr), ("indices", indices)):
            if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(f"{name}.{part} must be a 1-D integer array, got "
                                 f"{arr.dtype} with shape {arr.shape}")
        if data.ndim != 1 or data.shape != indices.shape:
            raise ValueError(f"{name} has {data.size} values but {indices.size} indices")
        if indptr.size != n_major + 1:
            raise ValueError(f"{name}.indptr has {indptr.size} entries; a {fmt.upper()} matrix "
                             f"of shape {X.shape} needs {n_major + 1}")
        if indptr[0] != 0:
            raise ValueError(f"{name}.indptr must start at 0, got {indptr[0]}")
        if n_major and (np.diff(indptr) < 0).any():
            bad = int(np.flatnonzero(np.diff(indptr) < 0)[0])
            raise ValueError(f"{name}.indptr decreases at {major} {bad} ({indptr[bad]} -> "
                             f"{indptr[bad + 1]}): it must be non-decreasing")
        if indptr[-1] != indices.size:
            raise ValueError(f"{name}.indptr ends at {indptr[-1]} but {indices.size} values "
                             "are stored")
        pairs = ((minor, indices, n_minor),)
    elif fmt == "coo":
        row, col = X.coords if hasattr(X, "coords") else (X.row, X.col)
        if row.shape != col.shape or X.data.shape != row.shape:
            raise ValueError(f"{name}: row, column and value arrays differ in length")
        pairs = (("row", row, X.shape[0]), ("column", col, X.shape[1]))
    else:
        return
    for what, idx, bound in pairs:
        if idx.size:
            lo, hi = int(idx.min()), int(idx.max())
            if lo < 0:
                raise ValueError(f"{name} holds a negative {what} index ({lo})")
            if hi >= bound:
                raise ValueError(f"{name} holds {what} index {hi} but has only {bound} "
                                 f"{what}s (shape {X.shape})")


def as_csr(X, name: str = "X", *, allow_empty: bool = False, nonnegative: bool = False,
           n_items: int | None = None) -> sp.csr_matrix:
    """Return ``X`` as a canonical CSR matrix (float32 data, int32 indices, sorted, no
    duplicates, no explicit zeros).

    Accepts an :class:`~recsys.data.Interactions` (its matrix), any SciPy sparse matrix or array
    (non-CSR is converted with a warning) or a dense 2-D array (converted with a warning). The
    index structure is checked before anything reads it (:func:`check_structure`). Duplicate
    entries are summed (SciPy's meaning of a repeated coordinate), with a warning; unsorted
    indices are sorted; explicit zeros are dropped. Copies only when something has to change.

    Raises
    ------
    TypeError
        for anything that is not a matrix, or a non-numeric dtype.
    ValueError
        for a corrupt index structure, NaN/inf values, values beyond float32's range, an empty
        matrix (no nonzero value; unless ``allow_empty``), negative values when
        ``nonnegative``, or a column count different from ``n_items``.
    """
    X = getattr(X, "matrix", X)  # Interactions
    if isinstance(X, np.ndarray | np.matrix):
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (users x items), got shape {X.shape}")
        if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
            raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
        warnings.warn(f"{name} is a dense array; converting to CSR", stacklevel=3)
        X = sp.csr_matrix(np.asarray(X))
    elif not sp.issparse(X):
        raise TypeError(f"{name} must be a scipy.sparse CSR matrix (users x items), "
                        f"got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (users x items), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TypeError(f"{name} must hold numbers, got dtype {X.dtype}")
    if np.issubdtype(X.dtype, np.complexfloating):
        raise TypeError(f"{name} holds complex values (dtype {X.dtype})")
    check_structure(X, name)
    if X.format != "csr":
        warnings.warn(f"{name} is in {X.format.upper()} format; converting to CSR "
                      "(pass CSR to avoid the copy)", stacklevel=3)
        X = X.tocsr()
    if n_items is not None and X.shape[1] != n_items:
        raise ValueError(f"{name} has {X.shape[1]} item columns but the model was fitted on "
                         f"{n_items} items")
    if X.nnz >= 2**31:
        raise ValueError(f"{name} has {X.nnz} stored values; at most 2**31 - 1 are supported")
    data = X.data
    if data.size and np.issubdtype(data.dtype, np.floating) and not _all_finite(data):
        bad = int(np.count_nonzero(~np.isfinite(data)))
        raise ValueError(f"{name} holds {bad} NaN or infinite values")
    if data.dtype.kind == "f" and data.dtype.itemsize > 4:
        check_float32_range(data, name)
    if nonnegative and data.size and data.min() < 0:
        raise ValueError(f"{name} holds negative values ({int((data < 0).sum())} entries) but "
                         "this model needs nonnegative ones")
    if X.dtype != np.float32 or X.indices.dtype != np.int32 or X.indptr.dtype != np.int32:
        X = sp.csr_matrix(
            (X.data.astype(np.float32), X.indices.astype(np.int32), X.indptr.astype(np.int32)),
            shape=X.shape)
    unsorted, duplicates = _order_counts(X)  # one pass over the indices for both
    if unsorted:
        X = X.copy()
        X.has_sorted_indices = False
        X.sort_indices()
        duplicates = _order_counts(X)[1]  # repeats are adjacent only once sorted
    if duplicates:
        warnings.warn(f"{name} holds {duplicates} duplicate (row, column) entries; summing "
                      "them (SciPy's meaning)", stacklevel=3)
        X = X.copy()
        X.has_canonical_format = False
        X.sum_duplicates()
        if not np.isfinite(X.data).all():
            raise ValueError(f"{name}: summing duplicate entries overflows float32")
    if X.nnz and not X.data.all():
        X = X.copy()
        X.eliminate_zeros()
    if not allow_empty and (X.shape[0] == 0 or X.shape[1] == 0 or X.nnz == 0):
        raise ValueError(f"{name} is empty (shape {X.shape}, no nonzero value stored)")
    X.has_sorted_indices = True
    return X


def _all_finite(values: np.ndarray, chunk: int = 1 << 20) -> bool:
    """``np.isfinite(values).all()`` chunk by chunk (no boolean array the size of values)."""
    return all(np.isfinite(values[i:i + chunk]).all() for i in range(0, values.size, chunk))


def _order_counts(X: sp.csr_matrix) -> tuple[int, int]:
    """``(unsorted, duplicate)`` pairs of consecutive stored values within a row, checked in
    one pass (never the flags) with no temporary the size of the matrix; duplicates are all
    counted only when the rows are sorted."""
    return (0, 0) if X.nnz < 2 else row_order(X.indptr, X.indices)


def check_float32_range(values: np.ndarray, what: str) -> None:
    """``ValueError`` when ``values`` hold a magnitude float32 cannot represent."""
    if values.size and np.abs(values).max() > _FLOAT32_MAX:
        raise ValueError(f"{what} holds values beyond float32's range (largest magnitude "
                         f"{np.abs(values).max():.3g} > {_FLOAT32_MAX:.3g}); rescale them")


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
        if hi >= n_rows and name != "users":
            raise ValueError(f"{name} holds index {hi} but there are only {n_rows}")
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
