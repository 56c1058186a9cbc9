"""Train/test splitters. All are seeded, all keep one shared user/item index space.

Every splitter returns a :class:`Split` whose parts are :class:`Interactions` over the same id
maps, so a model fitted on ``train`` scores ``test`` users by row index directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recsys._sparse import row_of_values
from recsys._validation import check_random_state
from recsys.data.interactions import Interactions


@dataclass(frozen=True)
class Split:
    """Parts of a data set split, all over the same id maps.

    Attributes
    ----------
    train : Interactions
        What models are fitted on.
    test : Interactions
        Held-out interactions, scored against the history in :attr:`test_history`.
    validation : Interactions or None
        Held-out interactions carved from the training data, for tuning.
    fold_in : Interactions or None
        Strong generalisation only: the held-out users' known interactions (their history at
        test time); those users have no rows in ``train``.
    """

    train: Interactions
    test: Interactions
    validation: Interactions | None = None
    fold_in: Interactions | None = None

    @property
    def test_history(self) -> Interactions:
        """History to score the test users from: the fold-in part, else train (+ validation)."""
        if self.fold_in is not None:
            return self.fold_in
        if self.validation is not None:
            return self.train + self.validation
        return self.train

    def __repr__(self) -> str:
        parts = [f"{name}={getattr(self, name).nnz}" for name in
                 ("train", "validation", "fold_in", "test") if getattr(self, name) is not None]
        return f"Split({self.train.shape[0]} users x {self.train.shape[1]} items; " \
               f"{', '.join(parts)} interactions)"


def _ranked_within_rows(data: Interactions, order: str, rng: np.random.Generator) -> np.ndarray:
    """Rank of every stored value inside its row: random order, or latest timestamp first."""
    X = data.matrix
    rows = row_of_values(X)
    noise = rng.random(X.nnz)
    if order == "random":
        perm = np.lexsort((noise, rows))
    elif order == "latest":
        if data.timestamps is None:
            raise ValueError("order='latest' needs timestamps; these interactions have none")
        perm = np.lexsort((noise, -data.timestamps, rows))
    else:
        raise ValueError(f"order must be 'random' or 'latest', got {order!r}")
    ranks = np.empty(X.nnz, dtype=np.int64)
    ranks[perm] = np.arange(X.nnz) - X.indptr[rows[perm]]
    return ranks


def _holdout_mask(data: Interactions, n_out: np.ndarray, order: str, random_state) -> np.ndarray:
    """True for the first ``n_out[u]`` values of each row in the chosen order."""
    ranks = _ranked_within_rows(data, order, check_random_state(random_state))
    return ranks < n_out[row_of_values(data.matrix)]


def _check_fraction(fraction: float, name: str) -> float:
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {fraction}")
    return float(fraction)


def random_holdout(data: Interactions, test_fraction: float = 0.2, min_interactions: int = 2,
                   random_state=None) -> Split:
    """Hold out a random fraction of each user's interactions.

    ::

        items ->   . x . x x      . x . x .      . . . . x
        user 0     x . x . x  ->  x . . . x  +   . . x . .
                   train+test     train          test (~fraction of each row)

    Users with fewer than ``min_interactions`` stay entirely in train; every other user keeps at
    least one training interaction. ``round(test_fraction * n_u)`` go to test.
    """
    _check_fraction(test_fraction, "test_fraction")
    counts = np.diff(data.matrix.indptr)
    n_out = np.where(counts >= min_interactions,
                     np.minimum(np.round(counts * test_fraction), counts - 1), 0).astype(np.int64)
    test = _holdout_mask(data, n_out, "random", random_state)
    return Split(data.select(~test), data.select(test))


def leave_k_out(data: Interactions, k: int = 1, order: str = "random",
                random_state=None) -> Split:
    """Hold out ``k`` interactions per user: random ones or the latest by timestamp.

    ::

        time ->    t1 t2 t3 t4          t1 t2 t3         t4
        user 0     x  x  x  x     ->    x  x  x     +    x     (k=1, order="latest")
        user 1     x  x                 x  x             (too few: all train)

    Only users with more than ``k`` interactions get test items (each keeps one or more training
    ones). Timestamp ties are broken by the seeded random order.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    counts = np.diff(data.matrix.indptr)
    n_out = np.where(counts > k, k, 0).astype(np.int64)
    test = _holdout_mask(data, n_out, order, random_state)
    return Split(data.select(~test), data.select(test))


