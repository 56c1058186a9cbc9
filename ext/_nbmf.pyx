"""Kernels of masked NBMF, V ~ W H with W >= 0 and H binary, on observed entries only.

Binary codes: item j's column h_j of H is one uint64 word, bit l = h_lj (k <= 64).

W step, per user u (rows in parallel): the k x k nonnegative least squares
    min_{x >= 0} 1/2 x^T G_u x - b_u^T x,  G_u = sum_{j in Omega_u} h_j h_j^T + alpha_u I,
    b_u = sum_{j in Omega_u} V_uj h_j
(G_u counts co-set bits), solved by cyclic coordinate descent to convergence (each step the
exact minimiser in one coordinate, projected on x >= 0) or by Lin's projected gradient with the
Armijo rule (Lin 2007, "Projected gradient methods for NMF", the paper's PGM).

H step, per item j (items in parallel): the k-bit QUBO built from the users who rated j only
    E_j(h) = sum_l a_l h_l + sum_{l<m} B_lm h_l h_m,
    a_l = sum_{u in Omega_j} W_ul (W_ul - 2 V_uj),   B_lm = 2 sum_{u in Omega_j} W_ul W_um,
which is sum_{u in Omega_j} (V_uj - w_u . h)^2 minus the constant sum V_uj^2 (h_l^2 = h_l).
Solvers: simulated annealing (single-bit Metropolis with local fields
F_l = a_l + sum_m B_lm h_m, a flip of bit l changes E by (1 - 2 h_l) F_l and costs O(k);
geometric inverse-temperature schedule per read, from ln 2 / mean_l |F_l| at the read's start
state (a flip of average cost is accepted with probability 1/2) to ln 1e6 / min|coefficient|
(frozen: the last sweeps are a greedy descent). dwave-neal's default range, ln 2 / max row sum
to ln 100 / min|coefficient|, starts far hotter than the fields of NBMF's QUBOs (whose positive
couplings cancel the negative linear terms) and ends warmer; read 0 starts from the
previous h_j, the others from random bits; the best state seen is kept, so the result is never
worse than the warm start), or exact Gray-code
enumeration (O(2^k k), the test oracle). Each item's random stream is seeded from
(seed, item), so results do not depend on the thread count.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport exp, fabs, log
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc

from _random cimport mix, next_u64

ctypedef fused value_t:  # the matrix's stored values: float32 (canonical CSR) or float64
    float
    double


# ---------------------------------------------------------------------------------------------
# W step
# ---------------------------------------------------------------------------------------------
cdef inline void _normal_equations(const int* cols, const value_t* values, Py_ssize_t n_obs,
                                   const uint64_t* codes, int k, double alpha, double* G,
                                   double* b) noexcept nogil:
    """G = sum_j h_j h_j^T + alpha I and b = sum_j v_j h_j over the row's rated items."""
    cdef Py_ssize_t q
    cdef int l, m, n_set
    cdef int set_bits[64]
    cdef uint64_t code
    for l in range(k * k):
        G[l] = 0
    for l in range(k):
        b[l] = 0
        G[l * k + l] = alpha
    for q in range(n_obs):
        code = codes[cols[q]]
        n_set = 0
        for l in range(k):
            if (code >> l) & 1:
                set_bits[n_set] = l
                n_set += 1
        for l in range(n_set):
            b[set_bits[l]] += values[q]
            for m in range(n_set):
                G[set_bits[l] * k + set_bits[m]] += 1


cdef inline int _nnls_cd(const double* G, const double* b, int k, double* x, double* gx,
                         int max_iter, double tol) noexcept nogil:
    """Cyclic projected coordinate descent; gx holds G x. Returns the sweeps used."""
    cdef int l, m, it
    cdef double new, delta, biggest, largest
    for l in range(k):
        gx[l] = 0
        for m in range(k):
            gx[l] += G[l * k + m] * x[m]
    for it in range(max_iter):
        biggest = 0
        largest = 0
        for l in range(k):
            if G[l * k + l] > 0:
                new = x[l] - (gx[l] - b[l]) / G[l * k + l]
                if new < 0:
                    new = 0
            else:
                new = 0
            delta = new - x[l]
            if delta != 0:
                x[l] = new
                for m in range(k):
                    gx[m] += delta * G[m * k + l]
                if fabs(delta) > biggest:
                    biggest = fabs(delta)
            if x[l] > largest:
                largest = x[l]
        if biggest <= tol * largest:
            return it + 1
    return max_iter


