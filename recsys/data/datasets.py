"""Real public data sets: a catalogue, a local cache, downloads from the official homes.

``load(name)`` looks for the files under ``data_home`` (argument, else ``$RECSYS_DATA_HOME``,
else ``~/.cache/recsys``), in the data set's folder. Missing files are downloaded from the
official URL (``download=True``; ``$RECSYS_DATA_MIRROR`` for a mirror), checked against the
published checksum and installed atomically (:mod:`recsys.data.download`); offline, the error
says which files to put where. Each file is parsed from its exact published format
(:mod:`recsys.data.formats`). ``datasets()`` lists the catalogue: source, size, licence.

Amazon category files are named ``amazon-2018-<category>`` and ``amazon-2023-<category>``
(the category in lower case, ``_`` as ``-``: ``amazon-2023-video-games``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from recsys.data import formats
from recsys.data.download import Source, install, verify_folder
from recsys.data.interactions import Interactions
from recsys.data.splits import Split

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataSet:
    """One catalogue entry.

    ``sources``: the layouts the files may have on disk (the first is what a download
    produces); ``read(folder, source)`` parses them; ``threshold``: the rating from which an
    interaction counts as positive by default (None: every stored interaction);
    ``split``: whether the publisher ships a train/test split (``load`` returns a ``Split``).
    """

    name: str
    folder: str
    title: str
    homepage: str
    licence: str
    size: str
    sources: tuple[Source, ...]
    read: Callable[[Path, Source], Interactions | Split]
    threshold: float | None = None
    split: bool = False
    titles: str | None = None  # file of item titles, for item_titles()


def _strip_header(name: str, path: Path) -> None:
    """HetRec's published ``user_artists.dat`` starts with a header line that the shared copy
    (whose checksum is pinned) has not."""
    with open(path, "rb") as fh:
        first = fh.readline()
        rest = fh.read()
    if first.lower().startswith(b"userid"):
        path.write_bytes(rest)


def _one(reader: Callable[[Path], Interactions], file: str):
    return lambda folder, source: reader(folder / file)


def _lists(folder: Path, source: Source) -> Split:
    files = sorted(source.files, key=_part_order)
    parts = ("train", "validation", "test") if len(files) == 3 else ("train", "test")
    return formats.split_from_lists({part: formats.read_lists(folder / f)
                                     for part, f in zip(parts, files)})


def _part_order(file_name: str) -> int:
    return 0 if file_name.startswith("train") else 1 if file_name.startswith("valid") else 2


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
ML100K_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
GROUPLENS = "https://files.grouplens.org/datasets/"
MOVIELENS_LICENCE = ("GroupLens terms: research use, no redistribution without permission, "
                     "cite Harper & Konstan, TiiS 2015")
LIGHTGCN = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/"
AMAZON_2018 = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFilesSmall/"
AMAZON_2023 = ("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/benchmark/5core/"
               "rating_only/")
#: The categories with a 5-core file (Ni et al. 2019; Hou et al. 2024)
AMAZON_2018_CATEGORIES = (
    "AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
    "Books", "CDs_and_Vinyl", "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry",
    "Digital_Music", "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food",
    "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store", "Luxury_Beauty",
    "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments", "Office_Products",
    "Patio_Lawn_and_Garden", "Pet_Supplies", "Prime_Pantry", "Software",
    "Sports_and_Outdoors", "Tools_and_Home_Improvement", "Toys_and_Games", "Video_Games")
AMAZON_2023_CATEGORIES = (
    "All_Beauty", "Amazon_Fashion", "Appliances", "Arts_Crafts_and_Sewing", "Automotive",
    "Baby_Products", "Beauty_and_Personal_Care", "Books", "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music",
    "Electronics", "Gift_Cards", "Grocery_and_Gourmet_Food", "Handmade_Products",
    "Health_and_Household", "Health_and_Personal_Care", "Home_and_Kitchen",
    "Industrial_and_Scientific", "Kindle_Store", "Magazine_Subscriptions", "Movies_and_TV",
    "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden", "Pet_Supplies",
    "Software", "Sports_and_Outdoors", "Subscription_Boxes", "Tools_and_Home_Improvement",
    "Toys_and_Games", "Video_Games")


def _movielens(key: str, folder: str, title: str, size: str, archive_checksum: str | None,
               file: str, checksum: str | None = None, titles: str | None = None) -> DataSet:
    reader = formats.movielens_dat if file.endswith(".dat") else formats.movielens_csv
    files = {file: checksum} | ({titles: None} if titles else {})
    return DataSet(
        key, folder, title, f"https://grouplens.org/datasets/movielens/{key[3:]}/",
        MOVIELENS_LICENCE, size,
        (Source(f"{GROUPLENS}movielens/{key}.zip", files, archive="zip",
                archive_checksum=archive_checksum),),
        _one(reader, file), threshold=4.0, titles=titles)


def _lightgcn(key: str, folder: str, title: str, size: str, licence: str) -> DataSet:
    return DataSet(key, folder, title,
                   f"https://github.com/gusye1234/LightGCN-PyTorch (data/{folder.split('_')[0]})",
                   licence, size,
                   (Source(f"{LIGHTGCN}{folder.split('_')[0]}/",
                           {"train.txt": None, "test.txt": None}),),
                   _lists, split=True)


def _amazon(year: int, category: str) -> DataSet:
    slug = category.lower().replace("_", "-")
    if year == 2018:
        file, url, reader = f"{category}_5.json.gz", AMAZON_2018, formats.amazon_2018
        title = f"Amazon Review Data 2018, {category} 5-core (Ni et al., EMNLP 2019)"
        home = "https://cseweb.ucsd.edu/~jmcauley/datasets/amazon_v2/"
    else:
        file, url, reader = f"{category}.csv.gz", AMAZON_2023, formats.amazon_2023
        title = f"Amazon Reviews 2023, {category} 5-core benchmark (Hou et al., 2024)"
        home = "https://amazon-reviews-2023.github.io/"
    return DataSet(f"amazon-{year}-{slug}", f"amazon_{year}/{category}", title, home,
                   "research use only (McAuley lab terms); reviews remain Amazon's",
                   "per category (see the homepage)",
                   (Source(url, {file: None}),), _one(reader, file), threshold=4.0)


def _lastfm(size_key: str, title: str, size: str, file: str, reader) -> DataSet:
    """Òscar Celma's Last.fm sets: one tar.gz each, from the MTG (UPF) server."""
    key = f"lastfm-{size_key.lower()}"
    return DataSet(key, key.replace("-", "_"), title,
                   f"http://ocelma.net/MusicRecommendationDataset/lastfm-{size_key}.html",
                   "non-commercial use, distributed with Last.fm's permission; cite Celma 2010",
                   size,
                   (Source("http://mtg.upf.edu/static/datasets/last.fm/lastfm-dataset-"
                           f"{size_key}.tar.gz", {file: None}, archive="tar"),),
                   _one(reader, file))


