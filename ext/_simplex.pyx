"""SimpleX training epoch: cosine contrastive loss (CCL), mean history aggregation, Adam or
Adagrad.

Model (Mao et al., CIKM 2021; the official RecZoo/RecBox implementation's choices):
    h_ui = mean of q_k over the user's history k != i (the target is left out, as officially)
    p_ui = g e_u + (1 - g) W h_ui,     z = xi o p_ui / |p_ui|   (dropout xi after normalising)
    s_t  = z . q_t / |q_t|
    L_ui = relu(1 - s_i) + (w / N) sum_{j in negatives} relu(s_j - m)          (CCL, eq. 3)
Gradients (only negatives with s_j > m contribute):
    G_z = -[s_i < 1] q^_i + (w / N) sum_{active j} q^_j
    G_q_t = c_t (z - s_t q^_t) / |q_t|,   G_p = (G_p^ - (p^ . G_p^) p^) / |p|,  G_p^ = xi o G_z
    G_e = g G_p,   G_W = (1 - g) G_p h^T,   G_h = (1 - g) W^T G_p,   G_q_k += G_h / (n - 1)
The official ``enable_bias`` adds, in training only, a user and a global bias to every score of
user u (s_t + b_u + b_0 in the relus above): G_{b_u} = G_{b_0} = -[s_i < 1] + (w / N) #active.
User attention (the official ``user_attention`` aggregator) replaces the mean by
    h_ui = sum_k alpha_k q_k,  alpha = softmax_k(K_k . e_u),  K_k = tanh(A q_k + b)
    G_a_k = alpha_k (G_h . q_k - G_h . h),  G_e += sum_k G_a_k K_k,  G_q_k += alpha_k G_h,
    and through the key, R_k = G_a_k e_u o (1 - K_k^2): G_A += R_k q_k^T, G_b += R_k,
    G_q_k += A^T R_k. The keys of all items are one table, rebuilt (one SGEMM) whenever the
    items, A and b step; the R_k are summed per item and turned into G_A, G_b and G_q by two
    SGEMMs over the touched rows just before that step.

The unit of work is a block: up to ``negative_sharing`` positives that share N negatives,
scored by one SGEMM against the gathered normalised rows of the negatives (``_block``, in
stages: draw, history, user vectors, scores, the negatives' and positives' terms, the history's
gradients, the users' steps). An epoch (the official shuffled data loader) takes the positives
in a given random order, in mini-batches of ``batch_size`` that the threads take in turn
(dynamic schedule), each cut into blocks of consecutive positives (of different users, mostly)
whose random numbers come from a splitmix64 stream seeded by the block's first positive; after
each block every user in it steps its row (at a rate of lr per positive), and the item rows
(and item biases: s_t gains b_t, its column dropped out with z), W and the global bias step at
the end of the mini-batch with the gradients summed over it. Negatives are uniform with
replacement or by popularity. With ``exclude_positives`` a negative that is one of its
positive's user's items is left out of that positive's sum: redrawn (up to 32 times) when the
block holds one user, skipped for that user's pairs when it holds several. Scores read a
shared table of normalised item rows q^, kept current by whoever steps a row; gradients are
summed over the active pairs only (s > m: few once training is under way). Optimisers
(``_optim.pxd``): lazy or dense Adam, or Adagrad, per row; l2 on touched rows. Item rows, W,
the global bias and user rows and biases are updated lock-free (Hogwild, as implicit's BPR):
two threads may update one row at the same time; everything else is exact. With one thread
an epoch is bit-reproducible.
"""

import numpy as np

from recsys._sparse import row_of_values

from cython.parallel cimport parallel, prange, threadid
from libc.math cimport expf, sqrtf
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sdot, sgemm

from _optim cimport Gaps, Table, gaps_free, gaps_new, update
from _permutation cimport is_permutation
from _random cimport mix, next_u64, next_uniform
from _sorted cimport find

cdef extern from *:
    void __builtin_prefetch(const void* address) nogil

cdef float EPS = 1e-8  # guards the norms of all-zero rows
cdef int AHEAD = 8  # rows gathered or scattered at random are prefetched this many ahead
cdef int MAX_REJECT = 32  # redraws of a negative that is one of the user's positives
cdef uint64_t STREAM = 0x51ed270b27fd3a45
cdef char TRANS = b'T', PLAIN = b'N'
cdef float ZERO = 0.0, ONE = 1.0


cdef inline float _dot(int d, const float* x, const float* y) noexcept nogil:
    cdef int one = 1
    return sdot(&d, <float*>x, &one, <float*>y, &one)


cdef inline void _prefetch(const float* row, int d) noexcept nogil:
    """Ask for the cache lines of a row about to be read at a random place."""
    cdef int c
    for c in range(0, d, 16):
        __builtin_prefetch(row + c)


cdef inline void _axpy(int d, float a, const float* x, float* y) noexcept nogil:
    cdef int c
    for c in range(d):
        y[c] += a * x[c]


cdef struct Config:
    # the estimator's parameters, by their Python names
    int factors
    int negatives
    float margin
    float negative_weight
    float gamma
    float dropout
    float learning_rate
    float l2
    float history_rate
    int batch_size
    int negative_sharing
    bint exclude_positives
    uint64_t seed
    int n_items
    const double* cdf   # cumulative popularity of the items (NULL: uniform negatives)


cdef struct Data:
    # the positives (CSR) and each user's history (a sorted subset of its positives)
    const int* indptr
    const int* indices
    const int* hist_indptr
    const int* hist_indices


cdef struct Model:
    # the trained tables and their optimiser states, shared by the threads; the optional
    # ones are NULL when off
    float* user_factors
    Table user_factors_state
    float* item_factors
    Table item_factors_state
    float* W
    Table W_state
    float* item_bias
    Table item_bias_state
    float* user_bias      # the official enable_bias's training-only shift: every score of
    Table user_bias_state  # user u gains user_bias[u] + global_bias[0]
    float* global_bias
    Table global_bias_state
    float* attention      # A (d x d) of the user attention's keys K = tanh(Q A^T + b)
    Table attention_state
    float* attention_bias
    Table attention_bias_state
    float* keys           # n_items x d: K, rebuilt after every step of the items or A
    float* normalised     # n_items x d: q / |q|, kept current
    float* inverse_norm   # n_items: 1 / |q|
    int* clock            # the dense-Adam mini-batch clock (NULL: lazy Adam or Adagrad)


cdef struct Sink:
    # one thread's item-side gradients summed since the last step of the items
    float* acc      # n_items x d: item gradients
    float* bacc     # n_items: item-bias gradients (NULL: no biases)
    char* mark      # n_items: row has a pending gradient
    int* touched    # rows with a pending gradient
    int n_touched
    int count       # positives since the last step
    float* GW       # d x d
    float gacc      # the global bias
    float* GA       # d x d, then d: the attention's A and b
    float* Gba
    float* kacc     # n_items x d: gradients of the keys' pre-activations (attention)
    float* Kg       # n_items x d: the touched rows of kacc, of the items, of their gradients
    float* Qg
    float* Og
    Gaps gaps       # dense Adam's gap factors
    float* gE       # without steps (gradients only): the user's and its shift's gradients
    float* gub