cdef inline double _quad(const double* G, int k, const double* d) noexcept nogil:
    cdef int l, m
    cdef double total = 0, row
    for l in range(k):
        row = 0
        for m in range(k):
            row += G[l * k + m] * d[m]
        total += d[l] * row
    return total


cdef inline int _nnls_pgm(const double* G, const double* b, int k, double* x, double* g,
                          double* xn, double* xp, int max_iter, double tol) noexcept nogil:
    """Lin's projected gradient with the Armijo rule (beta 0.1, sigma 0.01), step size carried
    over between iterations. Stops when the projected-gradient norm falls below ``tol`` times
    its initial value. Returns the iterations used."""
    cdef int l, m, it, inner
    cdef double step = 1.0, pg, pg0 = 0, gd, dgd
    cdef double beta = 0.1, sigma = 0.01
    cdef bint decrease = False, sufficient, same
    for it in range(max_iter):
        pg = 0
        for l in range(k):
            g[l] = -b[l]
            for m in range(k):
                g[l] += G[l * k + m] * x[m]
            if g[l] < 0 or x[l] > 0:
                pg += g[l] * g[l]
        if it == 0:
            pg0 = pg
        if pg <= tol * tol * pg0 or pg == 0:
            return it
        for inner in range(30):
            gd = 0
            for l in range(k):
                xn[l] = x[l] - step * g[l]
                if xn[l] < 0:
                    xn[l] = 0
                xn[l] -= x[l]  # d = xn - x, kept in xn for the quadratic form
                gd += g[l] * xn[l]
            dgd = _quad(G, k, xn)
            sufficient = (1 - sigma) * gd + 0.5 * dgd <= 0  # f(x + d) - f(x) <= sigma g.d
            for l in range(k):
                xn[l] += x[l]
            if inner == 0:
                decrease = not sufficient
                for l in range(k):
                    xp[l] = x[l]
            if decrease:
                if sufficient:
                    for l in range(k):
                        x[l] = xn[l]
                    break
                step *= beta
            else:
                same = True
                for l in range(k):
                    if xp[l] != xn[l]:
                        same = False
                if not sufficient or same:
                    for l in range(k):
                        x[l] = xp[l]
                    break
                step /= beta
                for l in range(k):
                    xp[l] = xn[l]
    return max_iter


def nnls_rows(const int[::1] indptr, const int[::1] indices, const value_t[::1] data,
              const uint64_t[::1] codes, double[:, ::1] W, const double[::1] alpha,
              int method, int max_iter, double tol, int[::1] used, int num_threads) -> None:
    """W step in place (method 0: coordinate descent, 1: projected gradient); rows warm-start
    from the current W. ``used[u]`` receives the iterations row u took."""
    cdef Py_ssize_t n_rows = W.shape[0], u, start
    cdef int k = <int>W.shape[1], no_memory = 0
    cdef double* G
    cdef double* b
    cdef double* s1
    cdef double* s2
    cdef double* s3
    if not 0 < k <= 64:
        raise ValueError("k must lie in [1, 64]")
    if alpha.shape[0] != n_rows or indptr.shape[0] != n_rows + 1 or used.shape[0] != n_rows:
        raise ValueError("inconsistent shapes")
    with nogil, parallel(num_threads=num_threads):
        G = <double*>malloc(k * k * sizeof(double))
        b = <double*>malloc(k * sizeof(double))
        s1 = <double*>malloc(k * sizeof(double))
        s2 = <double*>malloc(k * sizeof(double))
        s3 = <double*>malloc(k * sizeof(double))
        try:
            for u in prange(n_rows, schedule="dynamic", chunksize=16):
                if G == NULL or b == NULL or s1 == NULL or s2 == NULL or s3 == NULL:
                    no_memory += 1
                    continue
                start = indptr[u]
                _normal_equations(&indices[start], &data[start], indptr[u + 1] - start,
                                  &codes[0], k, alpha[u], G, b)
                if method == 0:
                    used[u] = _nnls_cd(G, b, k, &W[u, 0], s1, max_iter, tol)
                else:
                    used[u] = _nnls_pgm(G, b, k, &W[u, 0], s1, s2, s3, max_iter, tol)
        finally:
            free(G)
            free(b)
            free(s1)
            free(s2)
            free(s3)
    if no_memory:
        raise MemoryError("could not allocate the W step's per-thread scratch")


