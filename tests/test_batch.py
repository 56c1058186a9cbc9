import numpy as np
import pandas as pd
import pytest

from recsys.batch import recommend_sharded, recommend_to_parquet, write_parquet_atomic
from recsys.experiment import load_experiment
from recsys.models import EASE, Recommender


@pytest.fixture(scope="module")
def fitted(data_home, tmp_path_factory):
    exp = load_experiment("ml-100k", data_home=data_home).full()
    model = EASE(l2=300.0).fit(exp.training(EASE))
    path = model.save(tmp_path_factory.mktemp("model") / "ease.npz")
    return model, exp.history, path


def check_output(df: pd.DataFrame, model, history, k: int):
    """Exactly k rows per user, ranks 1..k, raw ids, no seen items, the model's own top-k."""
    X = history.matrix
    assert len(df) == history.shape[0] * k
    assert (df.groupby("user").size() == k).all()
    assert set(df["user"]) == set(history.users.raw_ids.tolist())
    df = df.sort_values(["user", "rank"])
    users = history.users.to_index(df["user"].to_numpy()).reshape(-1, k)[:, 0]
    items = history.items.to_index(df["item"].to_numpy()).reshape(-1, k)
    assert (df["rank"].to_numpy().reshape(-1, k) == np.arange(1, k + 1)).all()
    for row, u in enumerate(users):
        assert not set(items[row]) & set(X.indices[X.indptr[u]:X.indptr[u + 1]])
    ids, scores = model.recommend(users, X, k=k)
    np.testing.assert_array_equal(items, ids)
    np.testing.assert_allclose(df["score"].to_numpy().reshape(-1, k), scores, rtol=1e-6)


def test_batch_job_writes_k_rows_per_user(fitted, tmp_path):
    model, history, _ = fitted
    out = recommend_to_parquet(model, history, 50, tmp_path / "recs.parquet",
                               show_progress=False)
    check_output(pd.read_parquet(out), model, history, 50)
    assert [p.name for p in tmp_path.iterdir()] == ["recs.parquet"]  # no temp files left


def test_sharded_job_on_a_local_dask_cluster(fitted, tmp_path, data_home):
    model, history, path = fitted
    parts = recommend_sharded(path, "ml-100k", 20, tmp_path / "out", n_shards=3,
                              data_home=data_home, n_workers=2)
    assert [p.name for p in parts] == [f"part-{i:05d}.parquet" for i in range(3)]
    assert (tmp_path / "out" / "_SUCCESS").exists()
    check_output(pd.read_parquet(tmp_path / "out"), Recommender.load(path), history, 20)


def test_a_failed_write_leaves_no_output(fitted, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def broken(table, where, **kwargs):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(pa.table({"a": [1, 2]}), tmp_path / "x.parquet")
    assert list(tmp_path.iterdir()) == []
