"""The everyday model API on every registered model: fold-in of new users, block-lists,
similar items and users (issue 21). Generated from the registry, so no model is left out."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import product_tolerance
from test_robustness import ALL, FAST

from recsys.models import ALS, BPR, EASE, NBMF, AltMin, MaskedNMF, MostPopular, Recommender, SimpleX
from recsys.models.base import _REGISTRY

STATEFUL = [name for name in ALL if _REGISTRY[name].uses_user_state]


def groups(n_users: int = 60, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """Two taste groups: even users rate even items (values 3-5), odd users odd items; each
    user rates 60% of their group's items."""
    rng = np.random.default_rng(seed)
    u, i = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    liked = ((u + i) % 2 == 0) & (rng.random((n_users, n_items)) < 0.6)
    values = rng.integers(3, 6, (n_users, n_items)) * liked
    return sp.csr_matrix(values.astype(np.float32))


def rating_groups(n_users: int = 60, n_items: int = 30, seed: int = 0) -> sp.csr_matrix:
    """The same groups as explicit ratings: each user rates 60% of all items, 4-5 for items
    of their group and 1-2 for the others (what rating models are fitted on)."""
    rng = np.random.default_rng(seed)
    u, i = np.meshgrid(np.arange(n_users), np.arange(n_items), indexing="ij")
    rated = rng.random((n_users, n_items)) < 0.6
    values = np.where((u + i) % 2 == 0, rng.integers(4, 6, u.shape), rng.integers(1, 3, u.shape))
    return sp.csr_matrix((values * rated).astype(np.float32))


def data_for(name: str) -> sp.csr_matrix:
    return rating_groups() if _REGISTRY[name].rating_model else groups()


GOOD = {  # configurations that learn the two groups
    "ItemKNN": lambda: FAST["ItemKNN"](),
    "EASE": lambda: FAST["EASE"](),
    "MostPopular": lambda: FAST["MostPopular"](),
    "ALS": lambda: ALS(factors=4, epochs=15, l2=0.1, random_state=0,
                       num_threads=1),
    "BPR": lambda: BPR(factors=4, epochs=200, learning_rate=0.05, random_state=0,
                       num_threads=1),
    "AltMin": lambda: AltMin(factors=2, epochs=10, l2=0.1, random_state=0, num_threads=1),
    "MaskedNMF": lambda: MaskedNMF(factors=2, epochs=30, l2=0.1, random_state=0,
                                   num_threads=1, biases=False),
    "NBMF": lambda: NBMF(factors=4, epochs=10, random_state=0, num_threads=1),
    "SimpleX": lambda: SimpleX(factors=8, negatives=10, epochs=15, learning_rate=0.05,
                               dropout=0.0, random_state=0, num_threads=1, init_std=0.1),
}


def test_every_model_has_a_configuration():
    assert set(GOOD) == set(_REGISTRY)


@pytest.mark.parametrize("name", ALL)
def test_new_users_are_folded_in_from_their_rows(name):
    """Fit without the last 10 users; rows beyond the fitted users are scored from their
    history and get items of their own group."""
    X = data_for(name)
    n_fit = X.shape[0] - 10
    model = GOOD[name]().fit(X[:n_fit])
    new = np.arange(n_fit, X.shape[0])
    ids, scores = model.recommend(new, X, k=3)
    assert np.isfinite(scores).all()
    for row, u in enumerate(new):
        assert not set(ids[row]) & set(X[u].indices)
        if name != "MostPopular":
            assert ((ids[row] + u) % 2 == 0).mean() >= 2 / 3, (name, u, ids[row])
    fitted_ids, _ = model.recommend(np.arange(5), X, k=3)  # fitted users as before
    np.testing.assert_array_equal(fitted_ids, model.recommend(np.arange(5), X[:n_fit], k=3)[0])
    if model.uses_user_state:
        with pytest.raises(ValueError, match="not X\\[users\\]"):
            model.recommend(np.arange(2), X[:2], k=3)
    else:
        with pytest.raises(NotImplementedError, match="no per-user state"):
            model.fold_in(X[new])


