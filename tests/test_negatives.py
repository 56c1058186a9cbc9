"""Sampled zeros for the rating models on implicit feedback (recsys.data.with_sampled_negatives)."""

import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _common import power_law_matrix  # noqa: E402

from recsys._validation import as_csr  # noqa: E402
from recsys.data import NEGATIVE_VALUE, Interactions, with_sampled_negatives  # noqa: E402
from recsys.models import MaskedNMF  # noqa: E402


def test_sampled_negatives_never_hit_positives():
    X = power_law_matrix(300, 200, 20, np.random.default_rng(0))
    X.data = np.random.default_rng(1).integers(1, 6, X.nnz).astype(np.float32)
    Y = with_sampled_negatives(X, 4, random_state=0)
    dense_x, dense_y = X.toarray(), Y.toarray()
    positives = dense_x > 0
    np.testing.assert_array_equal(dense_y[positives], dense_x[positives])  # values kept
    negatives = (dense_y > 0) & ~positives
    assert np.all(dense_y[negatives] == np.float32(NEGATIVE_VALUE))
    # 4 draws per positive, minus repeats and hits on positives: most survive at this density
    per_user = negatives.sum(1)
    assert np.all(per_user <= 4 * positives.sum(1))
    assert per_user.sum() > 0.6 * 4 * positives.sum()
    # canonical CSR: the models' input check keeps every entry (only exact zeros are dropped)
    assert Y.has_sorted_indices and as_csr(Y).nnz == Y.nnz
    # same seed, same draw; another seed, another
    assert (with_sampled_negatives(X, 4, random_state=0) != Y).nnz == 0
    assert (with_sampled_negatives(X, 4, random_state=1) != Y).nnz > 0


def test_sampled_negatives_are_uniform_over_the_unobserved_cells():
    X = sp.csr_matrix(np.eye(1, 10, 0, dtype=np.float32))  # one user, item 0 observed
    X = sp.vstack([X] * 2000).tocsr()
    Y = with_sampled_negatives(X, 1, random_state=0)
    counts = np.asarray((Y.toarray() == np.float32(NEGATIVE_VALUE)).sum(0)).ravel()
    assert counts[0] == 0
    # 2000 draws over 10 items, those on item 0 dropped: each other item ~200 (sd ~13)
    assert np.all(np.abs(counts[1:] - 200) < 60), counts


def test_sampled_negatives_keep_the_id_maps_of_interactions():
    data = Interactions.from_pandas(
        __import__("pandas").DataFrame({"user": ["a", "a", "b"], "item": ["x", "y", "z"],
                                        "timestamp": [1, 2, 3]}), timestamp="timestamp")
    out = with_sampled_negatives(data, 1, random_state=0)
    assert out.users == data.users and out.items == data.items and out.timestamps is None
    assert out.matrix.nnz > data.matrix.nnz


@pytest.mark.parametrize("kwargs, match", [({"per_positive": 0}, "per_positive"),
                                           ({"per_positive": 1.5}, "per_positive"),
                                           ({"value": 0.0}, "value"),
                                           ({"value": float("nan")}, "value"),
                                           ({"value": 1.0}, "not below every observed")])
def test_sampled_negatives_refuse_bad_arguments(kwargs, match):
    X = sp.csr_matrix(np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match=match):
        with_sampled_negatives(X, **kwargs)


def test_a_rating_model_on_constant_values_warns():
    X = sp.csr_matrix(np.eye(4, dtype=np.float32))
    with pytest.warns(UserWarning, match="every one of them is 1"):
        MaskedNMF(factors=2, epochs=1, random_state=0).fit(X)
