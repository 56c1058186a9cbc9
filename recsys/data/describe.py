"""``describe``: the first numbers to look at on a new interaction log."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys._sparse import column_counts
from recsys.data.interactions import Interactions

QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)


def gini(counts: np.ndarray) -> float:
    """Gini index of nonnegative counts, ``sum_ij |x_i - x_j| / (2 n^2 mean)``: 0 when every
    item is equally popular, close to 1 when a few items take every interaction. Computed
    from the sorted counts as ``(2 sum_i i x_(i)) / (n sum x) - (n + 1) / n``, i = 1..n."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(2 * np.arange(1, n + 1) @ x / (n * total) - (n + 1) / n)


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    values = np.quantile(counts, QUANTILES) if counts.size else np.zeros(len(QUANTILES))
    return {("min" if q == 0 else "max" if q == 1 else f"p{round(q * 100)}"): float(v)
            for q, v in zip(QUANTILES, values)}


def describe(data: Interactions, duplicates: int | None = None) -> dict:
    """Users, items, interactions, density, interactions per user and per item (quantiles),
    users and items without any, the items' popularity Gini, the values and the time range.

    ``duplicates``: repeated (user, item) pairs found in the raw log (an ``Interactions`` has
    them merged already; :func:`describe_frame` counts them).
    """
    X = data.matrix
    per_user = np.diff(X.indptr)
    per_item = column_counts(X)
    out = {"users": int(X.shape[0]), "items": int(X.shape[1]), "interactions": int(X.nnz),
           "density": float(X.nnz / max(X.shape[0] * X.shape[1], 1)),
           "per_user": _quantiles(per_user), "per_item": _quantiles(per_item),
           "users_without_interactions": int((per_user == 0).sum()),
           "items_without_interactions": int((per_item == 0).sum()),
           "popularity_gini": gini(per_item)}
    if X.nnz:
        distinct = np.unique(X.data)
        out["values"] = {"min": float(X.data.min()), "max": float(X.data.max()),
                         "mean": float(X.data.mean()), "distinct": int(distinct.size)}
        if distinct.size <= 20:
            out["values"]["scale"] = [float(v) for v in distinct]
    if data.timestamps is not None and data.timestamps.size:
        first, last = (pd.Timestamp(int(t), unit="s", tz="UTC")
                       for t in (data.timestamps.min(), data.timestamps.max()))
        out["time_range"] = {"first": first.isoformat(), "last": last.isoformat(),
                             "days": float((last - first).total_seconds() / 86400)}
    if duplicates is not None:
        out["duplicates"] = int(duplicates)
    return out


def describe_frame(df: pd.DataFrame, user: str, item: str, value: str | None = None,
                   timestamp: str | None = None) -> dict:
    """:func:`describe` of a raw log, with its repeated (user, item) pairs counted (and summed
    into one interaction, ``Interactions.from_pandas``'s default)."""
    duplicates = int(df.duplicated(subset=[user, item]).sum())
    data = Interactions.from_pandas(df, user, item, value, timestamp, duplicates="sum")
    return describe(data, duplicates=duplicates)


__all__ = ["describe", "describe_frame", "gini"]