def temporal_split(data: Interactions, test_fraction: float | None = 0.2,
                   cutoff: int | None = None) -> Split:
    """One global time cut: everything at or after ``cutoff`` is test.

    ::

        time ->  |-------- train --------|cutoff|---- test ----|
        user 0     x     x        x                  x
        user 1          x                      x         x

    ``cutoff`` defaults to the timestamp quantile that puts about ``test_fraction`` of the
    interactions in test. Users or items that first appear after the cut have no training data
    (a real deployment faces them too); evaluation counts them as misses.
    """
    if data.timestamps is None:
        raise ValueError("temporal_split needs timestamps; these interactions have none")
    if cutoff is None:
        if test_fraction is None:
            raise ValueError("give either test_fraction or cutoff")
        _check_fraction(test_fraction, "test_fraction")
        cutoff = int(np.quantile(data.timestamps, 1.0 - test_fraction, method="higher"))
    test = data.timestamps >= cutoff
    return Split(data.select(~test), data.select(test))


def strong_generalization(data: Interactions, test_users: float = 0.2,
                          fold_out: float = 0.2, order: str = "random",
                          min_interactions: int = 2, random_state=None) -> Split:
    """Held-out users: models never train on them; at test time part of their history is known.

    ::

                  items ->            train        fold_in      test (fold-out)
        user 0    x . x x .    ->     x . x x .
        user 1    . x x . x    ->     . x x . x
        user 2*   x x . . x    ->                  x x . . .    . . . . x
        (* held-out user)

    ``test_users`` of the users with at least ``min_interactions`` interactions are held out;
    ``fold_out`` of each held-out user's interactions (random or latest) are the test targets,
    the rest is the fold-in history (``Split.fold_in``, also ``Split.test_history``).
    """
    _check_fraction(test_users, "test_users")
    _check_fraction(fold_out, "fold_out")
    rng = check_random_state(random_state)
    counts = np.diff(data.matrix.indptr)
    eligible = np.flatnonzero(counts >= min_interactions)
    n_held = int(round(test_users * eligible.size))
    if n_held == 0:
        raise ValueError("no user is held out: too few users with enough interactions")
    held = np.zeros(data.shape[0], dtype=bool)
    held[rng.choice(eligible, size=n_held, replace=False)] = True
    n_out = np.where(held, np.clip(np.round(counts * fold_out), 1, counts - 1), 0)
    test = _holdout_mask(data, n_out.astype(np.int64), order, rng)
    held_value = held[row_of_values(data.matrix)]
    return Split(train=data.select(~held_value), test=data.select(test),
                 fold_in=data.select(held_value & ~test))


def validation_split(split: Split, fraction: float | None = 0.1, k: int | None = None,
                     order: str = "random", random_state=None) -> Split:
    """Carve a validation part out of ``split.train`` (the test part is never touched).

    ::

        train            ->   train'          validation       test (unchanged)
        x . x x x             x . x . x       . . . x .        . x . . .

    With ``k``, leave-``k``-out per user (``order`` random or latest); otherwise a random
    ``fraction`` of each user's training interactions.
    """
    if split.validation is not None:
        raise ValueError("this split already has a validation part")
    if k is not None:
        inner = leave_k_out(split.train, k=k, order=order, random_state=random_state)
    else:
        inner = random_holdout(split.train, test_fraction=fraction, random_state=random_state)
    return replace(split, train=inner.train, validation=inner.test)