cdef struct Scratch:
    # one thread's buffers for a block of m positives (at most ``chunk``) sharing N negatives
    int m
    int* users      # chunk: each positive's user
    int* targets    # chunk: and item
    bint single     # all m positives belong to one user
    int* hpos       # chunk: position of the target in its user's history, or -1
    float* inv      # chunk: 1 / |history minus target|
    float* S        # d: sum of the history's item vectors (of users[S_user])
    int S_user
    float* H        # chunk x d: the aggregated histories h
    float* WH       # chunk x d: W h
    float* P        # chunk x d: normalised user vectors (before dropout)
    float* Xi       # chunk x d: dropout masks
    float* Z        # chunk x d: dropped-out normalised user vectors
    float* norm_p   # chunk
    float* xb       # chunk: dropout of the bias column [1, b_i]
    float* shift    # chunk: the users' training-only biases
    float* gsh      # chunk: their gradients
    float* GZ       # chunk x d: gradients of z
    float* GP       # chunk x d: gradients of the unnormalised user vectors
    float* GE       # chunk x d: of the users' rows
    float* GH       # chunk x d: of the histories h
    int* neg        # N
    float* Qn       # N x d: the negatives' normalised rows, gathered
    float* Sc       # chunk x N: scores
    char* active    # N
    int* act        # N: the active negatives' columns
    int n_act
    float* GQn      # N x d: the negatives' gradients (before the normalisation's Jacobian)
    float* colw     # N: sum over positives of A_aj s_aj
    float* gbn      # N: the negatives' item-bias gradients
    float* runmax   # N / 32 + 1: the largest item bias of each run of 32 negatives
    uint64_t* seen  # n_items: bit a marks the items of positive a's user (while excluded)
    float* AL       # chunk x hmax: attention weights over the history (user attention)
    int hmax
    float* p        # d
    float* gt       # d: one item's gradient
    float* gk       # d: one key's gradient


# ---- sink: pending item-side gradients -------------------------------------------------

cdef inline void _sink_into(Sink* k, float* table, int row, const float* g, float a,
                            int d) noexcept nogil:
    """Add ``a g`` to row ``row`` of one of the sink's tables (item or key gradients),
    marking the row as touched."""
    if not k.mark[row]:
        k.mark[row] = 1
        k.touched[k.n_touched] = row
        k.n_touched += 1
    _axpy(d, a, g, table + <Py_ssize_t>row * d)


cdef inline void _sink_add(Sink* k, int row, const float* g, float a, int d,
                           float gb) noexcept nogil:
    """Add ``a g`` to item ``row``'s gradient and ``gb`` to its bias's."""
    _sink_into(k, k.acc, row, g, a, d)
    if k.bacc != NULL:
        k.bacc[row] += gb


cdef inline void _normalise(Model* M, Py_ssize_t row, int d) noexcept nogil:
    """Row ``row`` of the normalised table from the item factors."""
    cdef int c
    cdef const float* q = M.item_factors + row * d
    cdef float inv = 1.0 / (sqrtf(_dot(d, q, q)) + EPS)
    M.inverse_norm[row] = inv
    for c in range(d):
        M.normalised[row * d + c] = q[c] * inv


cdef void _keys(const float* Q, const float* A, const float* ba, float* K, int n_items,
                int d) noexcept nogil:
    """K = tanh(Q A^T + b): every item's attention key (one SGEMM)."""
    cdef Py_ssize_t i
    cdef int c
    cdef float x
    # row-major K (n x d) = Q A^T is column-major K^T = A Q^T
    sgemm(&TRANS, &PLAIN, &d, &n_items, &d, &ONE, <float*>A, &d, <float*>Q, &d, &ZERO, K, &d)
    for i in range(n_items):
        for c in range(d):
            # tanh x = 1 - 2 / (e^2x + 1): glibc's expf is ~3x faster than its tanhf; the
            # absolute error stays at float32 rounding (it is relative near 0 that suffers)
            x = min(max(K[i * d + c] + ba[c], -15.0), 15.0)
            K[i * d + c] = 1 - 2 / (expf(2 * x) + 1)


cdef void _key_backward(Sink* k, Model* M, int d) noexcept nogil:
    """Turn the touched items' key gradients G (pre-activation) into gradients of A, b and
    the items: G_A += G^T Q, G_b += sum of G's rows, G_q += G A (SGEMMs on the gathered
    rows); kacc is cleared."""
    cdef int i, c, row, n = k.n_touched
    cdef float* a
    if n == 0:
        return
    for i in range(n):
        row = k.touched[i]
        memcpy(k.Kg + <Py_ssize_t>i * d, k.kacc + <Py_ssize_t>row * d, d * sizeof(float))
        memcpy(k.Qg + <Py_ssize_t>i * d, M.item_factors + <Py_ssize_t>row * d,
               d * sizeof(float))
        memset(k.kacc + <Py_ssize_t>row * d, 0, d * sizeof(float))
    # row-major G_A (d x d) += Kg^T Qg is column-major G_A^T += Qg^T Kg
    sgemm(&PLAIN, &TRANS, &d, &d, &n, &ONE, k.Qg, &d, k.Kg, &d, &ONE, k.GA, &d)
    # row-major Og (n x d) = Kg A is column-major Og^T = A^T Kg^T
    sgemm(&PLAIN, &PLAIN, &d, &n, &d, &ONE, M.attention, &d, k.Kg, &d, &ZERO, k.Og, &d)
    for i in range(n):
        row = k.touched[i]
        a = k.acc + <Py_ssize_t>row * d
        for c in range(d):
            a[c] += k.Og[i * d + c]
            k.Gba[c] += k.Kg[i * d + c]


cdef void _flush(Sink* k, Model* M, Config* cfg) noexcept nogil:
    """One optimiser step for every item row (and bias) with a pending gradient (and W, the
    global bias, and the attention's A and b, whose keys are then rebuilt), then reset."""
    cdef int i, row, now = 0, d = cfg.factors
    cdef float lr = cfg.learning_rate, l2 = cfg.l2
    cdef float* a
    cdef Gaps* gaps = &k.gaps if k.gaps.stamp != NULL else NULL
    if M.clock != NULL:  # threads race on the clock; a lost tick only shortens a gap
        now = M.clock[0] + 1
        M.clock[0] = now
    if k.kacc != NULL:
        _key_backward(k, M, d)
    for i in range(k.n_touched):
        if i + AHEAD < k.n_touched:  # the row's gradient, value and moments
            row = k.touched[i + AHEAD]
            _prefetch(k.acc + <Py_ssize_t>row * d, d)
            _prefetch(M.item_factors + <Py_ssize_t>row * d, d)
            _prefetch(M.item_factors_state.v + <Py_ssize_t>row * d, d)
            _prefetch(M.normalised + <Py_ssize_t>row * d, d)
            if M.item_factors_state.m != NULL:
                _prefetch(M.item_factors_state.m + <Py_ssize_t>row * d, d)
        row = k.touched[i]
        a = k.acc + <Py_ssize_t>row * d
        update(M.item_factors + <Py_ssize_t>row * d, &M.item_factors_state, row, d, a, lr, l2,
               now, gaps)
        _normalise(M, row, d)
        memset(a, 0, d * sizeof(float))
        if M.item_bias != NULL:
            update(M.item_bias + row, &M.item_bias_state, row, 1, k.bacc + row, lr, l2, now,
                   gaps)
            k.bacc[row] = 0
        k.mark[row] = 0
    k.n_touched = 0
    k.count = 0
    if M.global_bias != NULL:
        update(M.global_bias, &M.global_bias_state, 0, 1, &k.gacc, lr, 0, now, gaps)
        k.gacc = 0
    if cfg.gamma < 1:
        update(M.W, &M.W_state, 0, d * d, k.GW, lr * cfg.history_rate, l2, now, gaps)
        memset(k.GW, 0, d * d * sizeof(float))
    if k.kacc != NULL:
        update(M.attention, &M.attention_state, 0, d * d, k.GA, lr * cfg.history_rate, l2,
               now, gaps)
        update(M.attention_bias, &M.attention_bias_state, 0, d, k.Gba, lr * cfg.history_rate,
               0, now, gaps)
        memset(k.GA, 0, d * d * sizeof(float))
        memset(k.Gba, 0, d * sizeof(float))
        _keys(M.item_factors, M.attention, M.attention_bias, M.keys, cfg.n_items, d)


# ---- the stages of a block ---------------------------------------------------------------

