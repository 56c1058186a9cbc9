"""Row-wise regularised least squares on observed entries (explicit alternating minimisation).

For each row u with observed columns Omega_u, targets t_ui = r_ui - mean - offset_i and a fixed
design matrix Y (rows y_i), solve
    (sum_{i in Omega_u} y_i y_i^T + reg_u I) x_u = sum_{i in Omega_u} t_ui y_i
either exactly (Cholesky, LAPACK ?posv on the d x d normal matrix, O(|Omega_u| d^2 + d^3)),
approximately by conjugate gradient warm-started from the current x_u, whose matrix-vector
product sum_i (y_i . p) y_i + reg_u p costs 2 |Omega_u| d and never forms the d x d matrix, or
by sketch-preconditioned CG (Gu, Song, Yin, Zhang 2023): a CountSketch S of the stacked design
[Y_Omega; sqrt(reg) I] with s = 4d rows, R the R factor of S A (via the Cholesky factor of
(SA)^T SA), and CG on the normal equations preconditioned by (R^T R)^{-1}, so that the
iteration count no longer depends on the row's condition number; cost
O(|Omega_u| d + d^3) + cg_steps * O(|Omega_u| d + d^2).
Rows are independent: OpenMP over rows, per-thread scratch; each row writes only its own x_u.
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from libc.math cimport sqrt
from libc.stdint cimport uint64_t

from _random cimport mix
from scipy.linalg.cython_blas cimport (daxpy, ddot, dsyr, dsyrk, dtrsv, saxpy, sdot, ssyr,
                                       ssyrk, strsv)
from scipy.linalg.cython_lapack cimport dposv, dpotrf, sposv, spotrf

ctypedef fused floating:
    float
    double


cdef inline floating _dot(int d, const floating* x, const floating* y) noexcept nogil:
    cdef int one = 1
    if floating is float:
        return sdot(&d, <float*>x, &one, <float*>y, &one)
    else:
        return ddot(&d, <double*>x, &one, <double*>y, &one)


cdef inline void _axpy(int d, floating alpha, const floating* x, floating* y) noexcept nogil:
    """y += alpha x"""
    cdef int one = 1
    if floating is float:
        saxpy(&d, &alpha, <float*>x, &one, y, &one)
    else:
        daxpy(&d, &alpha, <double*>x, &one, y, &one)


cdef inline void _matvec(const int* cols, Py_ssize_t n_obs, const floating* Y, int d,
                         floating reg, const floating* p, floating* out) noexcept nogil:
    """out = (sum_i y_i y_i^T + reg I) p over the row's observed columns."""
    cdef Py_ssize_t q
    cdef int a
    cdef const floating* y
    for a in range(d):
        out[a] = reg * p[a]
    for q in range(n_obs):
        y = Y + <Py_ssize_t>cols[q] * d
        _axpy(d, _dot(d, y, p), y, out)


cdef inline void _residual(const int* cols, const floating* targets, Py_ssize_t n_obs,
                           const floating* Y, int d, floating reg, const floating* x,
                           floating* Ax, floating* r) noexcept nogil:
    """r = b - A x with b = sum_i t_i y_i and A = sum_i y_i y_i^T + reg I (Ax is scratch)."""
    cdef Py_ssize_t q
    cdef int a
    _matvec(cols, n_obs, Y, d, reg, x, Ax)
    for a in range(d):
        r[a] = -Ax[a]
    for q in range(n_obs):
        _axpy(d, targets[q], Y + <Py_ssize_t>cols[q] * d, r)


cdef int _solve_cholesky(const int* cols, const floating* targets, Py_ssize_t n_obs,
                         const floating* Y, int d, floating reg, floating* A, floating* b,
                         floating* x) noexcept nogil:
    cdef Py_ssize_t q
    cdef int a, info = 0, one = 1
    cdef char uplo = b'L'
    cdef float one_f = 1
    cdef double one_d = 1
    cdef const floating* y
    for a in range(d * d):
        A[a] = 0
    for a in range(d):
        b[a] = 0
        A[a * d + a] = reg
    for q in range(n_obs):  # A += y y^T (lower triangle, column-major), b += t y
        y = Y + <Py_ssize_t>cols[q] * d
        _axpy(d, targets[q], y, b)
        if floating is float:
            ssyr(&uplo, &d, &one_f, <float*>y, &one, A, &d)
        else:
            dsyr(&uplo, &d, &one_d, <double*>y, &one, A, &d)
    if floating is float:
        sposv(&uplo, &d, &one, A, &d, b, &d, &info)
    else:
        dposv(&uplo, &d, &one, A, &d, b, &d, &info)
    if info == 0:
        for a in range(d):
            x[a] = b[a]
    return info


