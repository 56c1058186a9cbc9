from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.batch import recommend_sharded, recommend_to_parquet, write_parquet_atomic
from recsys.data.spec import DataSpec
from recsys.experiment import load_experiment
from recsys.models import EASE, Recommender


@pytest.fixture(scope="module")
def fitted(data_home, tmp_path_factory):
    """EASE fitted on u1's training part; the batch job's history is every interaction of the
    data it is given (u.data: the training part and the test part), as in serving."""
    exp = load_experiment("ml-100k", data_home=data_home).full()
    model = exp.fit(EASE(l2=300.0))
    path = model.save(tmp_path_factory.mktemp("model") / "ease.npz")
    everything = DataSpec(dataset="ml-100k", data_home=str(data_home)).read()
    return model, everything.binarize(exp.threshold), path, everything.binarize(None)


def check_output(df: pd.DataFrame, model, history, k: int, seen=None, fallback=True):
    """Exactly k rows per user, ranks 1..k, raw ids, no seen items (every training interaction
    when ``seen`` is given), the model's own top-k (the raw-id job: the popularity fallback for
    users without positives)."""
    X = history.matrix
    S = X if seen is None else seen.matrix
    assert len(df) == history.shape[0] * k
    assert (df.groupby("user").size() == k).all()
    assert set(df["user"]) == set(history.users.raw_ids.tolist())
    df = df.sort_values(["user", "rank"])
    users = history.users.to_index(df["user"].to_numpy()).reshape(-1, k)[:, 0]
    items = history.items.to_index(df["item"].to_numpy()).reshape(-1, k)
    assert (df["rank"].to_numpy().reshape(-1, k) == np.arange(1, k + 1)).all()
    for row, u in enumerate(users):
        assert not set(items[row]) & set(S.indices[S.indptr[u]:S.indptr[u + 1]])
    ids, scores = model.recommend(users, X, k=k, filter_items=None if seen is None else S)
    # a user without positives gets the most popular unseen items (the documented fallback)
    popular = np.argsort(-model.item_counts_, kind="stable")
    for row in np.flatnonzero(np.diff(X.indptr)[users] == 0) if fallback else []:
        unseen = ~np.isin(popular, S.indices[S.indptr[users[row]]:S.indptr[users[row] + 1]])
        ids[row] = popular[unseen][:k]
        scores[row] = model.item_counts_[ids[row]]
    np.testing.assert_array_equal(items, ids)
    np.testing.assert_allclose(df["score"].to_numpy().reshape(-1, k), scores, rtol=1e-6)


def test_batch_job_writes_k_rows_per_user(fitted, tmp_path):
    model, history, _, seen = fitted
    out = recommend_to_parquet(model, history, 50, tmp_path / "recs.parquet",
                               show_progress=False, seen=seen)
    check_output(pd.read_parquet(out), model, history, 50, seen, fallback=False)
    assert [p.name for p in tmp_path.iterdir()] == ["recs.parquet"]  # no temp files left


def test_sharded_job_on_a_local_dask_cluster(fitted, tmp_path, data_home):
    model, history, path, seen = fitted
    result = recommend_sharded(path, "ml-100k", 20, tmp_path / "out", n_shards=3,
                               data_home=data_home, n_workers=2)
    assert [Path(p).name for p in result["parts"]] == [f"part-{i:05d}.parquet"
                                                        for i in range(3)]
    assert result["rows"] == 20 * history.shape[0] and result["users"] == history.shape[0]
    assert (tmp_path / "out" / "_SUCCESS").exists()
    check_output(pd.read_parquet(tmp_path / "out"), Recommender.load(path), history, 20, seen)
    # a rerun with fewer shards over the old output, with a killed run's temporary file
    (tmp_path / "out" / ".part-00003.parquet.abc.tmp").write_bytes(b"half")
    recommend_sharded(path, "ml-100k", 20, tmp_path / "out", n_shards=2, data_home=data_home,
                      n_workers=2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
    check_output(pd.read_parquet(tmp_path / "out"), Recommender.load(path), history, 20, seen)


def test_the_batch_job_never_recommends_a_rated_movie(fitted, tmp_path, data_home):
    """On ML-100K the model scores from the positives (ratings >= 4) but every rated movie,
    1 to 5, is seen: none may come back (before the fix, 24% of the rows were such movies)."""
    from recsys.cli import main

    model, history, path, seen = fitted
    for exclude, out in (("training", "all.parquet"), ("positives", "pos.parquet")):
        assert main(["recommend", "--model-path", str(path), "--data-home", str(data_home),
                     "--k", "20", "--out", str(tmp_path / out), "--exclude", exclude,
                     "--quiet"]) == 0
    rated = seen.to_pandas()[["user", "item"]]
    for out, expected_overlap in (("all.parquet", False), ("pos.parquet", True)):
        df = pd.read_parquet(tmp_path / out)
        overlap = df.merge(rated, on=["user", "item"]).shape[0]
        assert (overlap > 0) == expected_overlap, (out, overlap / len(df))
    assert main(["recommend", "--model-path", str(path), "--data-home", str(data_home),
                 "--k", "20", "--out", str(tmp_path / "none.parquet"), "--exclude", "none",
                 "--quiet"]) == 0
    df = pd.read_parquet(tmp_path / "none.parquet")
    assert df.merge(history.to_pandas()[["user", "item"]], on=["user", "item"]).shape[0] > 0


def test_k_above_the_catalogue_lists_every_candidate(fitted, tmp_path):
    model, history, _, seen = fitted
    n_items = history.shape[1]
    out = recommend_to_parquet(model, history, 10 * n_items, tmp_path / "all.parquet",
                               users=np.arange(5), show_progress=False, seen=seen)
    df = pd.read_parquet(out)
    per_user = df.groupby("user").size()
    expected = n_items - np.diff(seen.matrix.indptr)[:5]
    assert per_user.loc[history.users.to_raw(np.arange(5))].tolist() == expected.tolist()


def test_a_killed_single_file_run_leaves_nothing_for_the_next(fitted, tmp_path):
    model, history, _, _ = fitted
    (tmp_path / ".recs.parquet.x1y2.tmp").write_bytes(b"PAR1 half")
    recommend_to_parquet(model, history, 5, tmp_path / "recs.parquet", users=np.arange(3),
                         show_progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["recs.parquet"]


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