def _als_reference(model, rows: sp.csr_matrix) -> np.ndarray:
    """Hu et al.'s user step in dense NumPy (implicit's confidence c = alpha r)."""
    Y = model.item_factors_.astype(np.float64)
    out = []
    for u in range(rows.shape[0]):
        c = np.zeros(len(Y))
        c[rows[u].indices] = model.alpha_ * rows[u].data
        A = Y.T @ (Y * np.maximum(c, 1.0)[:, None]) + model.l2 * np.eye(Y.shape[1])
        b = Y.T @ c
        out.append(np.linalg.solve(A, b))
    return np.array(out)


def test_als_fold_in_is_the_exact_least_squares_solve():
    X = groups()
    model = ALS(factors=5, epochs=5, alpha=2.0, l2=0.3, random_state=0,
                num_threads=1).fit(X[:50])
    got = model.fold_in(X[50:])
    want = _als_reference(model, X[50:])
    # float32 solve of a 5 x 5 system: relative error ~ cond(A) eps32
    A = model.item_factors_.astype(np.float64)
    cond = np.linalg.cond(A.T @ A + 0.3 * np.eye(5))
    np.testing.assert_allclose(got, want, atol=50 * cond * np.finfo(np.float32).eps
                               * np.abs(want).max())


def test_als_fold_in_of_a_fitted_row_reproduces_its_vector_at_convergence():
    """ALS ends on an item step: the users' vectors solve against the previous item factors.
    At convergence both are the same fixed point; the tolerance is the users' last move."""
    X = groups()
    moves = []
    previous = {}

    def track(it, m):
        if "U" in previous:
            moves.append(np.abs(m.user_factors_ - previous["U"]).max())
        previous["U"] = m.user_factors_.copy()

    model = ALS(factors=4, epochs=150, l2=1.0, solver="cholesky", random_state=0,
                num_threads=1).fit(X, callback=track)
    scale = np.abs(model.user_factors_).max()
    assert moves[-1] < 1e-3 * scale  # converged
    diff = np.abs(model.fold_in(X) - model.user_factors_).max()
    assert diff <= 5 * moves[-1] + 1e-5 * scale


def test_masked_nmf_fold_in_of_a_fitted_row_reproduces_its_vector_at_convergence():
    X = groups()
    model = MaskedNMF(factors=3, epochs=400, l2=0.2, random_state=0,
                      num_threads=1).fit(X)
    loss = model.loss_
    assert (loss[-2] - loss[-1]) <= 1e-9 * loss[-1]  # the fit has converged
    W, b = model.fold_in(X)
    scale = np.abs(model.user_factors_).max()
    np.testing.assert_allclose(W, model.user_factors_, atol=1e-3 * scale)
    np.testing.assert_allclose(b, model.user_bias_, atol=1e-3 * scale)


def test_nbmf_fold_in_is_the_nonnegative_least_squares_of_the_row():
    from scipy.optimize import nnls

    X = groups()
    model = NBMF(factors=4, epochs=5, l2=0.3, random_state=0, num_threads=1).fit(X[:50])
    H = model.item_factors_  # items x k, binary
    got = model.fold_in(X[50:])
    for r in range(10):
        row = X[50 + r]
        alpha = 0.3 * row.nnz ** model.frequency_scaling
        design = np.vstack([H[row.indices], np.sqrt(alpha) * np.eye(4)])
        target = np.r_[row.data, np.zeros(4)]
        np.testing.assert_allclose(got[r], nnls(design, target)[0], atol=1e-5)