cdef inline int _sample(uint64_t* rng, int n_items, const double* cdf) noexcept nogil:
    """Uniform item (cdf NULL) or one drawn from the cumulative popularity ``cdf``."""
    cdef int lo, hi, mid
    cdef double u
    if cdf == NULL:
        # the top 32 bits scaled to [0, n_items) (Lemire 2019): no division, bias < n / 2^32
        return <int>(((next_u64(rng) >> 32) * <uint64_t>n_items) >> 32)
    u = next_uniform(rng) * cdf[n_items - 1]
    lo = 0
    hi = n_items - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if cdf[mid] <= u:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef void _mark(Data* X, Scratch* s, bint on) noexcept nogil:
    """Set bit a of ``seen`` on every item of positive a's user (the first 64; one user's
    once when the block holds one user), or clear them."""
    cdef int a, k, u
    for a in range(1 if s.single else min(s.m, 64)):
        u = s.users[a]
        for k in range(X.indptr[u], X.indptr[u + 1]):
            if on:
                s.seen[X.indices[k]] |= (<uint64_t>1) << a
            else:
                s.seen[X.indices[k]] = 0


cdef inline bint _excluded(Data* X, Scratch* s, int a, int t) noexcept nogil:
    """Whether item t is one of positive a's user's items (``seen`` marked)."""
    cdef int u
    if a < 64:
        return (s.seen[t] >> a) & 1
    u = s.users[a]
    return find(X.indices + X.indptr[u], X.indptr[u + 1] - X.indptr[u], t) >= 0


cdef void _draw(Config* cfg, Data* X, Scratch* s, uint64_t* rng) noexcept nogil:
    """The block's N negatives; with ``exclude_positives`` (``seen`` marked) and one user,
    its positives are redrawn."""
    cdef int a, j, t
    cdef bint redraw = cfg.exclude_positives and s.single
    for j in range(cfg.negatives):
        t = _sample(rng, cfg.n_items, cfg.cdf)
        if redraw:
            for a in range(MAX_REJECT):
                if not s.seen[t] & 1:
                    break
                t = _sample(rng, cfg.n_items, cfg.cdf)
        s.neg[j] = t


cdef void _attend(Model* M, Data* X, Scratch* s, int a, int d) noexcept nogil:
    """User attention of positive a: h = sum_k alpha_k q_k, alpha = softmax_k(K_k . e_u) over
    the history minus the target."""
    cdef int j, u = s.users[a], t = s.targets[a]
    cdef const int* hcols = X.hist_indices + X.hist_indptr[u]
    cdef int nh = X.hist_indptr[u + 1] - X.hist_indptr[u]
    cdef float top = -1e30, mass = 0, al
    cdef float* w = s.AL + <Py_ssize_t>a * s.hmax
    cdef const float* e = M.user_factors + <Py_ssize_t>u * d
    for j in range(nh):
        if hcols[j] != t:
            w[j] = _dot(d, M.keys + <Py_ssize_t>hcols[j] * d, e)
            top = max(top, w[j])
    for j in range(nh):
        al = expf(w[j] - top) if hcols[j] != t else 0
        w[j] = al
        mass += al
    memset(s.H + a * d, 0, d * sizeof(float))
    for j in range(nh):
        if mass > 0:
            w[j] /= mass
        if w[j] != 0:
            _axpy(d, w[j], M.item_factors + <Py_ssize_t>hcols[j] * d, s.H + a * d)


cdef void _history(Config* cfg, Model* M, Data* X, Scratch* s) noexcept nogil:
    """The aggregated history h of each positive (the target left out) and W h (one SGEMM)."""
    cdef int a, c, j, u, t, nh, d = cfg.factors, m = s.m
    cdef const int* hcols
    cdef const float* q
    for a in range(m):
        u, t = s.users[a], s.targets[a]
        hcols = X.hist_indices + X.hist_indptr[u]
        nh = X.hist_indptr[u + 1] - X.hist_indptr[u]
        s.hpos[a] = <int>find(hcols, nh, t)
        if M.attention != NULL:
            _attend(M, X, s, a, d)
            continue
        if s.S_user != u:  # the user's history sum, shared by its positives in the block
            memset(s.S, 0, d * sizeof(float))
            for j in range(nh):
                if j + AHEAD < nh:
                    _prefetch(M.item_factors + <Py_ssize_t>hcols[j + AHEAD] * d, d)
                _axpy(d, 1, M.item_factors + <Py_ssize_t>hcols[j] * d, s.S)
            s.S_user = u
        # h = (S - [i in H] q_i) / (|H| - [i in H])
        j = 1 if s.hpos[a] >= 0 else 0
        s.inv[a] = 1.0 / (nh - j) if nh > j else 0.0
        q = M.item_factors + <Py_ssize_t>t * d
        for c in range(d):
            s.H[a * d + c] = (s.S[c] - j * q[c]) * s.inv[a]
    # WH (m x d, row-major) = H W^T
    sgemm(&TRANS, &PLAIN, &d, &m, &d, &ONE, M.W, &d, s.H, &d, &ZERO, s.WH, &d)


cdef void _user_vectors(Config* cfg, Model* M, Scratch* s, uint64_t* rng) noexcept nogil:
    """z = xi o p / |p| for each positive, p = g e_u + (1 - g) W h; the dropout masks."""
    cdef int a, c, d = cfg.factors
    cdef float g = cfg.gamma, keep = 1.0 - cfg.dropout, nq
    cdef const float* e
    for a in range(s.m):
        e = M.user_factors + <Py_ssize_t>s.users[a] * d
        for c in range(d):
            s.p[c] = g * e[c] + (1 - g) * s.WH[a * d + c] if g < 1 else e[c]
        nq = sqrtf(_dot(d, s.p, s.p)) + EPS
        s.norm_p[a] = nq
        for c in range(d):
            s.P[a * d + c] = s.p[c] / nq
            if cfg.dropout > 0:
                s.Xi[a * d + c] = (1.0 / keep) if next_uniform(rng) < keep else 0.0
            else:
                s.Xi[a * d + c] = 1.0
            s.Z[a * d + c] = s.P[a * d + c] * s.Xi[a * d + c]
        s.xb[a] = 1.0
        if M.item_bias != NULL and cfg.dropout > 0:
            s.xb[a] = (1.0 / keep) if next_uniform(rng) < keep else 0.0
        s.shift[a] = 0
        if M.user_bias != NULL:  # current at every block: the user's bias steps with its row
            s.shift[a] = M.user_bias[s.users[a]] + M.global_bias[0]


cdef void _scores(Config* cfg, Model* M, Scratch* s) noexcept nogil:
    """Sc (m x N) = Z Qn^T against the negatives' normalised rows: one SGEMM on the gathered
    rows, N dot products for a single positive."""
    cdef int j, d = cfg.factors, N = cfg.negatives, m = s.m
    if m == 1:
        for j in range(N):
            s.Sc[j] = _dot(d, s.Z, M.normalised + <Py_ssize_t>s.neg[j] * d)
        return
    for j in range(N):
        if j + AHEAD < N:
            _prefetch(M.normalised + <Py_ssize_t>s.neg[j + AHEAD] * d, d)
        memcpy(s.Qn + j * d, M.normalised + <Py_ssize_t>s.neg[j] * d, d * sizeof(float))
    sgemm(&TRANS, &PLAIN, &N, &m, &d, &ONE, s.Qn, &d, s.Z, &d, &ZERO, s.Sc, &N)


cdef inline bint _any_above(const float* x, int n, float shift, float margin) noexcept nogil:
    """Whether any x_j + shift > margin (a loop the compiler vectorises)."""
    cdef int j
    cdef bint hit = False
    for j in range(n):
        hit |= x[j] + shift > margin
    return hit


