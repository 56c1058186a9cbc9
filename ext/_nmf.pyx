"""Coordinate descent on observed entries for masked (nonnegative) matrix factorisation.

For each row u (a user, or an item through the transpose) with observed columns Omega_u and
the residual r_ui = v_ui - prediction kept on Omega (aligned with the CSR data), every
coordinate of the row's factor vector is set to its exact regularised minimiser in turn
(HALS restricted to Omega; Cichocki & Phan 2009, Yu et al. ICDM 2012 for the residual trick):

    x_uf <- P( (sum_i r_ui y_if + x_uf sum_i y_if^2) / (reg_u + sum_i y_if^2) )
    r_ui <- r_ui - (x_uf_new - x_uf_old) y_if               (i in Omega_u)

P is max(0, .) when ``nonnegative``. A bias is one more coordinate whose y is 1 and which is
never projected. Each step minimises the loss exactly in one coordinate, so the loss never
increases. Cost O(|Omega_u|) per coordinate, O(|Omega| k) per half-sweep; the row's entries
stay in cache across its k coordinates. Rows run in parallel: each writes only its own x_u
and its own residual entries, so there are no races and results do not depend on threads.
"""

from cython.parallel cimport prange


def cd_rows(const int[::1] indptr, const int[::1] indices, double[::1] resid,
            double[:, ::1] X, const double[:, ::1] Y, double[::1] bias,
            const double[::1] reg, int inner, bint nonnegative, bint use_bias,
            int num_threads) -> None:
    """One (or ``inner``) coordinate-descent pass over every row of ``X`` (in place).

    ``Y`` holds the other side's factors (n_cols x k); ``resid`` is updated to match.
    ``bias`` (n_rows) is a free coordinate with a constant design column when ``use_bias``.
    """
    cdef Py_ssize_t n_rows = X.shape[0], u, p, start, end
    cdef int k = <int>X.shape[1], f, it
    cdef double num, den, old, new, delta, y
    if Y.shape[1] != k or resid.shape[0] != indices.shape[0]:
        raise ValueError("inconsistent factor or residual shapes")
    with nogil:
        for u in prange(n_rows, schedule="dynamic", chunksize=32, num_threads=num_threads):
            start = indptr[u]
            end = indptr[u + 1]
            for it in range(inner):
                for f in range(k):
                    num = 0
                    den = 0
                    for p in range(start, end):
                        y = Y[indices[p], f]
                        num = num + resid[p] * y
                        den = den + y * y
                    old = X[u, f]
                    num = num + old * den
                    den = den + reg[u]
                    new = num / den if den > 0 else 0.0
                    if nonnegative and new < 0:
                        new = 0
                    delta = new - old
                    if delta != 0:
                        X[u, f] = new
                        for p in range(start, end):
                            resid[p] = resid[p] - delta * Y[indices[p], f]
                if use_bias:
                    num = 0
                    for p in range(start, end):
                        num = num + resid[p]
                    old = bias[u]
                    den = (end - start) + reg[u]
                    new = (num + old * (end - start)) / den if den > 0 else 0.0
                    delta = new - old
                    if delta != 0:
                        bias[u] = new
                        for p in range(start, end):
                            resid[p] = resid[p] - delta


ctypedef fused position_t:
    int
    long long


def gather(const double[::1] source, const position_t[::1] positions, double[::1] out,
           int num_threads) -> None:
    """out[q] = source[positions[q]]: moves the residual between CSR and CSC order."""
    cdef Py_ssize_t q
    if positions.shape[0] != out.shape[0]:
        raise ValueError("positions and out differ in length")
    for q in prange(out.shape[0], nogil=True, schedule="static", num_threads=num_threads):
        out[q] = source[positions[q]]


def scatter(const double[::1] source, const position_t[::1] positions, double[::1] out,
            int num_threads) -> None:
    """out[positions[q]] = source[q] (``positions`` a permutation): the inverse move of
    :func:`gather`, without an inverse permutation array."""
    cdef Py_ssize_t q, n = out.shape[0]
    if positions.shape[0] != n or source.shape[0] != n:
        raise ValueError("source, positions and out differ in length")
    for q in range(n):
        if positions[q] < 0 or positions[q] >= n:
            raise ValueError(f"position {positions[q]} out of range for {n} entries")
    for q in prange(n, nogil=True, schedule="static", num_threads=num_threads):
        out[positions[q]] = source[q]