def test_bpr_fold_in_maximises_its_objective_on_the_drawn_pairs():
    from scipy.optimize import minimize

    from recsys.models.implicit_mf import _sample_pairs

    X = groups()
    model = BPR(factors=4, epochs=50, random_state=0, num_threads=1).fit(X[:50])
    got = model.fold_in(X[50:])
    assert (got[:, -1] == 1).all()
    Y, bias = model.item_factors_[:, :-1].astype(np.float64), model.item_factors_[:, -1]
    pos, neg, valid = _sample_pairs(X[50:], 256, np.random.default_rng([0, 0]))

    def objective(x, r):  # the documented objective, negated
        m = (Y[pos[r]] - Y[neg[r]]) @ x + bias[pos[r]] - bias[neg[r]]
        return np.logaddexp(0, -m).mean() + model.l2 * x @ x

    for r in range(10):
        best = minimize(objective, np.zeros(4), args=(r,), method="BFGS").fun
        assert objective(got[r, :-1].astype(np.float64), r) <= best + 1e-6 * abs(best)
        assert objective(got[r, :-1].astype(np.float64), r) < objective(np.zeros(4), r)


def test_simplex_fold_in_lowers_the_users_loss():
    X = groups()
    model = GOOD["SimpleX"]().fit(X[:50])
    rows = X[50:]
    Qn = model.item_factors_ / np.linalg.norm(model.item_factors_, axis=1, keepdims=True)

    assert model.biases is True and model.exclude_positives  # the defaults
    shift = model.item_bias_ + model.global_bias_[0]  # scores as in training

    def loss(E):  # the documented L_u: negatives over each user's non-positives
        branch = model._history_vectors(rows, 50 + np.arange(10), np.zeros((10, 8)))
        P = model.gamma * E + (1 - model.gamma) * branch
        s = (P / np.linalg.norm(P, axis=1, keepdims=True)) @ Qn.T + shift
        pos = rows.toarray() > 0
        neg = np.ma.masked_array(np.maximum(s - model.margin, 0), pos).mean(axis=1)
        return ((1 - s) * pos).sum() + (pos.sum(axis=1) * neg * model.negative_weight_).sum()

    start = model.fold_in(rows, steps=0)
    assert loss(model.fold_in(rows)) < loss(start)


@pytest.mark.parametrize("name", ALL)
def test_block_lists_global_and_per_user(name):
    X = data_for(name)
    model = GOOD[name]().fit(X)
    users = np.arange(8)
    banned = np.array([0, 1, 2, 3])
    ids, _ = model.recommend(users, X, k=5, filter_items=banned)
    assert not set(ids.ravel()) & set(banned.tolist())
    assert (ids >= 0).all()  # exactly k: enough candidates remain
    per_user = sp.csr_matrix((np.ones(8), (np.arange(8), np.arange(8) + 10)), shape=X.shape)
    ids, _ = model.recommend(users, X, k=5, filter_items=per_user, items=np.arange(8, 30))
    for u in users:
        assert u + 10 not in ids[u] and set(ids[u]) <= set(range(8, 30))
        assert not set(ids[u]) & set(X[u].indices)
    plain = model.recommend(users, X, k=30)[0]
    for u in users:  # the block-list only removes: the rest keeps the unfiltered order
        kept = [i for i in plain[u] if i >= 0 and i not in banned]
        got = model.recommend(u, X, k=len(kept), filter_items=banned)[0]
        assert set(got) == set(kept)
    with pytest.raises(ValueError, match="every candidate"):
        model.recommend(0, X, k=2, filter_items=np.arange(30))
    with pytest.raises(ValueError, match="duplicates"):
        model.recommend(0, X, filter_items=np.array([1, 1]))


@pytest.mark.parametrize("name", ALL)
def test_similar_items_match_a_brute_force_reference(name):
    X = data_for(name)
    model = GOOD[name]().fit(X)
    items = np.array([0, 1, 7])
    if name == "MostPopular":
        with pytest.raises(NotImplementedError, match="popularity"):
            model.similar_items(items)
        return
    ids, scores = model.similar_items(items, k=4, filter_items=np.array([2]))
    if model._is_item_model():
        ref = model._item_rows(items).astype(np.float64)
        tol = 1e-6 * np.abs(ref).max()
    else:
        V = model._item_vectors().astype(np.float64)
        Vn = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
        ref = Vn[items] @ Vn.T
        tol = product_tolerance(Vn[items].astype(np.float32), Vn.astype(np.float32)).max()
    for r, i in enumerate(items):
        assert i not in ids[r] and 2 not in ids[r]
        np.testing.assert_allclose(scores[r], ref[r, ids[r]], atol=tol + 1e-6)
        rest = np.setdiff1d(np.arange(X.shape[1]), np.r_[ids[r], i, 2])
        assert scores[r].min() >= ref[r, rest].max() - 2 * tol - 1e-6
    # the model groups items as the data does: an item's nearest neighbour shares its parity
    top = model.similar_items(np.arange(10), k=1)[0][:, 0]
    assert ((top - np.arange(10)) % 2 == 0).mean() >= 0.8, top


