"""Explanations: a score split into the contributions of the user's history items.

Where a model's score is linear in the user's history, ``explain`` returns each history
item's exact share, plus the part no history item accounts for (``base``: biases, the user's
own embedding); they sum to the score. EASE and ItemKNN score the history row itself; the
factor models whose user vector is a linear function of the history (ALS, AltMin) explain the
score of the vector recomputed from that history (their fold-in, equal to the fitted vector at
convergence), as implicit's ``explain`` does for ALS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Explanation:
    """``score = base + contributions.sum()``; ``items[j]`` contributed ``contributions[j]``.

    Items are sorted by contribution, largest first.
    """

    user: int
    item: int
    score: float
    base: float
    items: np.ndarray
    contributions: np.ndarray

    @classmethod
    def of(cls, user: int, item: int, items: np.ndarray, contributions: np.ndarray,
           base: float = 0.0) -> Explanation:
        contributions = np.asarray(contributions, dtype=np.float64)
        order = np.argsort(-contributions, kind="stable")
        return cls(int(user), int(item), float(base + contributions.sum()), float(base),
                   np.asarray(items)[order], contributions[order])


def ridge_contributions(Y: np.ndarray, weights: np.ndarray, A: np.ndarray, target: np.ndarray,
                        history: np.ndarray) -> np.ndarray:
    """Shares of ``y_i . x`` with ``x = A^{-1} sum_j weights_j y_{history_j}``: entry j is
    ``weights_j (y_i^T A^{-1} y_j)`` (``target`` is ``y_i``)."""
    solved = np.linalg.solve(A, target)  # A is symmetric: y_i^T A^{-1} = (A^{-1} y_i)^T
    return weights * (Y[history] @ solved)


__all__ = ["Explanation", "ridge_contributions"]
