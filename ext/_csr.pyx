"""One-pass CSR kernels that allocate nothing but their outputs: order checks, transpose.

``row_order(indptr, indices)`` counts, over consecutive stored values of one row, the pairs
whose column decreases (unsorted) and the pairs that repeat a column (duplicates). The caller
has checked the index structure first (``indptr`` starts at 0, never decreases, ends at
``len(indices)``), so no read is out of bounds.
"""

from cython.parallel cimport prange

import numpy as np


def row_order(const int[::1] indptr, const int[::1] indices,
              int num_threads=1) -> tuple[int, int]:
    """``(unsorted_pairs, duplicate_pairs)`` of a CSR matrix with int32 indices."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, r, p
    cdef long long unsorted = 0, duplicates = 0
    if n_rows < 0 or indptr[0] != 0 or indptr[n_rows] != indices.shape[0]:
        raise ValueError("indptr must start at 0 and end at len(indices)")
    for r in range(n_rows):
        if indptr[r + 1] < indptr[r]:
            raise ValueError(f"indptr decreases at row {r}")
    for r in prange(n_rows, nogil=True, schedule="static", num_threads=num_threads):
        for p in range(indptr[r] + 1, indptr[r + 1]):
            if indices[p] < indices[p - 1]:
                unsorted += 1
            elif indices[p] == indices[p - 1]:
                duplicates += 1
    return int(unsorted), int(duplicates)


def transpose(const int[::1] indptr, const int[::1] indices, object data,
              Py_ssize_t n_cols) -> tuple:
    """CSR of the transpose of the CSR (``indptr``, ``indices``, ``data``) with ``n_cols``
    columns: ``(t_indptr, t_indices, t_values)``, rows sorted. ``t_values`` are ``data``'s
    values (float32) or, with ``data=None``, the position in ``indices`` of every entry
    (int32). A counting sort: the outputs are the only arrays the size of the matrix (SciPy's
    ``X.T.tocsr()`` peaks at 2.5 times the matrix).
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, nnz = indices.shape[0], p, r, c, q
    if n_rows < 0 or indptr[0] != 0 or indptr[n_rows] != nnz:
        raise ValueError("indptr must start at 0 and end at len(indices)")
    cdef const float[::1] values
    cdef bint positions = data is None
    if not positions:
        values = data
        if values.shape[0] != nnz:
            raise ValueError(f"data has {values.shape[0]} values but there are {nnz} indices")
    for r in range(n_rows):
        if indptr[r + 1] < indptr[r]:
            raise ValueError(f"indptr decreases at row {r}")
    t_indptr_arr = np.zeros(n_cols + 1, dtype=np.int32)
    cdef int[::1] t_indptr = t_indptr_arr
    for p in range(nnz):
        c = indices[p]
        if c < 0 or c >= n_cols:
            raise ValueError(f"column index {c} out of range for {n_cols} columns")
        t_indptr[c + 1] += 1
    for c in range(n_cols):
        t_indptr[c + 1] += t_indptr[c]
    next_arr = np.array(t_indptr_arr[:n_cols])
    cdef int[::1] nxt = next_arr
    t_indices_arr = np.empty(nnz, dtype=np.int32)
    cdef int[::1] t_indices = t_indices_arr
    t_values_arr = np.empty(nnz, dtype=np.int32 if positions else np.float32)
    cdef int[::1] t_pos
    cdef float[::1] t_val
    if positions:
        t_pos = t_values_arr
    else:
        t_val = t_values_arr
    with nogil:
        for r in range(n_rows):
            for p in range(indptr[r], indptr[r + 1]):
                c = indices[p]
                q = nxt[c]
                nxt[c] += 1
                t_indices[q] = <int>r
                if positions:
                    t_pos[q] = <int>p
                else:
                    t_val[q] = values[p]
    return t_indptr_arr, t_indices_arr, t_values_arr
