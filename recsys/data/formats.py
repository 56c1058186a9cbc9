"""Readers of the public data sets' exact file formats (separators, encodings, header quirks).

Each reader takes the cached file(s) and returns :class:`Interactions` (raw ids kept: ints
where the publisher's ids are ints, strings otherwise) or a :class:`Split` for published
splits. The quirks each one handles are in its docstring.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from recsys.data.splits import Split

logger = logging.getLogger(__name__)

#: Rows per chunk when a big log is read and aggregated piecewise
CHUNK_ROWS = 2_000_000


def movielens_dat(path: Path) -> Interactions:
    """``UserID::MovieID::Rating::Timestamp`` (ML-1M, ML-10M ``ratings.dat``): a two-character
    separator that pandas' C parser does not take; it is rewritten to a tab first. ML-10M's
    ratings are half stars (0.5 .. 5)."""
    raw = Path(path).read_bytes().replace(b"::", b"\t")
    df = pd.read_csv(io.BytesIO(raw), sep="\t", header=None,
                     names=["user", "item", "rating", "timestamp"],
                     dtype={"user": np.int64, "item": np.int64, "rating": np.float64,
                            "timestamp": np.int64})
    return Interactions.from_pandas(df, "user", "item", "rating", "timestamp",
                                    duplicates="error")


def movielens_csv(path: Path) -> Interactions:
    """``userId,movieId,rating,timestamp`` with a header line (ML-20M, 25M, 32M
    ``ratings.csv``)."""
    df = pd.read_csv(path, dtype={"userId": np.int64, "movieId": np.int64,
                                  "rating": np.float64, "timestamp": np.int64})
    expected = ["userId", "movieId", "rating", "timestamp"]
    if list(df.columns) != expected:
        raise ValueError(f"{path}: expected the columns {expected}, got {list(df.columns)}")
    return Interactions.from_pandas(df, "userId", "movieId", "rating", "timestamp",
                                    duplicates="error")


def movielens_titles(path: Path) -> pd.Series:
    """Titles by movie id: ``movies.dat`` (``MovieID::Title::Genres``, Latin-1 in ML-1M) or
    ``movies.csv`` (``movieId,title,genres``, UTF-8, titles with commas quoted)."""
    path = Path(path)
    if path.suffix == ".csv":
        df = pd.read_csv(path, usecols=["movieId", "title"])
        return df.set_index("movieId")["title"]
    text = path.read_bytes().decode("latin-1")
    rows = [line.split("::")[:2] for line in text.splitlines() if line]
    return pd.Series([t for _, t in rows], index=pd.Index([int(i) for i, _ in rows], name="item"),
                     name="title")


def _artist(mbid: pd.Series, name: pd.Series) -> pd.Series:
    """The artist's MusicBrainz id, or ``"name:<artist name>"`` where the id is empty (a
    fifth of Last.fm 1K's plays have none)."""
    return mbid.where(mbid != "", "name:" + name)


def _aggregate(frames: list[pd.DataFrame], how: dict) -> pd.DataFrame:
    out = pd.concat(frames, ignore_index=True)
    return out.groupby(["user", "item"], sort=False, as_index=False).agg(how)