@pytest.mark.parametrize("name", ALL)
def test_similar_users_find_the_same_group(name):
    X = data_for(name)
    model = GOOD[name]().fit(X[:50])
    users = np.array([0, 1, 52, 55])  # two fitted users, two new ones (folded in)
    ids, scores = model.similar_users(users, X, k=3, filter_users=np.array([4]))
    for r, u in enumerate(users):
        assert u not in ids[r] and 4 not in ids[r]
        assert np.all(np.diff(scores[r]) <= 0)
        assert ((ids[r] - u) % 2 == 0).mean() >= 2 / 3, (name, u, ids[r])


EXPLAINED = {"EASE", "ItemKNN", "ALS", "AltMin", "SimpleX"}


@pytest.mark.parametrize("name", ALL)
def test_explanations_sum_to_the_score(name):
    X = data_for(name)
    n_fit = X.shape[0] - 5
    model = GOOD[name]().fit(X[:n_fit])
    if name not in EXPLAINED:
        with pytest.raises(NotImplementedError, match="not|nothing|no exact"):
            model.explain(0, 1, X)
        return
    for user in (0, 3, n_fit + 1):  # fitted users and a new one
        scores = model.score(user, X)
        for item in (1, 4, 9):
            why = model.explain(user, item, X)
            assert set(why.items.tolist()) <= set(X[user].indices.tolist())
            assert np.all(np.diff(why.contributions) <= 0)
            assert why.score == pytest.approx(why.base + why.contributions.sum(), abs=1e-12)
            # history models score the row itself; factor models the fold-in of that history
            # (= the fitted vector at convergence; a new user's vector is the fold-in)
            if not model.uses_user_state or user >= n_fit:
                assert why.score == pytest.approx(float(scores[item]),
                                                  abs=1e-4 * max(1.0, float(abs(scores).max())))


def test_ease_explanation_is_the_row_times_the_column():
    X = groups()
    model = GOOD["EASE"]().fit(X)
    why = model.explain(2, 5, X)
    row = X[2]
    expected = dict(zip(row.indices.tolist(), (row.data * model.B_[row.indices, 5]).tolist()))
    assert dict(zip(why.items.tolist(), why.contributions.tolist())) == pytest.approx(expected)


# -- partial_fit ------------------------------------------------------------------------------
def grown(seed: int = 3):
    """(before, after, changed): 6 fitted users change, 4 users and 3 items are new."""
    rng = np.random.default_rng(seed)
    after = (rng.random((64, 33)) < 0.3).astype(np.float32)
    after[np.arange(64), rng.integers(0, 30, 64)] = 1
    before = after[:60, :30].copy()
    changed = np.array([1, 7, 12, 30, 41, 59])
    before[changed] = (rng.random((6, 30)) < 0.3)
    return sp.csr_matrix(before), sp.csr_matrix(after), changed


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-9), ("float32", 1e-3)])
def test_ease_partial_fit_equals_a_refit(dtype, rtol):
    before, after, changed = grown()
    model = EASE(l2=5.0, dtype=dtype).fit(before)
    model.partial_fit(after, users=changed, previous=before)
    refit = EASE(l2=5.0, dtype=dtype).fit(after)
    assert model.B_.shape == (33, 33) and (model.n_users_, model.n_items_) == (64, 33)
    scale = np.abs(refit.B_).max()
    np.testing.assert_allclose(model.B_, refit.B_, atol=rtol * scale)
    np.testing.assert_allclose(model.inverse_diagonal_, refit.inverse_diagonal_,
                               rtol=10 * rtol)
    with pytest.raises(ValueError, match="previous="):
        EASE(l2=5.0).fit(before).partial_fit(after, users=changed)


