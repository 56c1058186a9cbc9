"""Sampled zeros for the models that fit stored values only.

MaskedNMF, AltMin and NBMF fit the observed entries of a matrix; on implicit feedback every
observed entry is a positive, so they need explicit zeros to learn what a user does not pick.
:func:`with_sampled_negatives` adds them, drawn uniformly among the unobserved cells.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from recsys._validation import as_csr, check_random_state
from recsys.data.interactions import Interactions

#: What a sampled zero stores: CSR drops exact zeros, and 1e-6 is 0 to every fit
NEGATIVE_VALUE = 1e-6


def with_sampled_negatives(X, per_positive: int = 4, value: float = NEGATIVE_VALUE,
                           random_state=None):
    """``X`` plus ``per_positive`` uniformly drawn unobserved items per stored entry of each
    row, stored with ``value``.

    Draws that repeat or that hit an observed entry are dropped, so a row gets at most
    ``per_positive`` times its count (nearly that many on sparse data). The observed entries
    keep their values.

    Parameters
    ----------
    X : CSR matrix or Interactions
        Users x items; an :class:`~recsys.data.Interactions` keeps its id maps (its
        timestamps are dropped: the sampled cells have none).
    per_positive : int
        Draws per stored entry (>= 1).
    value : float
        The stored value of a sampled zero (> 0, below every observed value).
    random_state : int, Generator or None

    Returns
    -------
    CSR matrix (float32) or Interactions, like ``X``.
    """
    if isinstance(X, Interactions):
        return replace(X, matrix=with_sampled_negatives(X.matrix, per_positive, value,
                                                         random_state), timestamps=None)
    X = as_csr(X, "X", allow_empty=True)
    if isinstance(per_positive, bool) or not isinstance(per_positive, int | np.integer) \
            or per_positive < 1:
        raise ValueError(f"per_positive must be an int >= 1, got {per_positive!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"value must be a finite number > 0 (CSR drops zeros), got {value!r}")
    if X.nnz and value >= X.data.min():
        raise ValueError(f"value {value:g} is not below every observed value "
                         f"(the smallest is {float(X.data.min()):g})")
    rng = check_random_state(random_state)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr) * per_positive)
    cols = rng.integers(0, X.shape[1], rows.size) if X.shape[1] else rows[:0]
    drawn = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=X.shape)
    drawn.data[:] = 1.0  # repeats were summed
    observed = X.copy()
    observed.data[:] = 1.0
    drawn = (drawn - drawn.multiply(observed)).tocsr()
    drawn.eliminate_zeros()
    drawn.data[:] = value
    out = (X + drawn).tocsr()
    out.sort_indices()
    return out


__all__ = ["NEGATIVE_VALUE", "with_sampled_negatives"]
