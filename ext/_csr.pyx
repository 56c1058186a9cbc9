"""One-pass CSR kernels that allocate nothing but their outputs: order checks, transpose,
the (row, column) sort of COO entries.

``row_order(indptr, indices)`` counts, over consecutive stored values of one row, the pairs
whose column decreases (unsorted) and the pairs that repeat a column (duplicates). The caller
has checked the index structure first (``indptr`` starts at 0, never decreases, ends at
``len(indices)``), so no read is out of bounds.
"""

from cython.parallel cimport prange

import numpy as np

from _permutation cimport is_permutation


cdef void _check_indptr(const int[::1] indptr, Py_ssize_t nnz) except *:
    """``indptr`` starts at 0, never decreases and ends at ``nnz`` (else ``ValueError``), so
    that the loops over its rows read nothing out of bounds."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, r
    if n_rows < 0 or indptr[0] != 0 or indptr[n_rows] != nnz:
        raise ValueError("indptr must start at 0 and end at len(indices)")
    for r in range(n_rows):
        if indptr[r + 1] < indptr[r]:
            raise ValueError(f"indptr decreases at row {r}")


def _check_permutation(const int[::1] order, str what) -> None:
    """``ValueError`` unless ``order`` is a permutation of 0..n-1."""
    cdef int ok = is_permutation(&order[0], order.shape[0]) if order.shape[0] else 1
    if ok < 0:
        raise MemoryError(f"could not allocate {order.shape[0]} bytes to check {what}")
    if not ok:
        raise ValueError(f"{what} must be a permutation of the entries")


def row_order(const int[::1] indptr, const int[::1] indices,
              int num_threads=1) -> tuple[int, int]:
    """``(unsorted_pairs, duplicate_pairs)`` of a CSR matrix with int32 indices."""
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, r, p
    cdef long long unsorted = 0, duplicates = 0
    _check_indptr(indptr, indices.shape[0])
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
    _check_indptr(indptr, nnz)
    cdef const float[::1] values
    cdef bint positions = data is None
    if not positions:
        values = data
        if values.shape[0] != nnz:
            raise ValueError(f"data has {values.shape[0]} values but there are {nnz} indices")
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


cdef void _counting_pass(const int[::1] keys, Py_ssize_t n_keys, const int[::1] sequence,
                         int[::1] out, long long[::1] counts) noexcept nogil:
    """``out``: ``sequence`` stably sorted by ``keys[sequence[t]]`` (counting sort). The
    caller has checked every key in [0, n_keys) and ``sequence`` a permutation."""
    cdef Py_ssize_t n = sequence.shape[0], t, k
    for k in range(n_keys + 1):
        counts[k] = 0
    for t in range(n):
        counts[keys[sequence[t]] + 1] += 1
    for k in range(n_keys):
        counts[k + 1] += counts[k]
    for t in range(n):
        k = keys[sequence[t]]
        out[counts[k]] = sequence[t]
        counts[k] += 1


def coo_order(const int[::1] rows, const int[::1] cols, Py_ssize_t n_rows, Py_ssize_t n_cols,
              object first=None) -> tuple:
    """``(indptr, order)``: the permutation that sorts COO entries by (row, column), stably
    (ties keep the order of ``first``, a permutation, or of the entries), and the CSR row
    pointer of the sorted entries. Two counting sorts (by column, then by row): O(n + rows +
    columns) time, int32 arrays (a canonical CSR has < 2^31 entries) and no comparison sort.
    """
    cdef Py_ssize_t n = rows.shape[0], t
    if cols.shape[0] != n:
        raise ValueError(f"rows has {n} entries but cols {cols.shape[0]}")
    if n >= 2 ** 31:
        raise ValueError(f"{n} entries: at most 2**31 - 1 are supported")
    for t in range(n):
        if not (0 <= rows[t] < n_rows and 0 <= cols[t] < n_cols):
            raise ValueError(f"entry {t} ({rows[t]}, {cols[t]}) out of range for "
                             f"({n_rows}, {n_cols})")
    start = np.arange(n, dtype=np.int32) if first is None else \
        np.ascontiguousarray(first, dtype=np.int32)
    if start.shape[0] != n:
        raise ValueError("first must be a permutation of the entries")
    _check_permutation(start, "first")
    counts = np.empty(max(n_rows, n_cols) + 1, dtype=np.int64)
    by_col = np.empty(n, dtype=np.int32)
    _counting_pass(cols, n_cols, start, by_col, counts)
    del start
    order = np.empty(n, dtype=np.int32)
    _counting_pass(rows, n_rows, by_col, order, counts)
    del by_col
    indptr = np.zeros(n_rows + 1, dtype=np.int32)
    indptr[1:] = counts[:n_rows]  # after the row pass: where each row's entries end
    return indptr, order
