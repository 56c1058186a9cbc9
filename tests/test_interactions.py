import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.data import IdMap, Interactions


def frame():
    return pd.DataFrame({
        "u": ["bob", "alice", "bob", "carol", "bob"],
        "i": [10, 20, 10, 30, 20],
        "r": [1.0, 4.0, 3.0, 2.0, 5.0],
        "t": [100, 50, 300, 70, 200],
    })


def test_from_pandas_builds_canonical_csr():
    data = Interactions.from_pandas(frame(), "u", "i", "r", "t")
    X = data.matrix
    assert X.dtype == np.float32 and X.indices.dtype == np.int32 and X.has_sorted_indices
    assert data.users.raw_ids.tolist() == ["alice", "bob", "carol"]
    assert data.items.raw_ids.tolist() == [10, 20, 30]
    dense = X.toarray()
    assert dense.tolist() == [[0, 4, 0], [4, 5, 0], [0, 0, 2]]  # bob/10: 1 + 3 summed
    bob = data.users.to_index(["bob"])[0]
    row_ts = data.timestamps[X.indptr[bob]:X.indptr[bob + 1]]
    assert row_ts.tolist() == [300, 200]  # merged pair keeps the latest timestamp


@pytest.mark.parametrize("mode, expected", [("sum", 4.0), ("last", 1.0), ("max", 3.0)])
def test_duplicate_policies(mode, expected):
    df = frame()
    df.loc[2, "t"] = 10  # the 3.0 rating is now the *earlier* one
    data = Interactions.from_pandas(df, "u", "i", "r", "t", duplicates=mode)
    b, i = data.users.to_index(["bob"])[0], data.items.to_index([10])[0]
    assert data.matrix[b, i] == expected


def test_last_without_timestamps_uses_row_order():
    data = Interactions.from_pandas(frame(), "u", "i", "r", duplicates="last")
    assert data.matrix[data.users.to_index(["bob"])[0], 0] == 3.0


def test_duplicates_error():
    with pytest.raises(ValueError, match="1 duplicate"):
        Interactions.from_pandas(frame(), "u", "i", "r", duplicates="error")


