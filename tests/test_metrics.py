import numpy as np
import pytest
import scipy.sparse as sp
from conftest import random_csr
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.evaluation import mae, ranking_metrics, rmse


def reference_metrics(recs: np.ndarray, test: sp.csr_matrix, k: int, n_items: int) -> dict:
    """Direct per-user loops over the textbook definitions."""
    out = {m: [] for m in ("ndcg", "recall", "recall_capped", "precision", "map", "mrr",
                           "hit_rate")}
    for u in range(recs.shape[0]):
        truth = set(test.indices[test.indptr[u]:test.indptr[u + 1]].tolist())
        ranked = [i for i in recs[u, :k].tolist()]
        rel = [1.0 if (i >= 0 and i in truth) else 0.0 for i in ranked]
        dcg = sum(r / np.log2(p + 2) for p, r in enumerate(rel))
        ideal = min(k, len(truth))
        idcg = sum(1 / np.log2(p + 2) for p in range(ideal))
        hits = sum(rel)
        precisions = [sum(rel[:p + 1]) / (p + 1) for p in range(len(rel)) if rel[p]]
        first = next((p for p, r in enumerate(rel) if r), None)
        out["ndcg"].append(dcg / idcg if idcg else np.nan)
        out["recall"].append(hits / len(truth) if truth else np.nan)
        out["recall_capped"].append(hits / ideal if ideal else np.nan)
        out["precision"].append(hits / k)
        out["map"].append(sum(precisions) / ideal if ideal else np.nan)
        out["mrr"].append(0.0 if first is None else 1.0 / (first + 1))
        out["hit_rate"].append(float(hits > 0))
    top = recs[:, :k]
    out["coverage"] = np.unique(top[top >= 0]).size / n_items
    return out


def test_hand_computed_example():
    # user 0: test {1, 4, 7}; ranking [4, 2, 1, 9, 8]; hits at ranks 0 and 2
    test = sp.csr_matrix((np.ones(3), [1, 4, 7], [0, 3]), shape=(1, 10), dtype=np.float32)
    recs = np.array([[4, 2, 1, 9, 8]])
    m = ranking_metrics(recs, test, k=5, n_items=10)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert m["ndcg_at_5"][0] == pytest.approx((1 + 1 / np.log2(4)) / idcg)
    assert m["recall_at_5"][0] == pytest.approx(2 / 3)
    assert m["precision_at_5"][0] == pytest.approx(2 / 5)  # precision != recall
    assert m["map_at_5"][0] == pytest.approx((1 / 1 + 2 / 3) / 3)
    assert m["mrr_at_5"][0] == 1.0
    assert m["hit_rate_at_5"][0] == 1.0
    assert m["coverage_at_5"] == pytest.approx(0.5)
    m2 = ranking_metrics(recs, test, k=2, metrics=("recall_capped", "map"), n_items=10)
    assert m2["recall_capped_at_2"][0] == pytest.approx(1 / 2)
    assert m2["map_at_2"][0] == pytest.approx(1 / 2)


@pytest.mark.parametrize("seed", range(5))
def test_kernel_matches_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items = 150, 40
    test = random_csr(n_users, n_items, 0.1, seed)
    recs = np.stack([rng.permutation(n_items)[:25] for _ in range(n_users)]).astype(np.int32)
    recs[rng.random(recs.shape) < 0.05] = -1  # padding positions
    got = ranking_metrics(recs, test, k=(5, 10, 25),
                          metrics=("ndcg", "recall", "recall_capped", "precision", "map",
                                   "mrr", "hit_rate", "coverage"), n_items=n_items)
    for k in (5, 10, 25):
        ref = reference_metrics(recs, test, k, n_items)
        for name, values in ref.items():
            np.testing.assert_allclose(got[f"{name}_at_{k}"], values, atol=1e-6,
                                       err_msg=f"{name}@{k}")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**31 - 1), st.integers(1, 12))
def test_metric_bounds_and_monotonicity(n_items, seed, k):
    rng = np.random.default_rng(seed)
    test = random_csr(8, n_items, 0.3, seed % 1000)
    width = min(k + 3, n_items)
    recs = np.stack([rng.permutation(n_items)[:width] for _ in range(8)]).astype(np.int32)
    m = ranking_metrics(recs, test, k=(k, k + 3), n_items=n_items)
    for name, v in m.items():
        finite = v[np.isfinite(v)]
        assert ((finite >= -1e-12) & (finite <= 1 + 1e-12)).all(), name
    with np.errstate(invalid="ignore"):
        assert np.all(np.nan_to_num(m[f"recall_at_{k + 3}"] - m[f"recall_at_{k}"]) >= -1e-12)
        assert np.all(np.nan_to_num(m[f"hit_rate_at_{k + 3}"] - m[f"hit_rate_at_{k}"]) >= 0)


def test_rmse_mae():
    y, p = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0])
    assert rmse(y, p) == pytest.approx(np.sqrt(5 / 3))
    assert mae(y, p) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="shapes"):
        rmse(y, p[:2])
    with pytest.raises(ValueError, match="NaN"):
        mae(y, np.array([1.0, np.nan, 2.0]))


def test_bad_metric_inputs():
    test = random_csr(3, 5, 0.5, 0)
    with pytest.raises(ValueError, match="unknown metrics"):
        ranking_metrics(np.zeros((3, 2), np.int32), test, metrics=("auc",))
    with pytest.raises(ValueError, match="one row per test row"):
        ranking_metrics(np.zeros((2, 2), np.int32), test)
    with pytest.raises(ValueError, match="positive"):
        ranking_metrics(np.zeros((3, 2), np.int32), test, k=0)
