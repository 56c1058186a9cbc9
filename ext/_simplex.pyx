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
Two orders. Shuffled (the official data loader): the positives in a given random order, in
mini-batches of ``batch`` positives (1024 officially on ML-1M) that the threads take in turn
(dynamic schedule); each positive draws N fresh negatives from its own splitmix64 stream
(seeded by the positive's index) and its user's row steps at once; the item rows (and item
biases, when on: s_t gains b_t, its column dropped out with z) and W step at the end of the
mini-batch with the gradients summed over it. By user: the threads take users, each over its
positives in blocks that share N negatives (drawn from the user's stream) and one step of the
user's row of length lr x the block's positives (one step per positive, as officially); items
and W step once per ``batch`` positives of a thread. Negatives are uniform with replacement or by
popularity; with ``exclude``, a draw that is one of the user's positives is redrawn, up to
32 times. Scores read a shared table of normalised item rows q^, kept current by whoever
steps a row, so a negative costs one dot product (a block's are one SGEMM on the gathered
rows); gradients are summed over the active pairs only (s > m: few once training is under
way). Optimisers: lazy or dense Adam, or Adagrad, per row; l2 on touched rows. Item rows,
W, the global bias and (shuffled) user rows and biases are updated lock-free (Hogwild, as
implicit's BPR): two threads may update one row at the same time; everything else is exact.
With one thread an epoch is bit-reproducible.
"""

import numpy as np

from recsys._sparse import row_of_values

from cython.parallel cimport parallel, prange, threadid
from libc.math cimport expf, pow, powf, sqrt, sqrtf
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sdot, sgemm

from _random cimport mix, next_u64, next_uniform
from _permutation cimport is_permutation
from _sorted cimport find

cdef float EPS = 1e-8  # guards the norms of all-zero rows
cdef int MAX_REJECT = 32  # redraws of a negative that is one of the user's positives
cdef int TAIL = 100  # skipped dense-Adam steps summed (0.9^100 / 0.999^50 < 3e-5)


cdef inline float _dot(int d, const float* x, const float* y) noexcept nogil:
    cdef int one = 1
    return sdot(&d, <float*>x, &one, <float*>y, &one)


cdef struct Table:
    float* m    # Adam's first moments (NULL: Adagrad)
    float* v    # Adam's second moments, or Adagrad's sums of squares
    int* t      # Adam's per-row step counts (lazy) or clock of the last step (dense)
    bint dense  # Adam over the whole table: rows move between their touches as well


cdef inline void _update(float* w, Table* st, Py_ssize_t row, int d, float* g, float lr,
                         float l2, int now) noexcept nogil:
    """Row ``row`` of a table: Adagrad, lazy Adam (moments of touched rows only) or dense
    Adam at clock ``now``, with l2 added to the gradient.

    Dense Adam steps every row at every mini-batch: a row without a gradient keeps moving by
    its decaying first moment while its second moment decays too. The k - 1 steps skipped
    since the row's last touch at t0 = now - k are applied here at once: with zero gradients
    they move the row by -lr m / sqrt(v) times
        sum_{s=1}^{k-1} (b1^s / (1 - b1^(t0+s))) / sqrt(b2^s / (1 - b2^(t0+s)))
    (Adam's epsilon aside; the terms shrink like (b1 / sqrt(b2))^s, so the sum stops after
    TAIL of them), then comes this touch's step with m = b1^k m + (1 - b1) g,
    v = b2^k v + (1 - b2) g^2. The L2 penalty of the skipped steps joins this one's: g gains
    k l2 w, as the official whole-table L2 charges every row at every mini-batch (an
    approximation: one normalised step instead of k). Charging l2 w at touches only lets a
    rare row escape nearly all of it: on ML-1M the user rows then grew to 1.6x the norms of a
    torch run of the official trainer and validation Recall@20 gained half as much from the
    learning rate's decay (0.261 -> 0.267 against 0.261 -> 0.273 here and in torch)."""
    cdef int c, t, k, s
    cdef float gc, c1, c2, tail = 0, reg = l2
    cdef double a1 = 1, a2 = 1, p1, p2, decay1 = 0.9, decay2 = 0.999
    cdef float* v = st.v + row * d
    cdef float* m
    if st.m == NULL:
        for c in range(d):
            gc = g[c] + l2 * w[c]
            v[c] += gc * gc
            w[c] -= lr * gc / (sqrtf(v[c]) + 1e-10)
        return
    m = st.m + row * d
    if st.dense:
        k = max(now - st.t[row], 1)
        if k > 1 and st.t[row] > 0:
            p1 = pow(0.9, st.t[row])
            p2 = pow(0.999, st.t[row])
            for s in range(min(k - 1, TAIL)):
                a1 *= 0.9
                a2 *= 0.999
                p1 *= 0.9
                p2 *= 0.999
                tail += (a1 / (1 - p1)) / sqrt(a2 / (1 - p2))
            for c in range(d):
                w[c] -= lr * tail * m[c] / (sqrtf(v[c]) + 1e-12)
        decay1 = pow(0.9, k)
        decay2 = pow(0.999, k)
        if st.t[row] > 0:
            reg = l2 * k
        st.t[row] = now
        t = max(now, 1)
    else:
        st.t[row] += 1
        t = st.t[row]
    c1 = 1 - powf(0.9, t)
    c2 = 1 - powf(0.999, t)
    for c in range(d):
        gc = g[c] + reg * w[c]
        m[c] = decay1 * m[c] + 0.1 * gc
        v[c] = decay2 * v[c] + 0.001 * gc * gc
        w[c] -= lr * (m[c] / c1) / (sqrtf(v[c] / c2) + 1e-8)


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
    _update(&w[0], &st, 0, <int>w.shape[0], &g[0], lr, l2, now)


cdef struct Sink:
    float* acc      # n_items x d: item gradients summed since the last step
    float* bacc     # n_items: item-bias gradients (NULL: no biases)
    char* mark      # n_items: row has a pending gradient
    int* touched    # rows with a pending gradient
    int n_touched
    int count       # positives since the last step
    int batch       # positives per step (the mini-batch)
    float w_rate    # W's learning rate relative to the embeddings'
    int* clock      # mini-batch clock shared by the threads (dense Adam)
    float* Qh       # n_items x d: the normalised item rows q / |q|, shared, kept current
    float* inorm    # n_items: 1 / |q|
    # user attention (NULL without): keys K = tanh(Q A^T + b), shared and rebuilt after
    # every step; gradients of the keys' pre-activations summed per item in kacc
    float* K        # n_items x d
    float* A        # d x d
    float* ba       # d
    Table* AA
    Table* ABA
    float* GA       # d x d: A's gradient since the last step (this thread's)
    float* Gba      # d
    float* kacc     # n_items x d
    float* Kg       # n_items x d: gathered kacc rows of the touched items
    float* Qg       # n_items x d: gathered item rows
    float* Og       # n_items x d: their item gradients through the keys
    int n_items
    # the official enable_bias's training-only shift (NULL without): every score of user u
    # gains ub[u] + gb[0]
    float* ub       # n_users: user biases
    Table* AUB
    float* gb       # 1: the global bias, stepped with the items
    Table* AGB
    float gacc      # the global bias's gradient since the last step (this thread's)
    float* gub      # without ``apply``: where the user bias's gradient is summed


cdef inline void _sink_into(Sink* k, float* table, int row, const float* g,
                            int d) noexcept nogil:
    """Add ``g`` to row ``row`` of one of the sink's tables (item or key gradients), marking
    the row as touched."""
    cdef int c
    cdef float* a = table + <Py_ssize_t>row * d
    if not k.mark[row]:
        k.mark[row] = 1
        k.touched[k.n_touched] = row
        k.n_touched += 1
    for c in range(d):
        a[c] += g[c]


cdef inline void _sink_add(Sink* k, int row, const float* g, int d, float gb) noexcept nogil:
    """Add ``g`` to item ``row``'s gradient and ``gb`` to its bias's."""
    _sink_into(k, k.acc, row, g, d)
    if k.bacc != NULL:
        k.bacc[row] += gb


cdef inline void _normalise(const float* Q, float* Qh, float* inorm, Py_ssize_t row,
                            int d) noexcept nogil:
    """Row ``row`` of the normalised table from Q."""
    cdef int c
    cdef const float* q = Q + row * d
    cdef float inv = 1.0 / (sqrtf(_dot(d, q, q)) + EPS)
    inorm[row] = inv
    for c in range(d):
        Qh[row * d + c] = q[c] * inv


cdef void _keys(const float* Q, const float* A, const float* ba, float* K, int n_items,
                int d) noexcept nogil:
    """K = tanh(Q A^T + b): every item's attention key (one SGEMM)."""
    cdef char ta = b'T', tb = b'N'
    cdef float zero_f = 0.0, one_f = 1.0
    cdef Py_ssize_t i
    cdef int c
    # row-major K (n x d) = Q A^T is column-major K^T = A Q^T
    sgemm(&ta, &tb, &d, &n_items, &d, &one_f, <float*>A, &d, <float*>Q, &d, &zero_f, K, &d)
    cdef float x
    for i in range(n_items):
        for c in range(d):
            # tanh x = 1 - 2 / (e^2x + 1): glibc's expf is ~3x faster than its tanhf; the
            # absolute error stays at float32 rounding (it is relative near 0 that suffers)
            x = min(max(K[i * d + c] + ba[c], -15.0), 15.0)
            K[i * d + c] = 1 - 2 / (expf(2 * x) + 1)


cdef void _key_backward(Sink* k, const float* Q, int d) noexcept nogil:
    """Turn the touched items' key gradients G (pre-activation) into gradients of A, b and
    the items: G_A += G^T Q, G_b += sum of G's rows, G_q += G A (SGEMMs on the gathered
    rows); kacc is cleared."""
    cdef int i, c, row, n = k.n_touched
    cdef char ta = b'T', tb = b'N'
    cdef float zero_f = 0.0, one_f = 1.0
    cdef float* a
    if n == 0:
        return
    for i in range(n):
        row = k.touched[i]
        memcpy(k.Kg + <Py_ssize_t>i * d, k.kacc + <Py_ssize_t>row * d, d * sizeof(float))
        memcpy(k.Qg + <Py_ssize_t>i * d, Q + <Py_ssize_t>row * d, d * sizeof(float))
        memset(k.kacc + <Py_ssize_t>row * d, 0, d * sizeof(float))
    # row-major G_A (d x d) += Kg^T Qg is column-major G_A^T += Qg^T Kg
    sgemm(&tb, &ta, &d, &d, &n, &one_f, k.Qg, &d, k.Kg, &d, &one_f, k.GA, &d)
    # row-major Og (n x d) = Kg A is column-major Og^T = A^T Kg^T
    sgemm(&tb, &tb, &d, &n, &d, &one_f, k.A, &d, k.Kg, &d, &zero_f, k.Og, &d)
    for i in range(n):
        row = k.touched[i]
        a = k.acc + <Py_ssize_t>row * d
        for c in range(d):
            a[c] += k.Og[i * d + c]
            k.Gba[c] += k.Kg[i * d + c]


cdef void _flush(Sink* k, float* Q, Table* AQ, float* W, Table* AW, float* GW, float* bi,
                 Table* ABI, int d, float g, float lr, float l2) noexcept nogil:
    """One optimiser step for every item row (and bias) with a pending gradient (and W, and
    the attention's A and b, whose keys are then rebuilt), then reset."""
    cdef int i, row, now = 0
    cdef float* a
    if k.clock != NULL:  # threads race on the clock; a lost tick only shortens a gap
        now = k.clock[0] + 1
        k.clock[0] = now
    if k.kacc != NULL:
        _key_backward(k, Q, d)
    for i in range(k.n_touched):
        row = k.touched[i]
        a = k.acc + <Py_ssize_t>row * d
        _update(Q + <Py_ssize_t>row * d, AQ, row, d, a, lr, l2, now)
        _normalise(Q, k.Qh, k.inorm, row, d)
        memset(a, 0, d * sizeof(float))
        if bi != NULL:
            _update(bi + row, ABI, row, 1, k.bacc + row, lr, l2, now)
            k.bacc[row] = 0
        k.mark[row] = 0
    k.n_touched = 0
    k.count = 0
    if k.gb != NULL:
        _update(k.gb, k.AGB, 0, 1, &k.gacc, lr, 0, now)
        k.gacc = 0
    if g < 1:
        _update(W, AW, 0, d * d, GW, lr * k.w_rate, l2, now)
        memset(GW, 0, d * d * sizeof(float))
    if k.kacc != NULL:
        _update(k.A, k.AA, 0, d * d, k.GA, lr * k.w_rate, l2, now)
        _update(k.ba, k.ABA, 0, d, k.Gba, lr * k.w_rate, 0, now)
        memset(k.GA, 0, d * d * sizeof(float))
        memset(k.Gba, 0, d * sizeof(float))
        _keys(Q, k.A, k.ba, k.K, k.n_items, d)


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


cdef struct Scratch:
    float* S        # d: sum of the history's item vectors
    float* WH       # chunk x d: W h for each positive
    float* GP       # chunk x d: gradients of the unnormalised user vectors
    float* p        # d
    float* gz       # d
    float* ge       # d: the user's gradient
    float* gt       # d: one item's gradient
    float* Z        # chunk x d: dropped-out normalised user vectors
    float* P        # chunk x d: normalised user vectors (before dropout)
    float* H        # chunk x d: history means
    float* Xi       # chunk x d: dropout masks
    float* norm_p   # chunk
    float* GH       # n_max x d: history gradients G_h per positive / |its history|
    float* inv      # n_max: 1 / |history of each positive|
    float* T        # d: sum of G_h
    float* Qn       # N x d: the negatives' normalised rows, gathered for a block
    int* neg        # N
    float* Sc       # chunk x N scores, then active weights
    float* GZ       # chunk x d: negative parts of G_z
    float* GQn      # N x d: the negatives' gradients (before the normalisation's Jacobian)
    float* colw     # N: sum over positives of A_aj s_aj
    float* gbn      # N: the negatives' item-bias gradients
    float* xb       # chunk: dropout of the bias column
    char* active    # N
    int* act        # N: the active negatives' columns
    char* seen      # n_items: marks the user's positives while they are excluded
    float* AL       # chunk x hmax: attention weights over the history (user attention)
    float* gk       # d: one key's gradient
    int hmax        # longest history


cdef int _user(int u, const int* cols, int n, const int* hcols, int nh, const int* row,
               int n_row, int n_items,
               float* E, float* Q, float* W, float* bi, Table* ABI,
               Table* AE, Table* AQ, Table* AW, float* GW, float* gE, int d, int N, float g,
               float margin, float weight, float rho, float lr, float l2, uint64_t seed,
               uint64_t stream, const double* cdf, bint exclude, Scratch* s, int chunk,
               bint apply, Sink* sink, double* loss, int* negs_out, int clock0,
               int steps) noexcept nogil:
    """CCL terms of user ``u``'s positives ``cols`` (all of its ``row``, or one of them when
    the positives are shuffled) over blocks of ``chunk`` positives, random numbers from
    ``stream``. With ``apply``, every block ends with an optimiser step on the user's row;
    item gradients go to ``sink`` and W's to ``GW``, stepped every ``sink.batch``
    positives. Without ``apply`` the gradients are only summed (into ``gE``, ``GW`` and the
    sink) and nothing changes. For dense Adam the blocks sit evenly on ``steps``
    mini-batches after ``clock0``. Returns 0."""
    cdef uint64_t rng = mix(seed ^ mix(stream + <uint64_t>0x51ed270b27fd3a45))
    cdef int a, c, j, t, start, m, now, n_act
    cdef float* Qh = sink.Qh
    cdef float* q
    cdef float* z
    cdef float nq, sc, cs, coef, dot_pg, keep = 1.0 - rho, zero_f = 0.0, one_f = 1.0
    cdef float shift = 0, gshift
    cdef float hist_w = 1 - g
    cdef float inv_hist, top, mass, al, ga, hdot
    cdef bint attn = sink.K != NULL
    cdef const float* e = E + <Py_ssize_t>u * d
    cdef const float* key
    cdef float* gh
    cdef char ta = b'T', tb = b'N'
    cdef double total = 0
    coef = weight / N
    if exclude:
        for a in range(n_row):
            s.seen[row[a]] = 1
    if g < 1 and not attn:
        memset(s.S, 0, d * sizeof(float))
        memset(s.T, 0, d * sizeof(float))
        for a in range(nh):
            q = Q + <Py_ssize_t>hcols[a] * d
            for c in range(d):
                s.S[c] += q[c]
    start = 0
    while start < n:
        m = min(chunk, n - start)
        # this block's negatives, drawn from the user's stream
        for j in range(N):
            t = _sample(&rng, n_items, cdf)
            if exclude:
                for a in range(MAX_REJECT):
                    if not s.seen[t]:
                        break
                    t = _sample(&rng, n_items, cdf)
            s.neg[j] = t
        if negs_out != NULL:
            for j in range(N):
                negs_out[(start // chunk) * N + j] = s.neg[j]
        memset(s.ge, 0, d * sizeof(float))
        gshift = 0
        if sink.ub != NULL:  # current at every block: the user's bias steps with its row
            shift = sink.ub[u] + sink.gb[0]
        memset(s.GZ, 0, m * d * sizeof(float))
        memset(s.active, 0, N * sizeof(char))
        if g < 1 and attn:
            # user attention: h = sum_k alpha_k q_k, alpha = softmax_k(K_k . e_u) over the
            # history minus the target
            for a in range(m):
                t = cols[start + a]
                top = -1e30
                for j in range(nh):
                    if hcols[j] != t:
                        s.AL[a * s.hmax + j] = _dot(d, sink.K + <Py_ssize_t>hcols[j] * d, e)
                        top = max(top, s.AL[a * s.hmax + j])
                mass = 0
                for j in range(nh):
                    al = expf(s.AL[a * s.hmax + j] - top) if hcols[j] != t else 0
                    s.AL[a * s.hmax + j] = al
                    mass += al
                memset(s.H + a * d, 0, d * sizeof(float))
                for j in range(nh):
                    if mass > 0:
                        s.AL[a * s.hmax + j] /= mass
                    al = s.AL[a * s.hmax + j]
                    if al != 0:
                        q = Q + <Py_ssize_t>hcols[j] * d
                        for c in range(d):
                            s.H[a * d + c] += al * q[c]
            sgemm(&ta, &tb, &d, &m, &d, &one_f, W, &d, s.H, &d, &zero_f, s.WH, &d)
        elif g < 1:  # history means of the chunk and W h for all of them (one SGEMM)
            for a in range(m):
                # the target leaves its own history: h = (S - [i in H] q_i) / (|H| - [i in H])
                t = cols[start + a]
                j = 1 if find(hcols, nh, t) >= 0 else 0
                inv_hist = 1.0 / (nh - j) if nh > j else 0.0
                s.inv[start + a] = inv_hist
                q = Q + <Py_ssize_t>t * d
                for c in range(d):
                    s.H[a * d + c] = (s.S[c] - j * q[c]) * inv_hist
            # WH (m x d, row-major) = H W^T
            sgemm(&ta, &tb, &d, &m, &d, &one_f, W, &d, s.H, &d, &zero_f, s.WH, &d)
        # user vectors of this chunk of positives
        for a in range(m):
            z = s.Z + a * d
            if g < 1:
                for c in range(d):
                    s.p[c] = g * E[<Py_ssize_t>u * d + c] + (1 - g) * s.WH[a * d + c]
            else:
                for c in range(d):
                    s.p[c] = E[<Py_ssize_t>u * d + c]
            nq = sqrtf(_dot(d, s.p, s.p)) + EPS
            s.norm_p[a] = nq
            for c in range(d):
                s.P[a * d + c] = s.p[c] / nq
                if rho > 0:
                    s.Xi[a * d + c] = (1.0 / keep) if next_uniform(&rng) < keep else 0.0
                else:
                    s.Xi[a * d + c] = 1.0
                z[c] = s.P[a * d + c] * s.Xi[a * d + c]
            s.xb[a] = 1.0  # the bias column [1, b_i] is dropped out like the others
            if bi != NULL and rho > 0:
                s.xb[a] = (1.0 / keep) if next_uniform(&rng) < keep else 0.0
        # scores against the negatives' normalised rows: Sc (m x N) = Z Qn^T, one SGEMM on
        # the gathered rows for a block, N dots for a single positive
        if m == 1:
            for j in range(N):
                s.Sc[j] = _dot(d, s.Z, Qh + <Py_ssize_t>s.neg[j] * d)
        else:
            for j in range(N):
                memcpy(s.Qn + j * d, Qh + <Py_ssize_t>s.neg[j] * d, d * sizeof(float))
            sgemm(&ta, &tb, &N, &m, &d, &one_f, s.Qn, &d, s.Z, &d, &zero_f, s.Sc, &N)
        # the active pairs (s > m; usually few) give the negative parts of G_z,
        # G_z_a += (w / N) q^_j, and the negatives' gradients, G_j += (w / N) z_a
        n_act = 0
        for a in range(m):
            z = s.Z + a * d
            for j in range(N):
                cs = s.Sc[a * N + j]  # the cosine; the score adds the biases
                t = s.neg[j]
                sc = cs + (s.xb[a] * bi[t] if bi != NULL else 0) + shift
                if sc <= margin:
                    continue
                total += coef * (sc - margin)
                gshift += coef
                if not s.active[j]:
                    s.active[j] = 1
                    s.act[n_act] = j
                    n_act += 1
                    s.colw[j] = 0
                    s.gbn[j] = 0
                    memset(s.GQn + j * d, 0, d * sizeof(float))
                s.colw[j] += coef * cs
                s.gbn[j] += coef * s.xb[a]
                q = Qh + <Py_ssize_t>t * d
                for c in range(d):
                    s.GZ[a * d + c] += coef * q[c]
                    s.GQn[j * d + c] += coef * z[c]
        for a in range(m):
            z = s.Z + a * d
            for c in range(d):
                s.gz[c] = s.GZ[a * d + c]
            # positive
            t = cols[start + a]
            q = Qh + <Py_ssize_t>t * d
            nq = sink.inorm[t]
            cs = _dot(d, z, q)
            sc = cs + (s.xb[a] * bi[t] if bi != NULL else 0) + shift
            if sc < 1:
                total += 1 - sc
                gshift -= 1
                for c in range(d):
                    s.gz[c] -= q[c]
                    s.gt[c] = -(z[c] - cs * q[c]) * nq
                _sink_add(sink, t, s.gt, d, -s.xb[a])
            # back through dropout and the normalisation
            dot_pg = 0
            for c in range(d):
                s.gz[c] *= s.Xi[a * d + c]
                dot_pg += s.P[a * d + c] * s.gz[c]
            for c in range(d):
                s.GP[a * d + c] = (s.gz[c] - dot_pg * s.P[a * d + c]) / s.norm_p[a]
                s.ge[c] += g * s.GP[a * d + c]
        if g < 1:
            # G_W += (1 - g) G_P^T H  (d x d, row-major)
            sgemm(&tb, &ta, &d, &d, &m, &hist_w, s.H, &d, s.GP, &d, &one_f, GW, &d)
            # G_H (m x d) = (1 - g) G_P W
            sgemm(&tb, &tb, &d, &m, &d, &hist_w, W, &d, s.GP, &d, &zero_f,
                  s.GH + <Py_ssize_t>start * d, &d)
            if attn:
                # G_alpha_k = G_h . q_k, G_a_k = alpha_k (G_alpha_k - G_h . h) (softmax);
                # G_e += sum_k G_a_k K_k, G_q_k += alpha_k G_h, and the key's pre-activation
                # gets G_a_k e_u o (1 - K_k^2) (turned into G_A, G_b, G_q at the step)
                for a in range(m):
                    gh = s.GH + <Py_ssize_t>(start + a) * d
                    hdot = _dot(d, gh, s.H + a * d)
                    for j in range(nh):
                        al = s.AL[a * s.hmax + j]
                        if al == 0:
                            continue
                        t = hcols[j]
                        q = Q + <Py_ssize_t>t * d
                        key = sink.K + <Py_ssize_t>t * d
                        ga = al * (_dot(d, gh, q) - hdot)
                        for c in range(d):
                            s.ge[c] += ga * key[c]
                            s.gt[c] = al * gh[c]
                            s.gk[c] = ga * e[c] * (1 - key[c] * key[c])
                        _sink_add(sink, t, s.gt, d, 0)
                        _sink_into(sink, sink.kacc, t, s.gk, d)
            else:
                for a in range(m):
                    for c in range(d):
                        s.GH[(start + a) * d + c] *= s.inv[start + a]
                        s.T[c] += s.GH[(start + a) * d + c]
        # one optimiser step per block of positives: the active negatives, the user, W
        # each active negative: G_q_j = (sum_a A_aj z_a - (sum_a A_aj s_aj) q^_j) / |q_j|
        for a in range(n_act):
            j = s.act[a]
            t = s.neg[j]
            q = Qh + <Py_ssize_t>t * d
            for c in range(d):
                s.gt[c] = (s.GQn[j * d + c] - s.colw[j] * q[c]) * sink.inorm[t]
            _sink_add(sink, t, s.gt, d, s.gbn[j])
        if apply:
            now = clock0 + <int>((<long long>(start // chunk + 1) * steps)
                                 // ((n + chunk - 1) // chunk))
            _update(E + <Py_ssize_t>u * d, AE, u, d, s.ge, lr * m, l2, now)  # step per positive
            if sink.ub != NULL:
                _update(sink.ub + u, sink.AUB, u, 1, &gshift, lr * m, l2, now)
                sink.gacc += gshift
            sink.count += m
            if sink.count >= sink.batch:
                # items and W step once per ``batch`` positives of this thread (the official
                # mini-batch size) with the gradients summed meanwhile; Hogwild across threads
                _flush(sink, Q, AQ, W, AW, GW, bi, ABI, d, g, lr, l2)
        else:
            for c in range(d):
                gE[c] += s.ge[c]
            if sink.gub != NULL:
                sink.gub[0] += gshift
        start += m
    # history items: item k gets G_h / |H minus target| summed over the positives other than
    # k itself (GH rows are already divided); H and cols are sorted
    if g < 1 and not attn:
        a = 0
        for j in range(nh):
            t = hcols[j]
            while a < n and cols[a] < t:
                a += 1
            if a < n and cols[a] == t:
                for c in range(d):
                    s.gt[c] = s.T[c] - s.GH[a * d + c]
                _sink_add(sink, t, s.gt, d, 0)
            else:
                _sink_add(sink, t, s.T, d, 0)
    if exclude:
        for a in range(n_row):
            s.seen[row[a]] = 0
    loss[0] += total
    return 0


cdef Sink _sink(int n_items, int d, bint biases, float* Qh, float* inorm) noexcept nogil:
    cdef Sink k
    k.Qh = Qh
    k.inorm = inorm
    k.acc = <float*>calloc(<size_t>n_items * d, sizeof(float))
    k.bacc = <float*>calloc(n_items, sizeof(float)) if biases else NULL
    k.mark = <char*>calloc(n_items, sizeof(char))
    k.touched = <int*>malloc(<size_t>n_items * sizeof(int))
    k.n_touched = 0
    k.count = 0
    k.batch = 1024
    k.w_rate = 1
    k.clock = NULL
    k.n_items = n_items
    k.K = k.A = k.ba = k.GA = k.Gba = k.kacc = k.Kg = k.Qg = k.Og = NULL
    k.AA = k.ABA = NULL
    k.ub = k.gb = k.gub = NULL
    k.AUB = k.AGB = NULL
    k.gacc = 0
    return k


cdef void _sink_attention(Sink* k, float* K, float* A, float* ba, Table* AA, Table* ABA,
                          float* GA, float* Gba, int d) noexcept nogil:
    """Switch ``k`` to user attention: shared keys and parameters, this thread's buffers."""
    cdef size_t size = <size_t>k.n_items * d
    k.K = K
    k.A = A
    k.ba = ba
    k.AA = AA
    k.ABA = ABA
    k.GA = GA
    k.Gba = Gba
    k.kacc = <float*>calloc(size, sizeof(float))
    k.Kg = <float*>malloc(size * sizeof(float))
    k.Qg = <float*>malloc(size * sizeof(float))
    k.Og = <float*>malloc(size * sizeof(float))


cdef void _sink_free(Sink* k) noexcept nogil:
    free(k.acc)
    free(k.bacc)
    free(k.mark)
    free(k.touched)
    free(k.kacc)
    free(k.Kg)
    free(k.Qg)
    free(k.Og)


cdef Scratch _alloc(int d, int N, int chunk, int n_max, int n_items, int hmax) noexcept nogil:
    """This thread's buffers (sizes in size_t); check them with ``_alloc_ok``."""
    cdef Scratch s
    cdef size_t D = d, CD = <size_t>chunk * d, ND = <size_t>N * d, Nz = N
    s.seen = <char*>calloc(n_items, sizeof(char))
    s.hmax = max(hmax, 1)
    s.AL = <float*>malloc(<size_t>chunk * s.hmax * sizeof(float))
    s.gk = <float*>malloc(D * sizeof(float))
    s.S = <float*>malloc(D * sizeof(float))
    s.WH = <float*>malloc(CD * sizeof(float))
    s.GP = <float*>malloc(CD * sizeof(float))
    s.p = <float*>malloc(D * sizeof(float))
    s.gz = <float*>malloc(D * sizeof(float))
    s.ge = <float*>malloc(D * sizeof(float))
    s.gt = <float*>malloc(D * sizeof(float))
    s.T = <float*>malloc(D * sizeof(float))
    s.Z = <float*>malloc(CD * sizeof(float))
    s.P = <float*>malloc(CD * sizeof(float))
    s.H = <float*>malloc(CD * sizeof(float))
    s.Xi = <float*>malloc(CD * sizeof(float))
    s.norm_p = <float*>malloc(<size_t>chunk * sizeof(float))
    s.GH = <float*>malloc(<size_t>max(n_max, 1) * D * sizeof(float))
    s.inv = <float*>malloc(<size_t>max(n_max, 1) * sizeof(float))
    s.Qn = <float*>malloc(ND * sizeof(float))
    s.neg = <int*>malloc(Nz * sizeof(int))
    s.Sc = <float*>malloc(<size_t>chunk * Nz * sizeof(float))
    s.GZ = <float*>malloc(CD * sizeof(float))
    s.GQn = <float*>malloc(ND * sizeof(float))
    s.colw = <float*>malloc(Nz * sizeof(float))
    s.gbn = <float*>malloc(Nz * sizeof(float))
    s.xb = <float*>malloc(<size_t>chunk * sizeof(float))
    s.active = <char*>malloc(Nz * sizeof(char))
    s.act = <int*>malloc(Nz * sizeof(int))
    return s


cdef bint _alloc_ok(Scratch* s) noexcept nogil:
    return not (s.seen == NULL or s.AL == NULL or s.gk == NULL or s.S == NULL
                or s.WH == NULL or s.GP == NULL or s.p == NULL or s.gz == NULL
                or s.ge == NULL or s.gt == NULL or s.T == NULL or s.Z == NULL or s.P == NULL
                or s.H == NULL or s.Xi == NULL or s.norm_p == NULL or s.GH == NULL
                or s.inv == NULL or s.Qn == NULL or s.neg == NULL or s.Sc == NULL
                or s.GZ == NULL or s.GQn == NULL or s.colw == NULL or s.gbn == NULL
                or s.xb == NULL or s.active == NULL or s.act == NULL)


cdef bint _sink_ok(Sink* k, bint biases, bint attention) noexcept nogil:
    if k.acc == NULL or k.mark == NULL or k.touched == NULL or (biases and k.bacc == NULL):
        return False
    return not attention or not (k.kacc == NULL or k.Kg == NULL or k.Qg == NULL
                                 or k.Og == NULL)


cdef void _free(Scratch* s) noexcept nogil:
    free(s.S); free(s.WH); free(s.GP); free(s.p); free(s.gz); free(s.ge)
    free(s.gt); free(s.T); free(s.Z); free(s.P); free(s.H); free(s.Xi); free(s.norm_p)
    free(s.GH); free(s.inv); free(s.Qn); free(s.neg); free(s.Sc)
    free(s.GZ); free(s.GQn); free(s.colw); free(s.gbn); free(s.xb); free(s.active); free(s.act)
    free(s.seen); free(s.AL); free(s.gk)


cdef Table _table(m, v, t, Py_ssize_t size, bint dense=False):
    """Views of one table's optimiser state, checked (m None: Adagrad)."""
    cdef Table tab
    tab.dense = dense and m is not None
    cdef float[::1] mv
    cdef float[::1] vv = v.reshape(-1)
    cdef int[::1] tv = t
    if vv.shape[0] != size or (m is not None and m.size != size):
        raise ValueError("optimiser state does not match its table")
    tab.v = &vv[0]
    tab.t = &tv[0]
    tab.m = NULL
    if m is not None:
        mv = m.reshape(-1)
        tab.m = &mv[0]
    return tab


def _normalised(float[:, ::1] Q):
    """The normalised rows of Q and their inverse norms (float32)."""
    Qh = np.empty_like(np.asarray(Q))
    inorm = np.empty(Q.shape[0], dtype=np.float32)
    cdef float[:, ::1] qh = Qh
    cdef float[::1] iv = inorm
    cdef Py_ssize_t row
    for row in range(Q.shape[0]):
        _normalise(&Q[0, 0], &qh[0, 0], &iv[0], row, <int>Q.shape[1])
    return Qh, inorm


def _check(indptr, indices, E, Q, W, int N):
    if E.shape[1] != Q.shape[1] or W.shape[0] != W.shape[1] or W.shape[0] != E.shape[1]:
        raise ValueError("inconsistent embedding shapes")
    if indptr.shape[0] != E.shape[0] + 1:
        raise ValueError("indptr does not match the user embeddings")
    if N < 1:
        raise ValueError("negatives must be >= 1")


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


def train_epoch(const int[::1] indptr, const int[::1] indices, const int[::1] hist_indptr,
                const int[::1] hist_indices, float[:, ::1] E,
                float[:, ::1] Q, float[:, ::1] W, state, int negatives, float gamma,
                float margin, float weight, float dropout, float lr, float l2,
                unsigned long long seed, cdf, int block, bint exclude, int num_threads,
                item_bias=None, bias_state=None, clock=None, order=None,
                int batch=1024, float w_rate=1.0, attention=None,
                attention_state=None, shift=None, shift_state=None) -> float:
    """One epoch over every user (see the module docstring); returns the mean CCL per
    positive. ``block`` positives of a user share their negatives and one optimiser step.
    ``hist_indptr, hist_indices``: each user's history (a sorted subset of its positives; the
    positives themselves when uncapped). ``state``: optimiser arrays ``(mE, vE, tE, mQ, vQ,
    tQ, mW, vW, tW)`` (Adam) with the m arrays None for Adagrad; ``cdf`` is None (uniform
    negatives) or the float64 cumulative popularity. ``item_bias``: None or float32 (added
    to every score) with ``bias_state`` ``(m, v, t)``. ``clock``: None (lazy Adam) or a
    one-element int32 array, the dense-Adam mini-batch clock (the t arrays then hold each
    row's last step), advanced by the epoch's mini-batches. ``order``: None (users in
    parallel, each over its positives in blocks) or a permutation of the positives' indices
    (int32): the positives are taken in that order, one at a time (``block`` unused), in
    mini-batches of ``batch`` spread over the threads, as the official trainer's shuffled
    data loader does (a user's row is then updated lock-free too). ``w_rate``: W's learning
    rate is ``lr * w_rate``. ``attention``: None (mean history) or ``(A, b)``, the user
    attention's key map (float32, d x d and d; stepped like W) with ``attention_state``
    ``(mA, vA, tA, mb, vb, tb)``. ``shift``: None or ``(user_bias, global_bias)`` (float32,
    n_users and 1): the official ``enable_bias``'s training-only terms, added to all of user
    u's scores; the user's steps with its row, the global one with the items; state
    ``(m_u, v_u, t_u, m_g, v_g, t_g)``."""
    _check(indptr, indices, E, Q, W, negatives)
    _check_history(indptr, indices, hist_indptr, hist_indices)
    cdef float[:, ::1] A_view
    cdef float[::1] ba_view
    cdef float[:, ::1] K_view
    cdef Table t_a, t_b
    cdef bint attn = attention is not None and gamma < 1
    cdef int hmax = int(np.diff(hist_indptr).max()) if hist_indptr.shape[0] > 1 else 0
    if attn:
        A_view, ba_view, K_view = _attention_tables(attention, Q)
        t_a = _table(attention_state[0], attention_state[1], attention_state[2],
                     A_view.shape[0] * A_view.shape[1], clock is not None)
        t_b = _table(attention_state[3], attention_state[4], attention_state[5],
                     ba_view.shape[0], clock is not None)
    cdef float[::1] bi_view
    cdef float* bi_ptr = NULL
    cdef Table tbi
    if item_bias is not None:
        bi_view = item_bias
        if bi_view.shape[0] != Q.shape[0]:
            raise ValueError("item_bias must have one entry per item")
        bi_ptr = &bi_view[0]
        tbi = _table(bias_state[0], bias_state[1], bias_state[2], Q.shape[0], clock is not None)
    cdef float[::1] ub_view
    cdef float[::1] gb_view
    cdef Table t_ub, t_gb
    cdef float* ub_ptr = NULL
    if shift is not None:
        ub_view, gb_view = shift
        if ub_view.shape[0] != E.shape[0] or gb_view.shape[0] != 1:
            raise ValueError("shift must be (one bias per user, one global bias)")
        ub_ptr = &ub_view[0]
        t_ub = _table(shift_state[0], shift_state[1], shift_state[2], E.shape[0],
                      clock is not None)
        t_gb = _table(shift_state[3], shift_state[4], shift_state[5], 1, clock is not None)
    if block < 1:
        raise ValueError("block must be >= 1")
    cdef const int[::1] perm
    cdef const int[::1] owner
    cdef Py_ssize_t nnz = indices.shape[0], k, e
    if batch < 1:
        raise ValueError("batch must be >= 1")
    cdef int b, n_batches = <int>((nnz + batch - 1) // batch)
    cdef bint shuffled = order is not None
    if shuffled:
        order = np.asarray(order)
        if order.dtype != np.int32 or order.ndim != 1 or len(order) != nnz:
            raise ValueError("order must be an int32 permutation of the positives' indices")
        perm = order
        checked = is_permutation(&perm[0], nnz) if nnz else 1
        if checked < 0:
            raise MemoryError(f"could not allocate {nnz} bytes to check the order")
        if not checked:
            raise ValueError("order must be an int32 permutation of the positives' indices")
        owner = row_of_values(np.asarray(indptr))
    cdef Py_ssize_t n_users = E.shape[0]
    cdef int d = <int>E.shape[1], n_items = <int>Q.shape[0], N = negatives, chunk = block
    cdef int u, n, n_max = 0, tid, c, n_threads = max(num_threads, 1)
    cdef const double* cdf_ptr = NULL
    cdef const double[::1] cdf_view
    cdef Scratch s
    cdef bint dense = clock is not None
    cdef Table te = _table(state[0], state[1], state[2], E.shape[0] * E.shape[1], dense)
    cdef Table tq = _table(state[3], state[4], state[5], Q.shape[0] * Q.shape[1], dense)
    cdef Table tw = _table(state[6], state[7], state[8], W.shape[0] * W.shape[1], dense)
    cdef int[::1] clock_view
    cdef int* clock_ptr = NULL
    cdef int clock0 = 0, steps = n_batches
    if dense:
        clock_view = clock
        clock_ptr = &clock_view[0]
        clock0 = clock_ptr[0]
    cdef double loss = 0
    cdef double* losses
    cdef float[:, ::1] Qh
    cdef float[::1] inorm
    cdef Sink sink
    cdef float* GW_all
    cdef float* GA_all = NULL
    cdef bint ok = True
    cdef int no_memory = 0, no_memory_users = 0
    if cdf is not None:
        cdf_view = cdf
        if cdf_view.shape[0] != n_items:
            raise ValueError("cdf must have one entry per item")
        cdf_ptr = &cdf_view[0]
    for u in range(n_users):
        n_max = max(n_max, indptr[u + 1] - indptr[u])
    Qh, inorm = _normalised(Q)
    GW_all = <float*>calloc(<size_t>n_threads * d * d, sizeof(float))
    losses = <double*>calloc(n_threads, sizeof(double))
    if attn:  # this thread's G_A (d x d) then G_b (d)
        GA_all = <float*>calloc(<size_t>n_threads * (d * d + d), sizeof(float))
    try:
        if GW_all == NULL or losses == NULL or (attn and GA_all == NULL):
            raise MemoryError(f"SimpleX: could not allocate {n_threads} x {d} x {d} gradients")
        with nogil, parallel(num_threads=n_threads):
            tid = threadid()
            s = _alloc(d, N, chunk, n_max, n_items, hmax)
            sink = _sink(n_items, d, bi_ptr != NULL, &Qh[0, 0], &inorm[0])
            if attn:
                _sink_attention(&sink, &K_view[0, 0], &A_view[0, 0], &ba_view[0], &t_a, &t_b,
                                GA_all + tid * (d * d + d), GA_all + tid * (d * d + d) + d * d,
                                d)
            ok = _alloc_ok(&s) and _sink_ok(&sink, bi_ptr != NULL, attn)
            sink.clock = clock_ptr
            if ub_ptr != NULL:
                sink.ub = ub_ptr
                sink.AUB = &t_ub
                sink.gb = &gb_view[0]
                sink.AGB = &t_gb
            sink.batch = batch
            sink.w_rate = w_rate
            try:
                if shuffled:  # mini-batches of ``batch`` positives; items step after each
                    for b in prange(n_batches, schedule="dynamic", chunksize=1):
                        if not ok:
                            no_memory += 1
                            continue
                        for k in range(<Py_ssize_t>b * batch, min(<Py_ssize_t>(b + 1) * batch,
                                                                  nnz)):
                            e = perm[k]
                            u = owner[e]
                            _user(u, &indices[e], 1, &hist_indices[hist_indptr[u]],
                                  hist_indptr[u + 1] - hist_indptr[u], &indices[indptr[u]],
                                  indptr[u + 1] - indptr[u], n_items, &E[0, 0], &Q[0, 0],
                                  &W[0, 0], bi_ptr, &tbi, &te, &tq, &tw, GW_all + tid * d * d,
                                  NULL, d, N, gamma, margin, weight, dropout, lr, l2, seed,
                                  <uint64_t>e, cdf_ptr, exclude, &s, 1, True, &sink,
                                  &losses[tid], NULL, clock0 + b, 1)
                        if ok and sink.count > 0:
                            _flush(&sink, &Q[0, 0], &tq, &W[0, 0], &tw, GW_all + tid * d * d,
                                   bi_ptr, &tbi, d, gamma, lr, l2)
                else:
                    for u in prange(n_users, schedule="dynamic", chunksize=8):
                        if not ok:
                            no_memory_users += 1
                            continue
                        n = indptr[u + 1] - indptr[u]
                        if n == 0:
                            continue
                        _user(u, &indices[indptr[u]], n, &hist_indices[hist_indptr[u]],
                              hist_indptr[u + 1] - hist_indptr[u], &indices[indptr[u]], n,
                              n_items, &E[0, 0], &Q[0, 0], &W[0, 0], bi_ptr, &tbi, &te, &tq,
                              &tw, GW_all + tid * d * d, NULL, d, N, gamma, margin, weight,
                              dropout, lr, l2, seed, <uint64_t>u, cdf_ptr, exclude, &s, chunk,
                              True, &sink, &losses[tid], NULL, clock0, steps)
                if ok and sink.count > 0:  # this thread's last partial batch
                    _flush(&sink, &Q[0, 0], &tq, &W[0, 0], &tw, GW_all + tid * d * d, bi_ptr,
                           &tbi, d, gamma, lr, l2)
            finally:
                _free(&s)
                _sink_free(&sink)
        if no_memory or no_memory_users:
            per_thread = (2.0 * N * d + 1.0 * chunk * N + 1.0 * n_items * d) * 4 / 2**20
            raise MemoryError(f"SimpleX: could not allocate a thread's scratch buffers (about "
                              f"{per_thread:.0f} MiB per thread); lower negatives, block_size "
                              "or num_threads")
        for tid in range(n_threads):
            loss += losses[tid]
        if dense:
            clock_ptr[0] = clock0 + steps
    finally:
        free(GW_all)
        free(GA_all)
        free(losses)
    return loss / max(indices.shape[0], 1)


def _attention_tables(attention, Q):
    """Checked views of ``attention = (A, b)`` and the keys of Q's items."""
    cdef float[:, ::1] A
    cdef float[::1] ba
    cdef float[:, ::1] Qv = Q
    A, ba = attention
    cdef int d = <int>Qv.shape[1]
    if A.shape[0] != d or A.shape[1] != d or ba.shape[0] != d:
        raise ValueError("the attention's A must be d x d and b of length d")
    K = np.empty_like(np.asarray(Q))
    cdef float[:, ::1] Kv = K
    if Qv.shape[0] > 0:
        _keys(&Qv[0, 0], &A[0, 0], &ba[0], &Kv[0, 0], <int>Qv.shape[0], d)
    return A, ba, Kv


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
    cdef int d = <int>E.shape[1], n = <int>cols.shape[0], N = negatives
    cdef Scratch s
    cdef double loss = 0
    cdef const int[::1] hv
    cdef float[::1] bi_view
    cdef float* bi_ptr = NULL
    if item_bias is not None:
        bi_view = item_bias
        bi_ptr = &bi_view[0]
        if gbi is None or gbi.shape[0] != Q.shape[0] or bi_view.shape[0] != Q.shape[0]:
            raise ValueError("item_bias and gbi need one entry per item")
    cdef float[::1] ub_view
    cdef float[::1] gb_view
    if shift is not None:
        ub_view, gb_view = shift
        if ub_view.shape[0] <= u or gb_view.shape[0] != 1 or gshift is None or (
                gshift.shape[0] != 1):
            raise ValueError("shift needs user biases up to u, one global bias and gshift")
    if n < 1 or block < 1:
        raise ValueError("the user needs at least one positive, block >= 1")
    _check(np.zeros(2, np.int32), cols, E[:1], Q, W, N)
    hist = np.asarray(cols if history is None else history, dtype=np.int32)
    _check_history(np.array([0, n], np.int32), cols, np.array([0, len(hist)], np.int32), hist)
    hv = hist
    drawn = np.empty(((n + block - 1) // block, N), dtype=np.int32)
    cdef int[:, ::1] dv = drawn
    cdef Sink sink
    cdef float[:, ::1] Qh
    cdef float[::1] inorm
    cdef float[:, ::1] A_view
    cdef float[::1] ba_view
    cdef float[:, ::1] K_view
    cdef bint attn = attention is not None and gamma < 1
    if attn:
        A_view, ba_view, K_view = _attention_tables(attention, Q)
        if gA is None or gba is None or gA.shape[0] != d or gA.shape[1] != d or (
                gba.shape[0] != d):
            raise ValueError("attention needs gA (d x d) and gba (d)")
    Qh, inorm = _normalised(Q)
    s = _alloc(d, N, block, n, <int>Q.shape[0], <int>hv.shape[0])
    sink = _sink(<int>Q.shape[0], d, False, &Qh[0, 0], &inorm[0])
    if not (_alloc_ok(&s) and _sink_ok(&sink, False, False)):
        _free(&s)
        _sink_free(&sink)
        raise MemoryError("user_gradients: could not allocate the scratch buffers")
    free(sink.acc)
    sink.acc = &gQ[0, 0]  # summed straight into the caller's dense gradients
    if bi_ptr != NULL:
        sink.bacc = &gbi[0]
    if shift is not None:
        sink.ub = &ub_view[0]
        sink.gb = &gb_view[0]
        sink.gub = &gshift[0]
    if attn:
        _sink_attention(&sink, &K_view[0, 0], &A_view[0, 0], &ba_view[0], NULL, NULL,
                        &gA[0, 0], &gba[0], d)
        if not _sink_ok(&sink, False, True):
            _free(&s)
            sink.acc = sink.bacc = NULL
            _sink_free(&sink)
            raise MemoryError("user_gradients: could not allocate the attention's buffers")
    try:
        _user(u, &cols[0], n, &hv[0], <int>hv.shape[0], &cols[0], n, <int>Q.shape[0],
              &E[0, 0], &Q[0, 0], &W[0, 0], bi_ptr, NULL, NULL, NULL,
              NULL, &gW[0, 0], &gE[0], d, N, gamma, margin, weight, 0.0, 0.0, 0.0, seed, u,
              NULL, exclude, &s, block, False, &sink, &loss, &dv[0, 0], 0, 0)
        if attn:
            _key_backward(&sink, &Q[0, 0], d)
    finally:
        _free(&s)
        sink.acc = sink.bacc = NULL  # the caller's
        _sink_free(&sink)
    return loss, drawn
