"""Neighbourhood-sparse EASE: one small ridge regression per item column.

For item j with regressor set N_j (sorted, size m, j not in it), column j of B on N_j solves
    (G[N_j, N_j] + l2 I) b = G[N_j, j]
(EASE's column-wise form restricted to a support). G is the sparse Gram X^T X in CSR with sorted
indices. Columns are independent: items in parallel, per-thread scratch, LAPACK ?posv per item.
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_lapack cimport dposv, sposv

from _sorted cimport find

import numpy as np

ctypedef fused floating:
    float
    double


cdef int _solve_column(const int[::1] indptr, const int[::1] indices, const floating[::1] data,
                       const int* neigh, int m, int j, double l2, int* pos, floating* A,
                       floating* b) noexcept nogil:
    cdef Py_ssize_t a, q, start, length, found
    cdef int col, info = 0, one = 1
    cdef char uplo = b'U'
    for a in range(m * m):
        A[a] = 0
    for a in range(m):
        b[a] = 0
        pos[neigh[a]] = <int>a
    for a in range(m):
        start = indptr[neigh[a]]
        length = indptr[neigh[a] + 1] - start
        if length > 8 * m:  # long (popular) row: look the m regressors up instead of scanning
            for q in range(m):
                found = find(&indices[start], length, neigh[q])
                if found >= 0:
                    A[a * m + q] = data[start + found]
            found = find(&indices[start], length, j)
            if found >= 0:
                b[a] = data[start + found]
        else:
            for q in range(start, start + length):
                col = indices[q]
                if col == j:
                    b[a] = data[q]
                elif pos[col] >= 0:
                    A[a * m + pos[col]] = data[q]
        A[a * m + a] += <floating>l2
    for a in range(m):
        pos[neigh[a]] = -1
    if floating is float:
        sposv(&uplo, &m, &one, A, &m, b, &m, &info)
    else:
        dposv(&uplo, &m, &one, A, &m, b, &m, &info)
    return info


def sparse_ridge_columns(const int[::1] indptr, const int[::1] indices,
                         const floating[::1] data, const int[:, ::1] neighbors, double l2,
                         int num_threads):
    """Weights (n_items x m): row j holds column j of B on ``neighbors[j]``."""
    cdef Py_ssize_t n = neighbors.shape[0], j, i, t
    cdef int m = <int>neighbors.shape[1], failed = 0, no_memory = 0
    dtype = np.float32 if floating is float else np.float64
    out_arr = np.zeros((n, m), dtype=dtype)
    cdef floating[:, ::1] out = out_arr
    cdef int* pos
    cdef floating* A
    cdef floating* b
    if indptr.shape[0] != n + 1 or data.shape[0] != indices.shape[0]:
        raise ValueError("inconsistent shapes")
    with nogil, parallel(num_threads=num_threads):
        pos = <int*>malloc(<size_t>n * sizeof(int))
        A = <floating*>malloc(<size_t>m * m * sizeof(floating))
        b = <floating*>malloc(<size_t>m * sizeof(floating))
        if pos != NULL:
            for t in range(n):
                pos[t] = -1
        try:
            for j in prange(n, schedule="dynamic", chunksize=8):
                if pos == NULL or A == NULL or b == NULL:
                    no_memory += 1
                    continue
                if _solve_column(indptr, indices, data, &neighbors[j, 0], m, <int>j, l2, pos,
                                 A, b) != 0:
                    failed += 1
                else:
                    for i in range(m):
                        out[j, i] = b[i]
        finally:
            free(pos)
            free(A)
            free(b)
    if no_memory:
        raise MemoryError(f"could not allocate the per-thread scratch of the neighbourhood "
                          f"solves ({(4.0 * n + 1.0 * m * m * sizeof(floating)) / 2**20:.1f} MiB)")
    if failed:
        raise np.linalg.LinAlgError(f"{failed} neighbourhood systems were not positive definite")
    return out_arr