cdef void _run_bias(Model* M, Scratch* s, int N) noexcept nogil:
    """The largest item bias of each run of 32 negatives (xb >= 0 scales it, so xb b_t stays
    below xb times it)."""
    cdef int j
    for j in range(N):
        if j % 32 == 0 or M.item_bias[s.neg[j]] > s.runmax[j // 32]:
            s.runmax[j // 32] = M.item_bias[s.neg[j]]


cdef double _negatives(Config* cfg, Model* M, Data* X, Scratch* s) noexcept nogil:
    """The active pairs (s > m): their loss (returned), the weights A_aj = w / N of the pairs
    (in place of the scores), and from them the negative parts of G_z, G_z_a = sum_j A_aj q^_j,
    and the negatives' gradients, G_j = sum_a A_aj z_a (``_pair_gradients``). A run of 32
    scores is skipped after one vector scan when even its largest item bias (``_run_bias``)
    lifts none above the margin (less a slack for the sums' rounding)."""
    cdef int a, j, j0, n, t, n_act = 0, pairs = 0, N = cfg.negatives
    cdef float coef = cfg.negative_weight / N, cs, sc, lift
    cdef float bar = cfg.margin - (1e-5 if M.item_bias != NULL else 0)
    cdef float* row
    cdef bint skip = cfg.exclude_positives and not s.single
    cdef double total = 0
    memset(s.active, 0, N * sizeof(char))
    if M.item_bias != NULL:
        _run_bias(M, s, N)
    for a in range(s.m):
        s.gsh[a] = 0
        row = s.Sc + <Py_ssize_t>a * N
        for j0 in range(0, N, 32):  # runs of 32 scores
            n = min(32, N - j0)
            lift = s.shift[a] + (s.xb[a] * s.runmax[j0 // 32] if M.item_bias != NULL else 0)
            if not _any_above(row + j0, n, lift, bar):
                memset(row + j0, 0, n * sizeof(float))
                continue
            for j in range(j0, j0 + n):
                cs = row[j]  # the cosine; the score adds the biases
                row[j] = 0
                t = s.neg[j]
                sc = cs + (s.xb[a] * M.item_bias[t] if M.item_bias != NULL else 0) + s.shift[a]
                if sc <= cfg.margin or (skip and _excluded(X, s, a, t)):
                    continue
                total += coef * (sc - cfg.margin)
                s.gsh[a] += coef
                if not s.active[j]:
                    s.active[j] = 1
                    s.act[n_act] = j
                    n_act += 1
                    s.colw[j] = 0
                    s.gbn[j] = 0
                s.colw[j] += coef * cs
                s.gbn[j] += coef * s.xb[a]
                row[j] = coef
                pairs += 1
    s.n_act = n_act
    _pair_gradients(cfg, M, s, pairs)
    return total


cdef void _pair_gradients(Config* cfg, Model* M, Scratch* s, int pairs) noexcept nogil:
    """G_Z = A Qn and G_Qn = A^T Z for the pair weights A (m x N, in s.Sc): two SGEMMs on the
    gathered negatives when at least one pair in eight is active, else summed pair by pair
    over the active columns."""
    cdef int a, j, k, t, d = cfg.factors, N = cfg.negatives, m = s.m
    if m > 1 and 8 * pairs >= m * N:
        # row-major GZ (m x d) = A (m x N) Qn (N x d); GQn (N x d) = A^T Z
        sgemm(&PLAIN, &PLAIN, &d, &m, &N, &ONE, s.Qn, &d, s.Sc, &N, &ZERO, s.GZ, &d)
        sgemm(&PLAIN, &TRANS, &d, &N, &m, &ONE, s.Z, &d, s.Sc, &N, &ZERO, s.GQn, &d)
        return
    memset(s.GZ, 0, m * d * sizeof(float))
    for a in range(s.n_act):
        memset(s.GQn + s.act[a] * d, 0, d * sizeof(float))
    for a in range(m):
        for k in range(s.n_act):
            j = s.act[k]
            if s.Sc[a * N + j] != 0:
                t = s.neg[j]
                _axpy(d, s.Sc[a * N + j], M.normalised + <Py_ssize_t>t * d, s.GZ + a * d)
                _axpy(d, s.Sc[a * N + j], s.Z + a * d, s.GQn + j * d)


cdef double _positives(Config* cfg, Model* M, Scratch* s, Sink* sink) noexcept nogil:
    """The positives' terms, then G_p of each positive back through dropout and the
    normalisation; G_e = g G_p. Returns their loss."""
    cdef int a, c, t, d = cfg.factors
    cdef float cs, sc, nq, dot_pg
    cdef float* z
    cdef float* gz
    cdef const float* q
    cdef double total = 0
    for a in range(s.m):
        z = s.Z + a * d
        gz = s.GZ + a * d
        t = s.targets[a]
        q = M.normalised + <Py_ssize_t>t * d
        nq = M.inverse_norm[t]
        cs = _dot(d, z, q)
        sc = cs + (s.xb[a] * M.item_bias[t] if M.item_bias != NULL else 0) + s.shift[a]
        if sc < 1:
            total += 1 - sc
            s.gsh[a] -= 1
            for c in range(d):
                gz[c] -= q[c]
                s.gt[c] = -(z[c] - cs * q[c]) * nq
            _sink_add(sink, t, s.gt, 1, d, -s.xb[a])
        dot_pg = 0
        for c in range(d):
            gz[c] *= s.Xi[a * d + c]
            dot_pg += s.P[a * d + c] * gz[c]
        for c in range(d):
            s.GP[a * d + c] = (gz[c] - dot_pg * s.P[a * d + c]) / s.norm_p[a]
            s.GE[a * d + c] = cfg.gamma * s.GP[a * d + c]
    return total


cdef void _attention_backward(Model* M, Data* X, Scratch* s, Sink* sink, int a,
                              int d) noexcept nogil:
    """Positive a's G_h through the softmax: G_a_k = alpha_k (G_h . q_k - G_h . h); G_e +=
    sum_k G_a_k K_k, G_q_k += alpha_k G_h, and the key's pre-activation gets
    G_a_k e_u o (1 - K_k^2) (turned into G_A, G_b, G_q at the step)."""
    cdef int j, c, t, u = s.users[a]
    cdef const int* hcols = X.hist_indices + X.hist_indptr[u]
    cdef int nh = X.hist_indptr[u + 1] - X.hist_indptr[u]
    cdef float* gh = s.GH + a * d
    cdef float hdot = _dot(d, gh, s.H + a * d), al, ga
    cdef const float* e = M.user_factors + <Py_ssize_t>u * d
    cdef const float* key
    for j in range(nh):
        al = s.AL[<Py_ssize_t>a * s.hmax + j]
        if al == 0:
            continue
        t = hcols[j]
        key = M.keys + <Py_ssize_t>t * d
        ga = al * (_dot(d, gh, M.item_factors + <Py_ssize_t>t * d) - hdot)
        for c in range(d):
            s.GE[a * d + c] += ga * key[c]
            s.gk[c] = ga * e[c] * (1 - key[c] * key[c])
        _sink_add(sink, t, gh, al, d, 0)
        _sink_into(sink, sink.kacc, t, s.gk, 1, d)


cdef void _history_backward(Config* cfg, Model* M, Data* X, Scratch* s,
                            Sink* sink) noexcept nogil:
    """G_W += (1 - g) G_P^T H and G_H = (1 - g) G_P W, then G_h down to the history items: the
    mean gives each of them G_h / |H minus target| (summed over a user's run of positives in
    the block, the target's own share taken back)."""
    cdef int a, b, c, j, u, nh, d = cfg.factors, m = s.m
    cdef float hist_w = 1 - cfg.gamma
    cdef const int* hcols
    # G_W (d x d, row-major) += (1 - g) G_P^T H
    sgemm(&PLAIN, &TRANS, &d, &d, &m, &hist_w, s.H, &d, s.GP, &d, &ONE, sink.GW, &d)
    # G_H (m x d) = (1 - g) G_P W
    sgemm(&PLAIN, &PLAIN, &d, &m, &d, &hist_w, M.W, &d, s.GP, &d, &ZERO, s.GH, &d)
    if M.attention != NULL:
        for a in range(m):
            _attention_backward(M, X, s, sink, a, d)
        return
    a = 0
    while a < m:
        u = s.users[a]
        b = a
        memset(s.gt, 0, d * sizeof(float))
        while b < m and s.users[b] == u:
            _axpy(d, s.inv[b], s.GH + b * d, s.gt)
            b += 1
        hcols = X.hist_indices + X.hist_indptr[u]
        nh = X.hist_indptr[u + 1] - X.hist_indptr[u]
        for j in range(nh):
            if j + AHEAD < nh:
                _prefetch(sink.acc + <Py_ssize_t>hcols[j + AHEAD] * d, d)
            _sink_add(sink, hcols[j], s.gt, 1, d, 0)
        for c in range(a, b):
            if s.hpos[c] >= 0:
                _sink_add(sink, s.targets[c], s.GH + c * d, -s.inv[c], d, 0)
        a = b


cdef void _negatives_backward(Config* cfg, Model* M, Scratch* s, Sink* sink) noexcept nogil:
    """Each active negative: G_q_j = (sum_a A_aj z_a - (sum_a A_aj s_aj) q^_j) / |q_j|."""
    cdef int a, c, j, t, d = cfg.factors
    cdef const float* q
    for a in range(s.n_act):
        j = s.act[a]
        t = s.neg[j]
        q = M.normalised + <Py_ssize_t>t * d
        for c in range(d):
            s.gt[c] = (s.GQn[j * d + c] - s.colw[j] * q[c]) * M.inverse_norm[t]
        _sink_add(sink, t, s.gt, 1, d, s.gbn[j])


cdef void _step_users(Config* cfg, Model* M, Scratch* s, Sink* sink, int now,
                      bint apply) noexcept nogil:
    """Each user of the block steps its row (and bias) once with the gradients of its
    positives summed, at a rate of ``learning_rate`` per positive; without ``apply`` the
    gradients go to the sink's ``gE`` and ``gub``."""
    cdef int a = 0, b, c, u, d = cfg.factors
    cdef float gshift
    cdef Gaps* gaps = &sink.gaps if sink.gaps.stamp != NULL else NULL
    while a < s.m:
        u = s.users[a]
        b = a + 1
        gshift = s.gsh[a]
        while b < s.m and s.users[b] == u:
            _axpy(d, 1, s.GE + b * d, s.GE + a * d)
            gshift += s.gsh[b]
            b += 1
        if not apply:
            _axpy(d, 1, s.GE + a * d, sink.gE)
            if sink.gub != NULL:
                sink.gub[0] += gshift
        else:
            update(M.user_factors + <Py_ssize_t>u * d, &M.user_factors_state, u, d,
                   s.GE + a * d, cfg.learning_rate * (b - a), cfg.l2, now, gaps)
            if M.user_bias != NULL:
                update(M.user_bias + u, &M.user_bias_state, u, 1, &gshift,
                       cfg.learning_rate * (b - a), cfg.l2, now, gaps)
                sink.gacc += gshift
        a = b


cdef double _block(Config* cfg, Model* M, Data* X, Scratch* s, Sink* sink, uint64_t* rng,
                   int now, bint apply) noexcept nogil:
    """The CCL terms of the block's positives (``s.users``, ``s.targets``, ``s.m``) with N
    shared negatives, their gradients into the sink (items, W, the attention) and the users'
    steps (or gradients without ``apply``). Returns the block's loss."""
    cdef double total
    cdef int a
    s.single = True
    for a in range(1, s.m):
        s.single = s.single and s.users[a] == s.users[0]
    s.S_user = -1
    if cfg.exclude_positives:
        _mark(X, s, True)
    _draw(cfg, X, s, rng)
    if cfg.gamma < 1:
        _history(cfg, M, X, s)
    _user_vectors(cfg, M, s, rng)
    _scores(cfg, M, s)
    total = _negatives(cfg, M, X, s)
    if cfg.exclude_positives:
        _mark(X, s, False)
    total += _positives(cfg, M, s, sink)
    if cfg.gamma < 1:
        _history_backward(cfg, M, X, s, sink)
    _negatives_backward(cfg, M, s, sink)
    _step_users(cfg, M, s, sink, now, apply)
    sink.count += s.m
    return total


# ---- buffers --------------------------------------------------------------------------

cdef Sink _sink(int n_items, int d, bint biases, bint attention, int clock_size) noexcept nogil:
    """This thread's sink (check with ``_sink_ok``)."""
    cdef Sink k
    cdef size_t size = <size_t>n_items * d
    memset(&k, 0, sizeof(Sink))
    k.acc = <float*>calloc(size, sizeof(float))
    k.bacc = <float*>calloc(n_items, sizeof(float)) if biases else NULL
    k.mark = <char*>calloc(n_items, sizeof(char))
    k.touched = <int*>malloc(<size_t>n_items * sizeof(int))
    k.GW = <float*>calloc(<size_t>d * d, sizeof(float))
    if attention:
        k.GA = <float*>calloc(<size_t>d * d + d, sizeof(float))
        k.Gba = k.GA + d * d if k.GA != NULL else NULL
        k.kacc = <float*>calloc(size, sizeof(float))
        k.Kg = <float*>malloc(size * sizeof(float))
        k.Qg = <float*>malloc(size * sizeof(float))
        k.Og = <float*>malloc(size * sizeof(float))
    if clock_size > 0:
        k.gaps = gaps_new(clock_size)
    return k


cdef bint _sink_ok(Sink* k, bint biases, bint attention, int clock_size) noexcept nogil:
    if k.acc == NULL or k.mark == NULL or k.touched == NULL or k.GW == NULL or (
            biases and k.bacc == NULL) or (clock_size > 0 and k.gaps.stamp == NULL):
        return False
    return not attention or not (k.GA == NULL or k.kacc == NULL or k.Kg == NULL
                                 or k.Qg == NULL or k.Og == NULL)


cdef void _sink_free(Sink* k) noexcept nogil:
    free(k.acc); free(k.bacc); free(k.mark); free(k.touched); free(k.GW); free(k.GA)
    free(k.kacc); free(k.Kg); free(k.Qg); free(k.Og)
    gaps_free(&k.gaps)


cdef Scratch _alloc(int d, int N, int chunk, int n_items, int hmax) noexcept nogil:
    """This thread's block buffers (check them with ``_alloc_ok``)."""
    cdef Scratch s
    cdef size_t D = d, CD = <size_t>chunk * d, ND = <size_t>N * d, C = chunk
    memset(&s, 0, sizeof(Scratch))
    s.hmax = max(hmax, 1)
    s.users = <int*>malloc(C * sizeof(int))
    s.targets = <int*>malloc(C * sizeof(int))
    s.hpos = <int*>malloc(C * sizeof(int))
    s.inv = <float*>malloc(C * sizeof(float))
    s.norm_p = <float*>malloc(C * sizeof(float))
    s.xb = <float*>malloc(C * sizeof(float))
    s.shift = <float*>malloc(C * sizeof(float))
    s.gsh = <float*>malloc(C * sizeof(float))
    s.S = <float*>malloc(D * sizeof(float))
    s.p = <float*>malloc(D * sizeof(float))
    s.gt = <float*>malloc(D * sizeof(float))
    s.gk = <float*>malloc(D * sizeof(float))
    s.H = <float*>malloc(CD * sizeof(float))
    s.WH = <float*>malloc(CD * sizeof(float))
    s.P = <float*>malloc(CD * sizeof(float))
    s.Xi = <float*>malloc(CD * sizeof(float))
    s.Z = <float*>malloc(CD * sizeof(float))
    s.GZ = <float*>malloc(CD * sizeof(float))
    s.GP = <float*>malloc(CD * sizeof(float))
    s.GE = <float*>malloc(CD * sizeof(float))
    s.GH = <float*>malloc(CD * sizeof(float))
    s.neg = <int*>malloc(N * sizeof(int))
    s.act = <int*>malloc(N * sizeof(int))
    s.active = <char*>malloc(N * sizeof(char))
    s.colw = <float*>malloc(N * sizeof(float))
    s.gbn = <float*>malloc(N * sizeof(float))
    s.runmax = <float*>malloc((N // 32 + 1) * sizeof(float))
    s.Qn = <float*>malloc(ND * sizeof(float))
    s.GQn = <float*>malloc(ND * sizeof(float))
    s.Sc = <float*>malloc(C * N * sizeof(float))
    s.seen = <uint64_t*>calloc(n_items, sizeof(uint64_t))
    s.AL = <float*>malloc(C * s.hmax * sizeof(float))
    return s


cdef bint _alloc_ok(Scratch* s) noexcept nogil:
    return not (s.users == NULL or s.targets == NULL or s.hpos == NULL or s.inv == NULL
                or s.norm_p == NULL or s.xb == NULL or s.shift == NULL or s.gsh == NULL
                or s.S == NULL or s.p == NULL or s.gt == NULL or s.gk == NULL or s.H == NULL
                or s.WH == NULL or s.P == NULL or s.Xi == NULL or s.Z == NULL
                or s.GZ == NULL or s.GP == NULL or s.GE == NULL or s.GH == NULL
                or s.neg == NULL or s.act == NULL or s.active == NULL or s.colw == NULL
                or s.gbn == NULL or s.runmax == NULL or s.Qn == NULL or s.GQn == NULL
                or s.Sc == NULL
                or s.seen == NULL or s.AL == NULL)


cdef void _free(Scratch* s) noexcept nogil:
    free(s.users); free(s.targets); free(s.hpos); free(s.inv); free(s.norm_p); free(s.xb)
    free(s.shift); free(s.gsh); free(s.S); free(s.p); free(s.gt); free(s.gk); free(s.H)
    free(s.WH); free(s.P); free(s.Xi); free(s.Z); free(s.GZ); free(s.GP); free(s.GE)
    free(s.GH); free(s.neg); free(s.act); free(s.active); free(s.colw); free(s.gbn)
    free(s.runmax); free(s.Qn); free(s.GQn); free(s.Sc); free(s.seen); free(s.AL)


# ---- epochs -----------------------------------------------------------------------------

cdef double _shuffled_batch(Config* cfg, Model* M, Data* X, Scratch* s, Sink* sink,
                            const int* order, const int* owner, Py_ssize_t lo, Py_ssize_t hi,
                            int now) noexcept nogil:
    """The mini-batch ``order[lo:hi]`` in blocks of ``negative_sharing`` consecutive positives
    (random numbers seeded by each block's first positive), then the items' step."""
    cdef Py_ssize_t k = lo, e
    cdef int a, d = cfg.factors
    cdef uint64_t rng
    cdef double total = 0
    while k < hi:
        s.m = <int>min(<Py_ssize_t>cfg.negative_sharing, hi - k)
        for a in range(s.m):
            e = order[k + a]
            s.users[a] = owner[e]
            s.targets[a] = X.indices[e]
            _prefetch(M.user_factors + <Py_ssize_t>s.users[a] * d, d)
            __builtin_prefetch(X.hist_indices + X.hist_indptr[s.users[a]])
        rng = mix(cfg.seed ^ mix(<uint64_t>order[k] + STREAM))
        total += _block(cfg, M, X, s, sink, &rng, now, True)
        k += s.m
    if sink.count > 0:
        _flush(sink, M, cfg)
    return total


cdef double _user_gradients(Config* cfg, Model* M, Data* X, Scratch* s, Sink* sink, int u,
                            int* drawn) noexcept nogil:
    """The CCL of user u's positives in blocks of ``negative_sharing`` (random numbers from
    the user's stream), gradients into the sink, nothing stepped; each block's negatives are
    written to ``drawn``."""
    cdef int a, start = 0, block = 0, n = X.indptr[u + 1] - X.indptr[u]
    cdef uint64_t rng = mix(cfg.seed ^ mix(<uint64_t>u + STREAM))
    cdef double total = 0
    while start < n:
        s.m = min(cfg.negative_sharing, n - start)
        for a in range(s.m):
            s.users[a] = u
            s.targets[a] = X.indices[X.indptr[u] + start + a]
        total += _block(cfg, M, X, s, sink, &rng, 0, False)
        memcpy(drawn + <Py_ssize_t>block * cfg.negatives, s.neg, cfg.negatives * sizeof(int))
        start += s.m
        block += 1
    return total


# ---- Python entry points: inputs checked here, before the GIL is dropped -----------------

cdef float* _floats(array, Py_ssize_t size, str name) except? NULL:
    """Pointer to a C-contiguous float32 array of ``size`` entries (None: NULL)."""
    if array is None:
        return NULL
    array = np.asarray(array)
    if array.dtype != np.float32 or not array.flags.c_contiguous or array.size != size:
        raise ValueError(f"{name} must be a C-contiguous float32 array of {size} entries")
    if size == 0:
        raise ValueError(f"{name} is empty")
    cdef float[::1] view = array.reshape(-1)
    return &view[0]


cdef Table _table(triple, Py_ssize_t size, Py_ssize_t rows, bint dense, str name) except *:
    """Views of one table's optimiser state ``(m, v, t)``, checked (m None: Adagrad); ``t``
    holds one int32 entry per row."""
    cdef Table tab
    cdef int[::1] tv
    m, v, t = triple
    tab.dense = dense and m is not None
    tab.v = _floats(v, size, f"the state of {name}")
    tab.m = _floats(m, size, f"the state of {name}")
    tv = t
    if tv.shape[0] != rows:
        raise ValueError(f"the state of {name} must count {rows} rows")
    tab.t = &tv[0]
    return tab


cdef void _bind(Model* M, dict tables, dict state, clock, int d, Py_ssize_t n_users,
                int n_items) except *:
    """Point ``M`` at the tables and their states ``(m, v, t)`` (``state`` None: none, for
    gradients only): user_factors, item_factors, W, and item_bias, the pair user_bias and
    global_bias, the pair attention and attention_bias, each None when off."""
    cdef int[::1] clock_view
    cdef bint dense = clock is not None
    memset(M, 0, sizeof(Model))
    if dense:
        clock_view = clock
        if clock_view.shape[0] != 1:
            raise ValueError("clock must be one int32 entry")
        M.clock = &clock_view[0]
    M.user_factors = _floats(tables["user_factors"], n_users * d, "user_factors")
    M.item_factors = _floats(tables["item_factors"], <Py_ssize_t>n_items * d, "item_factors")
    M.W = _floats(tables["W"], d * d, "W")
    M.item_bias = _floats(tables.get("item_bias"), n_items, "item_bias")
    if (tables.get("user_bias") is None) != (tables.get("global_bias") is None):
        raise ValueError("user_bias and global_bias go together")
    M.user_bias = _floats(tables.get("user_bias"), n_users, "user_bias")
    M.global_bias = _floats(tables.get("global_bias"), 1, "global_bias")
    if (tables.get("attention") is None) != (tables.get("attention_bias") is None):
        raise ValueError("attention and attention_bias go together")
    M.attention = _floats(tables.get("attention"), d * d, "attention")
    M.attention_bias = _floats(tables.get("attention_bias"), d, "attention_bias")
    if state is None:
        return
    M.user_factors_state = _table(state["user_factors"], n_users * d, n_users, dense,
                                  "user_factors")
    M.item_factors_state = _table(state["item_factors"], <Py_ssize_t>n_items * d, n_items,
                                  dense, "item_factors")
    M.W_state = _table(state["W"], d * d, 1, dense, "W")
    if M.item_bias != NULL:
        M.item_bias_state = _table(state["item_bias"], n_items, n_items, dense, "item_bias")
    if M.user_bias != NULL:
        M.user_bias_state = _table(state["user_bias"], n_users, n_users, dense, "user_bias")
        M.global_bias_state = _table(state["global_bias"], 1, 1, dense, "global_bias")
    if M.attention != NULL:
        M.attention_state = _table(state["attention"], d * d, 1, dense, "attention")
        M.attention_bias_state = _table(state["attention_bias"], d, 1, dense,
                                        "attention_bias")


cdef Config _config(dict config, int d, int n_items, cdf) except *:
    """The estimator's parameters (by name) and the popularity ``cdf`` (or None), checked."""
    cdef Config cfg
    cdef const double[::1] cdf_view
    cfg.factors = d
    cfg.n_items = n_items
    cfg.negatives = config["negatives"]
    cfg.margin = config["margin"]
    cfg.negative_weight = config["negative_weight"]
    cfg.gamma = config["gamma"]
    cfg.dropout = config.get("dropout", 0.0)
    cfg.learning_rate = config.get("learning_rate", 0.0)
    cfg.l2 = config.get("l2", 0.0)
    cfg.history_rate = config.get("history_rate", 1.0)
    cfg.batch_size = config.get("batch_size", 1024)
    cfg.negative_sharing = config.get("negative_sharing", 1)
    cfg.exclude_positives = config.get("exclude_positives", False)
    cfg.seed = <uint64_t>config["seed"]
    cfg.cdf = NULL
    if cfg.negatives < 1 or cfg.batch_size < 1 or cfg.negative_sharing < 1:
        raise ValueError("negatives, batch_size and negative_sharing must be >= 1")
    if not (0 <= cfg.gamma <= 1 and 0 <= cfg.dropout < 1):
        raise ValueError("gamma must lie in [0, 1] and dropout in [0, 1)")
    if cdf is not None:
        cdf_view = cdf
        if cdf_view.shape[0] != n_items:
            raise ValueError("cdf must have one entry per item")
        cfg.cdf = &cdf_view[0]
    return cfg


def _normalised(float[:, ::1] Q):
    """The normalised rows of Q and their inverse norms (float32)."""
    cdef Model M
    cdef Py_ssize_t row
    Qh = np.empty_like(np.asarray(Q))
    inorm = np.empty(Q.shape[0], dtype=np.float32)
    if Q.shape[0] == 0:
        return Qh, inorm
    cdef float[:, ::1] qh = Qh
    cdef float[::1] iv = inorm
    M.item_factors = &Q[0, 0]
    M.normalised = &qh[0, 0]
    M.inverse_norm = &iv[0]
    for row in range(Q.shape[0]):
        _normalise(&M, row, <int>Q.shape[1])
    return Qh, inorm


def _attention_keys(tables):
    """The keys of every item for the user attention (None without it)."""
    A, b, Q = tables.get("attention"), tables.get("attention_bias"), tables["item_factors"]
    if A is None:
        return None
    cdef float[:, ::1] Qv = Q
    cdef float[:, ::1] Av = A
    cdef float[::1] bv = b
    cdef int d = <int>Qv.shape[1]
    if Av.shape[0] != d or Av.shape[1] != d or bv.shape[0] != d:
        raise ValueError("the attention's A must be d x d and b of length d")
    K = np.empty_like(np.asarray(Q))
    cdef float[:, ::1] Kv = K
    if Qv.shape[0] > 0:
        _keys(&Qv[0, 0], &Av[0, 0], &bv[0], &Kv[0, 0], <int>Qv.shape[0], d)
    return K


def _check(indptr, E, Q, W):
    if E.shape[1] != Q.shape[1] or W.shape[0] != W.shape[1] or W.shape[0] != E.shape[1]:
        raise ValueError("inconsistent embedding shapes")
    if indptr.shape[0] != E.shape[0] + 1:
        raise ValueError("indptr does not match the user embeddings")


def _check_history(const int[::1] indptr, const int[::1] indices, const int[::1] hptr,
                   const int[::1] hidx):
    """Each history row must be a sorted, nonempty subset of the (sorted) positives row."""
    cdef Py_ssize_t u, a, j
    if hptr.shape[0] != indptr.shape[0]:
        raise ValueError("the history does not have one row per user")
    for u in range(indptr.shape[0] - 1):
        a = indptr[u]
        if hptr[u + 1] == hptr[u] and indptr[u + 1] > indptr[u]:
            raise ValueError(f"history row {u} is empty but the user has positives")
        for j in range(hptr[u], hptr[u + 1]):
            if j > hptr[u] and hidx[j] <= hidx[j - 1]:
                raise ValueError(f"history row {u} is not sorted")
            while a < indptr[u + 1] and indices[a] < hidx[j]:
                a += 1
            if a == indptr[u + 1] or indices[a] != hidx[j]:
                raise ValueError(f"history row {u} holds an item that is not a positive")


def adam_step(float[::1] w, float[::1] m, float[::1] v, int[::1] t, float[::1] g, float lr,
              float l2, int now, bint dense):
    """One Adam step of a single row ``w`` with gradient ``g`` at clock ``now`` (dense) or
    its own step count (lazy); for tests."""
    cdef Table st
    if not (w.shape[0] == m.shape[0] == v.shape[0] == g.shape[0]) or t.shape[0] != 1:
        raise ValueError("w, m, v and g must have one length, t one entry")
    st.m = &m[0]
    st.v = &v[0]
    st.t = &t[0]
    st.dense = dense
    update(&w[0], &st, 0, <int>w.shape[0], &g[0], lr, l2, now, NULL)


def train_epoch(const int[::1] indptr, const int[::1] indices, const int[::1] hist_indptr,
                const int[::1] hist_indices, dict tables, dict state, dict config, order,
                cdf=None, clock=None) -> float:
    """One epoch (see the module docstring); returns the mean CCL per positive.

    ``hist_indptr, hist_indices``: each user's history, a sorted subset of its positives (the
    positives themselves when uncapped). ``tables``: the float32 arrays by name (see
    ``_bind``), updated in place; ``state``: their optimiser states ``(m, v, t)`` by the same
    names (m None: Adagrad). ``config``: the estimator's parameters by name (negatives, margin,
    negative_weight, gamma, dropout, learning_rate, l2, history_rate, batch_size,
    negative_sharing, exclude_positives, num_threads) and ``seed``. ``order``: the epoch's
    int32 permutation of the positives' indices.
    ``cdf``: None (uniform negatives) or the float64 cumulative popularity. ``clock``: None
    (lazy Adam, Adagrad) or the one-entry int32 dense-Adam clock, advanced by the epoch's
    mini-batches (the t arrays then hold each row's last step)."""
    E, Q, W = tables["user_factors"], tables["item_factors"], tables["W"]
    _check(indptr, E, Q, W)
    _check_history(indptr, indices, hist_indptr, hist_indices)
    cdef Py_ssize_t n_users = E.shape[0], nnz = indices.shape[0]
    cdef int d = <int>E.shape[1], n_items = <int>Q.shape[0]
    cdef Config cfg = _config(config, d, n_items, cdf)
    cdef int n_threads = max(<int>config.get("num_threads", 1), 1)
    cdef Model M
    _bind(&M, tables, state, clock, d, n_users, n_items)
    cdef const int[::1] perm
    cdef const int[::1] owner
    order = np.asarray(order)
    if order.dtype != np.int32 or order.ndim != 1 or len(order) != nnz:
        raise ValueError("order must be an int32 permutation of the positives' indices")
    if nnz == 0:
        return 0.0
    perm = order
    checked = is_permutation(&perm[0], nnz)
    if checked < 0:
        raise MemoryError(f"could not allocate {nnz} bytes to check the order")
    if not checked:
        raise ValueError("order must be an int32 permutation of the positives' indices")
    owner = row_of_values(np.asarray(indptr))
    Qh, inorm = _normalised(Q)
    K = _attention_keys(tables)
    cdef float[:, ::1] qh = Qh
    cdef float[::1] iv = inorm
    cdef float[:, ::1] kv
    M.normalised = &qh[0, 0]
    M.inverse_norm = &iv[0]
    if K is not None:
        kv = K
        M.keys = &kv[0, 0]
    cdef Data X
    X.indptr, X.indices = &indptr[0], &indices[0]
    X.hist_indptr, X.hist_indices = &hist_indptr[0], &hist_indices[0]
    cdef int b, tid, n_batches = <int>((nnz + cfg.batch_size - 1) // cfg.batch_size)
    cdef int clock0 = M.clock[0] if M.clock != NULL else 0
    cdef int clock_size = clock0 + n_batches + 2 if M.clock != NULL else 0
    cdef int hmax = int(np.diff(hist_indptr).max()) if n_users else 0
    cdef int chunk = cfg.negative_sharing
    cdef double* losses = <double*>calloc(n_threads, sizeof(double))
    cdef double loss = 0
    cdef Scratch s
    cdef Sink sink
    cdef bint ok = True
    cdef int no_memory = 0
    if losses == NULL:
        raise MemoryError("SimpleX: could not allocate the threads' losses")
    try:
        with nogil, parallel(num_threads=n_threads):
            tid = threadid()
            s = _alloc(d, cfg.negatives, chunk, n_items, hmax if M.attention != NULL else 0)
            sink = _sink(n_items, d, M.item_bias != NULL, M.attention != NULL, clock_size)
            ok = _alloc_ok(&s) and _sink_ok(&sink, M.item_bias != NULL, M.attention != NULL,
                                            clock_size)
            try:
                for b in prange(n_batches, schedule="dynamic", chunksize=1):
                    if not ok:
                        no_memory += 1
                        continue
                    losses[tid] += _shuffled_batch(
                        &cfg, &M, &X, &s, &sink, &perm[0], &owner[0],
                        <Py_ssize_t>b * cfg.batch_size,
                        min(<Py_ssize_t>(b + 1) * cfg.batch_size, nnz), clock0 + b + 1)
            finally:
                _free(&s)
                _sink_free(&sink)
        if no_memory:
            per_thread = (2.0 * cfg.negatives * d + 1.0 * chunk * cfg.negatives
                          + 1.0 * n_items * d) * 4 / 2**20
            raise MemoryError(f"SimpleX: could not allocate a thread's scratch buffers (about "
                              f"{per_thread:.0f} MiB per thread); lower negatives, "
                              "negative_sharing or num_threads")
        for tid in range(n_threads):
            loss += losses[tid]
        if M.clock != NULL:
            M.clock[0] = clock0 + n_batches
    finally:
        free(losses)
    return loss / max(nnz, 1)


def user_gradients(const int[::1] cols, int u, float[:, ::1] E, float[:, ::1] Q,
                   float[:, ::1] W, int negatives, float gamma, float margin, float weight,
                   unsigned long long seed, float[::1] gE, float[:, ::1] gQ,
                   float[:, ::1] gW, int block=256, bint exclude=False,
                   history=None, item_bias=None, float[::1] gbi=None, attention=None,
                   float[:, ::1] gA=None, float[::1] gba=None, shift=None,
                   float[::1] gshift=None) -> tuple:
    """The CCL of user ``u`` (positives ``cols``, sorted; no dropout; ``history`` a sorted
    subset of them, all when None) and its gradients, without updating anything (for
    tests). Returns ``(loss, negatives)``, the negatives drawn for each block of ``block``
    positives as an int32 array (blocks x N). With ``item_bias``, ``gbi`` receives its
    gradient; with ``attention = (A, b)`` (user attention), ``gA`` and ``gba`` receive
    theirs; with ``shift = (user_bias, global_bias)``, ``gshift`` (one entry) receives the
    gradient of the user's shift (that of b_u and of the global bias alike)."""
    cdef int d = <int>E.shape[1], n = <int>cols.shape[0], n_items = <int>Q.shape[0]
    cdef bint attn = attention is not None and gamma < 1
    if n < 1 or block < 1 or not 0 <= u < E.shape[0]:
        raise ValueError("the user needs at least one positive and a row, block >= 1")
    if item_bias is not None and (gbi is None or gbi.shape[0] != n_items):
        raise ValueError("item_bias and gbi need one entry per item")
    if shift is not None and (gshift is None or gshift.shape[0] != 1):
        raise ValueError("shift needs gshift (one entry)")
    if attn and (gA is None or gba is None or gA.shape[0] != d or gA.shape[1] != d
                 or gba.shape[0] != d):
        raise ValueError("attention needs gA (d x d) and gba (d)")
    if gE.shape[0] != d or gQ.shape[0] != n_items or gQ.shape[1] != d or (
            gW.shape[0] != d or gW.shape[1] != d):
        raise ValueError("gE, gQ and gW must have the shapes of e_u, Q and W")
    # the user's row of a CSR matrix whose other rows are empty
    indptr = np.r_[np.zeros(u + 1, np.int32), np.full(E.shape[0] - u, n, np.int32)]
    hist = np.asarray(cols if history is None else history, dtype=np.int32)
    hptr = np.r_[np.zeros(u + 1, np.int32), np.full(E.shape[0] - u, len(hist), np.int32)]
    _check(indptr, E, Q, W)
    _check_history(indptr, cols, hptr, hist)
    tables = {"user_factors": np.asarray(E), "item_factors": np.asarray(Q),
              "W": np.asarray(W), "item_bias": item_bias}
    if shift is not None:
        tables["user_bias"], tables["global_bias"] = shift
    if attn:
        tables["attention"], tables["attention_bias"] = attention
    cdef Model M
    _bind(&M, tables, None, None, d, E.shape[0], n_items)
    cdef Config cfg = _config({"negatives": negatives, "margin": margin,
                               "negative_weight": weight, "gamma": gamma, "seed": seed,
                               "negative_sharing": block, "exclude_positives": exclude},
                              d, n_items, None)
    Qh, inorm = _normalised(Q)
    K = _attention_keys(tables)
    cdef float[:, ::1] qh = Qh
    cdef float[::1] iv = inorm
    cdef float[:, ::1] kv
    cdef const int[::1] ip = indptr
    cdef const int[::1] hp = hptr
    cdef const int[::1] hv = hist
    M.normalised, M.inverse_norm = &qh[0, 0], &iv[0]
    if K is not None:
        kv = K
        M.keys = &kv[0, 0]
    cdef Data X
    X.indptr, X.indices, X.hist_indptr, X.hist_indices = &ip[0], &cols[0], &hp[0], &hv[0]
    drawn = np.empty(((n + block - 1) // block, negatives), dtype=np.int32)
    cdef int[:, ::1] dv = drawn
    cdef Scratch s = _alloc(d, negatives, block, n_items, <int>hv.shape[0])
    cdef Sink sink = _sink(n_items, d, False, attn, 0)
    cdef double loss
    if not (_alloc_ok(&s) and _sink_ok(&sink, False, attn, 0)):
        _free(&s)
        _sink_free(&sink)
        raise MemoryError("user_gradients: could not allocate the scratch buffers")
    # summed straight into the caller's gradients
    free(sink.acc)
    free(sink.GW)
    free(sink.GA)
    sink.acc, sink.GW, sink.gE, sink.GA = &gQ[0, 0], &gW[0, 0], &gE[0], NULL
    if item_bias is not None:
        sink.bacc = &gbi[0]
    if shift is not None:
        sink.gub = &gshift[0]
    if attn:
        sink.GA, sink.Gba = &gA[0, 0], &gba[0]
    try:
        loss = _user_gradients(&cfg, &M, &X, &s, &sink, u, &dv[0, 0])
        if attn:
            _key_backward(&sink, &M, d)
    finally:
        _free(&s)
        sink.acc = sink.bacc = sink.GW = sink.GA = NULL  # the caller's
        _sink_free(&sink)
    return loss, drawn
