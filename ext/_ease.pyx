"""Neighbourhood-sparse EASE: one small ridge regression per item column.

For item j with regressor set N_j (sorted, size m, j not in it), column j of B on N_j solves
    (G[N_j, N_j] + l2 I) b = G[N_j, j]
(EASE's column-wise form restricted to a support), G = X^T X. The full sparse Gram is never
built (at 10^5 items it outgrows memory): the caller computes dense blocks of G's rows and
``fill_systems`` copies each row's entries into every system that has the row's item in its
support; ``solve_systems`` then solves the systems in parallel (LAPACK ?posv per item).
"""

from cython.parallel cimport prange
from scipy.linalg.cython_lapack cimport dposv, sposv

import numpy as np

ctypedef fused floating:
    float
    double


def fill_systems(const floating[:, ::1] gram, const int[::1] entry_row,
                 const int[::1] entry_item, const int[::1] entry_pos,
                 const int[:, ::1] support, const int[::1] items, floating[:, :, ::1] A,
                 floating[:, ::1] b, int num_threads) -> None:
    """Row ``entry_row[t]`` of the Gram block ``gram`` is row ``entry_pos[t]`` of system
    ``entry_item[t]``: ``A[j, p, :] = gram[r, support[j]]``, ``b[j, p] = gram[r, items[j]]``.

    ``gram``: (rows, n_items) dense rows of G; ``support``: (g, m) column indices; ``items``:
    (g,) the systems' own items; ``A`` (g, m, m) and ``b`` (g, m) are filled in place. Each
    (j, p) pair must appear once, so no two threads write the same row.
    """
    cdef Py_ssize_t n_entries = entry_row.shape[0], t, q
    cdef Py_ssize_t g = support.shape[0], m = support.shape[1], n_items = gram.shape[1]
    cdef int r, j, p
    if entry_item.shape[0] != n_entries or entry_pos.shape[0] != n_entries:
        raise ValueError("entry arrays must have one length")
    if (A.shape[0] != g or A.shape[1] != m or A.shape[2] != m or b.shape[0] != g
            or b.shape[1] != m or items.shape[0] != g):
        raise ValueError(f"A must be ({g}, {m}, {m}), b ({g}, {m}), items ({g},)")
    for t in range(n_entries):
        if not (0 <= entry_row[t] < gram.shape[0] and 0 <= entry_item[t] < g
                and 0 <= entry_pos[t] < m):
            raise ValueError(f"entry {t} out of range")
    for t in range(g):
        if not 0 <= items[t] < n_items:
            raise ValueError(f"item {items[t]} out of range for {n_items} items")
        for q in range(m):
            if not 0 <= support[t, q] < n_items:
                raise ValueError(f"support item {support[t, q]} out of range")
    for t in prange(n_entries, nogil=True, schedule="static", num_threads=num_threads):
        r = entry_row[t]
        j = entry_item[t]
        p = entry_pos[t]
        for q in range(m):
            A[j, p, q] = gram[r, support[j, q]]
        b[j, p] = gram[r, items[j]]


cdef int _posv(floating* A, floating* b, int m, double l2) noexcept nogil:
    """Cholesky solve of (A + l2 I) x = b for one symmetric m x m system, in place."""
    cdef int a, one = 1, info = 0
    cdef char uplo = b'U'
    for a in range(m):
        A[a * m + a] += <floating>l2
    if floating is float:
        sposv(&uplo, &m, &one, A, &m, b, &m, &info)
    else:
        dposv(&uplo, &m, &one, A, &m, b, &m, &info)
    return info


def solve_systems(floating[:, :, ::1] A, floating[:, ::1] b, double l2,
                  int num_threads) -> None:
    """Solve ``(A[j] + l2 I) x = b[j]`` for every j in place (``b[j]`` becomes x; ``A[j]``
    its Cholesky factor). Raises ``LinAlgError`` when a system is not positive definite."""
    cdef Py_ssize_t g = A.shape[0], j
    cdef int m = <int>A.shape[1], failed = 0
    if A.shape[2] != m or b.shape[0] != g or b.shape[1] != m:
        raise ValueError(f"A must be (g, m, m) and b (g, m), got A ({g}, {A.shape[1]}, "
                         f"{A.shape[2]}) and b ({b.shape[0]}, {b.shape[1]})")
    if m == 0:
        return
    for j in prange(g, nogil=True, schedule="dynamic", chunksize=8, num_threads=num_threads):
        if _posv(&A[j, 0, 0], &b[j, 0], m, l2) != 0:
            failed += 1
    if failed:
        raise np.linalg.LinAlgError(f"{failed} neighbourhood systems were not positive definite")
