"""Sparse-matrix helpers shared by the data layer, the models and the kernels (below all of
them: this module imports nothing from recsys but a kernel)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys._ext._csr import transpose


def row_of_values(X: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """Row index of every stored value of a CSR matrix (or of the matrix with this
    ``indptr``)."""
    indptr = X.indptr if sp.issparse(X) else np.asarray(X)
    return np.repeat(np.arange(len(indptr) - 1, dtype=np.int32), np.diff(indptr))


def column_counts(X: sp.csr_matrix, power: int = 0, chunk: int = 1 << 18) -> np.ndarray:
    """Per column, the sum over its stored values of ``x ** power``: the count of values
    (``power=0``, int64), their sum (1) or their sum of squares (2, float64).

    ``np.bincount(X.indices, X.data ** power, minlength=n_cols)`` chunk by chunk, so that no
    int64 / float64 copy of all the indices or values is made (8 bytes per value each).
    """
    n = X.shape[1]
    out = np.zeros(n, dtype=np.int64 if power == 0 else np.float64)
    for start in range(0, X.indices.size, chunk):
        part = slice(start, start + chunk)
        weights = None if power == 0 else X.data[part].astype(np.float64) ** power
        out += np.bincount(X.indices[part], weights, minlength=n)
    return out


def transpose_csr(X: sp.csr_matrix) -> sp.csr_matrix:
    """``X.T`` as a canonical CSR (sorted rows) of a canonical CSR ``X``, allocating only the
    result (``X.T.tocsr()`` peaks at 2.5 times the matrix)."""
    indptr, indices, data = transpose(X.indptr, X.indices, X.data, X.shape[1])
    T = sp.csr_matrix((data, indices, indptr), shape=X.shape[::-1])
    T.has_sorted_indices = True
    return T


def select_entries(X: sp.csr_matrix, mask: np.ndarray) -> sp.csr_matrix:
    """The stored values of CSR ``X`` where ``mask`` (one bool per value) is True, as a CSR
    matrix of X's shape (row order kept, so sorted rows stay sorted)."""
    counts = np.bincount(row_of_values(X)[mask], minlength=X.shape[0])
    indptr = np.zeros(X.shape[0] + 1, dtype=np.int32)
    np.cumsum(counts, out=indptr[1:])
    sub = sp.csr_matrix((X.data[mask], X.indices[mask], indptr), shape=X.shape)
    sub.has_sorted_indices = X.has_sorted_indices
    return sub


__all__ = ["column_counts", "row_of_values", "select_entries", "transpose_csr"]
