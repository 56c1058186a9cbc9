"""Data-aware defaults: a parameter left at ``"auto"`` takes its value from the training matrix
when ``fit`` starts, and the fitted model records it (``l2_``, ``alpha_``, ...).

Ridge strength of the rating models with real factors (MaskedNMF, AltMin)::

    l2_ = per_unit * scale(v),    v = the stored values of X,
    scale = std(v) for a model with biases (they take the mean), sqrt(mean(v^2)) without

A bilinear model ``w_u . h_i`` fitted to ``s V`` has the optimum ``sqrt(s) W, sqrt(s) H``
when ``l2`` is scaled by ``s`` too (its squared error grows as ``s^2``, its penalty as
``s l2``), so a penalty proportional to the size of the values makes the factors' fit the
same at any scale of the values (the biases, linear in the values, are not: at a larger scale
they pay relatively more). ``per_unit`` is set per model so that on ML-100K's ratings (standard
deviation 1.13, root mean square 3.70) ``l2_`` is the rating-tuned value; implicit feedback
with sampled zeros (values 1 and ~0, standard deviation about 0.4 and root mean square about
0.45 at four zeros per positive) gets a penalty about 3 (with biases) or 8 (without) times
smaller.

Ridge strength of NBMF (binary item codes)::

    l2_ = NBMF_L2_PER_LEVEL * mean(v) / std(v)

With binary codes the fit is the same at any unit of the values for a fixed ``l2`` (W carries
the scale), so the rule above does not apply; what moves NBMF's best penalty is how far the
values sit from 0 against their spread. Ratings (ML-100K: mean / std 3.1) want 0.5;
implicit feedback with four sampled zeros per positive (mean / std about 0.5 to 0.6) wants
0.03 to 0.18 on the shared data sets, and the rule gives 0.08 to 0.09 there. An empirical
rule, calibrated on those five data sets (``benchmarks/README.md``), unit-free like the fit.

Confidence slope of implicit ALS (Hu, Koren, Volinsky 2008: ``c_ui = 1 + alpha r_ui``)::

    alpha_ = ALPHA_SCALE / (sqrt(density) * mean(v)),    density = nnz / (n_users n_items)

The confidence mass of the positives, ``alpha nnz``, grows against that of the zeros as the
matrix fills; the best slope on the shared data sets shrinks with the density, about as its
square root (ML-1M at density 4.3%: 2 to 5; Gowalla at 0.06%: 20 to 40), and dividing by the
mean value makes the rule indifferent to the unit of the values (counts, weights).

Neighbours per item of ItemKNN::

    neighbors_ = round(NEIGHBOURS_SCALE / sqrt(density)),    10 to MAX_NEIGHBOURS

On dense data a few close neighbours carry the signal and more of them add noise; on sparse
data each item's similarities rest on few co-occurrences and summing over many of them pays
(the best count on the shared data sets: 10 to 25 on ML-1M and ML-100K at densities of 4.4%
and 2.5%, 400 or more on Gowalla and lastfm at 0.06% and 0.2%; the rule gives 48, 63, 410 and
224 there). An empirical rule, calibrated on those four data sets (``benchmarks/README.md``).

Learning rate of BPR (implicit's SGD)::

    learning_rate_ = min(BPR_MAX_RATE, BPR_RATE_SCALE / sqrt(density))

An epoch makes ``nnz`` SGD steps, so on denser data every row is stepped more often per epoch
and a fixed epoch count wants a smaller step: the best rate on the shared data sets (100
epochs, l2 0.01) is 0.0025 or less on ML-1M (density 4.4%), 0.005 on ML-100K (2.5%) and
implicit's 0.01 on lastfm and Gowalla (0.2% and 0.06%), each a narrow peak; the rule gives
0.0048, 0.0063 and 0.01. An empirical rule, calibrated on those four data sets.

Ridge strength of EASE (Steck 2019: ``B`` from ``(X^T X + l2 I)^{-1}``)::

    l2_ = EASE_L2_SCALE * sum_j G_jj^2 / sum_j G_jj,    G_jj = sum_u x_uj^2

The penalty competes with the Gram matrix, whose diagonal holds each item's count (times the
squared values): item ``j``'s regression is shrunk by about ``G_jj / (G_jj + l2)``. The ratio
above is the diagonal entry of the item behind an average interaction (for 0/1 data the
popularity of the item a random interaction touches), so the penalty is set against the items
that carry the interactions, not the long tail a plain mean over items is dominated by; it
scales with the values' unit squared, as ``G`` does (``X`` times s gives the same ``B``). An
empirical rule, calibrated on the validation parts of the shared data sets (the grid and
the rule's values are in ``benchmarks/README.md``).

Negative weight of SimpleX's cosine contrastive loss::

    negative_weight_ = max(SIMPLEX_MIN_WEIGHT, SIMPLEX_WEIGHT_SCALE / density)

``1 / density`` is the catalogue over the mean history, ``n_items / (nnz / n_users)``: the
larger the catalogue against what a user holds, the more of the N uniform negatives are easy
and the heavier their averaged term has to be for the few close ones to count. The two
SimpleX sweeps of each shared data set chose 5 to 11 on ML-100K and ML-1M (densities 2.8% and
4.4%), 12 and 36 on lastfm (0.2%), 143 and 241 on Gowalla (0.07%; its official configuration
250); the rule gives 10, 10, 45 and 151 there. An empirical rule, calibrated on those four
data sets (``benchmarks/README.md``).

L2 of SimpleX's dense Adam (every row charged at every mini-batch)::

    l2_ = SIMPLEX_L2_SCALE * batch_size / n_items

Each mini-batch of ``batch_size`` positives touches an item about ``batch_size / n_items``
times on average, while dense Adam charges the penalty of every row at every mini-batch; the
rule keeps the penalty per unit of an item's data at ML-1M's tuned 2e-3 (3.7e-3 on ML-100K,
3.5e-4 on lastfm, 1.5e-4 on Gowalla, where the best sweeps chose 2.7e-3, 3.8e-4 and 1.0e-4).
The other optimisers charge a row only when it steps and keep the old fixed default
(``SIMPLEX_ROW_L2``, 2e-3).
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from recsys._constraints import Options
from recsys._sparse import column_counts

#: The value of a parameter chosen from the data
AUTO = "auto"
#: Constraint entry that admits ``"auto"``
AUTO_OPTION = Options(AUTO)
#: ``alpha_ = ALPHA_SCALE / (sqrt(density) * mean value)``
ALPHA_SCALE = 0.6
#: NBMF's ``l2_ = NBMF_L2_PER_LEVEL * mean(v) / std(v)``: 0.5 on ML-100K's ratings
NBMF_L2_PER_LEVEL = 0.16
#: ItemKNN's ``neighbors_ = NEIGHBOURS_SCALE / sqrt(density)``, at most ``MAX_NEIGHBOURS``
NEIGHBOURS_SCALE = 10.0
MAX_NEIGHBOURS = 2000
#: BPR's ``learning_rate_ = min(BPR_MAX_RATE, BPR_RATE_SCALE / sqrt(density))``
BPR_RATE_SCALE = 1e-3
BPR_MAX_RATE = 0.01
#: EASE's ``l2_ = EASE_L2_SCALE * sum_j G_jj^2 / sum_j G_jj``
EASE_L2_SCALE = 1.5
#: SimpleX's ``negative_weight_ = max(SIMPLEX_MIN_WEIGHT, SIMPLEX_WEIGHT_SCALE / density)``
SIMPLEX_WEIGHT_SCALE = 0.1
SIMPLEX_MIN_WEIGHT = 10.0
#: SimpleX's dense-Adam ``l2_ = SIMPLEX_L2_SCALE * batch_size / n_items``
SIMPLEX_L2_SCALE = 6e-3
#: SimpleX's ``l2_`` with the optimisers that charge a row only when it steps
SIMPLEX_ROW_L2 = 2e-3


def ridge(l2: float | str, X: sp.csr_matrix, per_unit: float, centred: bool = True) -> float:
    """``l2`` itself, or for ``"auto"`` ``per_unit`` times the scale of the stored values of
    ``X``: their standard deviation (``centred``: a model with biases) or their root mean
    square; ``per_unit`` when that is 0."""
    if l2 != AUTO:
        return float(l2)
    values = X.data.astype(np.float64)
    if values.size == 0:
        return per_unit
    scale = float(values.std() if centred else np.sqrt(np.mean(values * values)))
    return per_unit * (scale if scale > 0 else 1.0)


def level_ridge(l2: float | str, X: sp.csr_matrix, per_level: float) -> float:
    """``l2`` itself, or for ``"auto"`` ``per_level`` times the mean of the stored values of
    ``X`` over their standard deviation; ``per_level`` when the values are all equal (or
    there are none)."""
    if l2 != AUTO:
        return float(l2)
    values = X.data.astype(np.float64)
    std = float(values.std()) if values.size else 0.0
    return per_level * (abs(float(values.mean())) / std if std > 0 else 1.0)


def density(X: sp.csr_matrix) -> float:
    """``nnz / (n_users n_items)``, 0 for an empty matrix."""
    n_cells = float(X.shape[0]) * float(X.shape[1])
    return X.nnz / n_cells if X.nnz and n_cells else 0.0


def confidence_slope(alpha: float | str, X: sp.csr_matrix) -> float:
    """``alpha`` itself, or for ``"auto"`` ``ALPHA_SCALE / (sqrt(density) * mean value)``, at
    least 1."""
    if alpha != AUTO:
        return float(alpha)
    if not density(X):
        return 1.0
    mean = float(X.data.mean(dtype=np.float64))
    return max(float(ALPHA_SCALE / (np.sqrt(density(X)) * mean)), 1.0)


def neighbour_count(neighbors: int | str, X: sp.csr_matrix) -> int:
    """``neighbors`` itself, or for ``"auto"`` ``round(NEIGHBOURS_SCALE / sqrt(density))``,
    at most ``MAX_NEIGHBOURS`` (``NEIGHBOURS_SCALE`` for an empty matrix)."""
    if neighbors != AUTO:
        return int(neighbors)
    if not density(X):
        return int(NEIGHBOURS_SCALE)
    return int(min(MAX_NEIGHBOURS, round(NEIGHBOURS_SCALE / np.sqrt(density(X)))))


def sgd_rate(rate: float | str, X: sp.csr_matrix) -> float:
    """``rate`` itself, or for ``"auto"`` ``min(BPR_MAX_RATE, BPR_RATE_SCALE /
    sqrt(density))`` (``BPR_MAX_RATE`` for an empty matrix)."""
    if rate != AUTO:
        return float(rate)
    if not density(X):
        return BPR_MAX_RATE
    return float(min(BPR_MAX_RATE, BPR_RATE_SCALE / np.sqrt(density(X))))


def gram_ridge(l2: float | str, X: sp.csr_matrix) -> float:
    """``l2`` itself, or for ``"auto"`` ``EASE_L2_SCALE * sum_j G_jj^2 / sum_j G_jj`` with
    ``G_jj = sum_u x_uj^2`` (``EASE_L2_SCALE`` for a matrix without nonzero values)."""
    if l2 != AUTO:
        return float(l2)
    diagonal = column_counts(X, power=2)
    total = float(diagonal.sum())
    if total <= 0:
        return EASE_L2_SCALE
    return float(EASE_L2_SCALE * float(diagonal @ diagonal) / total)


def contrastive_weight(weight: float | str, X: sp.csr_matrix) -> float:
    """``weight`` itself, or for ``"auto"`` ``max(SIMPLEX_MIN_WEIGHT, SIMPLEX_WEIGHT_SCALE /
    density)`` (``SIMPLEX_MIN_WEIGHT`` for an empty matrix)."""
    if weight != AUTO:
        return float(weight)
    if not density(X):
        return SIMPLEX_MIN_WEIGHT
    return float(max(SIMPLEX_MIN_WEIGHT, SIMPLEX_WEIGHT_SCALE / density(X)))


def table_ridge(l2: float | str, X: sp.csr_matrix, batch_size: int, dense: bool) -> float:
    """``l2`` itself, or for ``"auto"`` ``SIMPLEX_L2_SCALE * batch_size / n_items`` when every
    row pays it at every mini-batch (``dense``), else ``SIMPLEX_ROW_L2``."""
    if l2 != AUTO:
        return float(l2)
    if not dense:
        return SIMPLEX_ROW_L2
    return float(SIMPLEX_L2_SCALE * batch_size / max(X.shape[1], 1))


def in_use(model, name: str) -> float:
    """The value of parameter ``name`` that a fitted ``model`` uses: its ``name_``, set by
    ``fit``, or the parameter itself (model files written before ``"auto"`` existed)."""
    return getattr(model, name + "_", getattr(model, name))


def row_ridge(model, indptr: np.ndarray) -> np.ndarray:
    """The count-scaled ridge of every row of a CSR structure,
    ``l2 |Omega_r|^frequency_scaling``, with the ``l2`` that ``model`` uses."""
    return in_use(model, "l2") * np.power(np.diff(indptr), model.frequency_scaling,
                                          dtype=float)


def warn_if_constant(owner: str, X: sp.csr_matrix) -> None:
    """A rating model fitted on values that are all equal (implicit feedback without zeros)
    predicts that value for every item: warn, and say what to do."""
    if X.nnz and X.data.min() == X.data.max():
        warnings.warn(
            f"{owner} fits the stored values only, and every one of them is "
            f"{float(X.data[0]):g}: it will score every item alike. For implicit feedback, "
            "add sampled zeros (recsys.data.with_sampled_negatives) or use an "
            "implicit-feedback model (ALS, EASE, SimpleX)", UserWarning, stacklevel=4)


__all__ = ["ALPHA_SCALE", "AUTO", "AUTO_OPTION", "EASE_L2_SCALE", "NBMF_L2_PER_LEVEL",
           "SIMPLEX_L2_SCALE", "SIMPLEX_MIN_WEIGHT", "SIMPLEX_ROW_L2", "SIMPLEX_WEIGHT_SCALE",
           "confidence_slope", "contrastive_weight", "density", "gram_ridge", "in_use",
           "level_ridge", "ridge", "row_ridge", "table_ridge", "warn_if_constant"]
