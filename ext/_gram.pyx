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


def gram_rows(const int[::1] t_indptr, const int[::1] t_indices, const float[::1] t_data,
              const int[::1] indptr, const int[::1] indices, const float[::1] data,
              const int[::1] rows, floating[:, ::1] out, int num_threads) -> None:
    """Add rows ``rows`` of X^T X into ``out`` (len(rows) x n_items, zeroed by the caller).

    ``t_*`` is X^T in CSR (items x users), the others X (users x items):
    ``out[r] += x_{u,a} X[u, :]`` for every user u of item ``a = rows[r]``. Threads own rows of
    ``out``. Cost: sum over the rows' users of their row lengths.
    """
    cdef Py_ssize_t n_rows = rows.shape[0], r, p, q
    cdef Py_ssize_t n_items = t_indptr.shape[0] - 1, n_users = indptr.shape[0] - 1
    cdef int a, u
    cdef floating v
    if out.shape[0] != n_rows or out.shape[1] != n_items:
        raise ValueError(f"out must be ({n_rows}, {n_items}), got ({out.shape[0]}, "
                         f"{out.shape[1]})")
    if (t_indices.shape[0] != t_data.shape[0] or indices.shape[0] != data.shape[0]
            or t_indptr[n_items] != t_indices.shape[0] or indptr[n_users] != indices.shape[0]
            or t_indices.shape[0] != indices.shape[0]):
        raise ValueError("inconsistent CSR arrays: X^T and X must describe one matrix")
    for r in range(n_rows):
        if rows[r] < 0 or rows[r] >= n_items:
            raise ValueError(f"row {rows[r]} out of range for {n_items} items")
    for r in prange(n_rows, nogil=True, schedule="dynamic", num_threads=num_threads):
        a = rows[r]
        for p in range(t_indptr[a], t_indptr[a + 1]):
            u = t_indices[p]
            v = t_data[p]
            for q in range(indptr[u], indptr[u + 1]):
                out[r, indices[q]] += v * <floating>data[q]