cdef inline void _precondition(const floating* R, int s, int d, const floating* r,
                               floating* z) noexcept nogil:
    """z = (R^T R)^{-1} r by two triangular solves with the d x d upper R (leading dim s);
    z = r when R is NULL (no preconditioner)."""
    cdef int a, one = 1
    cdef char up = b'U', trans = b'T', notrans = b'N', nonunit = b'N'
    for a in range(d):
        z[a] = r[a]
    if R == NULL:
        return
    if floating is float:
        strsv(&up, &trans, &nonunit, &d, <float*>R, &s, z, &one)
        strsv(&up, &notrans, &nonunit, &d, <float*>R, &s, z, &one)
    else:
        dtrsv(&up, &trans, &nonunit, &d, <double*>R, &s, z, &one)
        dtrsv(&up, &notrans, &nonunit, &d, <double*>R, &s, z, &one)


cdef int _solve_sketch(const int* cols, const floating* targets, Py_ssize_t n_obs,
                       const floating* Y, int d, floating reg, int steps, uint64_t seed,
                       floating* SA, floating* R, floating* r, floating* z, floating* p,
                       floating* Ap, floating* x) noexcept nogil:
    cdef int s = 4 * d, a, c, bucket, info = 0
    cdef char upper = b'U', trans = b'T'
    cdef float one_f = 1, zero_f = 0
    cdef double one_d = 1, zero_d = 0
    cdef Py_ssize_t q
    cdef uint64_t h
    cdef floating sign, root = sqrt(reg)
    cdef const floating* y
    for a in range(s * d):
        SA[a] = 0
    # CountSketch of A = [Y_Omega; sqrt(reg) I]: row q goes to one bucket with a random sign;
    # SA is column-major s x d for LAPACK
    for q in range(n_obs + d):
        h = mix(seed + <uint64_t>q * <uint64_t>0x9e3779b97f4a7c15)
        bucket = <int>(h % <uint64_t>s)
        sign = 1 if (h >> 32) & 1 else -1
        if q < n_obs:
            y = Y + <Py_ssize_t>cols[q] * d
            for c in range(d):
                SA[bucket + c * s] += sign * y[c]
        else:
            SA[bucket + (q - n_obs) * s] += sign * root
    # R with R^T R = (SA)^T (SA): the R factor of SA's QR, obtained from the d x d Gram of the
    # sketch (syrk + potrf, ~2.3 d^3 flops instead of ~7 d^3 for Householder QR)
    if floating is float:
        ssyrk(&upper, &trans, &d, &s, &one_f, SA, &s, &zero_f, R, &d)
        spotrf(&upper, &d, R, &d, &info)
    else:
        dsyrk(&upper, &trans, &d, &s, &one_d, SA, &s, &zero_d, R, &d)
        dpotrf(&upper, &d, R, &d, &info)
    if info != 0:  # rank-deficient sketch: the caller falls back to plain CG
        return -1
    _pcg(cols, targets, n_obs, Y, d, reg, steps, R, d, r, z, p, Ap, x)
    return 0