# ---------------------------------------------------------------------------------------------
# H step: QUBO terms and solvers
# ---------------------------------------------------------------------------------------------
cdef inline void _qubo(const int* rows, const value_t* values, Py_ssize_t n_obs,
                       const double* W, int k, double* a, double* B) noexcept nogil:
    """a and the symmetric B (zero diagonal) of one item's QUBO from its raters."""
    cdef Py_ssize_t q
    cdef int l, m
    cdef const double* w
    cdef double v
    for l in range(k):
        a[l] = 0
    for l in range(k * k):
        B[l] = 0
    for q in range(n_obs):
        w = W + <Py_ssize_t>rows[q] * k
        v = values[q]
        for l in range(k):
            if w[l] != 0:
                a[l] += w[l] * (w[l] - 2 * v)
                for m in range(l + 1, k):
                    B[l * k + m] += 2 * w[l] * w[m]
    for l in range(k):
        for m in range(l + 1, k):
            B[m * k + l] = B[l * k + m]


cdef inline double _energy(const double* a, const double* B, int k, uint64_t h) noexcept nogil:
    cdef int l, m
    cdef double e = 0
    for l in range(k):
        if (h >> l) & 1:
            e += a[l]
            for m in range(l + 1, k):
                if (h >> m) & 1:
                    e += B[l * k + m]
    return e


cdef inline void _fields(const double* a, const double* B, int k, uint64_t h,
                         double* F) noexcept nogil:
    """F_l = a_l + sum_m B_lm h_m: the energy change of setting bit l (from 0)."""
    cdef int l, m
    for l in range(k):
        F[l] = a[l]
    for m in range(k):
        if (h >> m) & 1:
            for l in range(k):
                F[l] += B[m * k + l]


cdef inline double _flip(const double* B, int k, uint64_t* h, int l, double* F) noexcept nogil:
    """Flip bit l of h, update the fields; returns the energy change."""
    cdef int m
    cdef double delta
    cdef const double* row = B + l * k
    if (h[0] >> l) & 1:
        delta = -F[l]
        for m in range(k):
            F[m] -= row[m]
    else:
        delta = F[l]
        for m in range(k):
            F[m] += row[m]
    h[0] ^= (<uint64_t>1) << l
    return delta


cdef inline uint64_t _exact(const double* a, const double* B, int k, double* F,
                            double* best_energy) noexcept nogil:
    """Minimum over all 2^k states by Gray code (one flip per step); ties keep the first."""
    cdef uint64_t h = 0, best = 0, step, total = (<uint64_t>1) << k
    cdef double e = 0, best_e = 0
    cdef int l
    _fields(a, B, k, 0, F)
    step = 1
    while step < total:
        l = 0
        while not (step >> l) & 1:
            l += 1
        e += _flip(B, k, &h, l, F)
        if e < best_e:
            best_e = e
            best = h
        step += 1
    best_energy[0] = best_e
    return best


cdef inline bint _metropolis(double x, uint64_t* rng, uint64_t* spare) noexcept nogil:
    """Accept an uphill move with beta dE = x > 0 with probability exp(-x), from a 32-bit
    uniform (each 64-bit draw serves two tests; ``spare`` holds the unused half, or 0). exp (a
    third of the annealer's time otherwise) is only evaluated when u falls between the bounds
    1 - x <= exp(-x) <= 1 / (1 + x + x^2 / 2); the decisions are those of u < exp(-x)."""
    cdef double u
    cdef uint64_t bits
    if x >= 40:
        return False
    if spare[0]:
        bits = spare[0] & <uint64_t>0xffffffff
        spare[0] = 0
    else:
        bits = next_u64(rng)
        spare[0] = (bits & <uint64_t>0xffffffff) | ((<uint64_t>1) << 32)  # flags a stored half
        bits >>= 32
    u = <double>bits * (1.0 / 4294967296.0)
    if u * (1 + x + 0.5 * x * x) >= 1:
        return False
    return u < 1 - x or u < exp(-x)


