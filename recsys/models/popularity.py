"""Most-popular baseline."""

from __future__ import annotations

import numpy as np

from recsys._constraints import Options
from recsys._sparse import column_counts
from recsys.models.base import Recommender
from recsys.models.schema import Array


class MostPopular(Recommender):
    """Ranks items by popularity, the same list for every user (minus their seen items).

    Parameters
    ----------
    weighting : {"count", "sum"}
        Popularity = number of users who interacted with the item, or the sum of the values.
    """

    _parameter_constraints = {"weighting": [Options("count", "sum")]}

    _fitted = {"item_popularity_": Array("f", ("n_items_",))}

    def __init__(self, *, weighting: str = "count"):
        self.weighting = weighting

    def fit(self, X) -> MostPopular:
        X = self._prepare_fit(X)
        if self.weighting == "count":
            popularity = column_counts(X)
        else:
            popularity = column_counts(X, power=1)
        self.item_popularity_ = popularity.astype(np.float32)
        return self

    def partial_fit(self, X, users=None, previous=None) -> MostPopular:
        """Exact: popularity is recounted from the updated matrix (one pass over X)."""
        X, _, _, _ = self._prepare_update(X, users, previous)
        return self.fit(X)

    def _item_vectors(self):
        raise NotImplementedError("MostPopular ranks items by popularity alone: it has no "
                                  "notion of one item being similar to another")

    def _explain(self, user, item, row):
        raise NotImplementedError("MostPopular's scores do not depend on the user's history: "
                                  "there is nothing to attribute to it")

    def _factors(self, users, X):
        # score(u, i) = 1 * popularity_i: a rank-1 "factor model", so the fused top-k applies
        return (np.ones((users.size, 1), dtype=np.float32),
                self.item_popularity_.reshape(-1, 1))
