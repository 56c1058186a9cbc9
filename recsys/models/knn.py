"""Item-based k-nearest-neighbours with cosine similarity."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._threads import resolve_num_threads
from recsys.models.base import Recommender
from recsys.topk import topk_scores


class ItemKNN(Recommender):
    """Item-kNN: ``score(u, j) = sum_{i in I_u} x_ui * s_ij`` over i's nearest neighbours.

    ``s_ij = x_i . x_j / (|x_i| |x_j| + shrink)`` is the (shrunk) cosine between item columns
    (Sarwar et al., WWW 2001); each item keeps its ``neighbors`` most similar items (positive
    similarities only). Folding in new users is free: scores depend only on their history row.

    Parameters
    ----------
    neighbors : int
        Neighbours kept per item.
    shrink : float
        Added to the cosine denominator, damping similarities from few co-occurrences.
    batch_size : int
        Items per block when computing similarities (bounds memory to
        ``batch_size x n_items`` floats).
    num_threads : int
        Threads for top-k selection (0: all cores).
    show_progress : bool
    """

    def __init__(self, neighbors: int = 100, shrink: float = 0.0, batch_size: int = 512,
                 num_threads: int = 0, show_progress: bool = False):
        self.neighbors = neighbors
        self.shrink = shrink
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fit(self, X) -> ItemKNN:
        if self.neighbors <= 0:
            raise ValueError(f"neighbors must be positive, got {self.neighbors}")
        if self.shrink < 0:
            raise ValueError(f"shrink must be >= 0, got {self.shrink}")
        X = self._prepare_fit(X)
        n_items = X.shape[1]
        k = min(self.neighbors, n_items - 1) if n_items > 1 else 1
        XT = X.T.tocsr()  # items x users
        norms = np.sqrt(np.asarray(XT.multiply(XT).sum(axis=1)).ravel()).astype(np.float32)
        rows, cols, vals = [], [], []
        threads = resolve_num_threads(self.num_threads)
        starts = range(0, n_items, self.batch_size)
        for start in tqdm(starts, desc="ItemKNN", disable=not self.show_progress):
            stop = min(start + self.batch_size, n_items)
            dots = (XT[start:stop] @ X).toarray().astype(np.float32, copy=False)
            denom = np.outer(norms[start:stop], norms) + np.float32(self.shrink)
            with np.errstate(divide="ignore", invalid="ignore"):
                sims = np.where(denom > 0, dots / denom, 0.0).astype(np.float32)
            sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # no self-neighbour
            ids, best = topk_scores(sims, k, num_threads=threads, copy=False)
            keep = (ids >= 0) & (best > 0)
            rows.append(np.nonzero(keep)[0] + start)
            cols.append(ids[keep])
            vals.append(best[keep])
        S = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_items, n_items), dtype=np.float32)
        S.sort_indices()
        self.similarity_ = S
        return self

    def _item_weights(self):
        return self.similarity_
