"""Per-user ranking statistics from top-k lists, against a CSR of held-out (test) items.

For every user row and every cut-off k in ``ks`` (ascending) this records the raw sums the metrics
are built from (normalisation is done in NumPy, recsys/evaluation.py):
  hits[j, u] = #{r < k_j : rec[u, r] in T_u}
  dcg[j, u]  = sum_{r < k_j, rec[u, r] in T_u} 1 / log2(r + 2)
  ap[j, u]   = sum_{r < k_j, rec[u, r] in T_u} hits_up_to_r / (r + 1)
  rr[j, u]   = 1 / (first hit rank + 1) if the first hit is within k_j, else 0
Test rows must hold sorted column indices (membership is a binary search). Ids of -1 are padding.
"""

from cython.parallel cimport prange
from libc.math cimport log2

from _sorted cimport find


def ranking_sums(const int[:, ::1] recs, const int[::1] test_indptr, const int[::1] test_indices,
                 const int[::1] ks, int num_threads, int[:, ::1] hits, double[:, ::1] dcg,
                 double[:, ::1] ap, double[:, ::1] rr) -> None:
    """Fill hits / dcg / ap / rr (shape len(ks) x n_users) for recs (n_users x K), K >= ks[-1]."""
    cdef Py_ssize_t n_users = recs.shape[0], width = recs.shape[1], n_ks = ks.shape[0]
    cdef Py_ssize_t u, r, j, n_test
    cdef int item, n_hits
    cdef double sum_dcg, sum_ap, first_rr
    cdef const int* test_row
    for u in prange(n_users, nogil=True, schedule="static", num_threads=num_threads):
        test_row = &test_indices[0] + test_indptr[u]
        n_test = test_indptr[u + 1] - test_indptr[u]
        n_hits = 0
        sum_dcg = 0.0
        sum_ap = 0.0
        first_rr = 0.0
        j = 0
        for r in range(width):
            while j < n_ks and ks[j] <= r:
                hits[j, u] = n_hits
                dcg[j, u] = sum_dcg
                ap[j, u] = sum_ap
                rr[j, u] = first_rr
                j = j + 1
            if j == n_ks:
                break
            item = recs[u, r]
            if item >= 0 and n_test > 0 and find(test_row, n_test, item) >= 0:
                n_hits = n_hits + 1
                sum_dcg = sum_dcg + 1.0 / log2(r + 2.0)
                sum_ap = sum_ap + n_hits / (r + 1.0)
                if first_rr == 0.0:
                    first_rr = 1.0 / (r + 1.0)
        while j < n_ks:
            hits[j, u] = n_hits
            dcg[j, u] = sum_dcg
            ap[j, u] = sum_ap
            rr[j, u] = first_rr
            j = j + 1
