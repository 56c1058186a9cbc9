import numpy as np
import pytest
import scipy.sparse as sp

from recsys._ext._simplex import adam_step, user_gradients
from recsys.models.iterative import EarlyStopping, ReduceOnPlateau


def ccl_reference(E, Q, W, u, cols, negatives, gamma, margin, weight, block, history=None,
                  bi=None, A=None, ba=None, shift=0.0):
    """The user's CCL in float64 NumPy (no dropout); ``negatives[b]`` are shared by the
    positives of block b (``block`` positives each); the history mean runs over ``history``
    (default: all positives) minus the target; ``bi``: item biases added to every score;
    ``A, ba``: user attention instead of the mean, weights softmax_k(tanh(A q_k + ba) . e_u);
    ``shift``: the user's training-only bias b_u + b_0, added to all its scores."""
    E, Q, W = (np.asarray(a, dtype=np.float64) for a in (E, Q, W))
    history = list(cols if history is None else history)
    qhat = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    total = 0.0
    for a, i in enumerate(cols):
        neg = negatives[a // block]
        rest = [k for k in history if k != i]
        h = Q[rest].mean(0) if rest else np.zeros(Q.shape[1])
        if A is not None and rest:
            logits = np.tanh(Q[rest] @ np.asarray(A, np.float64).T + ba) @ E[u]
            alpha = np.exp(logits - logits.max())
            h = (alpha / alpha.sum()) @ Q[rest]
        p = gamma * E[u] + (1 - gamma) * W @ h
        z = p / np.linalg.norm(p)
        shift_i = shift_n = shift
        if bi is not None:
            shift_i, shift_n = shift + bi[i], shift + bi[neg]
        total += max(0.0, 1 - z @ qhat[i] - shift_i)
        total += weight / len(neg) * np.maximum(0, qhat[neg] @ z + shift_n - margin).sum()
    return total


def finite_difference(args, name, index, step=1e-4):
    """Central difference of ``ccl_reference(**args)`` in ``args[name][index]``."""
    hi, lo = args[name].astype(np.float64), args[name].astype(np.float64)
    hi[index] += step
    lo[index] -= step
    return (ccl_reference(**{**args, name: hi}) - ccl_reference(**{**args, name: lo})) / (
        2 * step)


@pytest.mark.parametrize("gamma, n_pos, block, cap", [
    (1.0, 4, 256, None), (0.6, 4, 256, None), (0.6, 300, 256, None), (0.6, 7, 3, None),
    (0.6, 9, 4, 5), (0.6, 300, 256, 40), (1.0, 5, 1, None), (0.6, 6, 1, 4), (0.6, 5, 2, 1)])
def test_gradients_match_finite_differences(gamma, n_pos, block, cap):
    """Blocks of positives share their negatives: n_pos = 300 spans two blocks of 256 (two
    SGEMMs), 7 positives three blocks of 3, block 1 scores each positive by dot products;
    ``cap``: the history is a subset of the positives (targets inside and outside it; one
    item: the others' history is that item alone)."""
    rng = np.random.default_rng(0)
    n_users, n_items, d, N = 3, 400, 6, 25
    E = rng.normal(0, 1, (n_users, d)).astype(np.float32)
    Q = rng.normal(0, 1, (n_items, d)).astype(np.float32)
    W = (np.eye(d) + rng.normal(0, 0.3, (d, d))).astype(np.float32)
    cols = np.sort(rng.choice(n_items, n_pos, replace=False)).astype(np.int32)
    u, margin, weight = 1, 0.1, 4.0  # a low margin: many active negatives
    gE = np.zeros(d, np.float32)
    gQ = np.zeros_like(Q)
    gW = np.zeros_like(W)
    history = None if cap is None else np.sort(rng.choice(cols, cap, replace=False))
    loss, negatives = user_gradients(cols, u, E, Q, W, N, gamma, margin, weight, 5, gE, gQ, gW,
                                     block, history=history)
    assert negatives.shape == (-(-n_pos // block), N)
    if len(negatives) > 1:
        assert not np.array_equal(negatives[0], negatives[1])  # fresh draws per block
    ref = ccl_reference(E, Q, W, u, cols, negatives, gamma, margin, weight, block, history)
    assert loss == pytest.approx(ref, rel=1e-4)

    def numeric(array, index):
        step = 1e-4  # small: a larger one can cross a relu kink of the 300 terms
        hi, lo = array.astype(np.float64), array.astype(np.float64)
        hi[index] += step
        lo[index] -= step
        args = {"E": E, "Q": Q, "W": W}
        name = next(k for k, v in args.items() if v is array)
        f = [ccl_reference(**{**args, name: x}, u=u, cols=cols, negatives=negatives,
                           gamma=gamma, margin=margin, weight=weight, block=block,
                           history=history) for x in (hi, lo)]
        return (f[0] - f[1]) / (2 * step)

    for c in range(d):
        assert gE[c] == pytest.approx(numeric(E, (u, c)), abs=2e-3)
    touched = np.unique(np.concatenate([cols, negatives.ravel()]))
    for item in touched[:12]:
        for c in range(d):
            assert gQ[item, c] == pytest.approx(numeric(Q, (item, c)), abs=2e-3)
    untouched = np.setdiff1d(np.arange(n_items), touched)
    assert (gQ[untouched] == 0).all()
    if gamma < 1:
        for r in range(d):
            for c in range(d):
                assert gW[r, c] == pytest.approx(numeric(W, (r, c)), abs=2e-3)
    else:
        assert (gW == 0).all()


@pytest.mark.parametrize("n_pos, block, cap", [(6, 1, None), (9, 4, None), (8, 3, 5),
                                               (300, 256, 40), (4, 2, 1)])
def test_attention_gradients_match_finite_differences(n_pos, block, cap):
    """User attention: the softmax over the history (minus the target) moves the user
    (through the logits), every history item (as value and as key), W, A and b."""
    rng = np.random.default_rng(7)
    n_items, d, N = 300, 5, 20
    E = rng.normal(0, 1, (2, d)).astype(np.float32)
    Q = rng.normal(0, 1, (n_items, d)).astype(np.float32)
    W = (np.eye(d) + rng.normal(0, 0.3, (d, d))).astype(np.float32)
    A = rng.normal(0, 0.8, (d, d)).astype(np.float32)
    ba = rng.normal(0, 0.3, d).astype(np.float32)
    cols = np.sort(rng.choice(n_items, n_pos, replace=False)).astype(np.int32)
    history = None if cap is None else np.sort(rng.choice(cols, cap, replace=False))
    u, gamma, margin, weight = 1, 0.5, 0.1, 3.0
    grads = dict(E=np.zeros(d, np.float32), Q=np.zeros_like(Q), W=np.zeros_like(W),
                 A=np.zeros_like(A), ba=np.zeros_like(ba))
    loss, negatives = user_gradients(cols, u, E, Q, W, N, gamma, margin, weight, 11,
                                     grads["E"], grads["Q"], grads["W"], block,
                                     history=history, attention=(A, ba), gA=grads["A"],
                                     gba=grads["ba"])
    args = dict(E=E, Q=Q, W=W, u=u, cols=cols, negatives=negatives, gamma=gamma,
                margin=margin, weight=weight, block=block, history=history, A=A, ba=ba)
    assert loss == pytest.approx(ccl_reference(**args), rel=1e-4)
    mean = ccl_reference(**{**args, "A": None})
    if n_pos < 100 and (cap is None or cap > 2):
        assert abs(loss - mean) > 1e-3  # the weights are not uniform

    def numeric(name, index):
        return finite_difference(args, name, index)

    for c in range(d):
        assert grads["E"][c] == pytest.approx(numeric("E", (u, c)), abs=2e-3)
        assert grads["ba"][c] == pytest.approx(numeric("ba", c), abs=2e-3)
        for r in range(d):
            assert grads["W"][r, c] == pytest.approx(numeric("W", (r, c)), abs=2e-3)
            assert grads["A"][r, c] == pytest.approx(numeric("A", (r, c)), abs=2e-3)
    hist = cols if history is None else history
    for item in list(hist[:8]) + list(negatives[0, :4]):
        for c in range(d):
            assert grads["Q"][item, c] == pytest.approx(numeric("Q", (item, c)), abs=2e-3)


@pytest.mark.parametrize("block, shifted", [(1, False), (4, False), (1, True), (4, True)])
def test_bias_gradients_match_finite_differences(block, shifted):
    """Item biases shift every score (here enough to flip which terms are active); with
    ``shifted`` (``biases=True``) the user and global biases shift all of the user's scores
    too: their gradient is -1 per unsaturated positive plus w / N per active negative."""
    rng = np.random.default_rng(3)
    n_items, d, N, n_pos = 200, 5, 30, 9
    E = rng.normal(0, 1, (2, d)).astype(np.float32)
    Q = rng.normal(0, 1, (n_items, d)).astype(np.float32)
    W = (np.eye(d) + rng.normal(0, 0.3, (d, d))).astype(np.float32)
    bi = rng.normal(0, 0.3, n_items).astype(np.float32)
    cols = np.sort(rng.choice(n_items, n_pos, replace=False)).astype(np.int32)
    u, gamma, margin, weight = 1, 0.7, 0.2, 3.0
    gE, gQ, gW = np.zeros(d, np.float32), np.zeros_like(Q), np.zeros_like(W)
    gbi, gshift = np.zeros(n_items, np.float32), np.zeros(1, np.float32)
    ub, b0 = np.array([0.0, 0.25], np.float32), np.array([0.15], np.float32)
    loss, negatives = user_gradients(cols, u, E, Q, W, N, gamma, margin, weight, 7, gE, gQ, gW,
                                     block, item_bias=bi, gbi=gbi,
                                     shift=(ub, b0) if shifted else None, gshift=gshift)
    args = dict(E=E, Q=Q, W=W, u=u, cols=cols, negatives=negatives, gamma=gamma,
                margin=margin, weight=weight, block=block, bi=bi,
                shift=np.array(0.4 if shifted else 0.0))
    assert loss == pytest.approx(ccl_reference(**args), rel=1e-4)

    def numeric(name, index):
        return finite_difference(args, name, index)

    for c in range(d):
        assert gE[c] == pytest.approx(numeric("E", (u, c)), abs=2e-3)
    touched = np.unique(np.concatenate([cols, negatives.ravel()]))
    for item in touched:
        assert gbi[item] == pytest.approx(numeric("bi", item), abs=2e-3)
        assert gQ[item, 0] == pytest.approx(numeric("Q", (item, 0)), abs=2e-3)
    assert (gbi[np.setdiff1d(np.arange(n_items), touched)] == 0).all()
    if shifted:
        assert gshift[0] == pytest.approx(numeric("shift", ()), abs=2e-3)
        # the shift matters: it changes the loss, and negatives are active as well
        assert ccl_reference(**{**args, "shift": np.array(0.0)}) != pytest.approx(loss, rel=1e-2)
        assert gshift[0] != pytest.approx(-n_pos, abs=0.5)
    else:
        assert gshift[0] == 0


def test_excluded_positives_are_never_negatives():
    """With ``exclude`` a user's positives are redrawn: here 300 of 400 items are positives,
    so uniform draws hit them three times in four."""
    rng = np.random.default_rng(1)
    n_items, d, N = 400, 4, 200
    E = rng.normal(0, 1, (1, d)).astype(np.float32)
    Q = rng.normal(0, 1, (n_items, d)).astype(np.float32)
    W = np.eye(d, dtype=np.float32)
    cols = np.sort(rng.choice(n_items, 300, replace=False)).astype(np.int32)
    args = (cols, 0, E, Q, W, N, 1.0, 0.5, 1.0, 3, np.zeros(d, np.float32), np.zeros_like(Q),
            np.zeros_like(W), 100)
    _, plain = user_gradients(*args, False)
    _, excluded = user_gradients(*args, True)
    assert np.isin(plain, cols).mean() > 0.6
    assert not np.isin(excluded, cols).any()
    assert excluded.min() >= 0 and excluded.max() < n_items


def test_capped_history_is_a_fixed_sorted_subset():
    import scipy.sparse as sp

    from recsys.models.simplex import capped_history

    rng = np.random.default_rng(0)
    X = sp.random(50, 400, density=0.2, format="csr", random_state=1, dtype=np.float32)
    H = capped_history(X, 30)
    counts = np.diff(X.indptr)
    assert (np.diff(H.indptr) == np.minimum(counts, 30)).all()
    assert (H.multiply(X) != 0).sum() == H.nnz  # a subset
    assert H.has_sorted_indices
    rows = rng.choice(50, 10, replace=False)  # the same subset when scored from a slice
    np.testing.assert_array_equal(capped_history(X[rows], 30, rows).toarray(),
                                  H[rows].toarray())
    assert capped_history(X, None) is X
    with pytest.raises(ValueError, match="not a positive"):
        user_gradients(np.array([1, 2], np.int32), 0, np.ones((1, 2), np.float32),
                       np.ones((5, 2), np.float32), np.eye(2, dtype=np.float32), 3, 0.5, 0.5,
                       1.0, 0, np.zeros(2, np.float32), np.zeros((5, 2), np.float32),
                       np.zeros((2, 2), np.float32), history=np.array([3], np.int32))


def planted(n_users=120, n_items=90, groups=3, per_user=12, seed=0):
    """Users of group g interact with items of group g only (random ones)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    rows, cols = [], []
    size = n_items // groups
    for u in range(n_users):
        g = u % groups
        items = rng.choice(np.arange(g * size, (g + 1) * size), per_user, replace=False)
        rows += [u] * per_user
        cols += list(items)
    X = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    X.sort_indices()
    return X


@pytest.mark.parametrize("gamma, biases, optimizer, sharing, aggregator, sampling", [
    (1.0, False, "adam", 16, "mean", "uniform"),
    (0.7, False, "adam", 16, "mean", "uniform"),
    (0.7, True, "adam", 16, "mean", "uniform"),
    (0.7, True, "dense_adam", 16, "mean", "uniform"),
    (0.7, "item", "adam", 16, "mean", "uniform"),
    (0.7, False, "adam", 1, "mean", "uniform"),
    (0.7, False, "dense_adam", 1, "mean", "uniform"),
    (0.7, False, "adam", 16, "user_attention", "uniform"),
    (0.7, True, "dense_adam", 1, "user_attention", "uniform"),
    (0.7, False, "adagrad", 16, "mean", "uniform"),
    (0.7, False, "adam", 16, "mean", "popularity")])
def test_learns_planted_groups_and_is_reproducible(gamma, biases, optimizer, sharing, aggregator,
                                                   sampling, tmp_path):
    from recsys.evaluation import evaluate
    from recsys.models import SimpleX

    X = planted()
    params = dict(factors=16, negatives=30, margin=0.5, negative_weight=5, gamma=gamma,
                  learning_rate=0.05, epochs=15, dropout=0.0, random_state=0, biases=biases,
                  optimizer=optimizer, negative_sharing=sharing, aggregator=aggregator,
                  sampling=sampling, num_threads=1,
                  # pinned: the constructor defaults this test was written against (today's
                  # small init learns these 15 epochs more slowly)
                  l2=1e-6, init_std=0.1, exclude_positives=False)
    model = SimpleX(**params).fit(X)
    losses = [h["loss"] for h in model.history_]
    assert losses[-1] < 0.8 * losses[0]
    ids, _ = model.recommend(np.arange(120), X, k=5)
    size = 30
    same_group = (ids // size) == (np.arange(120) % 3)[:, None]
    # recommends unseen items of the user's own group (chance: 1/3); item biases learn the
    # group-blind popularity of 1440 random draws and cost some of that (0.91 here)
    assert same_group.mean() > (0.85 if biases else 0.95)
    again = SimpleX(**params).fit(X)
    np.testing.assert_array_equal(again.item_factors_, model.item_factors_)  # 1 thread: exact
    np.testing.assert_array_equal(again.item_bias_, model.item_bias_)
    np.testing.assert_array_equal(again.attention_, model.attention_)
    untrained = SimpleX(**{**params, "epochs": 0}).fit(X)
    # A and b learn with user attention and keep their initial values with the mean
    assert (model.attention_ != untrained.attention_).any() == (aggregator == "user_attention")
    assert (model.item_bias_ != 0).any() == bool(biases)
    # the user and global biases train with biases=True only (and never enter the scores)
    np.testing.assert_array_equal(again.user_bias_, model.user_bias_)
    assert (model.user_bias_ != 0).any() == (model.global_bias_ != 0).any() == (biases is True)
    loaded = SimpleX.load(model.save(tmp_path / "simplex"))
    np.testing.assert_array_equal(loaded.recommend(np.arange(120), X, k=5)[0], ids)
    assert evaluate(model, X, X, k=5, exclude_seen=False)["hit_rate_at_5"] > 0.9


def test_attention_scoring_matches_a_per_user_reference():
    """Scoring pools each user's (capped) history with the softmax of the learned keys."""
    from recsys.models import SimpleX
    from recsys.models.simplex import capped_history

    X = planted()
    model = SimpleX(factors=8, negatives=20, margin=0.5, negative_weight=5, gamma=0.6,
                    aggregator="user_attention", max_history=7, learning_rate=0.05, epochs=3,
                    biases=False, random_state=1, num_threads=1).fit(X)
    users = np.array([5, 0, 77, 5])
    P, _ = model._factors(users, X)
    E, Q, W = (a.astype(np.float64) for a in (model.user_factors_, model.item_factors_,
                                              model.W_))
    keys = np.tanh(Q @ model.attention_.T + model.attention_bias_)
    spread = 0.0
    for r, u in enumerate(users):
        hist = capped_history(X[[u]], 7, [u]).indices
        logits = keys[hist] @ E[u]
        alpha = np.exp(logits - logits.max())
        alpha /= alpha.sum()
        spread = max(spread, alpha.max() - alpha.min())
        p = 0.6 * E[u] + 0.4 * W @ (alpha @ Q[hist])
        np.testing.assert_allclose(P[r], p / np.linalg.norm(p), atol=1e-5)
    assert spread > 1e-3  # the weights are not uniform


def test_attention_with_zero_keys_is_the_mean():
    """A = 0, b = 0: every key is 0, the softmax uniform, and the loss and gradients those
    of the mean aggregator."""
    rng = np.random.default_rng(2)
    n_items, d = 80, 4
    E = rng.normal(0, 1, (1, d)).astype(np.float32)
    Q = rng.normal(0, 1, (n_items, d)).astype(np.float32)
    W = (np.eye(d) + rng.normal(0, 0.3, (d, d))).astype(np.float32)
    cols = np.sort(rng.choice(n_items, 10, replace=False)).astype(np.int32)
    out = []
    for attention in (None, (np.zeros((d, d), np.float32), np.zeros(d, np.float32))):
        g = [np.zeros(d, np.float32), np.zeros_like(Q), np.zeros_like(W)]
        loss, _ = user_gradients(cols, 0, E, Q, W, 15, 0.5, 0.2, 2.0, 3, *g, 4,
                                 attention=attention, gA=np.zeros((d, d), np.float32),
                                 gba=np.zeros(d, np.float32))
        out.append((loss, g))
    assert out[1][0] == pytest.approx(out[0][0], rel=1e-6)
    for mean, attn in zip(out[0][1], out[1][1]):
        np.testing.assert_allclose(attn, mean, rtol=1e-4, atol=1e-6)


def test_early_stopping_keeps_the_best_epoch():
    from recsys.models import SimpleX

    X = planted(seed=1)
    held_out = planted(seed=2)
    held_out = held_out - held_out.multiply(X)  # unseen positives of the same groups
    held_out.eliminate_zeros()
    seen = []
    model = SimpleX(factors=16, negatives=30, margin=0.5, negative_weight=5, learning_rate=0.05,
                    epochs=40, dropout=0.0, random_state=0, num_threads=1).fit(
        X, validation=held_out, callback=lambda e, m: seen.append(e),
        early_stopping=EarlyStopping(metric="recall_at_10", patience=2),
        lr_schedule=ReduceOnPlateau(factor=1.0))
    scores = [h["recall_at_10"] for h in model.history_]
    assert seen == [h["epoch"] for h in model.history_]
    assert model.best_epoch_ == int(np.argmax(scores))
    assert len(scores) < 40 or scores[-1] == max(scores)  # stopped, or still improving
    assert all("elapsed" in h and "loss" in h for h in model.history_)


@pytest.mark.parametrize("decay_patience", [1, 2])
def test_learning_rate_decays_on_plateau(decay_patience):
    """Every ``decay_patience``-th evaluation in a row without improvement (but the last)
    divides the rate by 10."""
    from recsys.models import SimpleX

    X = planted(seed=1)
    held_out = planted(seed=2)
    held_out = held_out - held_out.multiply(X)
    held_out.eliminate_zeros()
    model = SimpleX(factors=16, negatives=30, margin=0.5, negative_weight=5, learning_rate=0.05,
                    epochs=40, dropout=0.0, random_state=0, num_threads=1).fit(
        X, validation=held_out,
        early_stopping=EarlyStopping(metric="recall_at_10", patience=3 * decay_patience),
        lr_schedule=ReduceOnPlateau(factor=0.1, patience=decay_patience,
                                    min_learning_rate=1e-6))
    history, best, waited = model.history_, -np.inf, 0
    for now, after in zip(history, history[1:]):
        waited = 0 if now["recall_at_10"] > best else waited + 1
        best = max(best, now["recall_at_10"])
        decays = waited > 0 and waited % decay_patience == 0
        expected = now["learning_rate"] * (0.1 if decays else 1)
        assert after["learning_rate"] == pytest.approx(max(expected, 1e-6))
    assert history[-1]["learning_rate"] < 0.05  # it did reach a plateau
    assert model.best_epoch_ == int(np.argmax([h["recall_at_10"] for h in history]))
    # schedule_: the rates of the epochs behind the best embeddings; a decay's return to the
    # best epoch drops the epochs after it
    path, best, best_path, waited = [], -np.inf, [], 0
    for h in history:
        path.append(h["learning_rate"])
        if h["recall_at_10"] > best:
            best, best_path, waited = h["recall_at_10"], list(path), 0
        else:
            waited += 1
            if waited % decay_patience == 0:
                path = list(best_path)
    assert model.schedule_ == best_path
    assert len(model.schedule_) <= model.best_epoch_ + 1


def test_lr_schedule_replays_the_rates():
    """The plain fit is its step schedule replayed, bit for bit (one thread), and a constant
    rule the constant schedule; a decaying one runs its rates epoch by epoch without
    validation decays or early stopping."""
    from recsys.models import SimpleX
    from recsys.models.simplex import step_rates

    X = planted(seed=1)
    kw = dict(factors=16, negatives=30, margin=0.5, negative_weight=5, dropout=0.0,
              random_state=0, num_threads=1)
    steps = [0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005]  # x0.1 after each third of 6
    assert step_rates(0.05, 6) == pytest.approx(steps, rel=1e-12)
    assert step_rates(1e-3, 30) == pytest.approx([1e-3] * 10 + [1e-4] * 10 + [1e-5] * 10,
                                                 rel=1e-12)
    assert step_rates(1.0, 1) == [1.0] and step_rates(1.0, 0) == []
    plain = SimpleX(learning_rate=0.05, epochs=6, **kw).fit(X)
    assert plain.schedule_ == step_rates(0.05, 6)
    replay = SimpleX(learning_rate=1.0, epochs=99, **kw).fit(X, lr_schedule=plain.schedule_)
    np.testing.assert_array_equal(replay.item_factors_, plain.item_factors_)
    np.testing.assert_array_equal(replay.user_factors_, plain.user_factors_)
    constant = SimpleX(learning_rate=0.05, epochs=6, **kw).fit(
        X, lr_schedule=ReduceOnPlateau(factor=1.0))
    replay = SimpleX(learning_rate=1.0, epochs=99, **kw).fit(X, lr_schedule=[0.05] * 6)
    np.testing.assert_array_equal(replay.item_factors_, constant.item_factors_)
    assert replay.schedule_ == constant.schedule_ == [0.05] * 6
    assert not np.array_equal(constant.item_factors_, plain.item_factors_)
    rates = [0.05] * 3 + [0.005] * 3 + [0.0005]
    held_out = planted(seed=2)
    held_out = held_out - held_out.multiply(X)
    held_out.eliminate_zeros()
    model = SimpleX(**kw).fit(X, validation=held_out, lr_schedule=rates,
                              early_stopping=EarlyStopping(patience=1))
    assert [h["learning_rate"] for h in model.history_] == rates
    assert model.schedule_ == rates[:model.best_epoch_ + 1]


def reference_adam(w, grads, steps, lr, b1=0.9, b2=0.999, eps=1e-8):
    """Adam over every step 1..steps (float64, torch's formula); ``grads`` maps a step to its
    gradient, every other step has a zero gradient."""
    w, m, v = w.astype(np.float64), np.zeros(len(w)), np.zeros(len(w))
    for t in range(1, steps + 1):
        g = grads.get(t, np.zeros(len(w)))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


@pytest.mark.parametrize("touches", [[1, 2, 3], [1, 5, 6, 40], [3, 250, 251, 900],
                                     [700, 701, 2000]])
def test_dense_adam_matches_adam_over_every_step(touches):
    """The lazy form of dense Adam (skipped steps applied at the next touch) equals Adam run
    step by step with zero gradients between the touches."""
    rng = np.random.default_rng(len(touches))
    w0 = rng.standard_normal(8).astype(np.float32)
    grads = {t: rng.standard_normal(8).astype(np.float32) for t in touches}
    w, m, v, t = w0.copy(), np.zeros(8, np.float32), np.zeros(8, np.float32), np.zeros(1, np.int32)
    for now in touches:
        adam_step(w, m, v, t, grads[now], 0.01, 0.0, now, True)
    expected = reference_adam(w0, grads, touches[-1], 0.01)
    np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(w - w0).max() > 0.01  # it moved
    lazy = w0.copy()  # lazy Adam ignores the gaps: the same as touches 1, 2, 3, ...
    m[:], v[:], t[:] = 0, 0, 0
    for now in touches:
        adam_step(lazy, m, v, t, grads[now], 0.01, 0.0, now, False)
    expected = reference_adam(w0, {i + 1: grads[n] for i, n in enumerate(touches)},
                              len(touches), 0.01)
    np.testing.assert_allclose(lazy, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gap", [1, 7, 300])
def test_dense_adam_charges_the_penalty_of_skipped_steps(gap):
    """Dense Adam with l2: a touch after ``gap`` mini-batches adds gap * l2 * w to the
    gradient (the whole-table penalty of every step since the last touch), lazy Adam l2 * w."""
    rng = np.random.default_rng(gap)
    w0, g1 = (rng.standard_normal(6).astype(np.float32) for _ in range(2))
    l2 = 0.05
    states = {}
    for name, penalty, dense in [("dense", l2, True), ("explicit", 0.0, True),
                                 ("lazy", l2, False)]:
        w, m, v, t = w0.copy(), np.zeros(6, np.float32), np.zeros(6, np.float32), np.zeros(
            1, np.int32)
        # first touch at clock 4 (no earlier step: plain l2) with a gradient that cancels
        # the penalty, so that no momentum carries over the gap; the next one gap steps later
        first = -l2 * w0 if penalty else np.zeros(6)
        adam_step(w, m, v, t, first.astype(np.float32), 0.01, penalty, 4, dense)
        np.testing.assert_array_equal(w, w0)
        second = g1 + (0.0 if penalty else gap * l2 * w0)
        adam_step(w, m, v, t, second.astype(np.float32), 0.01, penalty, 4 + gap, dense)
        states[name] = w
    np.testing.assert_allclose(states["dense"], states["explicit"], rtol=1e-6, atol=1e-7)
    if gap > 1:  # the longer the gap, the more the penalty pulls the row in
        assert np.linalg.norm(states["dense"]) < np.linalg.norm(states["lazy"])


def test_bad_parameters():
    from recsys.models import SimpleX

    X = planted()
    for kwargs, match in [({"gamma": 1.5}, "gamma"), ({"dropout": 1.0}, "dropout"),
                          ({"margin": 2.0}, "margin"), ({"sampling": "hard"}, "sampling"),
                          ({"optimizer": "sgd"}, "optimizer"), ({"negatives": 0}, "negatives"),
                          ({"max_history": 0}, "max_history"),
                          ({"negative_sharing": 0}, "negative_sharing"),
                          ({"batch_size": 0}, "batch_size"),
                          ({"aggregator": "max"}, "aggregator"),
                          ({"biases": "user"}, "biases")]:
        with pytest.raises(ValueError, match=match):
            SimpleX(**kwargs).fit(X)
    for bad in ([0.1, -1.0], [0.1, float("nan")], "fast", 0.1):
        with pytest.raises(ValueError, match="lr_schedule"):
            SimpleX(epochs=1).fit(X, lr_schedule=bad)
    for kwargs, match in [({"factor": 0.0}, "factor"), ({"patience": 0}, "patience"),
                          ({"min_learning_rate": -1.0}, "min_learning_rate")]:
        with pytest.raises(ValueError, match=match):
            ReduceOnPlateau(**kwargs)


@pytest.mark.parametrize("old, where", [("patience", "EarlyStopping"),
                                        ("metric", "EarlyStopping"),
                                        ("decay_patience", "ReduceOnPlateau"),
                                        ("lr_schedule", "lr_schedule"), ("order", "shuffled")])
def test_fit_time_parameters_moved_to_fit(old, where, tmp_path):
    """The constructor refuses them, naming where they went; a model file that holds them
    (written before the move) still loads, with a warning, and scores as it did."""
    import json

    from recsys.models import SimpleX

    with pytest.raises(TypeError, match=f"{old}.*moved to.*{where}"):
        SimpleX(**{old: 1})
    X = planted()
    model = SimpleX(factors=4, negatives=5, epochs=1, random_state=0, num_threads=1).fit(X)
    path = model.save(tmp_path / "m")
    with np.load(path, allow_pickle=False) as npz:  # the old file: the parameter in the meta
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays["__meta__"].tobytes().decode())
    meta["params"][old] = 2
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.warns(FutureWarning, match=f"{old}.*moved"):
        loaded = SimpleX.load(tmp_path / "old.npz")
    np.testing.assert_array_equal(loaded.recommend(np.arange(5), X, k=3)[0],
                                  model.recommend(np.arange(5), X, k=3)[0])


def test_order_must_be_a_permutation():
    from recsys._ext._simplex import train_epoch

    X = planted()
    E = np.zeros((X.shape[0], 4), np.float32) + 0.1
    Q = np.zeros((X.shape[1], 4), np.float32) + 0.1
    W = np.eye(4, dtype=np.float32)
    tables = {"user_factors": E, "item_factors": Q, "W": W}
    state = {name: (np.zeros_like(t), np.zeros_like(t), np.zeros(len(t) if t is not W else 1,
                                                                  np.int32))
             for name, t in tables.items()}
    config = {"negatives": 5, "margin": 0.5, "negative_weight": 1.0, "gamma": 1.0,
              "learning_rate": 0.01, "seed": 0}
    args = (X.indptr, X.indices, X.indptr, X.indices, tables, state, config)
    repeated = np.zeros(X.nnz, np.int32)
    for bad in (repeated, np.arange(X.nnz - 1, dtype=np.int32), np.arange(X.nnz),
                np.arange(X.nnz, dtype=np.int32) - 1):
        with pytest.raises(ValueError, match="permutation"):
            train_epoch(*args, bad)
    assert np.isfinite(train_epoch(*args, np.arange(X.nnz, dtype=np.int32)[::-1].copy()))


@pytest.mark.parametrize("history_rate", [1.0, 0.25])
def test_history_rate_scales_the_steps_of_w(history_rate):
    """One mini-batch, one lazy-Adam step: every entry of W with a gradient moves by exactly
    learning_rate x history_rate (Adam's first step is lr x g / |g|)."""
    from recsys.models import SimpleX

    X = planted()
    model = SimpleX(factors=8, negatives=20, margin=0.3, negative_weight=5, gamma=0.5,
                    learning_rate=0.01, history_rate=history_rate, l2=0.0, epochs=1,
                    batch_size=10**6, dropout=0.0, random_state=0, num_threads=1).fit(X)
    step = np.abs(model.W_ - np.eye(8))
    moved = step[step > 0]
    assert moved.size > 0.9 * step.size
    np.testing.assert_allclose(moved, 0.01 * history_rate, rtol=1e-3)


def test_official_configurations_are_named_presets():
    from recsys.models import SimpleX
    from recsys.tuning import PRESETS, SPACES
    from recsys.tuning.spaces import in_space

    model = SimpleX.preset("ml-1m", random_state=3)
    params = model.get_params()
    assert params["factors"] == 128 and params["negatives"] == 1500 and params["biases"] is True
    assert params["optimizer"] == "dense_adam" and params["random_state"] == 3
    assert SimpleX.preset("gowalla", epochs=2).get_params()["epochs"] == 2
    with pytest.raises(ValueError, match="known: \\['gowalla', 'ml-1m', 'ml-1m-fast'\\]"):
        SimpleX.preset("netflix")
    # the sweep tries them first: each preset's tuned parameters lie inside the search space
    for preset in SimpleX.PRESETS.values():
        inside = in_space(SPACES["SimpleX"], preset)
        assert len(inside) == len(set(preset) & set(SPACES["SimpleX"])) and inside in \
            PRESETS["SimpleX"]


@pytest.mark.parametrize("exclude", [False, True])
def test_shared_negatives_skip_each_users_own_positives(exclude):
    """A block of two users' positives shares its negatives; with ``exclude_positives`` a
    negative counts only for the users who do not have it. Every cosine is 1 (equal rows,
    a vanishing learning rate) and the margin is -1, so each counted pair adds 2 w / N: user 0
    has items {0, 1}, user 1 item {2}, so every draw counts for exactly one of the two (2 w per
    block of both); the block of user 0 alone redraws to item 2 (2 w)."""
    from recsys._ext._simplex import train_epoch

    X = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 1], [0, 1, 2])), shape=(2, 3))
    tables = {"user_factors": np.ones((2, 4), np.float32),
              "item_factors": np.ones((3, 4), np.float32), "W": np.eye(4, dtype=np.float32)}
    state = {name: (np.zeros_like(t), np.zeros_like(t),
                    np.zeros(len(t) if name != "W" else 1, np.int32))
             for name, t in tables.items()}
    w = 3.0
    config = {"negatives": 50, "margin": -1.0, "negative_weight": w, "gamma": 1.0,
              "learning_rate": 1e-30, "seed": 7, "negative_sharing": 2, "batch_size": 10,
              "exclude_positives": exclude}
    # positions 1 (user 0, item 1) and 2 (user 1, item 2) form the first block
    loss = train_epoch(X.indptr, X.indices, X.indptr, X.indices, tables, state, config,
                       np.array([1, 2, 0], np.int32))
    assert loss == pytest.approx((2 * w + 2 * w) / 3 if exclude else (4 * w + 2 * w) / 3,
                                 rel=1e-5)


