"""Models in raw ids: what a fit records about its training data, and ``recommend_raw``.

A model fitted on an :class:`~recsys.data.Interactions` keeps the raw id of every row and
column it learned (``user_ids_``, ``item_ids_``: integers or strings, saved without pickle),
the number of training users of each item (``item_counts_``, the popularity fallback) and
``training_data_``: the shape, a SHA-256 fingerprint of the matrix and its ids, and, when a
pipeline sets them, the description of the data source and the positive threshold.
:func:`recommend_raw` then takes and returns raw ids: known users are scored as fitted, users
unseen at fit are folded in from their history (:meth:`Recommender.fold_in`; history-based
models score the row directly), and users with no usable history get the most popular items.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys._sparse import column_counts
from recsys._validation import as_csr, check_k
from recsys.data.idmap import IdMap
from recsys.topk import topk_factors

logger = logging.getLogger(__name__)

#: Where each recommended list came from (the ``source`` column of :func:`recommend_raw`).
SOURCES = ("model", "fold_in", "popularity")


def fingerprint(X: sp.csr_matrix, user_ids=None, item_ids=None) -> str:
    """SHA-256 of a canonical CSR matrix (structure and float32 values) and its raw ids: equal
    fingerprints mean the same training data, whatever file it came from."""
    digest = hashlib.sha256()
    digest.update(np.asarray(X.shape, dtype=np.int64).tobytes())
    digest.update(X.indptr.astype(np.int64))  # one entry per row: small
    for part, dtype in ((X.indices, np.int32), (X.data, np.float32)):
        digest.update(np.ascontiguousarray(part, dtype=dtype))  # the buffer, not a copy
    for ids in (user_ids, item_ids):
        if ids is not None:
            digest.update(str(ids.dtype.kind).encode())
            digest.update("\x00".join(map(str, ids.tolist())).encode())
    return digest.hexdigest()


def record_training_data(model, data) -> None:
    """Set the training-data attributes of ``model`` after a fit or update on ``data`` (an
    ``Interactions`` or a bare matrix: then ids already held are kept only while the shape
    still matches them)."""
    X = as_csr(data, "X", allow_empty=True)
    maps = (data.users, data.items) if hasattr(data, "users") and hasattr(data, "items") \
        else None
    if maps is not None:
        model.user_ids_ = np.array(maps[0].raw_ids)
        model.item_ids_ = np.array(maps[1].raw_ids)
    else:
        for name, n in (("user_ids_", X.shape[0]), ("item_ids_", X.shape[1])):
            if name in vars(model) and len(vars(model)[name]) != n:
                logger.debug("dropping %s: the model now has %d rows there", name, n)
                delattr(model, name)
    model.item_counts_ = column_counts(X).astype(np.float32)
    source = {key: value for key, value in getattr(model, "training_data_", {}).items()
              if key in ("source", "threshold")}
    model.training_data_ = {
        "users": int(X.shape[0]), "items": int(X.shape[1]), "interactions": int(X.nnz),
        "fingerprint": fingerprint(X, getattr(model, "user_ids_", None),
                                   getattr(model, "item_ids_", None)), **source}


def check_grown_ids(model, data) -> None:
    """Before ``partial_fit`` on an ``Interactions``: its maps must list the fitted users and
    items first, in the fitted order (new ones after them), or rows would change owner."""
    if not hasattr(data, "users") or "user_ids_" not in vars(model):
        return
    for name, fitted, new in (("user", model.user_ids_, data.users.raw_ids),
                              ("item", model.item_ids_, data.items.raw_ids)):
        if len(new) < len(fitted) or not np.array_equal(new[:len(fitted)], fitted):
            raise ValueError(f"the {name} ids of the update do not start with the model's "
                             f"{len(fitted)} fitted {name}s in their order: build the grown "
                             f"Interactions with the fitted maps first (new {name}s appended)")


def _history_frame(history, user: str, item: str, value: str | None) -> pd.DataFrame:
    """``history`` (a DataFrame or an Interactions) as a frame with ``user``, ``item`` and
    ``value`` columns (values 1 when it has none)."""
    if hasattr(history, "to_pandas"):
        return history.to_pandas()[["user", "item", "value"]]
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a pandas DataFrame or an Interactions, got "
                        f"{type(history).__name__}")
    for col in (user, item, value):
        if col is not None and col not in history.columns:
            raise KeyError(f"column {col!r} not in the history (columns: "
                           f"{list(history.columns)})")
    out = pd.DataFrame({"user": history[user], "item": history[item]})
    if value is not None:
        if not pd.api.types.is_numeric_dtype(history[value]):
            raise TypeError(f"column {value!r} must be numeric, got {history[value].dtype}")
        out["value"] = history[value].to_numpy(dtype=np.float64)
    else:
        out["value"] = np.nan  # no value: a positive
    if out["user"].isna().any() or out["item"].isna().any():
        raise ValueError("the history holds missing user or item ids")
    if np.isinf(out["value"].to_numpy()).any():
        raise ValueError(f"column {value!r} holds infinite values")
    return out


def _as_kind(raw, like: np.ndarray, what: str) -> np.ndarray:
    """Raw ids converted to the kind of the model's ids (``"7"`` matches 7 only when the
    model's ids are strings: ids are compared as the model stored them)."""
    raw = np.asarray(raw)
    if like.dtype.kind == "U":
        return raw.astype(str)
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    try:
        as_int = raw.astype(np.int64)
    except (TypeError, ValueError):
        bad = [v for v in raw[:100_000].tolist() if not isinstance(v, int | np.integer)]
        raise TypeError(f"{what} ids such as {bad[:3]} are not integers, but the model's ids "
                        "are: give every id as the model knows them") from None
    if raw.dtype.kind == "f" and not np.array_equal(as_int, raw):
        raise TypeError(f"{what} ids must be integers, got fractional values")
    return as_int


