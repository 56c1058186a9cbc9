import io
import zipfile

import numpy as np
import pytest

from recsys import datasets
from recsys.data import datasets as impl


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

    def offline(url):
        raise OSError("network is unreachable")

    monkeypatch.setattr(impl, "_fetch", offline)
    with pytest.raises(FileNotFoundError, match="could not be downloaded.*offline"):
        datasets.load("gowalla-lightgcn", data_home=tmp_path)
    with pytest.raises(ValueError, match="unknown data set"):
        datasets.load("netflix", data_home=tmp_path)


def _zip_of(folder, names, prefix="ml-100k/"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(prefix + name, (folder / name).read_bytes())
    return buf.getvalue()


def test_download_verifies_and_installs_atomically(data_home, tmp_path, monkeypatch):
    names = list(impl.DATASETS["ml-100k"].layouts[0].checksums)
    good = _zip_of(data_home / "ml-100k", names)
    monkeypatch.setattr(impl, "_fetch", lambda url: good)
    data = datasets.load("ml-100k", data_home=tmp_path)
    assert data.nnz == 100_000
    datasets.verify("ml-100k", data_home=tmp_path)

    corrupt_home = tmp_path / "corrupt"
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["ml-100k/u1.base"] = members["ml-100k/u1.base"][:-10]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    monkeypatch.setattr(impl, "_fetch", lambda url: buf.getvalue())
    with pytest.raises(FileNotFoundError, match="checksum mismatch for u1.base"):
        datasets.load("ml-100k", data_home=corrupt_home)
    assert not (corrupt_home / "ml-100k").exists()  # nothing half-written


def test_lastfm_archive_header_is_stripped(data_home, tmp_path, monkeypatch):
    raw = b"userID\tartistID\tweight\r\n" + \
        (data_home / "lastfm_hetrec2011" / "user_artists.dat").read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("user_artists.dat", raw)
    monkeypatch.setattr(impl, "_fetch", lambda url: buf.getvalue())
    assert datasets.load("lastfm-hetrec", data_home=tmp_path).nnz == 92_834


def test_item_titles(data_home):
    titles = datasets.item_titles("ml-100k", data_home=data_home)
    assert titles.loc[1] == "Toy Story (1995)" and len(titles) == 1682
