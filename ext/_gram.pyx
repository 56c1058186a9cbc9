"""Dense Gram matrix G = X^T X of a CSR users x items matrix (or a block of its rows),
without densifying X.

Threads own disjoint blocks of G's rows (items [lo, hi)): each scans every user row, finds the
row's items inside its block by binary search and adds x_ui * x_uj to G[i, :] for all j in the
row. No two threads ever write the same entry, so there is no race and no atomic. Cost:
sum_u |I_u|^2 multiply-adds plus n_blocks * n_users binary searches.
"""

from cython.parallel cimport prange

from _sorted cimport lower_bound

ctypedef fused floating:
    float
    double


def gram_dense(const int[::1] indptr, const int[::1] indices, const float[::1] data,
               floating[:, ::1] out, int block_size, int num_threads) -> None:
    """Add X^T X into ``out`` (n_items x n_items, zeroed by the caller). Indices must be sorted."""
    cdef Py_ssize_t n_users = indptr.shape[0] - 1, n_items = out.shape[0]
    cdef Py_ssize_t n_blocks = (n_items + block_size - 1) // block_size
    cdef Py_ssize_t b, u, p, q, start, length, lo, hi
    cdef int i
    cdef floating v
    for b in prange(n_blocks, nogil=True, schedule="dynamic", num_threads=num_threads):
        lo = b * block_size
        hi = lo + block_size
        for u in range(n_users):
            start = indptr[u]
            length = indptr[u + 1] - start
            if length == 0 or indices[start + length - 1] < lo or indices[start] >= hi:
                continue
            p = start + lower_bound(&indices[start], length, <int>lo)
            while p < start + length and indices[p] < hi:
                i = indices[p]
                v = data[p]
                for q in range(start, start + length):
                    out[i, indices[q]] += v * data[q]
                p = p + 1


def rows_times_csr(const int[::1] a_indptr, const int[::1] a_indices, const float[::1] a_data,
                   const int[::1] b_indptr, const int[::1] b_indices,
                   const floating[::1] b_data, const int[::1] rows, floating[:, ::1] out,
                   int num_threads) -> None:
    """Add ``A[rows] @ B`` into the dense ``out`` (len(rows) x B's columns, zeroed by the
    caller), both CSR: ``out[r] += a_{rows[r], i} B[i, :]`` over row ``rows[r]`` of A.

    Threads own rows of ``out``. Two uses: rows of the Gram matrix (A = X^T, B = X) and the
    scores of a block of users under sparse item-item weights (A = X, B = W). Cost: the sum
    over the rows' entries of the lengths of B's rows they select.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], r, p, q
    cdef Py_ssize_t a_rows = a_indptr.shape[0] - 1, b_rows = b_indptr.shape[0] - 1
    cdef Py_ssize_t n_cols = out.shape[1]
    cdef int i, col, bad = 0
    cdef floating v
    if out.shape[0] != n_rows:
        raise ValueError(f"out has {out.shape[0]} rows for {n_rows} requested rows")
    if (a_indices.shape[0] != a_data.shape[0] or b_indices.shape[0] != b_data.shape[0]
            or a_indptr[a_rows] != a_indices.shape[0]
            or b_indptr[b_rows] != b_indices.shape[0]):
        raise ValueError("inconsistent CSR arrays")
    for r in range(n_rows):
        if rows[r] < 0 or rows[r] >= a_rows:
            raise ValueError(f"row {rows[r]} out of range for {a_rows} rows")
        for p in range(a_indptr[rows[r]], a_indptr[rows[r] + 1]):
            if a_indices[p] < 0 or a_indices[p] >= b_rows:
                raise ValueError(f"column {a_indices[p]} of A out of range for B's "
                                 f"{b_rows} rows")
    for r in prange(n_rows, nogil=True, schedule="dynamic", num_threads=num_threads):
        for p in range(a_indptr[rows[r]], a_indptr[rows[r] + 1]):
            i = a_indices[p]
            v = a_data[p]
            for q in range(b_indptr[i], b_indptr[i + 1]):
                col = b_indices[q]
                if 0 <= col < n_cols:  # a corrupt B cannot write out of bounds
                    out[r, col] += v * b_data[q]
                else:
                    bad += 1
    if bad:
        raise ValueError(f"B holds {bad} column indices beyond out's {n_cols} columns")