def _book_crossing(key: str, title: str, size: str, implicit: bool) -> DataSet:
    """One archive, two readings: the explicit ratings, or every interaction."""
    home = "http://www2.informatik.uni-freiburg.de/~cziegler/BX/"
    return DataSet(key, "book_crossing", title, home,
                   "free for research use; cite Ziegler et al., WWW 2005", size,
                   (Source(home + "BX-CSV-Dump.zip", {"BX-Book-Ratings.csv": None},
                           archive="zip"),),
                   _one(partial(formats.book_crossing, implicit=implicit),
                        "BX-Book-Ratings.csv"))


_CATALOGUE: list[DataSet] = [
    DataSet("ml-100k", "ml-100k", "MovieLens 100K", "https://grouplens.org/datasets/movielens/100k/",
            MOVIELENS_LICENCE, "943 users, 1,682 items, 100,000 ratings 1-5",
            (Source(f"{GROUPLENS}movielens/ml-100k.zip",
                    {k: f"sha256:{v}" for k, v in _ML100K_FILES.items()}, archive="zip"),),
            lambda folder, source: formats.ml100k(folder / "u.data"), threshold=4.0),
    _movielens("ml-1m", "ml-1m", "MovieLens 1M", "6,040 users, 3,706 items, 1,000,209 ratings",
               # TensorFlow Datasets' record of the GroupLens archive (url_checksums)
               "sha256:a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
               "ratings.dat", titles="movies.dat"),
    _movielens("ml-10m", "ml-10m", "MovieLens 10M",
               "69,878 users, 10,677 items, 10,000,054 half-star ratings",
               "md5:ce571fd55effeba0271552578f2648bd",  # GroupLens' ml-10m.zip.md5
               "ratings.dat", titles="movies.dat"),
    _movielens("ml-20m", "ml-20m", "MovieLens 20M",
               "138,493 users, 26,744 items, 20,000,263 ratings",
               "sha256:96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
               "ratings.csv", titles="movies.csv"),
    _movielens("ml-25m", "ml-25m", "MovieLens 25M",
               "162,541 users, 59,047 items, 25,000,095 ratings",
               "sha256:8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
               "ratings.csv", titles="movies.csv"),
    _movielens("ml-32m", "ml-32m", "MovieLens 32M",
               "200,948 users, 84,432 items, 32,000,204 ratings", None, "ratings.csv",
               # the archive's own checksums.txt (MD5 per member)
               checksum="md5:cf12b74f9ad4b94a011f079e26d4270a", titles="movies.csv"),
    DataSet("ml-1m-lcfn", "ml-1m_lcfn_m1",
            "MovieLens 1M, 20-core implicit split of LCFN / UltraGCN / SimpleX",
            "https://github.com/reczoo/Datasets (Movielens1M_m1, the LCFN split)",
            MOVIELENS_LICENCE, "6,022 users, 3,043 items; 796,244 / 99,455 / 99,455",
            (
                # RecZoo's published files, with the md5 sums its README publishes
                Source("https://huggingface.co/datasets/reczoo/Movielens1M_m1/resolve/main/",
                       {"train_data.json": "md5:4229bc5369f943918103daf7fd92e920",
                        "validation_data.json": "md5:60be3b377d39806f80a43e37c94449f6",
                        "test_data.json": "md5:cdd3ad819512cb87dad2f098c8437df2"}),
                # the same split converted to `uid item item ...` lines (UltraGCN's layout)
                Source("https://huggingface.co/datasets/reczoo/Movielens1M_m1/resolve/main/",
                       {"train.txt": "sha256:f088986b22f14f17136f9c4ef6f1269201f83dfb9ce259f"
                                     "1fd4ed46d72a92599",
                        "test.txt": "sha256:7ca364f7f9321417b521745833b12719a2feb13253bccece2"
                                    "c04d5afe9fc3e15",
                        "validation_data.json": "sha256:dbbd432c427da59d3a991a4b388a4945676fb"
                                                "8e81b104958a2dbccf2ba6c6950"}),
            ), _lists, split=True),
    DataSet("gowalla-lightgcn", "gowalla_lightgcn", "Gowalla check-ins, the NGCF / LightGCN split",
            "https://github.com/gusye1234/LightGCN-PyTorch (data/gowalla)",
            "SNAP loc-gowalla (research use); split published with NGCF / LightGCN",
            "29,858 users, 40,981 items; 810,128 / 217,242",
            (Source(f"{LIGHTGCN}gowalla/",
                    {"train.txt": "sha256:7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44"
                                  "e3f13cc3e62",
                     "test.txt": "sha256:099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850"
                                 "c83acf57be3"}),),
            _lists, split=True),
    _lightgcn("yelp2018-lightgcn", "yelp2018_lightgcn", "Yelp2018, the NGCF / LightGCN split",
              "31,668 users, 38,048 items; 1,237,259 / 324,147",
              "Yelp Open Dataset terms (non-commercial, academic use); split published with "
              "NGCF / LightGCN"),
    _lightgcn("amazon-book-lightgcn", "amazon-book_lightgcn",
              "Amazon-Book (2014 reviews), the NGCF / LightGCN split",
              "52,643 users, 91,599 items; 2,380,730 / 603,378",
              "Amazon review data terms (research use); split published with NGCF / LightGCN"),
    DataSet("lastfm-hetrec", "lastfm_hetrec2011", "Last.fm HetRec 2011 artist play counts",
            "https://grouplens.org/datasets/hetrec-2011/",
            "HetRec 2011 terms: research use, cite Cantador et al. 2011",
            "1,892 users, 17,632 artists, 92,834 user-artist counts",
            (Source(f"{GROUPLENS}hetrec2011/hetrec2011-lastfm-2k.zip",
                    {"user_artists.dat": "sha256:3e496861ec29aca30cc17d69e4b006b160af693e131cd"
                                         "09b48ab31c271fca04a"},
                    archive="zip", fix=_strip_header),),
            _one(formats.hetrec_artists, "user_artists.dat")),
    _lastfm("1K", "Last.fm 1K listening histories (Celma 2010)",
            "992 users, ~177,000 artists, 19,150,868 plays (aggregated to user x artist)",
            "userid-timestamp-artid-artname-traid-traname.tsv", formats.lastfm_1k),
    _lastfm("360K", "Last.fm 360K user x artist play counts (Celma 2010)",
            "359,347 users, ~290,000 artists, 17,559,530 lines",
            "usersha1-artmbid-artname-plays.tsv", formats.lastfm_360k),
    DataSet("msd-taste", "msd_taste_profile",
            "Million Song Dataset, Echo Nest Taste Profile subset (Bertin-Mahieux et al. 2011)",
            "http://millionsongdataset.com/tasteprofile/",
            "research use (MSD terms); cite Bertin-Mahieux et al., ISMIR 2011",
            "1,019,318 users, 384,546 songs, 48,373,586 play counts",
            (Source("http://millionsongdataset.com/sites/default/files/challenge/"
                    "train_triplets.txt.zip", {"train_triplets.txt": None}, archive="zip"),),
            _one(formats.msd_triplets, "train_triplets.txt")),
    _book_crossing("book-crossing", "Book-Crossing explicit ratings (Ziegler et al. 2005)",
                   "77,805 users, 185,973 books, 433,671 ratings 1-10", implicit=False),
    _book_crossing("book-crossing-implicit",
                   "Book-Crossing, every interaction (explicit ratings and implicit 0s) as 1",
                   "105,283 users, 340,556 books, 1,149,780 interactions", implicit=True),
    DataSet("citeulike-a", "citeulike_a", "CiteULike-a user libraries (Wang & Blei, KDD 2011)",
            "https://github.com/js05212/citeulike-a",
            "research use; cite Wang & Blei, KDD 2011",
            "5,551 users, 16,980 articles, 204,986 user-article pairs",
            (Source("https://raw.githubusercontent.com/js05212/citeulike-a/master/",
                    {"users.dat": None}),),
            _one(formats.citeulike, "users.dat")),
    *(_amazon(2018, c) for c in AMAZON_2018_CATEGORIES),
    *(_amazon(2023, c) for c in AMAZON_2023_CATEGORIES),
]
#: name -> catalogue entry
DATASETS: dict[str, DataSet] = {d.name: d for d in _CATALOGUE}


