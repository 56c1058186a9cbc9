"""Dense Gram matrix G = X^T X of a CSR users x items matrix, without densifying X.

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
