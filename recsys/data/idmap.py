"""Maps between raw ids (user names, item SKUs, ...) and contiguous row/column indices."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


class IdMap:
    """A bijection between raw ids and indices ``0 .. n-1``.

    Parameters
    ----------
    raw_ids : array-like
        The raw id of each index, unique. Integers or strings.

    Examples
    --------
    >>> m = IdMap(["alice", "bob"])
    >>> m.to_index(["bob"]).tolist(), m.to_raw([0]).tolist()
    ([1], ['alice'])
    """

    def __init__(self, raw_ids: Iterable):
        raw = np.asarray(list(raw_ids) if not isinstance(raw_ids, np.ndarray) else raw_ids)
        if raw.ndim != 1:
            raise ValueError("raw ids must be 1-D")
        if raw.dtype == object:  # savez without pickle needs a fixed-width type
            raw = raw.astype(str)
        self._raw = raw
        self._index = {key: i for i, key in enumerate(raw.tolist())}
        if len(self._index) != raw.size:
            raise ValueError("raw ids are not unique")

    @classmethod
    def identity(cls, n: int) -> IdMap:
        """The map whose raw ids are ``0 .. n-1`` themselves."""
        return cls(np.arange(n, dtype=np.int64))

    @property
    def raw_ids(self) -> np.ndarray:
        """Raw id of every index (read-only view)."""
        view = self._raw.view()
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return self._raw.size

    def __eq__(self, other) -> bool:
        return isinstance(other, IdMap) and np.array_equal(self._raw, other._raw)

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self._raw[:3].tolist()))
        return f"IdMap({len(self)} ids: {head}{', ...' if len(self) > 3 else ''})"

    def to_index(self, raw_ids, missing: int | None = None) -> np.ndarray:
        """Indices of ``raw_ids`` (int32); unknown ids raise ``KeyError`` naming them, or
        become ``missing`` when it is given (e.g. -1)."""
        keys = np.atleast_1d(np.asarray(raw_ids)).tolist()
        out = np.fromiter((self._index.get(key, -1) for key in keys), dtype=np.int64,
                          count=len(keys))
        if missing is not None:
            return np.where(out < 0, missing, out).astype(np.int32)
        if (out < 0).any():
            missing = [key for key, i in zip(keys, out) if i < 0]
            shown = ", ".join(map(repr, missing[:10]))
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise KeyError(f"unknown ids: {shown}{more}")
        return out.astype(np.int32)

    def to_raw(self, indices) -> np.ndarray:
        """Raw ids of ``indices``; indices outside ``[0, n)`` raise ``IndexError``."""
        idx = np.asarray(indices)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)}), got range "
                             f"[{idx.min()}, {idx.max()}]")
        return self._raw[idx]
