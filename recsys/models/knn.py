"""Item-based k-nearest-neighbours with cosine similarity."""

from __future__ import annotations

import scipy.sparse as sp

from recsys._constraints import BOOLEAN, NUM_THREADS, Integer, Real
from recsys._similarity import GramRows, positive_neighbours
from recsys.models.auto import AUTO, AUTO_OPTION, in_use, neighbour_count
from recsys.models.base import Recommender
from recsys.models.schema import Array, Scalar


class ItemKNN(Recommender):
    """Item-kNN: ``score(u, j) = sum_{i in I_u} x_ui * s_ij`` over i's nearest neighbours.

    ``s_ij = x_i . x_j / (|x_i| |x_j| + shrink)`` is the (shrunk) cosine between item columns
    (Sarwar et al., WWW 2001); each item keeps its ``neighbors`` most similar items (positive
    similarities only). Folding in new users is free: scores depend only on their history row.

    Parameters
    ----------
    neighbors : int or "auto"
        Neighbours kept per item (those with a positive similarity). ``"auto"``:
        ``10 / sqrt(density)``, 10 to 2000 (:mod:`recsys.models.auto`: 48 on ML-1M, 410 on
        Gowalla); the value used is ``neighbors_``. Memory grows with the similarities kept,
        at most each item's co-occurring items, so sparse data, where the count is large,
        keeps few per item anyway.
    shrink : float
        Added to the cosine denominator, damping similarities from few co-occurrences.
    block_size : int
        Items per block when computing similarities (bounds memory to
        ``block_size x n_items`` floats).
    num_threads : int
        Threads for top-k selection (0: all cores).
    show_progress : bool
    """

    _renamed_params = {"batch_size": "block_size"}
    _parameter_constraints = {"neighbors": [Integer(1), AUTO_OPTION], "shrink": [Real(0)],
                              "block_size": [Integer(1)], "num_threads": NUM_THREADS,
                              "show_progress": BOOLEAN}

    _fitted = {"similarity_": Array("f", ("n_items_", "n_items_"), sparse=True),
               "neighbors_": Scalar(int, optional=True)}

    def __init__(self, *, neighbors: int | str = AUTO, shrink: float = 0.0, block_size: int = 512,
                 num_threads: int = 0, show_progress: bool = False):
        self.neighbors = neighbors
        self.shrink = shrink
        self.block_size = block_size
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fit(self, X) -> ItemKNN:
        X = self._prepare_fit(X)
        n_items = X.shape[1]
        k = min(in_use(self, "neighbors"), n_items - 1) if n_items > 1 else 1
        gram = GramRows(X, self.num_threads)  # dense blocks of X^T X rows, never all of it
        self.similarity_ = positive_neighbours(gram.range, gram.norms, k, self.shrink,
                                               self.block_size, self.num_threads,
                                               self.show_progress, "ItemKNN")
        return self

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, int]:
        return {"neighbors": neighbour_count(self.neighbors, X)}

    def _item_weights(self):
        return self.similarity_

    def partial_fit(self, X, users=None, previous=None):
        raise NotImplementedError(
            "an item's neighbour list depends on every item it co-occurs with: a changed row "
            "changes the lists of all its items and of their neighbours, so an exact update "
            "is a refit (one sparse product); refit ItemKNN on the updated matrix")
