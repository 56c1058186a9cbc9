"""Row-wise regularised least squares on observed entries (explicit alternating minimisation).

For each row u with observed columns Omega_u, targets t_ui = r_ui - mean - offset_i and a fixed
design matrix Y (rows y_i), solve
    (sum_{i in Omega_u} y_i y_i^T + reg_u I) x_u = sum_{i in Omega_u} t_ui y_i
either exactly (Cholesky, LAPACK ?posv on the d x d normal matrix, O(|Omega_u| d^2 + d^3)) or
approximately by conjugate gradient warm-started from the current x_u, whose matrix-vector
product sum_i (y_i . p) y_i + reg_u p costs 2 |Omega_u| d and never forms the d x d matrix.
Rows are independent: OpenMP over rows, per-thread scratch; each row writes only its own x_u.
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_lapack cimport dposv, sposv

ctypedef fused floating:
    float
    double


cdef inline void _matvec(const int* cols, Py_ssize_t n_obs, const floating* Y, int d,
                         floating reg, const floating* p, floating* out) noexcept nogil:
    """out = (sum_i y_i y_i^T + reg I) p over the row's observed columns."""
    cdef Py_ssize_t q
    cdef int a
    cdef floating dot
    cdef const floating* y
    for a in range(d):
        out[a] = reg * p[a]
    for q in range(n_obs):
        y = Y + <Py_ssize_t>cols[q] * d
        dot = 0
        for a in range(d):
            dot = dot + y[a] * p[a]
        for a in range(d):
            out[a] = out[a] + dot * y[a]


cdef int _solve_cholesky(const int* cols, const floating* targets, Py_ssize_t n_obs,
                         const floating* Y, int d, floating reg, floating* A, floating* b,
                         floating* x) noexcept nogil:
    cdef Py_ssize_t q
    cdef int a, c, info = 0, one = 1
    cdef char uplo = b'L'
    cdef const floating* y
    for a in range(d * d):
        A[a] = 0
    for a in range(d):
        b[a] = 0
        A[a * d + a] = reg
    for q in range(n_obs):
        y = Y + <Py_ssize_t>cols[q] * d
        for a in range(d):
            b[a] = b[a] + targets[q] * y[a]
            for c in range(a, d):  # A[a*d + c], c >= a: the lower triangle in column-major
                A[a * d + c] = A[a * d + c] + y[a] * y[c]
    if floating is float:
        sposv(&uplo, &d, &one, A, &d, b, &d, &info)
    else:
        dposv(&uplo, &d, &one, A, &d, b, &d, &info)
    if info == 0:
        for a in range(d):
            x[a] = b[a]
    return info


cdef void _solve_cg(const int* cols, const floating* targets, Py_ssize_t n_obs,
                    const floating* Y, int d, floating reg, int steps, floating* r, floating* p,
                    floating* Ap, floating* x) noexcept nogil:
    cdef Py_ssize_t q
    cdef int a, step
    cdef floating rs_old, rs_new, alpha, pAp
    cdef const floating* y
    _matvec(cols, n_obs, Y, d, reg, x, Ap)  # r = b - A x, with b = sum_i t_i y_i
    for a in range(d):
        r[a] = -Ap[a]
    for q in range(n_obs):
        y = Y + <Py_ssize_t>cols[q] * d
        for a in range(d):
            r[a] = r[a] + targets[q] * y[a]
    rs_old = 0
    for a in range(d):
        p[a] = r[a]
        rs_old = rs_old + r[a] * r[a]
    for step in range(steps):
        if rs_old < 1e-20:
            return
        _matvec(cols, n_obs, Y, d, reg, p, Ap)
        pAp = 0
        for a in range(d):
            pAp = pAp + p[a] * Ap[a]
        if pAp <= 0:
            return
        alpha = rs_old / pAp
        rs_new = 0
        for a in range(d):
            x[a] = x[a] + alpha * p[a]
            r[a] = r[a] - alpha * Ap[a]
            rs_new = rs_new + r[a] * r[a]
        for a in range(d):
            p[a] = r[a] + (rs_new / rs_old) * p[a]
        rs_old = rs_new


def solve_rows(const int[::1] indptr, const int[::1] indices, const floating[::1] targets,
               const floating[:, ::1] Y, const floating[::1] reg, floating[:, ::1] X,
               int solver, int cg_steps, int num_threads) -> int:
    """Update every row of X in place (solver 0: Cholesky, 1: CG). Returns failed row count.

    ``targets`` are aligned with ``indices`` (already centred: r - mean - offset). A row whose
    Cholesky fails (singular with reg 0) is set to zero and counted.
    """
    cdef Py_ssize_t n_rows = X.shape[0], u, start, n_obs
    cdef int d = <int>X.shape[1], a, failed = 0
    cdef floating* s1
    cdef floating* s2
    cdef floating* s3
    with nogil, parallel(num_threads=num_threads):
        s1 = <floating*>malloc(d * d * sizeof(floating))
        s2 = <floating*>malloc(d * sizeof(floating))
        s3 = <floating*>malloc(d * sizeof(floating))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=16):
                start = indptr[u]
                n_obs = indptr[u + 1] - start
                if solver == 0:
                    if _solve_cholesky(&indices[start], &targets[start], n_obs, &Y[0, 0], d,
                                       reg[u], s1, s2, &X[u, 0]) != 0:
                        failed += 1
                        for a in range(d):
                            X[u, a] = 0
                else:
                    _solve_cg(&indices[start], &targets[start], n_obs, &Y[0, 0], d, reg[u],
                              cg_steps, s1, s2, s3, &X[u, 0])
        finally:
            free(s1)
            free(s2)
            free(s3)
    return failed
