import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_csr, reference_topk

import recsys._similarity as similarity_module
import recsys._validation as validation
from recsys._ext._ease import fill_systems, solve_systems
from recsys._similarity import GramRows
from recsys.datasets import load
from recsys.evaluation import evaluate
from recsys.models import EASE, Recommender
from recsys.models import ease as ease_module


def paper_ease(X: sp.csr_matrix, l2: float) -> np.ndarray:
    """Steck's reference code, float64."""
    G = (X.T @ X).toarray().astype(np.float64)
    G[np.diag_indices_from(G)] += l2
    P = np.linalg.inv(G)
    B = P / (-np.diag(P))
    B[np.diag_indices_from(B)] = 0
    return B


@pytest.mark.parametrize("dtype, tol", [("float32", 2e-4), ("float64", 1e-9)])
def test_dense_matches_the_paper_formula(dtype, tol):
    X = random_csr(400, 150, 0.08, 0)
    B = EASE(l2=5.0, dtype=dtype).fit(X).B_
    ref = paper_ease(X, 5.0)
    assert B.dtype == np.dtype(dtype)
    np.testing.assert_allclose(B, ref, atol=tol * np.abs(ref).max())
    assert (np.diag(B) == 0).all()


def test_recommend_matches_batched_reference():
    X = random_csr(300, 120, 0.1, 1)
    model = EASE(l2=3.0, dtype="float64").fit(X)
    ids, values = model.recommend(np.arange(300), X, k=15)
    ref_ids, ref_values = reference_topk((X @ model.B_), 15, X)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(values, ref_values, rtol=1e-10)


def test_sparse_with_full_support_is_exact():
    X = random_csr(500, 80, 0.1, 2)
    dense = EASE(l2=4.0, dtype="float64").fit(X).B_
    sparse = EASE(l2=4.0, dtype="float64", max_items_dense=10, neighbors=79).fit(X).B_
    assert sp.issparse(sparse)
    np.testing.assert_allclose(sparse.toarray(), dense, atol=1e-10)


def restricted_ease(X: sp.csr_matrix, l2: float, m: int) -> np.ndarray:
    """NumPy reference of the sparse variant: each item's m most cosine-similar items (ties:
    lower index), then (G[N, N] + l2 I) b = G[N, j], float64."""
    X = X.astype(np.float64)
    G = (X.T @ X).toarray()
    norms = np.sqrt(np.diag(G))
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where(np.outer(norms, norms) > 0, G / np.outer(norms, norms), 0.0)
    np.fill_diagonal(cos, -np.inf)
    B = np.zeros_like(G)
    for j in range(G.shape[0]):
        N = np.sort(np.argsort(-cos[j], kind="stable")[:m])
        B[N, j] = np.linalg.solve(G[np.ix_(N, N)] + l2 * np.eye(m), G[N, j])
    return B


def test_sparse_matches_the_restricted_regression():
    X = random_csr(600, 90, 0.07, 7)
    X.data = np.random.default_rng(7).random(X.nnz).astype(np.float32) + 0.5  # no cosine ties
    model = EASE(l2=3.0, dtype="float64", max_items_dense=0, neighbors=12).fit(X)
    np.testing.assert_allclose(model.B_.toarray(), restricted_ease(X, 3.0, 12), atol=1e-9)


def test_sparse_groups_and_row_blocks_change_nothing(monkeypatch):
    X = random_csr(400, 70, 0.1, 8)
    one = EASE(l2=2.0, max_items_dense=0, neighbors=9).fit(X).B_
    monkeypatch.setattr(ease_module, "SYSTEMS_BYTES", 9 * 9 * 4 * 5)  # groups of 5 items
    monkeypatch.setattr(similarity_module, "BLOCK_ELEMENTS", 70 * 3)  # 3 Gram rows a block
    grouped = EASE(l2=2.0, max_items_dense=0, neighbors=9).fit(X).B_
    assert (grouped != one).nnz == 0


def test_gram_rows_equal_the_dense_gram():
    X = random_csr(300, 50, 0.1, 9)
    X = sp.csr_matrix(X[:, :45].toarray() @ np.eye(45, 50, dtype=np.float32))  # 5 empty items
    gram = GramRows(X, num_threads=2)
    rows = np.array([49, 0, 3, 3, 46], dtype=np.int32)
    G = (X.T @ X).toarray()
    np.testing.assert_allclose(gram(rows), G[rows], rtol=1e-6, atol=1e-6 * np.abs(G).max())
    np.testing.assert_allclose(gram.norms, np.sqrt(np.diag(G)), rtol=1e-6)
    with pytest.raises(ValueError, match="row 50 out of range"):
        gram(np.array([50]))


def test_neighbourhood_kernels_check_their_inputs():
    A, b = np.zeros((2, 3, 3), np.float32), np.zeros((2, 3), np.float32)
    support, items = np.zeros((2, 3), np.int32), np.zeros(2, np.int32)
    block = np.zeros((1, 4), np.float32)
    ok = np.zeros(1, np.int32)
    with pytest.raises(ValueError, match="entry 0 out of range"):
        fill_systems(block, ok, np.array([2], np.int32), ok, support, items, A, b, 1)
    with pytest.raises(ValueError, match="support item 7"):
        fill_systems(block, ok, ok, ok, support + 7, items, A, b, 1)
    with pytest.raises(np.linalg.LinAlgError, match="2 neighbourhood systems"):
        solve_systems(-np.ones_like(A), b, 0.5, 1)