cdef void _pcg(const int* cols, const floating* targets, Py_ssize_t n_obs, const floating* Y,
               int d, floating reg, int steps, const floating* R, int s, floating* r,
               floating* z, floating* p, floating* Ap, floating* x) noexcept nogil:
    """``steps`` of conjugate gradient on the row's normal equations, warm-started from x,
    preconditioned by (R^T R)^{-1} (plain CG when R is NULL)."""
    cdef int a, step
    cdef floating rz_old, rz_new, alpha, pAp
    _residual(cols, targets, n_obs, Y, d, reg, x, Ap, r)
    _precondition(R, s, d, r, z)
    rz_old = 0
    for a in range(d):
        p[a] = z[a]
        rz_old = rz_old + r[a] * z[a]
    for step in range(steps):
        if rz_old < 1e-20:
            return
        _matvec(cols, n_obs, Y, d, reg, p, Ap)
        pAp = 0
        for a in range(d):
            pAp = pAp + p[a] * Ap[a]
        if pAp <= 0:
            return
        alpha = rz_old / pAp
        for a in range(d):
            x[a] = x[a] + alpha * p[a]
            r[a] = r[a] - alpha * Ap[a]
        _precondition(R, s, d, r, z)
        rz_new = 0
        for a in range(d):
            rz_new = rz_new + r[a] * z[a]
        for a in range(d):
            p[a] = z[a] + (rz_new / rz_old) * p[a]
        rz_old = rz_new

def solve_rows(const int[::1] indptr, const int[::1] indices, const floating[::1] targets,
               const floating[:, ::1] Y, const floating[::1] reg, floating[:, ::1] X,
               int solver, int cg_steps, int num_threads, unsigned long long seed=0,
               Py_ssize_t row_offset=0) -> int:
    """Update every row of X in place (solver 0: Cholesky, 1: CG, 2: sketch-preconditioned CG).

    Returns the number of failed rows. The sketch of row u is drawn from (seed, row_offset +
    u), so results depend neither on the thread count nor on how the rows are sharded (a
    shard starting at global row ``row_offset`` draws what the whole matrix would).

    ``targets`` are aligned with ``indices`` (already centred: r - mean - offset). A row whose
    Cholesky fails (singular with reg 0) is set to zero and counted. Raises ``MemoryError`` when
    a thread's scratch (about 5 d^2 values) cannot be allocated.
    """
    cdef Py_ssize_t n_rows = X.shape[0], u, start, n_obs
    cdef int d = <int>X.shape[1], a, failed = 0, no_memory = 0
    cdef size_t dd = <size_t>d * <size_t>d
    cdef floating* s1
    cdef floating* s2
    cdef floating* s3
    cdef floating* s4
    cdef floating* s5
    cdef floating* work
    if Y.shape[1] != d or indptr.shape[0] != n_rows + 1 or reg.shape[0] != n_rows \
            or targets.shape[0] != indices.shape[0]:
        raise ValueError("inconsistent shapes")
    with nogil, parallel(num_threads=num_threads):
        s1 = <floating*>malloc(4 * dd * sizeof(floating))
        s2 = <floating*>malloc(d * sizeof(floating))
        s3 = <floating*>malloc(d * sizeof(floating))
        s4 = <floating*>malloc(d * sizeof(floating))
        s5 = <floating*>malloc(d * sizeof(floating))
        work = <floating*>malloc(dd * sizeof(floating))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=16):
                if s1 == NULL or s2 == NULL or s3 == NULL or s4 == NULL or s5 == NULL \
                        or work == NULL:
                    no_memory += 1
                    continue
                start = indptr[u]
                n_obs = indptr[u + 1] - start
                if solver == 0:
                    if _solve_cholesky(&indices[start], &targets[start], n_obs, &Y[0, 0], d,
                                       reg[u], s1, s2, &X[u, 0]) != 0:
                        failed += 1
                        for a in range(d):
                            X[u, a] = 0
                elif solver == 1 or _solve_sketch(
                        &indices[start], &targets[start], n_obs, &Y[0, 0], d, reg[u],
                        cg_steps, mix(seed ^ <uint64_t>(u + row_offset)), s1, work, s2, s3, s4, s5,
                        &X[u, 0]) != 0:
                    _pcg(&indices[start], &targets[start], n_obs, &Y[0, 0], d, reg[u],
                         cg_steps, NULL, 0, s2, s3, s4, s5, &X[u, 0])
        finally:
            free(s1)
            free(s2)
            free(s3)
            free(s4)
            free(s5)
            free(work)
    if no_memory:
        raise MemoryError(f"could not allocate the per-thread scratch of the row solver "
                          f"({5 * dd * sizeof(floating) / 2**20:.1f} MiB per thread, d = {d})")
    return failed
