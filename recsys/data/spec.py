"""``DataSpec``: where a job's interactions come from and how they are split.

One small, serialisable description serves every command, the TOML job files and the saved
models (which keep it as their training-data description): either a built-in data set
(``dataset="ml-100k"``) or the user's own log (``path`` to a CSV, TSV, Parquet file, folder
of Parquet parts, or a ``uid item item ...`` lists file), its columns, the positive
threshold, the duplicate policy, and a split protocol:

``predefined``
    the data set's own split (ml-100k ``u1``, the LCFN / LightGCN files); the default for
    built-in data sets.
``random``
    a seeded ``test_fraction`` of each user's interactions (the default for a log).
``temporal``
    one global time cut: the latest ``test_fraction`` of the interactions, or everything at
    or after ``cutoff`` (a date or Unix seconds), is test.
``leave-last-k``
    each user's ``leave_k`` latest interactions are test (needs timestamps).
``users``
    held-out users (``test_users`` of them): never trained on, folded in at test time from
    the first part of their history, evaluated on the rest (``test_fraction`` of it).
``files``
    predefined ``train`` / ``validation`` / ``test`` files of the same format.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.datasets import DATASETS, info
from recsys.data.idmap import IdMap
from recsys.data.interactions import Interactions
from recsys.data.splits import (
    Split,
    leave_k_out,
    random_holdout,
    strong_generalization,
    temporal_split,
)

PROTOCOLS = ("predefined", "random", "temporal", "leave-last-k", "users", "files")
FORMATS = ("csv", "tsv", "parquet", "lists")

#: Default split and positive threshold of the built-in data sets.
#: Per built-in data set: the default positive threshold (and ml-100k's default fold),
#: from the catalogue (:data:`recsys.data.datasets.DATASETS`)
DATASET_DEFAULTS: dict[str, dict] = {
    name: {"threshold": entry.threshold, **({"fold": "u1"} if name == "ml-100k" else {})}
    for name, entry in DATASETS.items()}


@dataclass(frozen=True)
class DataSpec:
    """A data source and its split protocol (see the module docstring).

    Parameters
    ----------
    dataset : str, optional
        A built-in data set (``recsys.datasets.load``); or give ``path``.
    path : str, optional
        The user's log: CSV/TSV/Parquet file, folder of Parquet parts, or lists file.
    format : {"csv", "tsv", "parquet", "lists"}, optional
        Default: from the extension (a folder is Parquet; ``.txt`` is lists).
    sep : str, optional
        CSV separator (default ``,``; ``\\t`` for ``.tsv``).
    user, item, value, timestamp : str
        Column names (value and timestamp optional; without a value every row counts 1).
    threshold : float, optional
        Values ``>= threshold`` are positives (what implicit models fit and what ranking is
        evaluated on); default: every stored value (ml-100k: 4).
    duplicates : {"sum", "last", "max", "error"}
        Repeated (user, item) pairs, as in ``Interactions.from_pandas``.
    split : str, optional
        One of :data:`PROTOCOLS`; default ``predefined`` for a data set, ``random`` for a log.
    fold : str, optional
        ml-100k's official fold for ``predefined`` (``u1`` .. ``u5``, ``ua``, ``ub``).
    test_fraction, leave_k, test_users, cutoff :
        Protocol parameters (``random``/``temporal``/``users``; ``leave-last-k``; ``users``;
        ``temporal``).
    train, validation, test : str, optional
        Files of the ``files`` protocol (validation optional).
    seed : int
        Seeds the random protocols.
    data_home : str, optional
        Cache of the built-in data sets.
    """

    dataset: str | None = None
    path: str | None = None
    format: str | None = None
    sep: str | None = None
    user: str = "user"
    item: str = "item"
    value: str | None = None
    timestamp: str | None = None
    threshold: float | None = None
    duplicates: str = "sum"
    split: str | None = None
    fold: str | None = None
    test_fraction: float = 0.2
    leave_k: int = 1
    test_users: float = 0.2
    cutoff: str | int | None = None
    train: str | None = None
    validation: str | None = None
    test: str | None = None
    seed: int = 0
    data_home: str | None = None

    def __post_init__(self):
        sources = [self.dataset is not None, self.path is not None, self.train is not None]
        if sum(sources) != 1:
            raise ValueError("describe the data with exactly one of: a data set name "
                             "(dataset), a log file (path), or train/test files (split = "
                             "'files' with train and test)")
        protocol = self.protocol
        if protocol not in PROTOCOLS:
            raise ValueError(f"split must be one of {PROTOCOLS}, got {protocol!r}")
        if (protocol == "files") != (self.train is not None):
            raise ValueError("split = 'files' takes train and test files (and no path)")
        if protocol == "files" and self.test is None:
            raise ValueError("split = 'files' needs a test file")
        if protocol == "predefined" and self.dataset is None:
            raise ValueError("split = 'predefined' applies to built-in data sets; a log "
                             "takes random, temporal, leave-last-k, users or files")
        if self.dataset is not None and self.dataset not in DATASET_DEFAULTS:
            info(self.dataset)  # raises, listing the catalogue
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {self.format!r}")
        if self.fold is not None and self.dataset != "ml-100k":
            raise ValueError("fold applies to ml-100k only")
        for name in ("test_fraction", "test_users"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                    not 0 < value < 1:
                raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
        for name in ("leave_k", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
                    value < (1 if name == "leave_k" else 0):
                least = "a positive" if name == "leave_k" else "a nonnegative"
                raise ValueError(f"{name} must be {least} integer, got {value!r}")
        if self.threshold is not None and (isinstance(self.threshold, bool) or not isinstance(
                self.threshold, numbers.Real) or not np.isfinite(self.threshold)):
            raise ValueError(f"threshold must be a finite number, got {self.threshold!r}")

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataSpec:
        """From a mapping (a TOML table, the CLI flags); unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown data setting {', '.join(unknown)}; valid: "
                             f"{sorted(names)}")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        """The settings that differ from the defaults (JSON values)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != f.default and f.name != "data_home"}

    def replace(self, **changes) -> DataSpec:
        return dataclasses.replace(self, **changes)

    @property
    def protocol(self) -> str:
        if self.split is not None:
            return self.split
        return "predefined" if self.dataset is not None else "files" \
            if self.train is not None else "random"

    @property
    def name(self) -> str:
        """A short name for studies and runs: the data set, or the log file's stem."""
        if self.dataset is not None:
            return self.dataset
        return Path(self.path or self.train).stem.replace(".", "-")

    @property
    def positive_threshold(self) -> float | None:
        if self.threshold is not None:
            return float(self.threshold)
        return DATASET_DEFAULTS.get(self.dataset or "", {}).get("threshold")

    # -- reading ----------------------------------------------------------------------------
    def read(self) -> Interactions:
        """Every interaction of the source (all parts of a predefined split, merged)."""
        if self.dataset is not None:
            from recsys.datasets import load

            data = load(self.dataset, data_home=self.data_home)
            return data if isinstance(data, Interactions) else _merge(data)
        if self.protocol == "files":
            return _merge(self.split_data())
        return self._interactions(self._frame(self.path))

    def frame(self) -> pd.DataFrame:
        """The log file as read, before ids are mapped (its duplicates still in)."""
        if self.path is None:
            raise ValueError("frame() reads a log file (path); this describes "
                             f"{self.dataset or 'train/test files'}")
        return self._frame(self.path)

    def split_data(self, data: Interactions | None = None) -> Split:
        """The parts under the chosen protocol, all over one id space (``data``: what
        :meth:`read` returned, when the caller has it already; not read twice)."""
        protocol = self.protocol
        if protocol == "predefined":
            return self._predefined()
        if protocol == "files":
            frames = {part: self._frame(getattr(self, part))
                      for part in ("train", "validation", "test") if getattr(self, part)}
            both = pd.concat(list(frames.values()), ignore_index=True)
            users = _id_map(both[self.user])
            items = _id_map(both[self.item])
            return Split(**{part: self._interactions(frame, users, items)
                            for part, frame in frames.items()})
        data = self.read() if data is None else data
        if protocol == "random":
            return random_holdout(data, self.test_fraction, random_state=self.seed)
        if protocol == "temporal":
            return temporal_split(data, None if self.cutoff is not None else
                                  self.test_fraction, _cutoff(self.cutoff))
        if protocol == "leave-last-k":
            if data.timestamps is None:
                raise ValueError("split = 'leave-last-k' needs a timestamp column")
            return leave_k_out(data, self.leave_k, order="latest", random_state=self.seed)
        return _users_last(strong_generalization(
            data, self.test_users, self.test_fraction,
            order="latest" if data.timestamps is not None else "random",
            random_state=self.seed))

    def _predefined(self) -> Split:
        from recsys.datasets import load

        fold = self.fold or DATASET_DEFAULTS[self.dataset].get("fold")
        data = load(self.dataset, split=fold, data_home=self.data_home)
        if isinstance(data, Interactions):  # no official split (lastfm-hetrec): seeded 80/20
            data = random_holdout(data, test_fraction=0.2, random_state=self.seed)
        return data

    def _format(self, path: Path) -> str:
        if self.format is not None:
            return self.format
        if path.is_dir() or path.suffix in (".parquet", ".pq"):
            return "parquet"
        if path.suffix in (".tsv", ".tab"):
            return "tsv"
        return "lists" if path.suffix == ".txt" else "csv"

    def _frame(self, path) -> pd.DataFrame:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no such data file: {path}")
        fmt = self._format(path)
        if fmt == "lists":
            return _read_lists(path, self.user, self.item)
        columns = [c for c in (self.user, self.item, self.value, self.timestamp) if c]
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            sep = self.sep or ("\t" if fmt == "tsv" else ",")
            frame = pd.read_csv(path, sep=sep, dtype={self.user: str, self.item: str})
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"{path} has no column {', '.join(map(repr, missing))} (columns: "
                           f"{list(frame.columns)}); name them with user/item/value/timestamp")
        frame = frame[columns]
        if self.timestamp and not (pd.api.types.is_numeric_dtype(frame[self.timestamp]) or
                                   pd.api.types.is_datetime64_any_dtype(frame[self.timestamp])):
            try:  # date strings (ISO 8601, with or without a zone: UTC is assumed)
                frame[self.timestamp] = pd.to_datetime(frame[self.timestamp], utc=True)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"timestamp column {self.timestamp!r} holds values that are "
                                 f"neither numbers nor dates: {exc}") from None
        return frame

    def _interactions(self, frame: pd.DataFrame, users: IdMap | None = None,
                      items: IdMap | None = None) -> Interactions:
        value = self.value if self.value in frame.columns else None
        timestamp = self.timestamp if self.timestamp in frame.columns else None
        return Interactions.from_pandas(frame, self.user, self.item, value, timestamp,
                                        self.duplicates, users=users, items=items)


