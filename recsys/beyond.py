"""Beyond-accuracy metrics of top-k lists: novelty, diversity, exposure and popularity bias.

Notation: ``L_u`` the first ``k`` items of user ``u``'s list (padding ``-1`` left out, ``|L_u|``
the items listed), ``n_i`` the number of training users of item ``i`` (its popularity, from the
history the lists were ranked from), ``U`` the number of users of that history, and
``p_i = n_i / U``.

Per user (averaged over users by ``evaluate``):

- ``epc_at_k``: expected popularity complement, ``(1/|L_u|) sum_{i in L_u} (1 - p_i)``
  (Vargas & Castells, RecSys 2011, without rank discount or relevance: the share of users who
  have *not* seen a recommended item, on average).
- ``miuf_at_k``: mean inverse user frequency, ``(1/|L_u|) sum -log2((n_i + 1) / (U + 1))``
  (Zhou et al., PNAS 2010, "novelty" as self-information; +1 keeps unseen items finite).
- ``ild_at_k``: intra-list diversity, the mean pairwise cosine distance
  ``(2 / (|L_u| (|L_u| - 1))) sum_{a<b} (1 - cos(i_a, i_b))`` (Ziegler et al., WWW 2005) over
  item vectors the caller passes, or by default the items' training columns (cosine of
  co-occurrence: ``|users of a and b| / sqrt(n_a n_b)``); computed per block of users on the
  items those lists hold, never an n_items x n_items matrix. 0 for lists of one item.
- ``arp_at_k``: average recommendation popularity, ``(1/|L_u|) sum n_i``
  (Abdollahpouri et al., FLAIRS 2019).
- ``aplt_at_k``: average percentage of long-tail items, ``|L_u cap T| / |L_u|``, with ``T`` the
  long tail: every item outside the short head, the head being the fewest most popular items
  that hold 20% of the training interactions (Abdollahpouri et al., RecSys 2017).

Across all lists (one number):

- ``gini_at_k``: Gini index of the items' exposure (times listed, every catalogue item
  counted, zeros included): 0 when every item is listed equally often, near 1 when a few
  items fill every list (:func:`recsys.data.describe.gini`).
- ``entropy_at_k``: Shannon entropy of the exposure distribution, in bits.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys._sparse import column_counts
from recsys.data.describe import gini

PER_USER = ("epc", "miuf", "ild", "arp", "aplt")
GLOBAL = ("gini", "entropy")
BEYOND_METRICS = PER_USER + GLOBAL

#: The short head holds this share of the training interactions (``aplt``).
HEAD_SHARE = 0.2


def popularity(train: sp.csr_matrix) -> np.ndarray:
    """Training users of every item (``n_i``)."""
    return column_counts(train).astype(np.float64)


def long_tail(counts: np.ndarray, head_share: float = HEAD_SHARE) -> np.ndarray:
    """Boolean mask of the long-tail items: outside the fewest most popular items that hold
    ``head_share`` of the interactions (ties broken by the lower item index)."""
    order = np.argsort(-counts, kind="stable")
    cumulative = np.cumsum(counts[order])
    total = cumulative[-1] if cumulative.size else 0.0
    n_head = int(np.searchsorted(cumulative, head_share * total) + 1) if total > 0 else 0
    tail = np.ones(counts.size, dtype=bool)
    tail[order[:n_head]] = False
    return tail


def _mean_over_lists(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    listed = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(valid, values, 0.0).sum(axis=1) / listed
    return np.where(listed > 0, out, np.nan)


def intra_list_distance(recs: np.ndarray, train: sp.csr_matrix | None = None,
                        item_vectors: np.ndarray | None = None,
                        max_block_items: int = 2048) -> np.ndarray:
    """Per-row ILD of ``recs`` (see the module docstring), by blocks of rows that hold at most
    ``max_block_items`` list entries (the similarities of a block: at most that many squared
    floats, 32 MiB by default, whatever the catalogue)."""
    if item_vectors is None and train is None:
        raise ValueError("ILD needs item vectors or the training matrix")
    n_rows, width = recs.shape
    block_size = max(1, max_block_items // max(width, 1))
    out = np.zeros(n_rows, dtype=np.float64)
    if item_vectors is not None:
        V = np.asarray(item_vectors, dtype=np.float64)
        norms = np.linalg.norm(V, axis=1)
        norms[norms == 0] = 1.0
        V = V / norms[:, None]
    else:
        columns = train.T.tocsr().astype(np.float64)  # item rows: the users of each item
        columns.data[:] = 1.0
        norms = np.sqrt(np.asarray(columns.multiply(columns).sum(axis=1)).ravel())
    for start in range(0, n_rows, block_size):
        block = recs[start:start + block_size]
        valid = block >= 0
        items, position = np.unique(np.where(valid, block, block.max(initial=0)),
                                    return_inverse=True)
        position = position.reshape(block.shape)
        if item_vectors is not None:
            W = V[items]
            S = W @ W.T
        else:
            rows = columns[items]
            S = (rows @ rows.T).toarray()
            scale = norms[items]
            scale[scale == 0] = 1.0
            S = S / np.outer(scale, scale)
        cos = S[position[:, :, None], position[:, None, :]]  # rows x width x width
        pair = valid[:, :, None] & valid[:, None, :]
        pair &= ~np.eye(width, dtype=bool)[None]
        n_pairs = pair.sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = np.where(pair, 1.0 - cos, 0.0).sum(axis=(1, 2)) / n_pairs
        out[start:start + block.shape[0]] = np.where(n_pairs > 0, dist, 0.0)
    return out


def beyond_metrics(recs: np.ndarray, train: sp.csr_matrix, k, metrics=BEYOND_METRICS,
                   item_vectors: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """``"<metric>_at_<k>" -> per-user array`` (global metrics: a 0-d array) of the lists
    ``recs`` (ids best first, -1 = none) ranked from the history ``train``."""
    unknown = set(metrics) - set(BEYOND_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {BEYOND_METRICS}")
    counts = popularity(train)
    n_users = max(train.shape[0], 1)
    tail = long_tail(counts) if "aplt" in metrics else None
    out: dict[str, np.ndarray] = {}
    for kk in np.atleast_1d(k).tolist():
        top = recs[:, :kk]
        valid = top >= 0
        ids = np.where(valid, top, 0)
        for name in metrics:
            if name == "epc":
                value = _mean_over_lists(1.0 - counts[ids] / n_users, valid)
            elif name == "miuf":
                value = _mean_over_lists(-np.log2((counts[ids] + 1) / (n_users + 1)), valid)
            elif name == "arp":
                value = _mean_over_lists(counts[ids], valid)
            elif name == "aplt":
                value = _mean_over_lists(tail[ids].astype(np.float64), valid)
            elif name == "ild":
                value = intra_list_distance(top, train, item_vectors)
            else:
                exposure = np.bincount(top[valid], minlength=train.shape[1])
                if name == "gini":
                    value = gini(exposure)
                else:
                    share = exposure[exposure > 0] / max(exposure.sum(), 1)
                    value = float(-(share * np.log2(share)).sum())
            out[f"{name}_at_{kk}"] = np.asarray(value, dtype=np.float64)
    return out


__all__ = ["BEYOND_METRICS", "GLOBAL", "HEAD_SHARE", "PER_USER", "beyond_metrics",
           "intra_list_distance", "long_tail", "popularity"]
