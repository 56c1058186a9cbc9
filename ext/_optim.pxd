# Per-row optimisers for the embedding kernels in ext/: Adagrad, lazy Adam, and dense Adam
# (torch's Adam over whole tables) applied lazily at each row's next touch.

from libc.math cimport pow, powf, sqrt, sqrtf
from libc.stdlib cimport calloc, free

cdef enum:
    TAIL = 100  # skipped dense-Adam steps summed (0.9^100 / 0.999^50 < 3e-5)


cdef struct Table:
    float* m    # Adam's first moments (NULL: Adagrad)
    float* v    # Adam's second moments, or Adagrad's sums of squares
    int* t      # Adam's per-row step counts (lazy) or clock of the last step (dense)
    bint dense  # Adam over the whole table: rows move between their touches as well


cdef struct Gaps:
    # dense Adam's closed forms of a gap of k steps ending at clock ``now``, cached per k
    # (a function of k alone once ``now`` is fixed): the skipped steps' summed factor and
    # the moments' decays b1^k, b2^k
    int size
    int* stamp      # size: the ``now`` each entry was computed for (0: never)
    double* tail
    double* decay1
    double* decay2


cdef inline Gaps gaps_new(int size) noexcept nogil:
    """A cache for gaps up to ``size`` steps (check ``stamp`` for NULL)."""
    cdef Gaps g
    g.size = size
    g.stamp = <int*>calloc(size, sizeof(int))
    g.tail = <double*>calloc(size, sizeof(double))
    g.decay1 = <double*>calloc(size, sizeof(double))
    g.decay2 = <double*>calloc(size, sizeof(double))
    if g.tail == NULL or g.decay1 == NULL or g.decay2 == NULL:
        free(g.stamp)
        g.stamp = NULL
    return g


cdef inline void gaps_free(Gaps* g) noexcept nogil:
    free(g.stamp)
    free(g.tail)
    free(g.decay1)
    free(g.decay2)


cdef inline void _gap(int t0, int k, double* tail, double* decay1, double* decay2) noexcept nogil:
    """The k - 1 zero-gradient steps after a row's touch at clock t0 move it by -lr m / sqrt(v)
    times sum_{s=1}^{k-1} (b1^s / (1 - b1^(t0+s))) / sqrt(b2^s / (1 - b2^(t0+s))) (Adam's
    epsilon aside; the terms shrink like (b1 / sqrt(b2))^s, so the sum stops after TAIL)."""
    cdef int s
    cdef double a1 = 1, a2 = 1, p1, p2, total = 0
    if k > 1 and t0 > 0:
        p1 = pow(0.9, t0)
        p2 = pow(0.999, t0)
        for s in range(min(k - 1, TAIL)):
            a1 *= 0.9
            a2 *= 0.999
            p1 *= 0.9
            p2 *= 0.999
            total += (a1 / (1 - p1)) / sqrt(a2 / (1 - p2))
    tail[0] = total
    decay1[0] = pow(0.9, k)
    decay2[0] = pow(0.999, k)


cdef inline void update(float* w, Table* st, Py_ssize_t row, int d, const float* g, float lr,
                        float l2, int now, Gaps* gaps) noexcept nogil:
    """Row ``row`` of a table: Adagrad, lazy Adam (moments of touched rows only) or dense
    Adam at clock ``now``, with l2 added to the gradient; ``gaps`` (or NULL) caches dense
    Adam's gap factors.

    Dense Adam steps every row at every mini-batch: a row without a gradient keeps moving by
    its decaying first moment while its second moment decays too. The k - 1 steps skipped
    since the row's last touch at t0 = now - k are applied here at once (``_gap``), then
    comes this touch's step with m = b1^k m + (1 - b1) g, v = b2^k v + (1 - b2) g^2. The L2
    penalty of the skipped steps joins this one's: g gains k l2 w, as the official
    whole-table L2 charges every row at every mini-batch (an approximation: one normalised
    step instead of k). Charging l2 w at touches only lets a rare row escape nearly all of
    it: on ML-1M the user rows then grew to 1.6x the norms of a torch run of the official
    trainer and validation Recall@20 gained half as much from the learning rate's decay."""
    cdef int c, t, k, t0
    cdef float gc, c1, c2, reg = l2, f1 = 0.9, f2 = 0.999, step
    cdef float a1 = 0.1, a2 = 0.001, eps = 1e-8, eps_tail = 1e-12, eps_adagrad = 1e-10
    cdef double tail = 0, decay1 = 0.9, decay2 = 0.999
    cdef float* v = st.v + row * d
    cdef float* m
    if st.m == NULL:
        for c in range(d):
            gc = g[c] + l2 * w[c]
            v[c] += gc * gc
            w[c] -= lr * gc / (sqrtf(v[c]) + eps_adagrad)
        return
    m = st.m + row * d
    if st.dense:
        t0 = st.t[row]
        k = max(now - t0, 1)
        if gaps != NULL and k < gaps.size:
            if gaps.stamp[k] != now:
                _gap(t0, k, &gaps.tail[k], &gaps.decay1[k], &gaps.decay2[k])
                gaps.stamp[k] = now
            tail, decay1, decay2 = gaps.tail[k], gaps.decay1[k], gaps.decay2[k]
        else:
            _gap(t0, k, &tail, &decay1, &decay2)
        f1, f2 = <float>decay1, <float>decay2
        if tail != 0:
            step = lr * <float>tail
            for c in range(d):
                w[c] -= step * m[c] / (sqrtf(v[c]) + eps_tail)
        if t0 > 0:
            reg = l2 * k
        st.t[row] = now
        t = max(now, 1)
    else:
        st.t[row] += 1
        t = st.t[row]
    c1 = lr / (1 - powf(0.9, t))
    c2 = 1 / (1 - powf(0.999, t))
    for c in range(d):
        gc = g[c] + reg * w[c]
        m[c] = f1 * m[c] + a1 * gc
        v[c] = f2 * v[c] + a2 * gc * gc
        w[c] -= c1 * m[c] / (sqrtf(v[c] * c2) + eps)
