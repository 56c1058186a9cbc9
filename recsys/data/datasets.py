"""Real public data sets: a local cache, downloads from the official homes, checksums.

``load(name)`` looks for the files under ``data_home`` (argument, else ``$RECSYS_DATA_HOME``,
else ``~/.cache/recsys``), in the folder named below. Missing files are downloaded from the
official URL (when ``download=True``) and verified against a checksum before they are moved into
place; offline, the error says which files to put where.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from recsys.data.splits import Split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Files:
    """One way a data set's files can be laid out on disk, and where to get them."""

    checksums: dict[str, str]  # file name -> "sha256:<hex>" or "md5:<hex>" (as published)
    url: str  # a zip archive, or a base URL to which file names are appended
    archive: bool = False
    fix: Callable[[str, bytes], bytes] | None = None  # normalise a downloaded file


@dataclass(frozen=True)
class _DataSet:
    folder: str
    homepage: str
    layouts: tuple[_Files, ...]  # the first is what downloads produce when none is present


def _strip_header(name: str, content: bytes) -> bytes:
    first, _, rest = content.partition(b"\n")
    return rest if first.lower().startswith(b"userid") else content


_ML100K_FILES = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
    "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
    "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
    "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
    "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
    "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
    "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
    "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
    "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
    "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
    "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
    "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
    "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
    "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
}

DATASETS: dict[str, _DataSet] = {
    "ml-100k": _DataSet(
        "ml-100k", "https://grouplens.org/datasets/movielens/100k/",
        (_Files({k: f"sha256:{v}" for k, v in _ML100K_FILES.items()},
                "https://files.grouplens.org/datasets/movielens/ml-100k.zip", archive=True),)),
    "ml-1m-lcfn": _DataSet(
        "ml-1m_lcfn_m1", "https://github.com/reczoo/Datasets (Movielens1M_m1, the LCFN split)",
        (
            # RecZoo's published files, with the md5 sums its README publishes
            _Files({"train_data.json": "md5:4229bc5369f943918103daf7fd92e920",
                    "validation_data.json": "md5:60be3b377d39806f80a43e37c94449f6",
                    "test_data.json": "md5:cdd3ad819512cb87dad2f098c8437df2"},
                   "https://huggingface.co/datasets/reczoo/Movielens1M_m1/resolve/main/"),
            # the same split converted to `uid item item ...` lines (UltraGCN's layout)
            _Files({"train.txt":
                        "sha256:f088986b22f14f17136f9c4ef6f1269201f83dfb9ce259f1fd4ed46d72a92599",
                    "test.txt":
                        "sha256:7ca364f7f9321417b521745833b12719a2feb13253bccece2c04d5afe9fc3e15",
                    "validation_data.json":
                        "sha256:dbbd432c427da59d3a991a4b388a4945676fb8e81b104958a2dbccf2ba6c6950"},
                   "https://huggingface.co/datasets/reczoo/Movielens1M_m1/resolve/main/"),
        )),
    "gowalla-lightgcn": _DataSet(
        "gowalla_lightgcn", "https://github.com/gusye1234/LightGCN-PyTorch (data/gowalla)",
        (_Files({"train.txt":
                     "sha256:7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
                 "test.txt":
                     "sha256:099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3"},
                "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/gowalla/"),)),
    "lastfm-hetrec": _DataSet(
        "lastfm_hetrec2011", "https://grouplens.org/datasets/hetrec-2011/",
        (_Files({"user_artists.dat":
                     "sha256:3e496861ec29aca30cc17d69e4b006b160af693e131cd09b48ab31c271fca04a"},
                "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip",
                archive=True, fix=_strip_header),)),
}

ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")


def data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``data_home``, else ``$RECSYS_DATA_HOME``, else ``~/.cache/recsys``."""
    if data_home is None:
        data_home = os.environ.get("RECSYS_DATA_HOME") or Path.home() / ".cache" / "recsys"
    return Path(data_home).expanduser()


def _digest(content: bytes, checksum: str) -> bool:
    algo, _, expected = checksum.partition(":")
    return hashlib.new(algo, content).hexdigest() == expected


def _fetch(url: str) -> bytes:
    logger.info("downloading %s", url)
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (fixed https URLs)
        return response.read()


def _download(spec: _DataSet, layout: _Files, folder: Path) -> None:
    """Download, verify and atomically move ``layout``'s files into ``folder``."""
    contents: dict[str, bytes] = {}
    if layout.archive:
        with zipfile.ZipFile(io.BytesIO(_fetch(layout.url))) as archive:
            members = {Path(m).name: m for m in archive.namelist() if not m.endswith("/")}
            for name in layout.checksums:
                if name not in members:
                    raise OSError(f"{layout.url} does not contain {name}")
                contents[name] = archive.read(members[name])
    else:
        for name in layout.checksums:
            contents[name] = _fetch(layout.url + name)
    for name, checksum in layout.checksums.items():
        if layout.fix is not None:
            contents[name] = layout.fix(name, contents[name])
        if not _digest(contents[name], checksum):
            raise OSError(f"checksum mismatch for {name} downloaded from {layout.url}: the "
                          f"published file has {checksum}. Nothing was written.")
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
        os.replace(tmp, folder / name)