def _id_map(column: pd.Series) -> IdMap:
    codes, uniques = pd.factorize(column, sort=True)
    return IdMap(np.asarray(uniques))


def _cutoff(cutoff) -> int | None:
    """Unix seconds of a temporal cut given as seconds or as a date string."""
    if cutoff is None or isinstance(cutoff, numbers.Integral):
        return cutoff
    stamp = pd.Timestamp(cutoff)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.timestamp())


def _read_lists(path: Path, user: str, item: str) -> pd.DataFrame:
    """``uid item item ...`` lines (the LightGCN / SimpleX split files) as a (user, item)
    frame of integer ids."""
    users, items = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            ids = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{path}:{number}: a lists file holds integer ids "
                             f"('uid item item ...'), got {line[:60]!r}") from None
        users.extend([ids[0]] * (len(ids) - 1))
        items.extend(ids[1:])
    if not users:
        raise ValueError(f"{path} holds no interactions")
    return pd.DataFrame({user: np.asarray(users, dtype=np.int64),
                         item: np.asarray(items, dtype=np.int64)})


def _merge(split: Split) -> Interactions:
    out = split.train
    for part in (split.validation, split.fold_in, split.test):
        if part is not None:
            out = out + part
    return out


def _reorder_users(data: Interactions, order: np.ndarray, users: IdMap) -> Interactions:
    X = data.matrix[order]
    X.has_sorted_indices = True
    ts = None
    if data.timestamps is not None:
        starts, ends = data.matrix.indptr[order], data.matrix.indptr[order + 1]
        positions = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)]) \
            if order.size else np.zeros(0, np.int64)
        ts = data.timestamps[positions.astype(np.int64)]
    return Interactions(X, users, data.items, ts)


def _users_last(split: Split) -> Split:
    """The held-out users' rows after every training user's, so that a model fitted on the
    first rows folds them in as new users at test time."""
    trained = np.diff(split.train.matrix.indptr) > 0
    order = np.concatenate([np.flatnonzero(trained), np.flatnonzero(~trained)])
    users = IdMap(split.train.users.raw_ids[order])
    return Split(**{name: _reorder_users(part, order, users)
                    for name in ("train", "validation", "test", "fold_in")
                    if (part := getattr(split, name)) is not None})


__all__ = ["DATASET_DEFAULTS", "FORMATS", "PROTOCOLS", "DataSpec"]
