"""Training on a Dask cluster (LocalCluster, 2 worker processes): the row-sharded half-steps
give the single-process fit, for the same seed and number of sweeps."""

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.distributed import dask_client, map_row_blocks, shard_bounds
from recsys.models import AltMin, MaskedNMF


@pytest.fixture(scope="module")
def client():
    with dask_client("local", n_workers=2) as c:
        yield c


def ratings(n_users=120, n_items=70, density=0.15, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(n_users, n_items, density=density, format="csr", random_state=rng,
                  dtype=np.float64)
    X.data = rng.integers(1, 6, X.nnz).astype(np.float64)
    X.sort_indices()
    return X


def _close(a, b):
    scale = max(float(np.abs(a).max()), 1.0)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * scale)


@pytest.mark.parametrize("solver", ["cholesky", "cg", "sketch"])
@pytest.mark.parametrize("sample_splitting", [False, True])
def test_altmin_on_dask_equals_the_single_process_fit(client, solver, sample_splitting):
    X = ratings()
    params = dict(factors=6, l2=0.5, epochs=4, solver=solver, sample_splitting=sample_splitting,
                  random_state=3, num_threads=1)
    one = AltMin(**params).fit(X)
    many = AltMin(**params).fit(X, cluster=client, n_shards=5)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        _close(getattr(one, name), getattr(many, name))


def test_maskednmf_on_dask_equals_the_single_process_fit(client):
    X = ratings(seed=1)
    params = dict(factors=5, l2=0.3, epochs=6, random_state=2, num_threads=1)
    one = MaskedNMF(**params).fit(X)
    many = MaskedNMF(**params).fit(X, cluster=client, n_shards=3)
    for name in ("user_factors_", "item_factors_", "user_bias_", "item_bias_"):
        _close(getattr(one, name), getattr(many, name))
    _close(one.loss_, many.loss_)


def test_a_scheduler_address_works_like_a_client(client):
    X = ratings(seed=2)
    one = AltMin(factors=4, epochs=2, random_state=0).fit(X)
    by_address = AltMin(factors=4, epochs=2, random_state=0).fit(
        X, cluster=client.scheduler.address)
    _close(one.user_factors_, by_address.user_factors_)


def _row_sums(indptr, indices, entries, rows, start, offset):
    sums = np.add.reduceat(entries["v"], indptr[:-1]) if indptr[-1] else np.zeros(0)
    sums[np.diff(indptr) == 0] = 0
    return sums + rows["w"] + offset + 0 * start


def test_map_row_blocks_slices_and_orders_the_blocks(client):
    X = ratings(n_users=23, seed=4)
    w = np.arange(23.0)
    blocks = map_row_blocks(client, _row_sums, X, 4, entries={"v": X.data}, rows={"w": w},
                            shared={"offset": np.float64(0.5)})
    expected = np.asarray(X.sum(axis=1)).ravel() + w + 0.5
    _close(np.concatenate(blocks), expected)
    assert shard_bounds(23, 4).tolist() == [0, 5, 11, 17, 23]
    with pytest.raises(ValueError, match="n_shards"):
        shard_bounds(10, 0)


@pytest.mark.parametrize("solver", ["anneal", "exact"])
def test_nbmf_on_dask_equals_the_single_process_fit(client, solver):
    from recsys.models import NBMF

    X = ratings(seed=5)
    params = dict(factors=6, l2=0.3, epochs=3, solver=solver, random_state=4, num_threads=1)
    one = NBMF(**params).fit(X)
    many = NBMF(**params).fit(X, cluster=client, n_shards=4)
    np.testing.assert_array_equal(one.item_codes_, many.item_codes_)
    _close(one.user_factors_, many.user_factors_)
    _close(one.loss_, many.loss_)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_als_on_dask_equals_the_single_process_fit(client, solver):
    from recsys.models import ALS

    X = ratings(seed=6)
    params = dict(factors=6, l2=0.5, alpha=2.0, epochs=3, solver=solver, random_state=7,
                  num_threads=1)
    one = ALS(**params).fit(X)
    many = ALS(**params).fit(X, cluster=client, n_shards=3)
    for name in ("user_factors_", "item_factors_"):
        scale = np.abs(getattr(one, name)).max()  # float32 factors
        np.testing.assert_allclose(getattr(one, name), getattr(many, name), rtol=0,
                                   atol=1e-5 * scale)


def test_evaluation_on_dask_equals_the_single_process_one(client, ml100k_u1):
    from recsys.evaluation import ALL_METRICS, evaluate
    from recsys.models import ALS, EASE

    train, test = ml100k_u1
    for model in (EASE(l2=500.0).fit(train), ALS(factors=8, epochs=3, random_state=0,
                                                 num_threads=1).fit(train)):
        here, here_users = evaluate(model, train, test, k=(10, 20), metrics=ALL_METRICS,
                                    per_user=True)
        there, there_users = evaluate(model, train, test, k=(10, 20), metrics=ALL_METRICS,
                                      per_user=True, cluster=client, n_shards=3)
        assert here == there
        for name, values in here_users.items():
            np.testing.assert_array_equal(values, there_users[name])


def test_cli_fit_and_evaluate_on_a_local_cluster(tmp_path, data_home, monkeypatch, capsys):
    import json

    from recsys.cli import main

    monkeypatch.setenv("RECSYS_DATA_HOME", str(data_home))
    out = tmp_path / "altmin.npz"
    assert main(["fit", "--model", "altmin", "--param", "epochs=2", "--seed", "0",
                 "--out", str(out), "--dask-scheduler", "local", "--shards", "3",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model-path", str(out), "--dask-scheduler", "local",
                 "--quiet"]) == 0
    assert 0 < json.loads(capsys.readouterr().out)["ndcg_at_10"] < 1
    assert main(["fit", "--model", "ease", "--out", str(tmp_path / "e.npz"),
                 "--dask-scheduler", "local", "--quiet"]) == 2  # EASE trains in one process
