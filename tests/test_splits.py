import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data import (
    Interactions,
    leave_k_out,
    random_holdout,
    strong_generalization,
    temporal_split,
    validation_split,
)


def synthetic(n_users, n_items, n, seed) -> Interactions:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"user": rng.integers(0, n_users, n), "item": rng.integers(0, n_items, n),
                       "value": rng.integers(1, 6, n), "ts": rng.integers(0, 1000, n)})
    return Interactions.from_pandas(df, "user", "item", "value", "ts", duplicates="last")


def pairs(data: Interactions) -> set:
    coo = data.matrix.tocoo()
    return set(zip(coo.row.tolist(), coo.col.tolist()))


def assert_partition(data, *parts):
    sets = [pairs(p) for p in parts if p is not None]
    assert sum(len(s) for s in sets) == data.nnz
    assert set().union(*sets) == pairs(data)
    for p in parts:
        if p is not None:
            assert p.users == data.users and p.items == data.items


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.integers(1, 400), st.integers(0, 10**6),
       st.floats(0.05, 0.95))
def test_random_holdout_properties(n_users, n_items, n, seed, fraction):
    data = synthetic(n_users, n_items, n, seed)
    split = random_holdout(data, test_fraction=fraction, random_state=seed)
    assert_partition(data, split.train, split.test)
    counts = np.diff(data.matrix.indptr)
    test_counts = np.diff(split.test.matrix.indptr)
    expected = np.where(counts >= 2, np.minimum(np.round(counts * fraction), counts - 1), 0)
    np.testing.assert_array_equal(test_counts, expected)
    again = random_holdout(data, test_fraction=fraction, random_state=seed)
    assert pairs(again.test) == pairs(split.test)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(2, 30), st.integers(1, 400), st.integers(0, 10**6),
       st.integers(1, 3))
def test_leave_k_out_latest_properties(n_users, n_items, n, seed, k):
    data = synthetic(n_users, n_items, n, seed)
    split = leave_k_out(data, k=k, order="latest", random_state=seed)
    assert_partition(data, split.train, split.test)
    counts = np.diff(data.matrix.indptr)
    np.testing.assert_array_equal(np.diff(split.test.matrix.indptr), np.where(counts > k, k, 0))
    tr, te = split.train, split.test
    for u in range(data.shape[0]):
        test_ts = te.timestamps[te.matrix.indptr[u]:te.matrix.indptr[u + 1]]
        train_ts = tr.timestamps[tr.matrix.indptr[u]:tr.matrix.indptr[u + 1]]
        if test_ts.size and train_ts.size:
            assert test_ts.min() >= train_ts.max()


def test_leave_k_out_random_is_seeded():
    data = synthetic(50, 40, 1500, 1)
    a = leave_k_out(data, k=2, random_state=7)
    b = leave_k_out(data, k=2, random_state=7)
    c = leave_k_out(data, k=2, random_state=8)
    assert pairs(a.test) == pairs(b.test) != pairs(c.test)
    with pytest.raises(ValueError, match="timestamps"):
        leave_k_out(Interactions.from_csr(data.matrix), order="latest")


def test_temporal_split():
    data = synthetic(30, 20, 500, 2)
    split = temporal_split(data, test_fraction=0.25)
    assert_partition(data, split.train, split.test)
    assert split.train.timestamps.max() < split.test.timestamps.min()
    assert abs(split.test.nnz / data.nnz - 0.25) < 0.05
    fixed = temporal_split(data, cutoff=500)
    assert (fixed.test.timestamps >= 500).all() and (fixed.train.timestamps < 500).all()


def test_strong_generalization():
    data = synthetic(100, 30, 2000, 3)
    split = strong_generalization(data, test_users=0.2, fold_out=0.3, random_state=0)
    assert_partition(data, split.train, split.fold_in, split.test)
    train_users = set(np.flatnonzero(np.diff(split.train.matrix.indptr)))
    held = set(np.flatnonzero(np.diff(split.test.matrix.indptr)))
    assert len(held) == 20 and not (train_users & held)
    assert held <= set(np.flatnonzero(np.diff(split.fold_in.matrix.indptr)))
    assert split.test_history is split.fold_in


def test_validation_split_leaves_test_alone():
    data = synthetic(60, 30, 1200, 4)
    split = random_holdout(data, random_state=0)
    with_val = validation_split(split, fraction=0.2, random_state=1)
    assert with_val.test is split.test
    assert_partition(split.train, with_val.train, with_val.validation)
    assert with_val.test_history.nnz == split.train.nnz
    loo = validation_split(split, k=1, order="latest", random_state=1)
    assert_partition(split.train, loo.train, loo.validation)
    with pytest.raises(ValueError, match="already"):
        validation_split(with_val)


def test_bad_fractions():
    data = synthetic(5, 5, 20, 5)
    with pytest.raises(ValueError, match="test_fraction"):
        random_holdout(data, test_fraction=1.5)
    with pytest.raises(ValueError, match="k must"):
        leave_k_out(data, k=0)