#: What :func:`recommend_raw` never recommends back: every history row of the user
#: (``"training"``), only the positives the model scores from, or nothing.
EXCLUDE = ("training", "positives", "none")


def recommend_raw(model, users=None, history=None, k: int = 10, exclude: str = "training",
                  threshold: float | None = None, fallback: bool = True,
                  user: str = "user", item: str = "item", value: str | None = None,
                  batch_size: int = 4096) -> pd.DataFrame:
    """Top-``k`` items for raw user ids, in raw ids (see :meth:`Recommender.recommend_raw`)."""
    model._check_fitted()
    if exclude not in EXCLUDE:
        raise ValueError(f"exclude must be one of {EXCLUDE}, got {exclude!r}")
    if "user_ids_" not in vars(model) or "item_ids_" not in vars(model):
        raise ValueError(f"this {type(model).__name__} was fitted on a bare matrix and holds "
                         "no id maps: fit it on an Interactions to recommend in raw ids")
    if threshold is None:
        threshold = getattr(model, "training_data_", {}).get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or
                                  not np.isfinite(float(threshold))):
        raise ValueError(f"threshold must be a finite number or None, got {threshold!r}")
    fitted_users, fitted_items = IdMap(model.user_ids_), IdMap(model.item_ids_)
    frame = pd.DataFrame({"user": [], "item": [], "value": []}) if history is None else \
        _history_frame(history, user, item, value)
    frame = frame.assign(user=_as_kind(frame["user"], model.user_ids_, "history user"),
                         item=_as_kind(frame["item"], model.item_ids_, "history item"))
    columns = fitted_items.to_index(frame["item"].to_numpy(), missing=-1)
    known_item = columns >= 0
    unknown_items = int((~known_item).sum())
    frame, columns = frame[known_item], columns[known_item]
    if users is None:
        requested = pd.unique(frame["user"]) if history is not None else model.user_ids_
    else:
        requested = pd.unique(_as_kind(np.atleast_1d(np.asarray(users)), model.user_ids_,
                                       "requested user"))
    requested = np.asarray(requested)
    # rows: the fitted users first (their own indices), then the users unseen at fit
    hist_users = frame["user"].to_numpy()
    candidates = pd.unique(np.concatenate([hist_users, requested]))
    new_ids = candidates[fitted_users.to_index(candidates, missing=-1) < 0]
    all_users = IdMap(np.concatenate([model.user_ids_, new_ids]))
    rows = all_users.to_index(hist_users) if len(hist_users) else np.zeros(0, np.int32)
    n_rows, n_items = len(all_users), model.n_items_
    vals = frame["value"].to_numpy(dtype=np.float64)
    unrated = np.isnan(vals)  # rows without a value are positives (value 1)
    vals = np.where(unrated, 1.0, vals)

    def matrix(mask: np.ndarray) -> sp.csr_matrix:
        X = sp.csr_matrix((vals[mask], (rows[mask], columns[mask])), shape=(n_rows, n_items))
        X.sum_duplicates()
        X.eliminate_zeros()
        return as_csr(X, "history", allow_empty=True)

    # as fitted: rating models score from every rated value, implicit ones from positives
    everything = np.ones(len(vals), dtype=bool)
    X = matrix(everything if threshold is None or model.rating_model else
               unrated | (vals >= threshold))
    if not model.rating_model:
        X.data[:] = 1.0
    seen = None if exclude == "none" else X if exclude == "positives" else matrix(everything)
    targets = all_users.to_index(requested) if requested.size else np.zeros(0, np.int32)
    has_history = np.diff(X.indptr)[targets] > 0
    known = targets < model.n_users_
    by_model = has_history | (known & model.uses_user_state)
    if not fallback and not by_model.all():
        missing = all_users.to_raw(targets[~by_model])[:10].tolist()
        raise ValueError(f"{int((~by_model).sum())} users have no usable history and the "
                         f"fallback is off: {missing}")
    source = np.where(by_model, np.where(known, 0, 1), 2)
    counts = {"users": int(targets.size), "model": int((source == 0).sum()),
              "fold_in": int((source == 1).sum()), "popularity": int((source == 2).sum()),
              "unknown_items_ignored": unknown_items}
    logger.info("recommend_raw: %(users)d users: %(model)d known to the model, %(fold_in)d "
                "folded in from their history, %(popularity)d served the most popular items; "
                "%(unknown_items_ignored)d history rows of items unknown to the model ignored",
                counts)
    width = check_k(k, n_items)
    parts = []
    for start in range(0, targets.size, batch_size):
        block, src = targets[start:start + batch_size], source[start:start + batch_size]
        ids = np.full((block.size, width), -1, dtype=np.int32)
        scores = np.full(ids.shape, -np.inf, dtype=np.float32)
        served = src < 2
        if served.any():  # X's rows are what the model scores from; seen's are excluded
            ids[served], scores[served] = model.recommend(
                block[served], X, k=width, exclude_seen=seen is not None, filter_items=seen)
        if (~served).any():  # popularity: a rank-1 factor model through the same top-k
            ids[~served], scores[~served] = topk_factors(
                np.ones(((~served).sum(), 1), dtype=np.float32),
                model.item_counts_.reshape(-1, 1), k=width,
                exclude=None if seen is None else seen[block[~served]])
        valid = ids >= 0
        parts.append(pd.DataFrame({
            "user": np.repeat(all_users.to_raw(block), width).reshape(block.size,
                                                                       width)[valid],
            "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), (block.size, 1))[valid],
            "item": fitted_items.to_raw(ids[valid]),
            "score": scores[valid].astype(np.float32),
            "source": pd.Categorical(np.repeat(np.asarray(SOURCES)[src], width).reshape(
                block.size, width)[valid], categories=SOURCES)}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        {"user": np.zeros(0, model.user_ids_.dtype), "rank": np.zeros(0, np.int32),
         "item": np.zeros(0, model.item_ids_.dtype), "score": np.zeros(0, np.float32),
         "source": pd.Categorical([], categories=SOURCES)})
    out.attrs["counts"] = counts
    return out


def describe_ids(model) -> dict[str, Any]:
    """What a model knows of its training data (for logs and the CLI)."""
    info = dict(getattr(model, "training_data_", {}))
    for name in ("user_ids_", "item_ids_"):
        if name in vars(model):
            info[name.rstrip("_")] = str(vars(model)[name].dtype)
    return info


__all__ = ["EXCLUDE", "SOURCES", "check_grown_ids", "describe_ids", "fingerprint",
           "record_training_data", "recommend_raw"]