def fetch(name: str, data_home_: str | os.PathLike | None = None,
          download: bool = True) -> tuple[Path, _Files]:
    """Make sure a data set's files are in the cache; returns its folder and layout."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    folder = data_home(data_home_) / spec.folder
    for layout in spec.layouts:
        if all((folder / f).is_file() for f in layout.checksums):
            return folder, layout
    layout = spec.layouts[0]
    where = (f"put the files ({', '.join(layout.checksums)}) into {folder}, or point "
             f"RECSYS_DATA_HOME (or data_home=) at a folder holding {spec.folder}/")
    if not download:
        raise FileNotFoundError(f"data set {name!r} is not in {folder} and download=False: "
                                f"{where}. Source: {spec.homepage}")
    try:
        _download(spec, layout, folder)
    except OSError as err:  # URLError, HTTP errors and checksum failures are OSErrors
        raise FileNotFoundError(
            f"data set {name!r} is not in {folder} and could not be downloaded from "
            f"{layout.url} ({err}). To use it offline, {where}. Source: {spec.homepage}"
        ) from err
    return folder, layout


def load(name: str, split: str | None = None, data_home: str | os.PathLike | None = None,
         download: bool = True) -> Interactions | Split:
    """Load a real data set.

    Parameters
    ----------
    name : {"ml-100k", "ml-1m-lcfn", "gowalla-lightgcn", "lastfm-hetrec"}
        ``"ml-100k"``: MovieLens 100K ratings 1-5 with timestamps (an ``Interactions``), or with
        ``split="u1"`` .. ``"u5"``, ``"ua"``, ``"ub"`` the official fold as a ``Split``.
        ``"ml-1m-lcfn"``: the LCFN/UltraGCN/SimpleX split (``Split`` with train, validation,
        test). ``"gowalla-lightgcn"``: the NGCF/LightGCN split (``Split`` with train, test).
        ``"lastfm-hetrec"``: Last.fm HetRec 2011 artist play counts (``Interactions``).
    split : str, optional
        Only for ml-100k.
    data_home : path, optional
        Cache folder; defaults to ``$RECSYS_DATA_HOME`` or ``~/.cache/recsys``.
    download : bool
        Download missing files from the official URL (checksum-verified).

    All parts of a split share one user and one item index space.
    """
    folder, layout = fetch(name, data_home, download)
    if name == "ml-100k":
        return _load_ml100k(folder, split)
    if split is not None:
        raise ValueError(f"split= applies to ml-100k only; {name} has one predefined split")
    if name == "lastfm-hetrec":
        df = pd.read_csv(folder / "user_artists.dat", sep="\t", header=None,
                         names=["user", "item", "plays"],
                         skiprows=_header_rows(folder / "user_artists.dat"))
        return Interactions.from_pandas(df, "user", "item", "plays")
    files = list(layout.checksums)
    lists = {part: _read_lists(folder / f) for part, f in
             zip(("train", "validation", "test") if len(files) == 3 else ("train", "test"),
                 sorted(files, key=_part_order))}
    return _split_from_lists(lists)


def _part_order(file_name: str) -> int:
    return 0 if file_name.startswith("train") else 1 if file_name.startswith("valid") else 2


def _header_rows(path: Path) -> int:
    with open(path, "rb") as fh:
        return 1 if fh.readline().lower().startswith(b"userid") else 0


def _read_lists(path: Path) -> list[list[int]]:
    """Per-user item lists from ``uid item item ...`` lines or a JSON list of lists."""
    if path.suffix == ".json":
        return [list(map(int, items)) for items in json.loads(path.read_text())]
    rows: list[list[int]] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        user = int(parts[0])
        rows.extend([] for _ in range(user + 1 - len(rows)))
        rows[user].extend(map(int, parts[1:]))
    return rows


def _split_from_lists(lists: dict[str, list[list[int]]]) -> Split:
    n_users = max(len(v) for v in lists.values())
    n_items = 1 + max((max(items) for v in lists.values() for items in v if items), default=-1)
    users, items = IdMap.identity(n_users), IdMap.identity(n_items)
    parts = {}
    for part, rows in lists.items():
        lengths = np.array([len(r) for r in rows] + [0] * (n_users - len(rows)), dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.fromiter((i for r in rows for i in r), dtype=np.int32, count=indptr[-1])
        X = sp.csr_matrix((np.ones(indices.size, dtype=np.float32), indices, indptr),
                          shape=(n_users, n_items))
        X.sum_duplicates()  # sorts indices; repeated items count once below
        X.data[:] = 1.0
        parts[part] = Interactions.from_csr(X, users, items)
    return Split(**parts)


def _read_ml100k(path: Path, users: IdMap | None = None,
                 items: IdMap | None = None) -> Interactions:
    df = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
    return Interactions.from_pandas(df, "user", "item", "rating", "timestamp",
                                    duplicates="error", users=users, items=items)


def _load_ml100k(folder: Path, split: str | None) -> Interactions | Split:
    full = _read_ml100k(folder / "u.data")
    if split is None:
        return full
    if split not in ML100K_SPLITS:
        raise ValueError(f"ml-100k split must be one of {ML100K_SPLITS}, got {split!r}")
    return Split(train=_read_ml100k(folder / f"{split}.base", full.users, full.items),
                 test=_read_ml100k(folder / f"{split}.test", full.users, full.items))


def item_titles(name: str = "ml-100k", data_home: str | os.PathLike | None = None,
                download: bool = True) -> pd.Series:
    """Movie titles of MovieLens 100K, indexed by raw item id."""
    if name != "ml-100k":
        raise ValueError("item titles are available for ml-100k only")
    folder, _ = fetch(name, data_home, download)
    df = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1",
                     usecols=[0, 1], names=["item", "title"])
    return df.set_index("item")["title"]


def verify(name: str, data_home: str | os.PathLike | None = None) -> None:
    """Check the cached files of ``name`` against their published checksums."""
    folder, layout = fetch(name, data_home, download=False)
    for file, checksum in layout.checksums.items():
        if not _digest((folder / file).read_bytes(), checksum):
            raise OSError(f"{folder / file} does not match its published checksum {checksum}")


__all__ = ["DATASETS", "data_home", "fetch", "item_titles", "load", "verify"]
