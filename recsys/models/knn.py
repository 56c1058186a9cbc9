"""Item-based k-nearest-neighbours with cosine similarity."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._constraints import BOOLEAN, NUM_THREADS, Integer, Real
from recsys._threads import resolve_num_threads
from recsys.models.base import Recommender
from recsys.models.schema import Array
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

    _parameter_constraints = {"neighbors": [Integer(1)], "shrink": [Real(0)],
                              "batch_size": [Integer(1)], "num_threads": NUM_THREADS,
                              "show_progress": BOOLEAN}

    _fitted = {"similarity_": Array("f", ("n_items_", "n_items_"), sparse=True)}

    def __init__(self, neighbors: int = 100, shrink: float = 0.0, batch_size: int = 512,
                 num_threads: int = 0, show_progress: bool = False):
        self.neighbors = neighbors
        self.shrink = shrink
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fit(self, X) -> ItemKNN:
        X = self._prepare_fit(X)
        n_items = X.shape[1]
        k = min(self.neighbors, n_items - 1) if n_items > 1 else 1
        XT = X.T.tocsr()  # items x users
        norms = np.sqrt(np.asarray(XT.multiply(XT).sum(axis=1)).ravel()).astype(np.float32)
        ids, best = cosine_neighbours(lambda start, stop: XT[start:stop] @ X, norms, k,
                                      self.shrink, self.batch_size, self.num_threads,
                                      self.show_progress, "ItemKNN")
        keep = (ids >= 0) & (best > 0)
        rows, cols, vals = np.nonzero(keep)[0], ids[keep], best[keep]
        S = sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)
        S.sort_indices()
        self.similarity_ = S
        return self

    def _item_weights(self):
        return self.similarity_

    def partial_fit(self, X, users=None, previous=None):
        raise NotImplementedError(
            "an item's neighbour list depends on every item it co-occurs with: a changed row "
            "changes the lists of all its items and of their neighbours, so an exact update "
            "is a refit (one sparse product); refit ItemKNN on the updated matrix")



def cosine_neighbours(gram_rows: Callable[[int, int], sp.spmatrix], norms: np.ndarray, k: int,
                      shrink: float = 0.0, block_size: int = 512, num_threads: int = 0,
                      show_progress: bool = False,
                      desc: str = "neighbours") -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` most similar items by shrunk cosine, ``g_ij / (n_i n_j + shrink)``.

    ``gram_rows(start, stop)`` returns rows ``start:stop`` of the Gram matrix ``X^T X`` (sparse);
    ``norms`` are the item norms ``sqrt(diag(X^T X))``. Items never neighbour themselves; a zero
    denominator gives similarity 0. Works block by block (``block_size`` x n_items dense).

    Returns ``(ids, similarities)``, each ``(n_items, k)``, best first (ties: lower index).
    """
    n_items = norms.shape[0]
    threads = resolve_num_threads(num_threads)
    ids = np.empty((n_items, k), dtype=np.int32)
    sims = np.empty((n_items, k), dtype=norms.dtype)
    for start in tqdm(range(0, n_items, block_size), desc=desc, disable=not show_progress):
        stop = min(start + block_size, n_items)
        dots = gram_rows(start, stop).toarray().astype(norms.dtype, copy=False)
        denom = np.outer(norms[start:stop], norms) + norms.dtype.type(shrink)
        with np.errstate(divide="ignore", invalid="ignore"):
            block = np.where(denom > 0, dots / denom, 0.0).astype(norms.dtype)
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # no self-neighbour
        ids[start:stop], sims[start:stop] = topk_scores(block, k, num_threads=threads,
                                                        copy=False)
    return ids, sims
