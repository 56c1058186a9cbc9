"""Checks of a CSR matrix's order in one pass over its indices, without temporaries.

``row_order(indptr, indices)`` counts, over consecutive stored values of one row, the pairs
whose column decreases (unsorted) and the pairs that repeat a column (duplicates). The caller
has checked the index structure first (``indptr`` starts at 0, never decreases, ends at
``len(indices)``), so no read is out of bounds.
"""

from cython.parallel cimport prange


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