def lastfm_1k(path: Path) -> Interactions:
    """Last.fm 1K (Celma 2010) ``userid-timestamp-artid-artname-traid-traname.tsv``: one line
    per play, tab-separated, no header, no quoting (names hold quotes), ISO-8601 UTC times,
    empty MusicBrainz ids. Aggregated to user x artist: value = number of plays, timestamp =
    the latest play. Lines with a wrong number of fields are skipped and counted."""
    frames, bad = [], 0
    reader = pd.read_csv(path, sep="\t", header=None, quoting=csv.QUOTE_NONE, dtype=str,
                         names=["user", "time", "artist_id", "artist", "track_id", "track"],
                         usecols=[0, 1, 2, 3], keep_default_na=False, on_bad_lines="skip",
                         encoding="utf-8", encoding_errors="replace", chunksize=CHUNK_ROWS)
    for chunk in reader:
        times = pd.to_datetime(chunk["time"], utc=True, errors="coerce")
        bad += int(times.isna().sum())
        chunk = pd.DataFrame({"user": chunk["user"],
                              "item": _artist(chunk["artist_id"], chunk["artist"]),
                              "plays": 1.0, "timestamp": times}).dropna(subset=["timestamp"])
        frames.append(_aggregate([chunk], {"plays": "sum", "timestamp": "max"}))
    if bad:
        logger.warning("%s: %d lines without a valid timestamp skipped", path, bad)
    df = _aggregate(frames, {"plays": "sum", "timestamp": "max"})
    return Interactions.from_pandas(df, "user", "item", "plays", "timestamp",
                                    duplicates="error")


def lastfm_360k(path: Path) -> Interactions:
    """Last.fm 360K ``usersha1-artmbid-artname-plays.tsv``: ``user-sha1 \\t artist-mbid \\t
    artist-name \\t plays``, no header, no quoting, empty mbids. User x artist play counts
    (an artist listed twice under one id is summed)."""
    frames = []
    reader = pd.read_csv(path, sep="\t", header=None, quoting=csv.QUOTE_NONE,
                         names=["user", "artist_id", "artist", "plays"],
                         dtype={"user": str, "artist_id": str, "artist": str},
                         keep_default_na=False, on_bad_lines="skip", encoding="utf-8",
                         encoding_errors="replace", chunksize=CHUNK_ROWS)
    for chunk in reader:
        plays = pd.to_numeric(chunk["plays"], errors="coerce")
        chunk = pd.DataFrame({"user": chunk["user"],
                              "item": _artist(chunk["artist_id"], chunk["artist"]),
                              "plays": plays}).dropna(subset=["plays"])
        frames.append(_aggregate([chunk], {"plays": "sum"}))
    df = _aggregate(frames, {"plays": "sum"})
    return Interactions.from_pandas(df[df["plays"] > 0], "user", "item", "plays",
                                    duplicates="error")


def msd_triplets(path: Path) -> Interactions:
    """Echo Nest Taste Profile ``train_triplets.txt``: ``user \\t song \\t play count``, no
    header (the Million Song Dataset's user data)."""
    df = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "plays"],
                     dtype={"user": str, "item": str, "plays": np.float64},
                     quoting=csv.QUOTE_NONE)
    return Interactions.from_pandas(df, "user", "item", "plays", duplicates="sum")


def amazon_2018(path: Path) -> Interactions:
    """Amazon Review Data 2018 (Ni et al., EMNLP 2019) 5-core ``<Category>_5.json.gz``: one
    JSON object per line; ``reviewerID``, ``asin``, ``overall`` (1-5) and ``unixReviewTime``
    are kept. The files repeat some reviews: a (user, item) pair keeps its latest rating."""
    users, items, ratings, times = [], [], [], []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                review = json.loads(line)
                users.append(review["reviewerID"])
                items.append(review["asin"])
                ratings.append(float(review["overall"]))
                times.append(int(review["unixReviewTime"]))
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path}, line {number}: not a review record ({err!r})") \
                    from err
    df = pd.DataFrame({"user": users, "item": items, "rating": ratings, "timestamp": times})
    return Interactions.from_pandas(df, "user", "item", "rating", "timestamp",
                                    duplicates="last")


