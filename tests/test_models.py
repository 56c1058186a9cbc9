"""One behavioural suite run against every model (plus model-specific checks)."""

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import assert_topk_close, reference_scores

from recsys.models import (
    ALS,
    BPR,
    EASE,
    NBMF,
    AltMin,
    ItemKNN,
    MaskedNMF,
    MostPopular,
    NotFittedError,
    Recommender,
    SimpleX,
)


def checkerboard(n: int = 50) -> sp.csr_matrix:
    """Even users like even items, odd users odd items; the diagonal is withheld."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    liked = ((i + j) % 2 == 0) & (i != j)
    return sp.csr_matrix(liked.astype(np.float32))


def checkerboard_ratings(n: int = 50) -> sp.csr_matrix:
    """The checkerboard as ratings for rating models: liked items rated 5, half of the other
    items rated 1 (so that "unrated" is not all alike), the diagonal withheld."""
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    liked = ((i + j) % 2 == 0) & (i != j)
    disliked = ((i + j) % 2 == 1) & ((i * 7 + j * 3) % 4 < 2)
    return sp.csr_matrix((5.0 * liked + 1.0 * disliked).astype(np.float32))


MODELS = {
    "MostPopular": lambda: MostPopular(),
    "ItemKNN": lambda: ItemKNN(neighbors=30),
    "ALS": lambda: ALS(factors=8, epochs=10, l2=0.01, random_state=0,
                       num_threads=1),
    "EASE": lambda: EASE(l2=10.0),
    "EASE-sparse": lambda: EASE(l2=10.0, max_items_dense=0, neighbors=20),
    "BPR": lambda: BPR(factors=8, epochs=200, learning_rate=0.05, random_state=0,
                       num_threads=1),
    "AltMin": lambda: AltMin(factors=2, epochs=10, l2=0.1, random_state=0, num_threads=1),
    "MaskedNMF": lambda: MaskedNMF(factors=2, epochs=30, l2=0.1, random_state=0,
                                   num_threads=1),
    "NBMF": lambda: NBMF(factors=4, epochs=10, random_state=0, num_threads=1),
    # 40 epochs: at 1,200 positives an epoch is two mini-batches, and without validation
    # the rate drops after each third of the epochs
    "SimpleX": lambda: SimpleX(factors=8, negatives=20, epochs=40, learning_rate=0.05,
                               dropout=0.0, random_state=0, num_threads=1),
}


def test_the_suite_covers_every_registered_model():
    from recsys.models.base import _REGISTRY

    assert {type(make()).__name__ for make in MODELS.values()} == set(_REGISTRY)


@pytest.fixture(params=list(MODELS))
def fitted(request):
    model = MODELS[request.param]()
    X = checkerboard_ratings() if model.rating_model else checkerboard()
    return model.fit(X), X


def test_learns_planted_structure(fitted):
    model, X = fitted
    users = np.arange(X.shape[0])
    ids, _ = model.recommend(users, X, k=1)
    if isinstance(model, MostPopular):
        # every item has the same count (24 users): ties go to the lowest unseen index
        first_unseen = [np.flatnonzero(X[u].toarray()[0] == 0)[0] for u in users]
        assert (ids[:, 0] == first_unseen).all()
    else:
        assert (ids[:, 0] == users).all(), "the withheld diagonal item should come first"


def test_batch_and_single_recommend_agree(fitted):
    model, X = fitted
    users = np.arange(10)
    ids, scores = model.recommend(users, X, k=5)
    exact, tol = reference_scores(model, users, X)
    assert_topk_close(ids, scores, exact, tol, X[users])
    for u in users:  # one user at a time: a GEMV instead of a GEMM, other rounding
        one_ids, one_scores = model.recommend(u, X, k=5)
        assert_topk_close(one_ids, one_scores, exact[u], tol[u], X[[u]])
        same = one_ids == ids[u]
        assert (np.abs(one_scores - scores[u]) <= 2 * tol[u, one_ids])[same].all()


def test_seen_items_never_returned(fitted):
    model, X = fitted
    ids, scores = model.recommend(np.arange(X.shape[0]), X, k=X.shape[1])
    for u in range(X.shape[0]):
        seen = set(X.indices[X.indptr[u]:X.indptr[u + 1]])
        returned = ids[u][ids[u] >= 0]
        assert not seen & set(returned.tolist())
        assert returned.size == X.shape[1] - len(seen)  # every unseen item ranked once
        assert np.isneginf(scores[u][ids[u] < 0]).all()
    all_ids, _ = model.recommend(0, X, k=X.shape[1], exclude_seen=False)
    assert sorted(all_ids.tolist()) == list(range(X.shape[1]))


def test_recommend_is_the_top_of_score(fitted):
    model, X = fitted
    users = np.arange(0, 50, 7)
    exact, tol = reference_scores(model, users, X)
    scores = model.score(users, X)
    assert (np.abs(scores - exact) <= tol).all()
    ids, values = model.recommend(users, X, k=6)
    assert_topk_close(ids, values, exact, tol, X[users])


def test_items_restriction(fitted):
    model, X = fitted
    items = np.array([40, 3, 17, 8, 22, 5])
    ids, values = model.recommend(np.arange(6), X, k=3, items=items)
    full = model.score(np.arange(6), X)
    for u in range(6):
        allowed = [i for i in items if X[u, i] == 0]
        assert set(ids[u][ids[u] >= 0]) <= set(allowed)
        best = sorted(allowed, key=lambda i: (-full[u, i], i))[:3]
        assert sorted(ids[u][ids[u] >= 0].tolist()) == sorted(best) or \
            np.allclose(sorted(full[u, ids[u][ids[u] >= 0]]), sorted(full[u, best]))
    with pytest.raises(ValueError, match="duplicates"):
        model.recommend(0, X, items=np.array([1, 1]))
    with pytest.raises(ValueError, match="items must lie"):
        model.recommend(0, X, items=np.array([50]))


def test_save_load_round_trip(fitted, tmp_path):
    model, X = fitted
    path = model.save(tmp_path / "model")
    assert path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as npz:  # loadable without pickle
        assert "__meta__" in npz.files
    loaded = Recommender.load(path)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.score(np.arange(50), X), model.score(np.arange(50), X))
    np.testing.assert_array_equal(loaded.recommend(np.arange(50), X)[0],
                                  model.recommend(np.arange(50), X)[0])
    assert type(type(model).load(path)) is type(model)
    other = MostPopular if not isinstance(model, MostPopular) else ItemKNN
    with pytest.raises(TypeError, match="not a"):
        other.load(path)
    assert not list(tmp_path.glob("*.tmp"))


def test_params_round_trip(fitted):
    model, _ = fitted
    params = model.get_params()
    clone = type(model)(**params)
    assert clone.get_params() == params
    first = next(iter(params))
    assert clone.set_params(**{first: params[first]}) is clone
    with pytest.raises(ValueError, match="no parameter"):
        clone.set_params(not_a_param=1)


def test_bad_input(fitted):
    model, X = fitted
    fresh = type(model)(**model.get_params())
    with pytest.raises(NotFittedError, match="not fitted"):
        fresh.recommend(0, X)
    with pytest.raises(ValueError, match="empty"):
        fresh.fit(sp.csr_matrix((5, 5), dtype=np.float32))
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fresh.fit(bad)
    with pytest.raises(ValueError, match="item columns"):
        model.recommend(0, X[:, :10])
    with pytest.raises(ValueError, match=r"X\[users\]|rows"):
        model.recommend(np.array([60]), X)
    with pytest.raises(ValueError, match="negative"):
        model.recommend(np.array([-1]), X)
    with pytest.raises(TypeError, match="integer"):
        model.recommend(np.array([0.5]), X)
    with pytest.raises(ValueError, match="k must be positive"):
        model.recommend(0, X, k=0)
    with pytest.raises(TypeError, match="CSR"):
        fresh.fit([[1, 2], [3, 4]])
    with pytest.warns(UserWarning, match="COO"):
        fresh.fit(X.tocoo())


def test_sliced_history_is_detected_or_folded_in(fitted):
    model, X = fitted
    users = np.array([4, 9])
    if model.uses_user_state:
        with pytest.raises(ValueError, match=r"not X\[users\]"):
            model.recommend(np.arange(2), X[users], k=3)
    else:  # history-only models score any rows: new users fold in
        sliced = model.recommend(np.arange(2), X[users], k=3)[0]
        np.testing.assert_array_equal(sliced, model.recommend(users, X, k=3)[0])


@pytest.mark.parametrize("name", ["ALS", "BPR"])
def test_same_seed_same_model(name):
    X = checkerboard()
    a, b = MODELS[name]().fit(X), MODELS[name]().fit(X)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    c = MODELS[name]().set_params(random_state=1).fit(X)
    assert not np.array_equal(a.item_factors_, c.item_factors_)


def test_itemknn_matches_dense_cosine():
    X = checkerboard(12)
    X = X.multiply(np.arange(1, 13, dtype=np.float32)[None, :]).tocsr()
    model = ItemKNN(neighbors=3, shrink=0.5, block_size=5).fit(X)
    D = X.toarray().astype(np.float64)
    norms = np.linalg.norm(D, axis=0)
    S = D.T @ D / (np.outer(norms, norms) + 0.5)
    np.fill_diagonal(S, -np.inf)
    expected = np.zeros_like(S)
    for i in range(12):
        keep = np.argsort(-S[i], kind="stable")[:3]
        keep = keep[S[i, keep] > 0]
        expected[i, keep] = S[i, keep]
    np.testing.assert_allclose(model.similarity_.toarray(), expected, rtol=1e-5)
    np.testing.assert_allclose(model.score(np.arange(12), X), D @ expected, rtol=1e-4)


def test_mostpopular_weighting():
    X = sp.csr_matrix(np.array([[5, 0, 1], [1, 0, 1]], dtype=np.float32))
    assert MostPopular().fit(X).item_popularity_.tolist() == [2, 0, 2]
    assert MostPopular(weighting="sum").fit(X).item_popularity_.tolist() == [6, 0, 2]
    with pytest.raises(ValueError, match="weighting"):
        MostPopular(weighting="mean").fit(X)


def test_negative_values_rejected_where_needed():
    X = sp.csr_matrix(np.array([[1, -1], [1, 1]], dtype=np.float32))
    with pytest.raises(ValueError, match="negative"):
        ALS(factors=2, epochs=1).fit(X)


@pytest.mark.parametrize("make", [lambda: ALS(factors=8, epochs=4, random_state=0,
                                              num_threads=1),
                                  lambda: BPR(factors=8, epochs=4, random_state=0,
                                              num_threads=1)])
def test_implicit_models_call_back_after_every_epoch(make):
    X = checkerboard()
    seen = []
    model = make().fit(X, callback=lambda it, m: seen.append((it, m.item_factors_.copy())))
    assert [it for it, _ in seen] == [0, 1, 2, 3]
    np.testing.assert_array_equal(seen[-1][1], model.item_factors_)  # the final state
    assert not np.array_equal(seen[0][1], seen[-1][1])
    plain = make().fit(X)  # the callback does not change the training
    np.testing.assert_array_equal(plain.item_factors_, model.item_factors_)