cdef inline uint64_t _anneal(const double* a, const double* B, int k, uint64_t warm,
                             int reads, int sweeps, uint64_t* rng, double* F,
                             double* best_energy) noexcept nogil:
    """Simulated annealing (see the module docstring); returns the best state seen."""
    cdef int l, m, r, s
    cdef double cold = 1e300, hot, beta, beta0, beta1, ratio, delta, e, best_e
    cdef uint64_t spare = 0
    cdef uint64_t h, best, mask = (<uint64_t>-1) >> (64 - k)
    for l in range(k):
        if a[l] != 0 and fabs(a[l]) < cold:
            cold = fabs(a[l])
        for m in range(l + 1, k):
            if B[l * k + m] != 0 and fabs(B[l * k + m]) < cold:
                cold = fabs(B[l * k + m])
    best = warm & mask
    best_e = _energy(a, B, k, best)
    if cold == 1e300:  # all coefficients zero: every state has energy 0
        best_energy[0] = best_e
        return best
    beta1 = log(1e6) / cold  # frozen end: the smallest coefficient uphill at p = 1e-6
    for r in range(reads):
        h = best if r == 0 else next_u64(rng) & mask
        _fields(a, B, k, h, F)
        e = 0
        hot = 0
        for l in range(k):
            hot += fabs(F[l])
            if (h >> l) & 1:
                e += 0.5 * (a[l] + F[l])  # E(h) = 1/2 sum_{l in h} (a_l + F_l)
        hot /= k
        beta0 = log(2.0) / hot if hot > 0 else beta1
        if beta0 > beta1:
            beta0 = beta1
        ratio = (beta1 / beta0) ** (1.0 / (sweeps - 1)) if sweeps > 1 else 1.0
        beta = beta0 if sweeps > 1 else beta1
        for s in range(sweeps):
            for l in range(k):
                delta = F[l] if not (h >> l) & 1 else -F[l]
                if delta <= 0 or _metropolis(beta * delta, rng, &spare):
                    e += _flip(B, k, &h, l, F)
                    if e < best_e:
                        best_e = e
                        best = h
            beta *= ratio
    best_energy[0] = best_e
    return best


cdef inline uint64_t _solve(const double* a, const double* B, int k, uint64_t warm, int method,
                            int reads, int sweeps, uint64_t seed, double* F,
                            double* energy) noexcept nogil:
    cdef uint64_t rng = seed
    if method == 1:
        return _exact(a, B, k, F, energy)
    return _anneal(a, B, k, warm, reads, sweeps, &rng, F, energy)


cdef inline uint64_t _item_seed(uint64_t seed, Py_ssize_t j) noexcept nogil:
    return mix(seed ^ mix(<uint64_t>j + <uint64_t>0x632be59bd9b4e019))


def _check_solver(int k, int method, int reads, int sweeps):
    if not 0 < k <= 64:
        raise ValueError(f"k must lie in [1, 64], got {k}")
    if method == 1 and k > 24:
        raise ValueError(f"exact enumeration needs k <= 24, got {k}")
    if method == 0 and (reads < 1 or sweeps < 1):
        raise ValueError("num_reads and num_sweeps must be positive")