def test_kernel_build_follows_the_cpu(monkeypatch):
    """recsys._ext.kernel picks the AVX2 build where the CPU has AVX2 and FMA (and it was
    built: x86-64 with GCC or clang), the baseline build otherwise or under
    RECSYS_SIMD=baseline."""
    import platform

    from recsys._ext import _cpu, _simplex, kernel

    monkeypatch.delenv("RECSYS_SIMD", raising=False)
    wide = _cpu.avx2_fma() and platform.machine().lower() in ("x86_64", "amd64")
    assert kernel("_simplex").__name__ == ("recsys._ext._simplex_avx2" if wide else
                                           "recsys._ext._simplex")
    monkeypatch.setenv("RECSYS_SIMD", "baseline")
    assert kernel("_simplex") is _simplex


def test_avx2_build_trains_as_the_baseline(monkeypatch):
    """The two builds of the kernel differ only in rounding (FMA contractions, wider sums):
    one fit of each from the same seed ends at the same factors within one float32 rounding
    of the factors' magnitude per step taken."""
    from recsys._ext import _cpu
    from recsys.models import SimpleX

    if not _cpu.avx2_fma():
        pytest.skip("this CPU has no AVX2/FMA: only the baseline build runs here")
    monkeypatch.delenv("RECSYS_SIMD", raising=False)
    X = planted()
    params = dict(factors=8, negatives=20, margin=0.3, negative_weight=5, gamma=0.5,
                  learning_rate=0.01, epochs=3, batch_size=16, negative_sharing=4,
                  random_state=0, num_threads=1)
    wide = SimpleX(**params).fit(X)
    monkeypatch.setenv("RECSYS_SIMD", "baseline")
    base = SimpleX(**params).fit(X)
    steps = params["epochs"] * -(-X.nnz // params["batch_size"])
    for name in ("user_factors_", "item_factors_", "W_"):
        a, b = getattr(wide, name), getattr(base, name)
        assert not np.array_equal(a, np.zeros_like(a))
        eps = np.finfo(np.float32).eps
        np.testing.assert_allclose(a, b, rtol=0, atol=steps * eps * np.abs(b).max())