def test_partial_fit_is_refused_with_a_reason_where_it_is_not_built():
    before, after, changed = grown()
    with pytest.raises(NotImplementedError, match="sparse"):
        EASE(l2=5.0, max_items_dense=0, neighbors=5).fit(before).partial_fit(after)
    with pytest.raises(ValueError, match="only adds"):
        EASE(l2=5.0).fit(after).partial_fit(before)


def test_als_partial_fit_re_solves_the_touched_rows():
    before, after, changed = grown()
    model = ALS(factors=4, epochs=8, l2=0.5, solver="cholesky", random_state=0,
                num_threads=1).fit(before)
    untouched = np.setdiff1d(np.arange(60), changed)
    kept = model.user_factors_[untouched].copy()
    model.partial_fit(after, users=changed)
    assert model.user_factors_.shape == (64, 4) and model.item_factors_.shape == (33, 4)
    np.testing.assert_array_equal(model.user_factors_[untouched], kept)
    touched = np.r_[changed, np.arange(60, 64)]
    want = _als_reference(model, after[touched])  # exact against the final item factors
    scale = np.abs(want).max()
    np.testing.assert_allclose(model.user_factors_[touched], want, atol=1e-4 * scale)
    assert np.abs(model.item_factors_[30:]).sum() > 0  # the new items learned factors
    ids, _ = model.recommend(np.arange(64), after, k=5)
    assert ((ids >= 0) & (ids < 33)).all()


def test_mostpopular_partial_fit_is_a_recount():
    before, after, changed = grown()
    model = MostPopular().fit(before).partial_fit(after, users=changed)
    np.testing.assert_array_equal(model.item_popularity_, MostPopular().fit(after)
                                  .item_popularity_)


@pytest.mark.parametrize("name", ["AltMin", "MaskedNMF", "NBMF"])
def test_rating_models_partial_fit_re_solves_the_touched_rows(name):
    before, after, changed = grown()
    rng = np.random.default_rng(4)
    after.data[:] = rng.integers(1, 6, after.nnz)
    before = before.tocsr()
    before.data[:] = rng.integers(1, 6, before.nnz)
    before[np.setdiff1d(np.arange(60), changed)] = after[np.setdiff1d(np.arange(60), changed)][
        :, :30]
    before = sp.csr_matrix(before)
    model = GOOD[name]().fit(before)
    untouched = np.setdiff1d(np.arange(60), changed)
    kept = model.user_factors_[untouched].copy()
    model.partial_fit(after, users=changed)
    assert model.user_factors_.shape[0] == 64 and model.item_factors_.shape[0] == 33
    np.testing.assert_array_equal(model.user_factors_[untouched], kept)
    touched = np.r_[changed, np.arange(60, 64)]
    folded = model.fold_in(after[touched])  # the exact user step against the final items
    folded = folded[0] if isinstance(folded, tuple) else folded
    np.testing.assert_allclose(model.user_factors_[touched], folded, atol=1e-6)
    pred = model.predict(np.arange(64), np.full(64, 31), after)
    assert np.isfinite(pred).all()


@pytest.mark.parametrize("name", ALL)
def test_partial_fit_grows_every_model_or_says_why(name, tmp_path):
    before, after, changed = grown()
    model = GOOD[name]().fit(before)
    try:
        model.partial_fit(after, users=changed, previous=before)
    except NotImplementedError as exc:
        assert "refit" in str(exc)
        return
    assert (model.n_users_, model.n_items_) == after.shape
    ids, scores = model.recommend(np.arange(64), after, k=5)
    assert ((ids >= 0) & (ids < 33)).all() and np.isfinite(scores).all()
    for u in range(64):
        assert not set(ids[u]) & set(after[u].indices)
    loaded = Recommender.load(model.save(tmp_path / "updated.npz"))
    np.testing.assert_array_equal(loaded.recommend(np.arange(64), after, k=5)[0], ids)