def data_home(data_home: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``data_home``, else ``$RECSYS_DATA_HOME``, else ``~/.cache/recsys``."""
    if data_home is None:
        data_home = os.environ.get("RECSYS_DATA_HOME") or Path.home() / ".cache" / "recsys"
    return Path(data_home).expanduser()


def info(name: str) -> DataSet:
    """The catalogue entry of ``name``; ``ValueError`` listing the names if unknown."""
    if name not in DATASETS:
        amazon = sum(n.startswith("amazon-20") for n in DATASETS)
        known = ", ".join(n for n in DATASETS if not n.startswith("amazon-20"))
        raise ValueError(f"unknown data set {name!r}; known: {known}, and {amazon} Amazon "
                         "categories (amazon-2018-<category>, amazon-2023-<category>; see "
                         "recsys.datasets.datasets())")
    return DATASETS[name]


def fetch(name: str, data_home_: str | os.PathLike | None = None, download: bool = True,
          show_progress: bool | None = None) -> tuple[Path, Source]:
    """Make sure a data set's files are in the cache; returns its folder and layout."""
    spec = info(name)
    folder = data_home(data_home_) / spec.folder
    for source in spec.sources:
        if source.present(folder):
            return folder, source
    source = spec.sources[0]
    where = (f"put the files ({', '.join(source.files)}) into {folder}, or point "
             f"RECSYS_DATA_HOME (or data_home=) at a folder holding {spec.folder}/")
    if not download:
        raise FileNotFoundError(f"data set {name!r} is not in {folder} and download=False: "
                                f"{where}. Source: {spec.homepage}")
    try:
        install(source, folder, show_progress)
    except OSError as err:  # URLError, HTTP errors, interrupted downloads, checksum failures
        raise FileNotFoundError(
            f"data set {name!r} is not in {folder} and could not be downloaded from "
            f"{source.url} ({err}). To use it offline, {where}. Source: {spec.homepage}"
        ) from err
    return folder, source


def load(name: str, split: str | None = None, data_home: str | os.PathLike | None = None,
         download: bool = True, show_progress: bool | None = None) -> Interactions | Split:
    """Load a real data set (``datasets()`` lists them with their sources and licences).

    Parameters
    ----------
    name : str
        A catalogue name. Rating logs (MovieLens, Amazon, Book-Crossing), count logs (Last.fm,
        the Taste Profile), libraries (CiteULike-a) are ``Interactions`` in raw ids; published
        splits (``ml-1m-lcfn``: train, validation, test; ``gowalla-lightgcn``,
        ``yelp2018-lightgcn``, ``amazon-book-lightgcn``: train, test) are a ``Split``.
        ``"ml-100k"`` with ``split="u1"`` .. ``"u5"``, ``"ua"``, ``"ub"`` gives the official
        fold as a ``Split``.
    split : str, optional
        Only for ml-100k.
    data_home : path, optional
        Cache folder; defaults to ``$RECSYS_DATA_HOME`` or ``~/.cache/recsys``.
    download : bool
        Download missing files from the official URL (checksum-verified).
    show_progress : bool, optional
        Download progress bars (default: when stderr is a terminal).

    All parts of a split share one user and one item index space.
    """
    folder, source = fetch(name, data_home, download, show_progress)
    if name == "ml-100k":
        return _load_ml100k(folder, split)
    if split is not None:
        raise ValueError(f"split= applies to ml-100k only; {name} has "
                         f"{'one predefined split' if DATASETS[name].split else 'no split'}")
    return DATASETS[name].read(folder, source)


def _load_ml100k(folder: Path, split: str | None) -> Interactions | Split:
    full = formats.ml100k(folder / "u.data")
    if split is None:
        return full
    if split not in ML100K_SPLITS:
        raise ValueError(f"ml-100k split must be one of {ML100K_SPLITS}, got {split!r}")
    return Split(train=formats.ml100k(folder / f"{split}.base", full.users, full.items),
                 test=formats.ml100k(folder / f"{split}.test", full.users, full.items))


def item_titles(name: str = "ml-100k", data_home: str | os.PathLike | None = None,
                download: bool = True) -> pd.Series:
    """Movie titles of a MovieLens data set, indexed by raw item id."""
    if name == "ml-100k":
        folder, _ = fetch(name, data_home, download)
        df = pd.read_csv(folder / "u.item", sep="|", header=None, encoding="latin-1",
                         usecols=[0, 1], names=["item", "title"])
        return df.set_index("item")["title"]
    spec = info(name)
    if spec.titles is None:
        raise ValueError(f"item titles are available for the MovieLens sets only, not {name}")
    folder, _ = fetch(name, data_home, download)
    return formats.movielens_titles(folder / spec.titles)


def verify(name: str, data_home: str | os.PathLike | None = None) -> None:
    """Check the cached files of ``name`` against their published checksums (or the SHA-256
    recorded at download where none is published)."""
    folder, source = fetch(name, data_home, download=False)
    verify_folder(source, folder)


def datasets() -> pd.DataFrame:
    """The catalogue: name, title, folder, size, licence, homepage, official URL, and whether
    its checksum is published (``pinned``) or recorded at first download."""
    rows = []
    for d in _CATALOGUE:
        source = d.sources[0]
        pinned = source.archive_checksum is not None or \
            any(c is not None for c in source.checksums.values())
        rows.append({"name": d.name, "title": d.title, "folder": d.folder, "size": d.size,
                     "licence": d.licence, "homepage": d.homepage, "url": source.url,
                     "pinned": pinned, "split": d.split, "threshold": d.threshold})
    return pd.DataFrame(rows)


__all__ = ["DATASETS", "DataSet", "data_home", "datasets", "fetch", "info", "item_titles",
           "load", "verify"]