def h_step(const int[::1] t_indptr, const int[::1] t_indices, const value_t[::1] t_data,
           const double[:, ::1] W, uint64_t[::1] codes, double[::1] energies, int method,
           int reads, int sweeps, unsigned long long seed, int num_threads,
           Py_ssize_t item_offset=0) -> None:
    """Rebuild and solve every item's QUBO (0: anneal from the current code, 1: exact).

    Items nobody rated get code 0 and energy 0. ``energies[j]`` is E_j of the new code. The
    annealer of item j draws from (seed, item_offset + j): a block of items starting at
    ``item_offset`` anneals as the whole catalogue would.
    """
    cdef Py_ssize_t n_items = codes.shape[0], j, start, n_obs
    cdef int k = <int>W.shape[1], no_memory = 0
    cdef double* a
    cdef double* B
    cdef double* F
    _check_solver(k, method, reads, sweeps)
    if t_indptr.shape[0] != n_items + 1 or energies.shape[0] != n_items:
        raise ValueError("inconsistent shapes")
    with nogil, parallel(num_threads=num_threads):
        a = <double*>malloc(k * sizeof(double))
        B = <double*>malloc(k * k * sizeof(double))
        F = <double*>malloc(k * sizeof(double))
        try:
            for j in prange(n_items, schedule="dynamic", chunksize=8):
                if a == NULL or B == NULL or F == NULL:
                    no_memory += 1
                    continue
                start = t_indptr[j]
                n_obs = t_indptr[j + 1] - start
                if n_obs == 0:
                    codes[j] = 0
                    energies[j] = 0
                    continue
                _qubo(&t_indices[start], &t_data[start], n_obs, &W[0, 0], k, a, B)
                codes[j] = _solve(a, B, k, codes[j], method, reads, sweeps,
                                  _item_seed(seed, j + item_offset), F, &energies[j])
        finally:
            free(a)
            free(B)
            free(F)
    if no_memory:
        raise MemoryError("could not allocate the H step's per-thread scratch")


def qubo_terms(const int[::1] t_indptr, const int[::1] t_indices, const value_t[::1] t_data,
               const double[:, ::1] W, const long long[::1] items, double[:, ::1] a,
               double[:, :, ::1] B, int num_threads) -> None:
    """Fill ``a[r]``, ``B[r]`` with the QUBO of item ``items[r]`` (for external samplers)."""
    cdef Py_ssize_t r, j, n = items.shape[0]
    cdef int k = <int>W.shape[1]
    if a.shape[0] != n or B.shape[0] != n or a.shape[1] != k or B.shape[1] != k:
        raise ValueError("inconsistent shapes")
    for r in range(n):
        if not 0 <= items[r] < t_indptr.shape[0] - 1:
            raise IndexError(f"item {items[r]} out of range")
    for r in prange(n, nogil=True, schedule="dynamic", num_threads=num_threads):
        j = items[r]
        _qubo(&t_indices[t_indptr[j]], &t_data[t_indptr[j]], t_indptr[j + 1] - t_indptr[j],
              &W[0, 0], k, &a[r, 0], &B[r, 0, 0])


def solve_qubos(const double[:, ::1] a, const double[:, :, ::1] B, uint64_t[::1] codes,
                double[::1] energies, int method, int reads, int sweeps,
                unsigned long long seed, int num_threads) -> None:
    """Solve prebuilt QUBOs (``B`` symmetric, zero diagonal) in place of ``codes``."""
    cdef Py_ssize_t n = a.shape[0], r
    cdef int k = <int>a.shape[1], no_memory = 0
    cdef double* F
    _check_solver(k, method, reads, sweeps)
    if B.shape[0] != n or B.shape[1] != k or B.shape[2] != k or codes.shape[0] != n \
            or energies.shape[0] != n:
        raise ValueError("inconsistent shapes")
    with nogil, parallel(num_threads=num_threads):
        F = <double*>malloc(k * sizeof(double))
        try:
            for r in prange(n, schedule="dynamic", chunksize=8):
                if F == NULL:
                    no_memory += 1
                    continue
                codes[r] = _solve(&a[r, 0], &B[r, 0, 0], k, codes[r], method, reads, sweeps,
                                  _item_seed(seed, r), F, &energies[r])
        finally:
            free(F)
    if no_memory:
        raise MemoryError("could not allocate the QUBO solver's per-thread scratch")


def qubo_energy(const double[::1] a, const double[:, ::1] B, uint64_t code) -> float:
    """E(h) of one code (for tests and adapters)."""
    return _energy(&a[0], &B[0, 0], <int>a.shape[0], code)