def test_sparse_respects_neighbour_budget_and_round_trips(tmp_path):
    X = random_csr(500, 80, 0.1, 3)
    model = EASE(l2=4.0, max_items_dense=10, neighbors=7).fit(X)
    assert np.diff(model.B_.tocsc().indptr).max() <= 7
    assert model.B_.diagonal().max() == 0
    loaded = Recommender.load(model.save(tmp_path / "ease"))
    assert sp.issparse(loaded.B_) and (loaded.B_ != model.B_).nnz == 0


def test_fold_in_new_users():
    X = random_csr(200, 60, 0.1, 4)
    model = EASE(l2=2.0).fit(X[:150])
    new = X[150:]  # users never seen in fit: scores depend on their history only
    ids, _ = model.recommend(np.arange(50), new, k=5)
    ref_ids, _ = reference_topk(new @ model.B_, 5, new)
    np.testing.assert_array_equal(ids, ref_ids)


def test_memory_check_names_the_size(monkeypatch):
    monkeypatch.setattr(validation, "available_memory", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"120 x 120 float32.*max_items_dense"):
        EASE().fit(random_csr(50, 120, 0.1, 5))


def test_bad_parameters():
    X = random_csr(50, 20, 0.2, 6)
    with pytest.raises(ValueError, match="l2"):
        EASE(l2=0).fit(X)
    with pytest.raises(ValueError, match="dtype"):
        EASE(dtype="float16").fit(X)
    with pytest.raises(ValueError, match="neighbors"):
        EASE(max_items_dense=1, neighbors=0).fit(X)


def test_sparse_quality_close_to_dense_on_ml100k(ml100k_u1):
    train, test = ml100k_u1
    dense = evaluate(EASE(l2=500).fit(train), train, test, k=10)["ndcg_at_10"]
    sparse = evaluate(EASE(l2=500, max_items_dense=0, neighbors=200).fit(train), train, test,
                      k=10)["ndcg_at_10"]
    assert dense > 0.42  # measured 0.4293
    assert sparse > dense - 0.01  # measured 0.4238


def test_ml1m_lcfn_l2_chosen_on_validation(data_home):
    """l2 picked on validation; reported on test with train as history (the papers' protocol)."""
    split = load("ml-1m-lcfn", data_home=data_home)
    grid = (300, 1000, 2000)
    val = {l2: evaluate(EASE(l2=l2).fit(split.train), split.train, split.validation,
                        k=20, metrics=("ndcg",))["ndcg_at_20"] for l2 in grid}
    best = max(val, key=val.get)
    assert best == 1000  # measured validation NDCG@20: 0.2624 / 0.2672 / 0.2631
    test = evaluate(EASE(l2=best).fit(split.train), split.train, split.test, k=20)
    assert test["recall_at_20"] == pytest.approx(0.2755, abs=0.002)
    assert test["ndcg_at_20"] == pytest.approx(0.2674, abs=0.002)


@pytest.mark.slow
def test_gowalla_matches_bars(data_home):
    """BARS benchmark numbers for EASE (l2 = 80) on the LightGCN Gowalla split."""
    split = load("gowalla-lightgcn", data_home=data_home)
    model = EASE(l2=80).fit(split.train)
    got = evaluate(model, split.train, split.test, k=20)
    assert got["recall_at_20"] == pytest.approx(0.1765, abs=5e-4)
    assert got["ndcg_at_20"] == pytest.approx(0.1467, abs=5e-4)


def test_blocked_cholesky_path_matches(monkeypatch):
    """The path large catalogues take (blocked factorization) gives the same B."""
    from scipy.linalg import lapack

    X = random_csr(600, 300, 0.05, 7)
    monkeypatch.setattr(ease_module, "_THREADED_LAPACK_MAX_BYTES", 0)
    B = EASE(l2=3.0, dtype="float64").fit(X).B_
    np.testing.assert_allclose(B, paper_ease(X, 3.0), atol=1e-10)
    G = (X.T @ X).toarray().astype(np.float64) + 3.0 * np.eye(300)
    A = G.copy()
    potrf = lapack.get_lapack_funcs("potrf", (A,))
    assert ease_module._blocked_cholesky(A, potrf, block=64) == 0
    np.testing.assert_allclose(np.tril(A), np.linalg.cholesky(G), atol=1e-10)
    bad = -np.eye(10)
    assert ease_module._blocked_cholesky(bad, potrf, block=4) == 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_times_csr_equals_the_sparse_product(dtype):
    from recsys._ext._gram import rows_times_csr

    A = random_csr(80, 40, 0.2, 10)
    B = random_csr(40, 30, 0.3, 11).astype(dtype)
    rows = np.array([5, 0, 79, 5], dtype=np.int32)
    out = np.zeros((4, 30), dtype=dtype)
    rows_times_csr(A.indptr, A.indices, A.data, B.indptr, B.indices, B.data, rows, out, 2)
    expected = (A.astype(np.float64)[rows] @ B.astype(np.float64)).toarray()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    B.indices[:] = 30  # corrupt column indices are an error, never a write out of bounds
    with pytest.raises(ValueError, match="column indices beyond"):
        rows_times_csr(A.indptr, A.indices, A.data, B.indptr, B.indices, B.data, rows,
                       np.zeros((4, 30), dtype=dtype), 1)
