import numpy as np
import pytest

from recsys import datasets


def test_ml100k_full_and_official_folds(data_home):
    full = datasets.load("ml-100k", data_home=data_home)
    assert full.shape == (943, 1682) and full.nnz == 100_000
    assert set(np.unique(full.matrix.data)) == {1, 2, 3, 4, 5}
    assert full.timestamps is not None
    for fold in ("u1", "u5", "ua"):
        split = datasets.load("ml-100k", split=fold, data_home=data_home)
        assert split.train.users == full.users and split.test.items == full.items
        assert split.train.nnz + split.test.nnz == 100_000
        assert (split.train.matrix.multiply(split.test.matrix)).nnz == 0
    ua = datasets.load("ml-100k", split="ua", data_home=data_home)
    assert (np.diff(ua.test.matrix.indptr) == 10).all()
    with pytest.raises(ValueError, match="u1"):
        datasets.load("ml-100k", split="u9", data_home=data_home)


def test_published_splits(data_home):
    ml1m = datasets.load("ml-1m-lcfn", data_home=data_home)
    assert ml1m.train.shape == (6022, 3043)
    assert (ml1m.train.nnz, ml1m.validation.nnz, ml1m.test.nnz) == (796_244, 99_455, 99_455)
    gowalla = datasets.load("gowalla-lightgcn", data_home=data_home)
    assert gowalla.train.shape == (29_858, 40_981)
    assert (gowalla.train.nnz, gowalla.test.nnz) == (810_128, 217_242)
    assert gowalla.validation is None and gowalla.test.users == gowalla.train.users
    lastfm = datasets.load("lastfm-hetrec", data_home=data_home)
    assert lastfm.shape == (1892, 17632) and lastfm.nnz == 92_834
    assert lastfm.matrix.data.max() > 1000  # play counts, not binary


def test_environment_variable_is_the_default(data_home, monkeypatch):
    monkeypatch.setenv("RECSYS_DATA_HOME", str(data_home))
    assert datasets.data_home() == data_home
    assert datasets.load("ml-100k").nnz == 100_000


def test_offline_error_says_where_to_put_files(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match=r"u\.data.*ml-100k"):
        datasets.load("ml-100k", data_home=tmp_path, download=False)
    monkeypatch.setenv("RECSYS_DATA_MIRROR", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(FileNotFoundError, match="could not be downloaded.*offline"):
        datasets.load("gowalla-lightgcn", data_home=tmp_path)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="unknown data set"):
        datasets.load("netflix", data_home=tmp_path)


def test_item_titles(data_home):
    titles = datasets.item_titles("ml-100k", data_home=data_home)
    assert titles.loc[1] == "Toy Story (1995)" and len(titles) == 1682
