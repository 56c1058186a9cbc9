import numpy as np
import pytest
import scipy.sparse as sp
from conftest import assert_topk_close, product_tolerance, random_csr, reference_topk

from recsys.topk import topk_factors, topk_scores


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 7, 50])
def test_topk_factors_matches_numpy(dtype, k):
    rng = np.random.default_rng(0)
    U = rng.standard_normal((300, 16)).astype(dtype)
    V = rng.standard_normal((120, 16)).astype(dtype)
    exclude = random_csr(300, 120, 0.1, 1)
    ids, values = topk_factors(U, V, k, exclude, batch_size=37)
    exact = U.astype(np.float64) @ V.astype(np.float64).T
    assert_topk_close(ids, values, exact, product_tolerance(U, V), exclude)
    assert values.dtype == dtype


def test_topk_scores_ties_break_by_lower_index():
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0]], dtype=np.float32)
    ids, values = topk_scores(scores, 4)
    assert ids.tolist() == [[1, 2, 4, 3]]
    assert values.tolist() == [[3.0, 3.0, 3.0, 2.0]]


def test_integer_ties_match_reference():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(200, 60)).astype(np.float32)
    exclude = random_csr(200, 60, 0.2, 4)
    ids, values = topk_scores(scores, 25, exclude)
    ref_ids, ref_values = reference_topk(scores, 25, exclude)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(values, ref_values)


def test_rows_with_few_candidates_are_padded():
    scores = np.arange(12, dtype=np.float32).reshape(2, 6)
    exclude = sp.csr_matrix(np.array([[1, 1, 1, 1, 0, 0], [0] * 6]), dtype=np.float32)
    ids, values = topk_scores(scores, 4, exclude)
    assert ids[0].tolist() == [5, 4, -1, -1]
    assert np.isneginf(values[0, 2:]).all()
    assert ids[1].tolist() == [5, 4, 3, 2]


def test_k_larger_than_catalogue_ranks_everything():
    scores = np.array([[0.5, 0.1, 0.9]], dtype=np.float32)
    ids, _ = topk_scores(scores, 10)
    assert ids.tolist() == [[2, 0, 1]]


def test_copy_false_may_overwrite_but_copy_true_does_not():
    scores = np.ones((1, 4), dtype=np.float32)
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0]]), dtype=np.float32)
    topk_scores(scores, 2, exclude)
    assert scores[0, 0] == 1.0


def test_thread_counts_agree():
    rng = np.random.default_rng(5)
    U = rng.standard_normal((2000, 8)).astype(np.float32)
    V = rng.standard_normal((500, 8)).astype(np.float32)
    exclude = random_csr(2000, 500, 0.05, 6)
    one = topk_factors(U, V, 20, exclude, num_threads=1, batch_size=64)
    two = topk_factors(U, V, 20, exclude, num_threads=2, batch_size=64)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])


@pytest.mark.parametrize("bad, error", [
    (dict(k=0), ValueError), (dict(k=-3), ValueError), (dict(k=2.5), TypeError),
])
def test_bad_k(bad, error):
    with pytest.raises(error, match="k must"):
        topk_scores(np.ones((2, 3), dtype=np.float32), **bad)


def test_nan_scores_raise():
    scores = np.array([[0.1, np.nan, 0.3]], dtype=np.float32)
    with pytest.raises(ValueError, match="NaN"):
        topk_scores(scores, 2)


def test_bad_exclusion_shapes():
    scores = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="rows"):
        topk_scores(scores, 2, sp.csr_matrix((3, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="CSR"):
        topk_scores(scores, 2, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="factor sizes"):
        topk_factors(np.ones((2, 3)), np.ones((4, 2)), 2)