def amazon_2023(path: Path) -> Interactions:
    """Amazon Reviews 2023 (Hou et al., 2024) benchmark 5-core ``rating_only/<Category>.csv
    .gz``: ``user_id,parent_asin,rating,timestamp`` with a header, timestamps in
    milliseconds (stored as seconds). A repeated pair keeps its latest rating."""
    df = pd.read_csv(path, dtype={"user_id": str, "parent_asin": str, "rating": np.float64,
                                  "timestamp": np.int64})
    expected = ["user_id", "parent_asin", "rating", "timestamp"]
    if list(df.columns) != expected:
        raise ValueError(f"{path}: expected the columns {expected}, got {list(df.columns)}")
    df["timestamp"] //= 1000
    return Interactions.from_pandas(df, "user_id", "parent_asin", "rating", "timestamp",
                                    duplicates="last")


def book_crossing(path: Path, implicit: bool = False) -> Interactions:
    """Book-Crossing (Ziegler et al., WWW 2005) ``BX-Book-Ratings.csv``: Latin-1, ``;``-
    separated, every field in double quotes (backslash-escaped inside), header
    ``"User-ID";"ISBN";"Book-Rating"``. ISBNs stay strings (leading zeros, ``X``). Ratings
    1-10 are explicit, 0 marks an implicit interaction: ``implicit=False`` keeps the explicit
    ratings, ``implicit=True`` every interaction with value 1."""
    df = pd.read_csv(path, sep=";", quotechar='"', escapechar="\\", encoding="latin-1",
                     dtype=str, keep_default_na=False)
    expected = ["User-ID", "ISBN", "Book-Rating"]
    if list(df.columns) != expected:
        raise ValueError(f"{path}: expected the columns {expected}, got {list(df.columns)}")
    df["User-ID"] = df["User-ID"].astype(np.int64)
    df["Book-Rating"] = df["Book-Rating"].astype(np.float64)
    if implicit:
        df["Book-Rating"] = 1.0
    else:
        df = df[df["Book-Rating"] > 0]
    return Interactions.from_pandas(df, "User-ID", "ISBN", "Book-Rating", duplicates="max")


def citeulike(path: Path) -> Interactions:
    """CiteULike-a (Wang & Blei, KDD 2011) ``users.dat``: line ``u`` is user ``u``'s library,
    ``<count> <article> <article> ...`` with 0-based article ids; the count is checked."""
    rows, cols = [], []
    for number, line in enumerate(Path(path).read_text().splitlines()):
        fields = line.split()
        if not fields:
            raise ValueError(f"{path}, line {number + 1}: empty (every user has a count)")
        count, items = int(fields[0]), fields[1:]
        if count != len(items):
            raise ValueError(f"{path}, line {number + 1}: announces {count} articles, lists "
                             f"{len(items)}")
        rows.extend([number] * count)
        cols.extend(map(int, items))
    df = pd.DataFrame({"user": rows, "item": cols})
    return Interactions.from_pandas(df, "user", "item", duplicates="error")


def read_lists(path: Path) -> list[list[int]]:
    """Per-user item lists from ``uid item item ...`` lines or a JSON list of lists."""
    path = Path(path)
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


def split_from_lists(lists: dict[str, list[list[int]]]) -> Split:
    """A published split (NGCF / LightGCN / LCFN layout) over one id space: ids 0..n-1."""
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


def ml100k(path: Path, users: IdMap | None = None, items: IdMap | None = None) -> Interactions:
    """MovieLens 100K ``u.data`` / ``uN.base`` / ``uN.test``: tab-separated ``user item rating
    timestamp``, no header."""
    df = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
    return Interactions.from_pandas(df, "user", "item", "rating", "timestamp",
                                    duplicates="error", users=users, items=items)


def hetrec_artists(path: Path) -> Interactions:
    """Last.fm HetRec 2011 ``user_artists.dat``: tab-separated ``userID artistID weight``
    (the published file has a header line; the shared copy has it removed)."""
    with open(path, "rb") as fh:
        header = 1 if fh.readline().lower().startswith(b"userid") else 0
    df = pd.read_csv(path, sep="\t", header=None, names=["user", "item", "plays"],
                     skiprows=header)
    return Interactions.from_pandas(df, "user", "item", "plays")