def test_bad_frames():
    df = frame()
    with pytest.raises(KeyError, match="'nope'"):
        Interactions.from_pandas(df, "u", "nope")
    bad = df.copy()
    bad.loc[0, "r"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Interactions.from_pandas(bad, "u", "i", "r")
    bad = df.copy()
    bad["u"] = bad["u"].astype(object)
    bad.loc[1, "u"] = None
    with pytest.raises(ValueError, match="missing ids"):
        Interactions.from_pandas(bad, "u", "i")
    with pytest.raises(ValueError, match="no interactions"):
        Interactions.from_pandas(df.iloc[:0], "u", "i")
    with pytest.raises(TypeError, match="numeric"):
        Interactions.from_pandas(df.assign(r="x"), "u", "i", "r")
    with pytest.raises(ValueError, match="duplicates must be"):
        Interactions.from_pandas(df, "u", "i", duplicates="mean")


def test_zero_values_are_dropped():
    df = frame().assign(r=[0.0, 1.0, 0.0, 1.0, 1.0])
    data = Interactions.from_pandas(df, "u", "i", "r", "t")
    assert data.nnz == 3 and data.matrix.data.all()
    assert data.timestamps.size == 3


def test_idmap_errors_name_the_ids():
    m = IdMap(["a", "b"])
    with pytest.raises(KeyError, match="'zz'"):
        m.to_index(["a", "zz"])
    with pytest.raises(IndexError, match=r"\[0, 2\)"):
        m.to_raw([2])
    with pytest.raises(ValueError, match="unique"):
        IdMap(["a", "a"])


def test_shared_id_maps_and_unknown_ids():
    base = Interactions.from_pandas(frame(), "u", "i")
    other = Interactions.from_pandas(pd.DataFrame({"u": ["carol"], "i": [10]}), "u", "i",
                                     users=base.users, items=base.items)
    assert other.shape == base.shape
    with pytest.raises(KeyError, match="'dave'"):
        Interactions.from_pandas(pd.DataFrame({"u": ["dave"], "i": [10]}), "u", "i",
                                 users=base.users, items=base.items)


def test_csv_and_parquet_round_trip(tmp_path):
    df = frame()
    df.to_csv(tmp_path / "x.csv", index=False)
    df.to_parquet(tmp_path / "x.parquet")
    a = Interactions.from_csv(tmp_path / "x.csv", "u", "i", "r", "t")
    b = Interactions.from_parquet(tmp_path / "x.parquet", "u", "i", "r", "t")
    c = Interactions.from_pandas(df, "u", "i", "r", "t")
    for other in (a, b):
        assert (other.matrix != c.matrix).nnz == 0
        np.testing.assert_array_equal(other.timestamps, c.timestamps)
    back = c.to_pandas().sort_values(["user", "item"]).reset_index(drop=True)
    assert back["value"].tolist() == [4.0, 4.0, 5.0, 2.0]


def test_datetime_timestamps():
    df = frame().assign(t=pd.to_datetime([1, 2, 3, 4, 5], unit="D"))
    data = Interactions.from_pandas(df, "u", "i", "r", "t")
    assert data.timestamps.dtype == np.int64 and data.timestamps.min() >= 86400


def test_from_csr_converts_and_checks():
    X = sp.coo_matrix(np.array([[0, 2.0], [1.0, 0]]))
    with pytest.warns(UserWarning, match="COO"):
        data = Interactions.from_csr(X)
    assert data.matrix.format == "csr" and data.users.raw_ids.tolist() == [0, 1]
    with pytest.raises(ValueError, match="NaN"):
        Interactions.from_csr(sp.csr_matrix(np.array([[np.nan, 1.0]])))


def test_select_binarize_and_add():
    data = Interactions.from_pandas(frame(), "u", "i", "r", "t")
    pos = data.binarize(4)
    assert pos.nnz == 3 and set(pos.matrix.data) == {1.0}
    rest = data.select(data.matrix.data < 4)
    both = pos + rest
    assert both.nnz == data.nnz
    assert ((both.matrix > 0) != (data.matrix > 0)).nnz == 0


def test_parquet_folder_streams_in_batches(tmp_path, monkeypatch):
    """A folder of parts read batch by batch (never through pandas.read_parquet) equals the
    frame built in memory: string and categorical ids, duplicates, timestamps."""
    rng = np.random.default_rng(0)
    n = 257
    df = pd.DataFrame({"u": rng.choice([f"user{i}" for i in range(40)], n),
                       "i": rng.integers(0, 30, n), "r": rng.integers(1, 6, n).astype(float),
                       "t": rng.integers(0, 10**6, n)})
    folder = tmp_path / "log"
    folder.mkdir()
    for part, rows in enumerate(np.array_split(np.arange(n), 3)):
        chunk = df.iloc[rows].copy()
        if part == 1:
            chunk["u"] = chunk["u"].astype("category")  # a dictionary-encoded part
        chunk.to_parquet(folder / f"part-{part}.parquet")
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: pytest.fail("not streamed"))
    for duplicates in ("sum", "last", "max"):
        streamed = Interactions.from_parquet(folder, "u", "i", "r", "t", duplicates=duplicates,
                                             batch_rows=16)
        direct = Interactions.from_pandas(df, "u", "i", "r", "t", duplicates=duplicates)
        assert streamed.users == direct.users and streamed.items == direct.items
        assert (streamed.matrix != direct.matrix).nnz == 0
        np.testing.assert_array_equal(streamed.timestamps, direct.timestamps)
    with pytest.raises(KeyError, match="'rating' not in"):
        Interactions.from_parquet(folder, "u", "i", "rating")
