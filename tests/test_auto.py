"""Data-aware defaults (recsys.models.auto): the rules against their formulas, scale
invariance, and what a fitted model records and a model file keeps."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.data.negatives import NEGATIVE_VALUE
from recsys.models import ALS, BPR, EASE, NBMF, AltMin, ItemKNN, MaskedNMF, SimpleX
from recsys.models.auto import (
    ALPHA_SCALE,
    BPR_MAX_RATE,
    BPR_RATE_SCALE,
    EASE_L2_SCALE,
    MAX_NEIGHBOURS,
    NEIGHBOURS_SCALE,
    SIMPLEX_L2_SCALE,
    SIMPLEX_MIN_WEIGHT,
    SIMPLEX_ROW_L2,
    SIMPLEX_WEIGHT_SCALE,
    confidence_slope,
    contrastive_weight,
    gram_ridge,
    level_ridge,
    neighbour_count,
    ridge,
    sgd_rate,
    table_ridge,
)
from recsys.models.base import Recommender


def ratings(scale: float = 1.0, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(60, 40, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    X.data = (scale * rng.integers(1, 6, X.nnz)).astype(np.float32)
    return X


def test_ridge_follows_the_spread_or_the_size_of_the_values():
    X = ratings()
    v = X.data.astype(np.float64)
    assert ridge("auto", X, 0.7) == pytest.approx(0.7 * v.std())
    assert ridge("auto", X, 0.7, centred=False) == pytest.approx(0.7 * np.sqrt((v ** 2).mean()))
    assert ridge(0.25, X, 0.7) == 0.25  # an explicit value is kept
    ones = sp.csr_matrix(np.eye(3, dtype=np.float32))
    assert ridge("auto", ones, 0.7) == 0.7  # no spread: the unit itself


def test_nbmf_ridge_follows_the_level_of_the_values_over_their_spread():
    X = ratings()
    v = X.data.astype(np.float64)
    assert level_ridge("auto", X, 0.16) == pytest.approx(0.16 * v.mean() / v.std())
    assert level_ridge("auto", ratings(10.0), 0.16) == pytest.approx(
        level_ridge("auto", X, 0.16))  # unit-free, as NBMF's fit is
    assert level_ridge(0.25, X, 0.16) == 0.25
    ones = sp.csr_matrix(np.eye(3, dtype=np.float32))
    assert level_ridge("auto", ones, 0.16) == 0.16  # no spread: the constant itself
    # 0/1 values with four sampled zeros per positive: mean / std = 0.2 / 0.4
    implicit = sp.csr_matrix((np.tile(np.float32([1] + [NEGATIVE_VALUE] * 4), 4),
                              np.tile(np.arange(5), 4), np.arange(0, 21, 5)), shape=(4, 5))
    assert NBMF(factors=2, epochs=1, random_state=0).fit(implicit).l2_ == pytest.approx(
        0.16 * 0.5, rel=1e-4)


def test_confidence_slope_follows_the_density_and_the_unit():
    X = ratings()
    density = X.nnz / (60 * 40)
    expected = ALPHA_SCALE / (np.sqrt(density) * X.data.astype(np.float64).mean())
    assert confidence_slope("auto", X) == pytest.approx(max(expected, 1.0))
    sparse = sp.csr_matrix(([1.0] * 4, ([0, 1, 2, 3], [0, 1, 2, 3])), shape=(100, 1000))
    assert confidence_slope("auto", sparse) == pytest.approx(ALPHA_SCALE / np.sqrt(4e-5))
    X10 = X.copy()
    X10.data *= 10
    assert confidence_slope("auto", X10) == pytest.approx(max(expected / 10, 1.0))
    assert confidence_slope(3.0, X) == 3.0


def test_neighbour_count_follows_the_density():
    X = ratings()  # density 0.3
    assert neighbour_count("auto", X) == round(NEIGHBOURS_SCALE / np.sqrt(X.nnz / (60 * 40)))
    sparse = sp.csr_matrix(([1.0] * 400, (np.arange(400), np.arange(400))), shape=(400, 10_000))
    assert neighbour_count("auto", sparse) == 1000  # density 1e-4
    huge = sp.csr_matrix(([1.0], ([0], [0])), shape=(1000, 100_000))
    assert neighbour_count("auto", huge) == MAX_NEIGHBOURS
    assert neighbour_count(7, X) == 7
    knn = ItemKNN().fit(X)  # the default; the same fit as the count given
    assert knn.neighbors_ == neighbour_count("auto", X)
    explicit = ItemKNN(neighbors=knn.neighbors_).fit(X)
    assert (knn.similarity_ != explicit.similarity_).nnz == 0


def test_bpr_rate_follows_the_density():
    X = ratings()  # density 0.3
    assert sgd_rate("auto", X) == pytest.approx(BPR_RATE_SCALE / np.sqrt(X.nnz / (60 * 40)))
    sparse = sp.csr_matrix(([1.0] * 40, (np.arange(40), np.arange(40))), shape=(400, 1000))
    assert sgd_rate("auto", sparse) == BPR_MAX_RATE  # density 1e-4: implicit's default
    assert sgd_rate(0.05, X) == 0.05
    kw = dict(factors=4, epochs=3, random_state=0, num_threads=1)
    auto = BPR(**kw).fit(X)  # the default; the same fit as the rate given
    assert auto.learning_rate_ == sgd_rate("auto", X)
    given = BPR(learning_rate=auto.learning_rate_, **kw).fit(X)
    np.testing.assert_array_equal(auto.item_factors_, given.item_factors_)
    other = BPR(learning_rate=BPR_MAX_RATE, **kw).fit(X)
    assert not np.array_equal(auto.item_factors_, other.item_factors_)


def test_simplex_weight_follows_the_catalogue_over_the_mean_history():
    X = ratings()  # density 0.3: the floor
    assert contrastive_weight("auto", X) == SIMPLEX_MIN_WEIGHT
    sparse = sp.csr_matrix(([1.0] * 400, (np.arange(400), np.arange(400) % 1000)),
                           shape=(400, 1000))  # one positive per user over 1000 items
    assert contrastive_weight("auto", sparse) == pytest.approx(SIMPLEX_WEIGHT_SCALE * 1000)
    assert contrastive_weight("auto", sp.csr_matrix((3, 5))) == SIMPLEX_MIN_WEIGHT
    assert contrastive_weight(2.5, sparse) == 2.5


def test_simplex_l2_follows_the_batch_over_the_catalogue():
    X = ratings()  # 40 items
    assert table_ridge("auto", X, 1024, dense=True) == pytest.approx(SIMPLEX_L2_SCALE * 1024
                                                                      / 40)
    assert table_ridge("auto", X, 256, dense=True) == pytest.approx(SIMPLEX_L2_SCALE * 256 / 40)
    assert table_ridge("auto", X, 1024, dense=False) == SIMPLEX_ROW_L2  # charged when it steps
    assert table_ridge(0.1, X, 1024, dense=True) == 0.1
    kw = dict(factors=4, negatives=5, epochs=2, batch_size=16, random_state=0, num_threads=1)
    assert SimpleX(**kw).resolved_params(X) == {
        "negative_weight": SIMPLEX_MIN_WEIGHT, "l2": pytest.approx(SIMPLEX_L2_SCALE * 16 / 40)}
    assert SimpleX(optimizer="adam", **kw).resolved_params(X)["l2"] == SIMPLEX_ROW_L2
    auto = SimpleX(**kw).fit(X)  # the defaults: the same fit as the values given
    given = SimpleX(**{**kw, "negative_weight": auto.negative_weight_, "l2": auto.l2_}).fit(X)
    np.testing.assert_array_equal(auto.item_factors_, given.item_factors_)
    other = SimpleX(**{**kw, "l2": 2e-3}).fit(X)
    assert not np.array_equal(auto.item_factors_, other.item_factors_)


def test_ease_l2_follows_the_gram_diagonal_behind_an_interaction():
    X = ratings()
    diagonal = np.diag((X.T @ X).toarray().astype(np.float64))  # dense reference: G_jj
    expected = EASE_L2_SCALE * (diagonal ** 2).sum() / diagonal.sum()
    assert gram_ridge("auto", X) == pytest.approx(expected, rel=1e-12)
    assert gram_ridge(7.0, X) == 7.0
    assert gram_ridge("auto", sp.csr_matrix((3, 5))) == EASE_L2_SCALE
    # one popular item and a long tail: the rule follows the popular one, a mean over items
    # would not (counts 100 and 99 x 1: 1.5 (100^2 + 99) / 199 = 76, the mean count 2)
    rows = np.r_[np.arange(100), np.arange(99)]
    cols = np.r_[np.zeros(100, int), np.arange(1, 100)]
    tail = sp.csr_matrix((np.ones(199), (rows, cols)), shape=(100, 100))
    assert gram_ridge("auto", tail) == pytest.approx(1.5 * (100 ** 2 + 99) / 199)
    # the same B at any unit: X x 10 and l2 x 100
    base, tenfold = EASE(dtype="float64").fit(X), EASE(dtype="float64").fit(ratings(10.0))
    assert tenfold.l2_ == pytest.approx(100 * base.l2_)
    np.testing.assert_allclose(tenfold.B_, base.B_, rtol=1e-9, atol=1e-9 * np.abs(base.B_).max())
    # partial_fit keeps the fitted l2_ (the inverse it updates was built with it), so an
    # update equals a refit at that value, not at the value the new matrix would give
    grown = sp.vstack([X, ratings(seed=1)[:10]]).tocsr()
    updated = EASE(dtype="float64").fit(X).partial_fit(grown)
    assert updated.l2_ == base.l2_ != gram_ridge("auto", grown)
    refit = EASE(l2=base.l2_, dtype="float64").fit(grown)
    np.testing.assert_allclose(updated.B_, refit.B_, rtol=1e-7,
                               atol=1e-7 * np.abs(refit.B_).max())


@pytest.mark.parametrize("make", [
    lambda: MaskedNMF(factors=4, epochs=15, biases=False, random_state=0, num_threads=1),
    lambda: AltMin(factors=4, epochs=15, biases=False, random_state=0, num_threads=1),
])
def test_auto_l2_makes_a_factor_fit_indifferent_to_the_unit(make):
    # values x 10: with l2 scaled alike every step of the fit is the same up to that factor
    # (W and H scale by sqrt(10)), so the predictions are 10 times as large
    # (within the fits' own rounding)
    X = ratings()
    base, tenfold = make().fit(X), make().fit(ratings(10.0))
    assert tenfold.l2_ == pytest.approx(10 * base.l2_)
    users = np.arange(X.shape[0])
    a, b = base.score(users, X), tenfold.score(users, X)
    np.testing.assert_allclose(b, 10 * a, rtol=1e-4, atol=1e-4 * np.abs(10 * a).max())


def test_fitted_values_are_recorded_and_saved(tmp_path):
    X = ratings()
    for model in (MaskedNMF(factors=3, epochs=2, random_state=0),
                  AltMin(factors=3, epochs=2, random_state=0),
                  NBMF(factors=3, epochs=2, random_state=0, num_threads=1),
                  ALS(factors=3, epochs=2, random_state=0, num_threads=1),
                  ItemKNN(num_threads=1), EASE(num_threads=1),
                  BPR(factors=3, epochs=2, random_state=0, num_threads=1),
                  SimpleX(factors=3, negatives=4, epochs=2, random_state=0, num_threads=1)):
        model.fit(X)
        names = {ALS: ["alpha_"], ItemKNN: ["neighbors_"], BPR: ["learning_rate_"],
                 SimpleX: ["negative_weight_", "l2_"]}.get(type(model), ["l2_"])
        path = tmp_path / f"{type(model).__name__}.npz"
        model.save(path)
        loaded = Recommender.load(path)
        for name in names:
            assert getattr(loaded, name) == getattr(model, name)
            assert loaded.get_params()[name[:-1]] == "auto"
        # what fit records is what resolved_params reads off the same matrix (in a sweep,
        # the defaults' first trial)
        assert model.resolved_params(X) == {name[:-1]: getattr(model, name) for name in names}
        np.testing.assert_array_equal(loaded.score([0, 1], X), model.score([0, 1], X))


def test_an_explicit_value_is_used_as_given():
    X = ratings()
    assert MaskedNMF(l2=0.3, factors=2, epochs=1, random_state=0).fit(X).l2_ == 0.3
    assert MaskedNMF(l2=0.3).resolved_params(X) == {"l2": 0.3}
    assert NBMF(l2=0.5).resolved_params(X) == {"l2": 0.5}
    assert ALS(alpha=7.0, factors=2, epochs=1, random_state=0).fit(X).alpha_ == 7.0
    with pytest.raises(ValueError, match="alpha"):
        ALS(alpha="often").fit(X)


@pytest.mark.parametrize("l2", [0.5, "auto"])
def test_nbmf_is_indifferent_to_the_unit(l2):
    # binary codes: W carries the scale, so the same l2 gives the same codes and W x 10
    # (why NBMF's "auto" rule is unit-free: the same l2 at any unit)
    X = ratings()
    make = lambda: NBMF(factors=4, epochs=5, l2=l2, solver="exact", random_state=0,  # noqa: E731
                        num_threads=1)
    base, tenfold = make().fit(X), make().fit(ratings(10.0))
    np.testing.assert_array_equal(base.item_codes_, tenfold.item_codes_)
    np.testing.assert_allclose(tenfold.user_factors_, 10 * base.user_factors_, rtol=1e-5,
                               atol=1e-5 * 10 * np.abs(base.user_factors_).max())
