"""``Interactions``: a users x items CSR matrix with its id maps and optional timestamps."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys._ext._csr import coo_order
from recsys._sparse import row_of_values, select_entries  # noqa: F401 (re-exported)
from recsys._validation import as_csr, check_float32_range
from recsys.data.idmap import IdMap

logger = logging.getLogger(__name__)

_DUPLICATES = ("sum", "last", "max", "error")


@dataclass(frozen=True, eq=False)
class Interactions:
    """Interactions as a canonical CSR users x items matrix plus the raw-id maps.

    Attributes
    ----------
    matrix : scipy.sparse.csr_matrix
        ``(n_users, n_items)``, float32 values, int32 sorted indices, no explicit zeros.
    users, items : IdMap
        Raw id of each row / column.
    timestamps : ndarray or None
        One timestamp (int64, e.g. Unix seconds) per stored value, aligned with
        ``matrix.data``.
    """

    matrix: sp.csr_matrix
    users: IdMap
    items: IdMap
    timestamps: np.ndarray | None = None

    def __post_init__(self):
        m = self.matrix
        if m.shape != (len(self.users), len(self.items)):
            raise ValueError(f"matrix shape {m.shape} does not match the id maps "
                             f"({len(self.users)} users, {len(self.items)} items)")
        if self.timestamps is not None and self.timestamps.shape != (m.nnz,):
            raise ValueError("timestamps must hold one value per stored interaction")

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_pandas(cls, df: pd.DataFrame, user: str = "user", item: str = "item",
                    value: str | None = None, timestamp: str | None = None,
                    duplicates: str = "sum", users: IdMap | None = None,
                    items: IdMap | None = None) -> Interactions:
        """Build from a data frame of interactions.

        Parameters
        ----------
        df : DataFrame
        user, item : str
            Columns of raw user / item ids.
        value : str, optional
            Column of values (ratings, counts, weights); 1.0 for every row when omitted.
        timestamp : str, optional
            Column of timestamps (numbers or datetimes, stored as int64).
        duplicates : {"sum", "last", "max", "error"}
            What to do with repeated (user, item) pairs: add the values, keep the latest (by
            timestamp, then by row order), keep the largest, or raise. The merged timestamp is
            the latest one.
        users, items : IdMap, optional
            Existing maps to reuse (so that several splits share one index space); ids absent
            from them raise ``KeyError``. Without them, raw ids are indexed in sorted order.

        Notes
        -----
        Zero values cannot be told apart from "no interaction" in a sparse matrix: they are
        dropped (and logged). Ids must be of one kind per column (all numbers or all strings):
        a column mixing ``7`` and ``"7"`` is refused, since the two would merge or split
        silently. Values must fit in float32 (the matrix's dtype), also after duplicates are
        summed. Timestamps with a time zone are converted to UTC.
        """
        if duplicates not in _DUPLICATES:
            raise ValueError(f"duplicates must be one of {_DUPLICATES}, got {duplicates!r}")
        for col in (user, item, value, timestamp):
            if col is not None and col not in df.columns:
                raise KeyError(f"column {col!r} not in the data frame (columns: "
                               f"{list(df.columns)})")
        if len(df) == 0:
            raise ValueError("the data frame holds no interactions")
        for col in (user, item):
            if df[col].isna().any():
                raise ValueError(f"column {col!r} holds {int(df[col].isna().sum())} missing ids")
        user_map, rows = _codes(df[user], users, user)
        item_map, cols = _codes(df[item], items, item)
        if value is None:
            vals = np.ones(len(df), dtype=np.float64)
        else:
            vals = _numeric(df[value], value)
            check_float32_range(vals, f"column {value!r}")
        ts = None if timestamp is None else _timestamps(df[timestamp])
        return cls._from_coo(rows, cols, vals, ts, duplicates, user_map, item_map)

    @classmethod
    def from_csv(cls, path, user: str = "user", item: str = "item", value: str | None = None,
                 timestamp: str | None = None, duplicates: str = "sum",
                 **read_csv_kwargs) -> Interactions:
        """Read a CSV (any ``pandas.read_csv`` options) and build as :meth:`from_pandas`.

        The user and item columns are read as strings unless ``dtype`` says otherwise, so that
        ids such as ``007`` and ``7`` stay two different ids (pandas would parse both as 7).
        """
        dtype = read_csv_kwargs.pop("dtype", None)
        if dtype is None:
            dtype = {user: str, item: str}
        df = pd.read_csv(path, dtype=dtype, **read_csv_kwargs)
        return cls.from_pandas(df, user, item, value, timestamp, duplicates)

    @classmethod
    def from_parquet(cls, path, user: str = "user", item: str = "item",
                     value: str | None = None, timestamp: str | None = None,
                     duplicates: str = "sum", batch_rows: int = 1 << 20) -> Interactions:
        """Read a Parquet file or a folder of parts (needs pyarrow), streaming it.

        The log is read in record batches of ``batch_rows`` rows, twice: first the distinct
        ids of every batch (then sorted, as :meth:`from_pandas` sorts them), then each batch's
        ids mapped to indices into preallocated index, value and timestamp arrays; no data
        frame of all rows is built, so the peak is a few bytes per row beyond the result.
        The checks and the meaning of ``duplicates`` are :meth:`from_pandas`'s.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        if duplicates not in _DUPLICATES:
            raise ValueError(f"duplicates must be one of {_DUPLICATES}, got {duplicates!r}")
        dataset = ds.dataset(str(Path(path)), format="parquet")
        columns = [c for c in (user, item, value, timestamp) if c is not None]
        missing = [c for c in columns if c not in dataset.schema.names]
        if missing:
            raise KeyError(f"column {missing[0]!r} not in {path} (columns: "
                           f"{dataset.schema.names})")
        n = dataset.count_rows()
        if n == 0:
            raise ValueError(f"{path} holds no interactions")
        def plain(array):  # a dictionary-encoded (categorical) column as its values
            return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array

        maps = {}
        for col in (user, item):
            kind = dataset.schema.field(col).type
            kind = kind.value_type if pa.types.is_dictionary(kind) else kind
            if not (pa.types.is_integer(kind) or pa.types.is_string(kind)
                    or pa.types.is_large_string(kind)):
                raise TypeError(f"id column {col!r} must hold integers or strings, got {kind}")
            distinct = [pc.unique(plain(b.column(0))) for b in
                        dataset.to_batches(columns=[col], batch_size=batch_rows)]
            ids = pc.unique(pa.chunked_array(distinct, type=kind).combine_chunks())
            if ids.null_count:
                raise ValueError(f"column {col!r} holds missing ids")
            maps[col] = ids.take(pc.sort_indices(ids))
        rows, cols = np.empty(n, np.int32), np.empty(n, np.int32)  # index_in's int32
        vals = np.ones(n, np.float64) if value is None else np.empty(n, np.float64)
        ts = None if timestamp is None else np.empty(n, np.int64)
        pos = 0
        for batch in dataset.to_batches(columns=columns, batch_size=batch_rows):
            m = batch.num_rows
            rows[pos:pos + m] = pc.index_in(plain(batch.column(user)),
                                            value_set=maps[user]).to_numpy()
            cols[pos:pos + m] = pc.index_in(plain(batch.column(item)),
                                            value_set=maps[item]).to_numpy()
            if value is not None:
                vals[pos:pos + m] = _numeric(batch.column(value).to_pandas(), value)
            if timestamp is not None:
                ts[pos:pos + m] = _timestamps(batch.column(timestamp).to_pandas())
            pos += m
        if value is not None:
            check_float32_range(vals, f"column {value!r}")
        user_map = IdMap(maps[user].to_numpy(zero_copy_only=False))
        item_map = IdMap(maps[item].to_numpy(zero_copy_only=False))
        return cls._from_coo(rows, cols, vals, ts, duplicates, user_map, item_map)

    @classmethod
    def from_csr(cls, matrix, users: IdMap | None = None, items: IdMap | None = None,
                 timestamps: np.ndarray | None = None) -> Interactions:
        """Wrap an existing users x items matrix (converted to the canonical CSR form).

        Without id maps, raw ids are the indices themselves. ``timestamps`` must be aligned with
        the stored values of a CSR matrix that is already canonical.
        """
        X = as_csr(matrix, "matrix", allow_empty=True)
        if timestamps is not None and X is not matrix:
            raise ValueError("timestamps can only be attached to a canonical CSR matrix "
                             "(float32, int32 sorted indices, no explicit zeros)")
        users = users if users is not None else IdMap.identity(X.shape[0])
        items = items if items is not None else IdMap.identity(X.shape[1])
        ts = None if timestamps is None else np.asarray(timestamps, dtype=np.int64)
        return cls(X, users, items, ts)

    @classmethod
    def _from_coo(cls, rows, cols, vals, ts, duplicates, user_map, item_map) -> Interactions:
        n_rows, n_cols = len(user_map), len(item_map)
        rows = np.asarray(rows, dtype=np.int32)
        cols = np.asarray(cols, dtype=np.int32)
        # by row, col, then time; ties keep the log's order (two stable counting sorts)
        first = None if ts is None else np.argsort(ts, kind="stable")
        indptr, order = coo_order(rows, cols, n_rows, n_cols, first)
        del first
        cols, vals = cols[order], vals[order]
        ts = None if ts is None else ts[order]
        del order
        n = len(cols)
        new_pair = np.ones(n, dtype=bool)
        new_pair[1:] = cols[1:] != cols[:-1]
        new_pair[indptr[1:-1][indptr[1:-1] < n]] = True  # a row's first entry
        starts = np.flatnonzero(new_pair) if not new_pair.all() else None
        del new_pair
        if starts is not None:
            if duplicates == "error":
                raise ValueError(f"{n - starts.size} duplicate (user, item) pairs; pass "
                                 "duplicates='sum', 'last' or 'max' to merge them")
            if duplicates == "sum":
                vals = np.add.reduceat(vals, starts)
            elif duplicates == "max":
                vals = np.maximum.reduceat(vals, starts)
            else:  # last: the final row of each group (latest time, then latest row)
                vals = vals[np.append(starts[1:], n) - 1]
            if ts is not None:
                ts = np.maximum.reduceat(ts, starts)
            cols = cols[starts]
            indptr = np.searchsorted(starts, indptr).astype(np.int32)  # groups per row
            check_float32_range(vals, f"the {duplicates} of duplicate interactions")
        X = sp.csr_matrix((vals.astype(np.float32), cols, indptr), shape=(n_rows, n_cols))
        X.has_sorted_indices = True
        keep = X.data != 0
        if not keep.all():
            logger.info("dropping %d interactions with value 0", int((~keep).sum()))
            if ts is not None:
                ts = ts[keep]
            X.eliminate_zeros()
        return cls(X, user_map, item_map, ts)

    # -- views ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def nnz(self) -> int:
        return self.matrix.nnz

    def __repr__(self) -> str:
        ts = ", with timestamps" if self.timestamps is not None else ""
        return (f"Interactions({self.shape[0]} users x {self.shape[1]} items, "
                f"{self.nnz} interactions{ts})")

    def to_pandas(self) -> pd.DataFrame:
        """One row per interaction: raw ``user``, ``item``, ``value`` (and ``timestamp``)."""
        coo = self.matrix.tocoo()
        out = {"user": self.users.to_raw(coo.row), "item": self.items.to_raw(coo.col),
               "value": coo.data}
        if self.timestamps is not None:
            out["timestamp"] = self.timestamps
        return pd.DataFrame(out)

    def select(self, mask: np.ndarray) -> Interactions:
        """The interactions where ``mask`` (one bool per stored value) is True; same id maps."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise ValueError("mask must hold one bool per stored interaction")
        sub = select_entries(self.matrix, mask)
        ts = None if self.timestamps is None else self.timestamps[mask]
        return Interactions(sub, self.users, self.items, ts)

    def binarize(self, threshold: float | None = None) -> Interactions:
        """Values >= ``threshold`` become 1 and the rest are dropped (all kept when None)."""
        mask = np.ones(self.nnz, dtype=bool) if threshold is None else \
            self.matrix.data >= threshold
        out = self.select(mask)
        out.matrix.data[:] = 1.0
        return out

    def __add__(self, other: Interactions) -> Interactions:
        """Union of two disjoint interaction sets over the same id maps (e.g. train + valid)."""
        if not isinstance(other, Interactions):
            return NotImplemented
        if other.users != self.users or other.items != self.items:
            raise ValueError("can only add Interactions that share the same id maps")
        a, b = self.matrix.tocoo(), other.matrix.tocoo()
        ts = None
        if self.timestamps is not None and other.timestamps is not None:
            ts = np.concatenate([self.timestamps, other.timestamps])
        return Interactions._from_coo(
            np.concatenate([a.row, b.row]).astype(np.int64),
            np.concatenate([a.col, b.col]).astype(np.int64),
            np.concatenate([a.data, b.data]).astype(np.float64), ts, "sum",
            self.users, self.items)


def _codes(column: pd.Series, id_map: IdMap | None, name: str) -> tuple[IdMap, np.ndarray]:
    kind = pd.api.types.infer_dtype(column, skipna=False)
    if kind.startswith("mixed"):
        kinds = sorted({type(v).__name__ for v in column.head(100_000)})
        raise TypeError(f"id column {name!r} mixes kinds of ids ({', '.join(kinds)}): 7 and "
                        f"'7' would be told apart or merged by accident; convert the column to "
                        f"one type first, e.g. df[{name!r}].astype(str)")
    if id_map is not None:
        return id_map, id_map.to_index(column.to_numpy()).astype(np.int64)
    try:
        codes, uniques = pd.factorize(column, sort=True)
    except TypeError:  # mixed types that cannot be ordered: first-seen order
        codes, uniques = pd.factorize(column, sort=False)
    return IdMap(np.asarray(uniques)), codes.astype(np.int64)


def _numeric(column: pd.Series, name: str) -> np.ndarray:
    """A value column as float64, refused when not numeric or not finite."""
    if not pd.api.types.is_numeric_dtype(column):
        raise TypeError(f"column {name!r} must be numeric, got {column.dtype}")
    vals = column.to_numpy(dtype=np.float64)
    if not np.isfinite(vals).all():
        raise ValueError(f"column {name!r} holds {int((~np.isfinite(vals)).sum())} "
                         "NaN or infinite values")
    return vals


def _timestamps(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(column):
        if column.isna().any():
            raise ValueError("timestamp column holds missing values")
        if isinstance(column.dtype, pd.DatetimeTZDtype):  # an instant: Unix seconds in UTC
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
        return column.astype("datetime64[s]").astype(np.int64).to_numpy()
    if not pd.api.types.is_numeric_dtype(column):
        raise TypeError(f"timestamp column must be numeric or datetime, got {column.dtype}")
    values = column.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("timestamp column holds NaN or infinite values")
    return values.astype(np.int64)
