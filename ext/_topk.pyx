"""Top-k selection per row, with seen items excluded.

Ordering is total and deterministic: item a ranks before item b when s_a > s_b, or s_a == s_b and
a < b. A bounded min-heap of size k holds the best items seen so far; its root is the *worst* of
them, so a new candidate j (scanned in increasing order) enters only when s_j > s_root. Excluded
items are set to -inf and never enter; rows with fewer than k candidates are padded with id -1 and
score -inf. NaN scores never enter either, and are reported back so Python can raise.

Inputs are validated in Python (recsys/topk.py) before these functions drop the GIL.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef fused floating:
    float
    double


cdef extern from *:
    """
    #if defined(__SSE2__) || defined(_M_X64)
    #include <emmintrin.h>
    #define RECSYS_SSE2 1
    #endif
    /* First position p >= j, stepping by 16, whose block row[p:p+16] holds a value that is not
       <= t (a candidate, or a NaN); a position with fewer than 16 values left when none. */
    static inline Py_ssize_t recsys_skip_f32(const float* row, Py_ssize_t j, Py_ssize_t n,
                                             float t) {
    #ifdef RECSYS_SSE2
        const __m128 tv = _mm_set1_ps(t);
        for (; j + 16 <= n; j += 16) {
            __m128 a = _mm_or_ps(_mm_cmpnle_ps(_mm_loadu_ps(row + j), tv),
                                 _mm_cmpnle_ps(_mm_loadu_ps(row + j + 4), tv));
            __m128 b = _mm_or_ps(_mm_cmpnle_ps(_mm_loadu_ps(row + j + 8), tv),
                                 _mm_cmpnle_ps(_mm_loadu_ps(row + j + 12), tv));
            if (_mm_movemask_ps(_mm_or_ps(a, b))) return j;
        }
    #else
        for (; j + 16 <= n; j += 16) {
            int any = 0;
            for (int i = 0; i < 16; i++) any |= !(row[j + i] <= t);
            if (any) return j;
        }
    #endif
        return j;
    }
    static inline Py_ssize_t recsys_skip_f64(const double* row, Py_ssize_t j, Py_ssize_t n,
                                             double t) {
    #ifdef RECSYS_SSE2
        const __m128d tv = _mm_set1_pd(t);
        for (; j + 16 <= n; j += 16) {
            __m128d m = _mm_cmpnle_pd(_mm_loadu_pd(row + j), tv);
            for (int i = 2; i < 16; i += 2)
                m = _mm_or_pd(m, _mm_cmpnle_pd(_mm_loadu_pd(row + j + i), tv));
            if (_mm_movemask_pd(m)) return j;
        }
    #else
        for (; j + 16 <= n; j += 16) {
            int any = 0;
            for (int i = 0; i < 16; i++) any |= !(row[j + i] <= t);
            if (any) return j;
        }
    #endif
        return j;
    }
    """
    Py_ssize_t recsys_skip_f32(const float* row, Py_ssize_t j, Py_ssize_t n, float t) nogil
    Py_ssize_t recsys_skip_f64(const double* row, Py_ssize_t j, Py_ssize_t n, double t) nogil


cdef inline bint _worse(const floating* hs, const int* hi, int a, int b) noexcept nogil:
    return hs[a] < hs[b] or (hs[a] == hs[b] and hi[a] > hi[b])


cdef inline void _sift_down(floating* hs, int* hi, int size, int pos) noexcept nogil:
    cdef int child, worst
    cdef floating ts
    cdef int ti
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        worst = child
        if child + 1 < size and _worse(hs, hi, child + 1, child):
            worst = child + 1
        if not _worse(hs, hi, worst, pos):
            return
        ts = hs[pos]; hs[pos] = hs[worst]; hs[worst] = ts
        ti = hi[pos]; hi[pos] = hi[worst]; hi[worst] = ti
        pos = worst


cdef inline int _push(floating s, int j, int k, floating* hs, int* hi) noexcept nogil:
    """Offer item j with score s to the heap; returns 1 when s is NaN."""
    if s > hs[0]:
        hs[0] = s
        hi[0] = j
        _sift_down(hs, hi, k, 0)
    elif s != s:
        return 1
    return 0


cdef int _select_row(floating* row, Py_ssize_t n, const int* excl, Py_ssize_t n_excl, int k,
                     floating* hs, int* hi, int* out_ids, floating* out_scores) noexcept nogil:
    """Top-k of one row into out_ids/out_scores (best first); returns 1 when a NaN was seen."""
    cdef Py_ssize_t j, i, stop
    cdef int end
    cdef floating ts
    cdef int ti, has_nan = 0
    for j in range(n_excl):
        row[excl[j]] = -INFINITY
    for j in range(k):
        hs[j] = -INFINITY
        hi[j] = -1
    # Skip whole blocks in which no value beats the current threshold (SIMD compare in C); only
    # blocks holding a candidate (or a NaN) are offered to the heap one value at a time.
    j = 0
    while j < n:
        if floating is float:
            j = recsys_skip_f32(row, j, n, hs[0])
        else:
            j = recsys_skip_f64(row, j, n, hs[0])
        stop = j + 16 if j + 16 <= n else n
        for i in range(j, stop):
            has_nan |= _push(row[i], <int>i, k, hs, hi)
        j = stop
    # heap sort: move the worst to the back, leaving the best at position 0
    for end in range(k - 1, 0, -1):
        ts = hs[0]; hs[0] = hs[end]; hs[end] = ts
        ti = hi[0]; hi[0] = hi[end]; hi[end] = ti
        _sift_down(hs, hi, end, 0)
    for j in range(k):
        out_ids[j] = hi[j]
        out_scores[j] = hs[j]
    return has_nan


cdef inline int _select_user(floating* row, Py_ssize_t n, const int* excl_indptr,
                             const int* excl_indices, Py_ssize_t r, int k, floating* hs, int* hi,
                             int* out_ids, floating* out_scores) noexcept nogil:
    """_select_row for query row r, excluding row r of a CSR pattern (none when indptr is NULL)."""
    if excl_indptr == NULL:
        return _select_row(row, n, NULL, 0, k, hs, hi, out_ids, out_scores)
    return _select_row(row, n, excl_indices + excl_indptr[r], excl_indptr[r + 1] - excl_indptr[r],
                       k, hs, hi, out_ids, out_scores)


def topk_dense(floating[:, ::1] scores, int k, const int[::1] excl_indptr,
               const int[::1] excl_indices, int num_threads, int[:, ::1] out_ids,
               floating[:, ::1] out_scores) -> int:
    """Top-k of each row of ``scores`` (modified in place: excluded entries become -inf).

    ``excl_indptr`` / ``excl_indices`` are a CSR pattern with one row per score row (an empty
    indptr means no exclusion). Returns the number of rows that held a NaN.
    """
    cdef Py_ssize_t n_rows = scores.shape[0], n_cols = scores.shape[1], r
    cdef const int* ex_ptr = &excl_indptr[0] if excl_indptr.shape[0] > 0 else NULL
    cdef const int* ex_idx = &excl_indices[0] if excl_indices.shape[0] > 0 else NULL
    cdef int nan_rows = 0, no_memory = 0
    cdef floating* hs
    cdef int* hi
    if n_rows == 0:
        return 0
    with nogil, parallel(num_threads=num_threads):
        hs = <floating*>malloc(<size_t>k * sizeof(floating))
        hi = <int*>malloc(<size_t>k * sizeof(int))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=16):
                if hs == NULL or hi == NULL:
                    no_memory += 1
                    continue
                nan_rows += _select_user(&scores[r, 0], n_cols, ex_ptr, ex_idx, r, k, hs, hi,
                                         &out_ids[r, 0], &out_scores[r, 0])
        finally:
            free(hs)
            free(hi)
    if no_memory:
        raise MemoryError(f"top-{k}: could not allocate the per-thread heaps")
    return nan_rows


cdef inline void _gemm_nt(floating* users, floating* items, int m, int n, int f,
                          floating* out) noexcept nogil:
    """out (m x n, row-major) = users (m x f) @ items (n x f)^T, all row-major, via BLAS.

    Row-major out is column-major out^T = items @ users^T, hence transa='T' on items.
    """
    cdef char ta = b'T'
    cdef char tb = b'N'
    cdef floating one = 1.0, zero = 0.0
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &f, &one, items, &f, users, &f, &zero, out, &n)
    else:
        dgemm(&ta, &tb, &n, &m, &f, &one, items, &f, users, &f, &zero, out, &n)


def topk_factors(const floating[:, ::1] users, const floating[:, ::1] items, int k,
                 const int[::1] excl_indptr, const int[::1] excl_indices, int num_threads,
                 int batch_size, int[:, ::1] out_ids, floating[:, ::1] out_scores) -> int:
    """Fused scoring + top-k: for each row u of ``users``, top-k of ``users[u] @ items.T``.

    Users are cut into batches of ``batch_size`` rows; each thread multiplies its batch with a
    single-threaded BLAS GEMM into its own buffer, masks the batch's excluded items and selects.
    No n_users x n_items matrix is ever allocated. Returns the number of rows that held a NaN.
    """
    cdef Py_ssize_t n_users = users.shape[0], n_items = items.shape[0], f = users.shape[1]
    cdef Py_ssize_t n_batches = (n_users + batch_size - 1) // batch_size
    cdef Py_ssize_t b, r, start, stop
    cdef const int* ex_ptr = &excl_indptr[0] if excl_indptr.shape[0] > 0 else NULL
    cdef const int* ex_idx = &excl_indices[0] if excl_indices.shape[0] > 0 else NULL
    cdef int nan_rows = 0, no_memory = 0
    cdef floating* buf
    cdef floating* hs
    cdef int* hi
    if n_users == 0:
        return 0
    if batch_size < 1 or k < 1:
        raise ValueError("batch_size and k must be >= 1")
    with nogil, parallel(num_threads=num_threads):
        buf = <floating*>malloc(<size_t>batch_size * n_items * sizeof(floating))
        hs = <floating*>malloc(<size_t>k * sizeof(floating))
        hi = <int*>malloc(<size_t>k * sizeof(int))
        try:
            for b in prange(n_batches, schedule="dynamic"):
                if buf == NULL or hs == NULL or hi == NULL:
                    no_memory += 1
                    continue
                start = b * batch_size
                stop = start + batch_size
                if stop > n_users:
                    stop = n_users
                _gemm_nt(<floating*>&users[start, 0], <floating*>&items[0, 0],
                         <int>(stop - start), <int>n_items, <int>f, buf)
                for r in range(start, stop):
                    nan_rows += _select_user(buf + (r - start) * n_items, n_items, ex_ptr, ex_idx,
                                             r, k, hs, hi, &out_ids[r, 0], &out_scores[r, 0])
        finally:
            free(buf)
            free(hs)
            free(hi)
    if no_memory:
        raise MemoryError(f"top-{k}: could not allocate a thread's {batch_size} x {n_items} "
                          "score buffer")
    return nan_rows


def topk_history(const int[::1] indptr, const int[::1] indices, const float[::1] data,
                 const floating[:, ::1] weights, int k, const int[::1] excl_indptr,
                 const int[::1] excl_indices, int num_threads, int[:, ::1] out_ids,
                 floating[:, ::1] out_scores) -> int:
    """Fused scoring + top-k for item-item models: top-k of ``x_u @ W`` for each CSR row x_u.

    Each thread accumulates one user's scores (sum over the user's items i of x_ui * W[i, :])
    in its own n_items buffer, masks the excluded items and selects; no dense block of scores
    is allocated. Returns the number of rows that held a NaN.
    """
    cdef Py_ssize_t n_rows = indptr.shape[0] - 1, n_items = weights.shape[1]
    cdef Py_ssize_t r, p, j
    cdef const int* ex_ptr = &excl_indptr[0] if excl_indptr.shape[0] > 0 else NULL
    cdef const int* ex_idx = &excl_indices[0] if excl_indices.shape[0] > 0 else NULL
    cdef int nan_rows = 0, no_memory = 0
    cdef floating v
    cdef const floating* w_row
    cdef floating* buf
    cdef floating* hs
    cdef int* hi
    if n_rows == 0:
        return 0
    with nogil, parallel(num_threads=num_threads):
        buf = <floating*>malloc(<size_t>n_items * sizeof(floating))
        hs = <floating*>malloc(<size_t>k * sizeof(floating))
        hi = <int*>malloc(<size_t>k * sizeof(int))
        try:
            for r in prange(n_rows, schedule="dynamic", chunksize=4):
                if buf == NULL or hs == NULL or hi == NULL:
                    no_memory += 1
                    continue
                for j in range(n_items):
                    buf[j] = 0
                for p in range(indptr[r], indptr[r + 1]):
                    v = data[p]
                    w_row = &weights[indices[p], 0]
                    for j in range(n_items):
                        buf[j] += v * w_row[j]
                nan_rows += _select_user(buf, n_items, ex_ptr, ex_idx, r, k, hs, hi,
                                         &out_ids[r, 0], &out_scores[r, 0])
        finally:
            free(buf)
            free(hs)
            free(hi)
    if no_memory:
        raise MemoryError(f"top-{k}: could not allocate the per-thread score buffers")
    return nan_rows
