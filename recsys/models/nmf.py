"""Masked nonnegative matrix factorisation of explicit ratings (observed entries only).

Minimises over W >= 0 (users x k), H >= 0 (items x k) and, with ``biases``, a free mean mu and
free biases b_u, b_i

    sum_{(u,i) in Omega} (v_ui - mu - b_u - b_i - w_u . h_i)^2
        + l2 * sum_u |Omega_u|^nu (|w_u|^2 + b_u^2) + l2 * sum_i |Omega_i|^nu (|h_i|^2 + b_i^2)

(the weighted NMF objective of Zhang, Wang, Ford, Makedon, SDM 2006, with Surprise's and
Cornac's count-scaled regularisation at nu = 1) by rank-one coordinate descent on the residual
(CCD++, Yu et al. ICDM 2012) with a projection on the nonnegative orthant, i.e. HALS restricted
to Omega. Unrated entries never enter the loss. Every coordinate step is exact, so the loss is
non-increasing; one sweep costs O(|Omega| k) and never forms k x k systems.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._constraints import BOOLEAN, NUM_THREADS, RANDOM_STATE, Integer, Real
from recsys._ext._csr import transpose
from recsys._ext._nmf import cd_rows, gather, scatter
from recsys._sparse import transpose_csr
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import as_csr, check_random_state
from recsys.distributed import open_shards, update_row_blocks
from recsys.models.auto import AUTO, AUTO_OPTION, ridge, row_ridge, warn_if_constant
from recsys.models.base import biased_factors, grown
from recsys.models.iterative import EarlyStopping, IterativeModel, Training
from recsys.models.schema import Array, Scalar

logger = logging.getLogger(__name__)

#: ``l2="auto"``: this many standard deviations of the stored values
L2_PER_UNIT = 0.7


class MaskedNMF(IterativeModel):
    """Masked (weighted) NMF with optional biases, fitted by projected CCD++.

    Parameters
    ----------
    factors : int
        Rank k.
    l2 : float or "auto"
        Regularisation lambda (>= 0), scaled per row by ``|Omega_u|^frequency_scaling``.
        ``"auto"``: 0.7 times the standard deviation of the stored values (their root mean
        square without ``biases``; :mod:`recsys.models.auto`): 0.79 on ML-100K's ratings,
        about 0.28 on implicit feedback with sampled zeros. The value used is ``l2_``.
    epochs : int
        Passes over the data; each refits mu, b_u, b_i and then every rank-one term once.
    biases : bool
        Learn mu, b_u, b_i (free sign). Without biases the model is plain masked NMF
        ``v_ui ~ w_u . h_i`` and the ratings must be nonnegative.
    frequency_scaling : float
        nu in ``l2 * |Omega_u|^nu`` (1: Surprise/Cornac's per-rating regularisation, 0: ridge).
    inner : int
        Alternations between the user and item side of one rank-one term per visit (CCD++'s
        inner iterations; 1 is usually best per unit of time).
    random_state : int, Generator or None
        Seeds the initial item factors (uniform on [0, sqrt(mean / k))); W starts at 0.
    num_threads : int
        0 for all cores; results do not depend on the thread count.
    show_progress : bool

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray (n, k), nonnegative
    user_bias_, item_bias_ : ndarray
    global_mean_ : float
    loss_ : ndarray
        Regularised training loss after each sweep (non-increasing).
    """

    uses_user_state = True
    rating_model = True

    _renamed_params = {"iterations": "epochs"}
    _parameter_constraints = {"factors": [Integer(1)], "l2": [Real(0), AUTO_OPTION],
                              "epochs": [Integer(1)], "biases": BOOLEAN,
                              "frequency_scaling": [Real(0)], "inner": [Integer(1)],
                              "random_state": RANDOM_STATE, "num_threads": NUM_THREADS,
                              "show_progress": BOOLEAN}

    _fitted = {"user_factors_": Array("f", ("n_users_", "k")),
               "item_factors_": Array("f", ("n_items_", "k")),
               "user_bias_": Array("f", ("n_users_",)), "item_bias_": Array("f", ("n_items_",)),
               "global_mean_": Scalar(float), "loss_": Array("f", ("t",)),
               "l2_": Scalar(float, optional=True)}

    _default_metric = "rmse"  # early stopping on the validation RMSE

    def __init__(self, *, factors: int = 64, l2: float | str = AUTO, epochs: int = 10,
                 biases: bool = True, frequency_scaling: float = 0.5, inner: int = 1,
                 random_state=None, num_threads: int = 0, show_progress: bool = False):
        self.factors = factors
        self.l2 = l2
        self.epochs = epochs
        self.biases = biases
        self.frequency_scaling = frequency_scaling
        self.inner = inner
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fit(self, X, validation=None, *, early_stopping: EarlyStopping | None = None,
            callback=None, cluster=None, n_shards: int | None = None) -> MaskedNMF:
        """Fit on observed ratings ``X`` (CSR users x items; stored values are the ratings).

        The epoch contract of :class:`~recsys.models.iterative.IterativeModel`:
        ``callback(epoch, model)`` after every sweep, ``history_`` with each sweep's loss;
        with ``validation`` (held-out ratings) early stopping on its RMSE by default. With
        ``cluster`` (a
        ``distributed.Client``, a scheduler address, or ``"local"``) each half-step's
        coordinate-descent passes run as Dask tasks over ``n_shards`` row blocks (default: two
        per worker), the other side's factors broadcast once per half-step; the rows are
        independent, so the result is the single-process fit's.
        """
        X = self._prepare_fit(X, nonnegative=not self.biases)
        warn_if_constant("MaskedNMF", X)
        training = self._start_training(X, validation, early_stopping, callback)
        with open_shards(cluster, n_shards) as shards:
            return self._fit(X, training, shards)

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {"l2": ridge(self.l2, X, L2_PER_UNIT, centred=self.biases)}

    def _fit(self, X, training: Training, shards) -> MaskedNMF:
        rng = check_random_state(self.random_state)
        threads = resolve_num_threads(self.num_threads)
        t_indptr, t_indices, t_pos = transpose_positions(X)
        n_users, n_items = X.shape
        k = self.factors
        user_reg = row_ridge(self, X.indptr)
        item_reg = row_ridge(self, t_indptr)
        scale = np.sqrt(max(float(np.abs(X.data).mean()), 1e-12) / k)
        W = np.zeros((n_users, k))
        H = rng.uniform(0.0, scale, (n_items, k))
        self.global_mean_ = 0.0
        b_user, b_item = np.zeros(n_users), np.zeros(n_items)
        resid = X.data.astype(np.float64)  # v - prediction on Omega, CSR order
        resid_t = resid[t_pos]  # the same in the transpose's order
        losses = []
        progress = tqdm(range(self.epochs), desc="MaskedNMF", disable=not self.show_progress)
        with blas_limit(1):  # BLAS threads spinning between our OpenMP loops would stall them
            for it in progress:
                if self.biases:
                    shift = resid.mean()  # exact minimiser in mu
                    self.global_mean_ += shift
                    resid -= shift
                self._cd_half(X.indptr, X.indices, resid, W, H, b_user, user_reg, threads,
                              shards)
                gather(resid, t_pos, resid_t, threads)
                self._cd_half(t_indptr, t_indices, resid_t, H, W, b_item, item_reg, threads,
                              shards)
                scatter(resid_t, t_pos, resid, threads)
                losses.append(float(resid @ resid
                                    + user_reg @ (np.einsum("uf,uf->u", W, W) + b_user ** 2)
                                    + item_reg @ (np.einsum("if,if->i", H, H) + b_item ** 2)))
                if training.watched:  # the callback or the validation reads the model
                    self._store(W, H, b_user, b_item, losses)
                if training.end_epoch(it, last=it == self.epochs - 1, loss=losses[-1]):
                    break
        self._store(W, H, b_user, b_item, losses)
        training.finish()
        logger.debug("MaskedNMF: final training loss %.6g", losses[-1] if losses else np.nan)
        return self

    def _cd_half(self, indptr, indices, resid, rows, other, bias, reg, threads,
                 shards) -> None:
        """One half-step: ``inner`` coordinate-descent passes over every row of ``rows``
        (in place, with ``resid`` and ``bias``), here or row block by row block on Dask."""
        if shards is None:
            cd_rows(indptr, indices, resid, rows, other, bias, reg, self.inner, True,
                    self.biases, threads)
            return
        structure = sp.csr_matrix((resid, indices, indptr), shape=(len(rows), len(other)))
        update_row_blocks(shards, _cd_block, structure,
                          [(rows, "rows"), (resid, "entries"), (bias, "rows")],
                          entries={"resid": resid},
                          rows={"factors": rows, "bias": bias, "reg": reg},
                          shared={"other": other}, inner=self.inner, use_bias=self.biases)

    def _store(self, W, H, b_user, b_item, losses) -> None:
        self.user_factors_ = W.copy()
        self.item_factors_ = H.copy()
        self.user_bias_ = b_user.copy()
        self.item_bias_ = b_item.copy()
        self.loss_ = np.asarray(losses, dtype=np.float64)

    def _factors(self, users, X):
        U, b = self._user_state(users, X, self.user_factors_, self.user_bias_)
        return biased_factors(U, b, self.item_factors_, self.item_bias_, self.global_mean_)

    def _explain(self, user, item, row):
        raise NotImplementedError("MaskedNMF's user factors are a nonnegative least-squares "
                                  "solution, not a linear function of the history")

    def fold_in(self, X_new, max_sweeps: int = 500,
                tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
        """Factors and biases of new users from their ratings (rows x the fitted items): the
        user side of the fit, solved to convergence for these rows with H, the item biases
        and the mean fixed (coordinate descent from zero until no coordinate moves by more
        than ``tol`` times the ratings' scale, at most ``max_sweeps`` passes).

        Returns ``(user_factors, user_bias)``.
        """
        self._check_fitted()
        X_new = as_csr(X_new, "X_new", allow_empty=True, nonnegative=not self.biases,
                       n_items=self.n_items_)
        return self._solve_side(X_new, self.item_factors_, self.item_bias_, max_sweeps, tol)

    def _solve_side(self, rows: sp.csr_matrix, other: np.ndarray, other_bias: np.ndarray,
                    max_sweeps: int = 500, tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
        """One side's factors and biases for ``rows`` (users x items, or items x users) with
        the other side fixed, by coordinate descent from zero to convergence."""
        n, k = rows.shape[0], other.shape[1]
        W, b = np.zeros((n, k)), np.zeros(n)
        resid = rows.data.astype(np.float64) - self.global_mean_ - other_bias[rows.indices]
        reg = row_ridge(self, rows.indptr)
        scale = max(float(np.abs(rows.data).max(initial=0.0)), 1.0)
        threads = resolve_num_threads(self.num_threads)
        with blas_limit(1):
            for _ in range(max_sweeps):
                before_W, before_b = W.copy(), b.copy()
                cd_rows(rows.indptr, rows.indices, resid, W, other, b, reg, 1, True,
                        self.biases, threads)
                moved = max(np.abs(W - before_W).max(initial=0.0),
                            np.abs(b - before_b).max(initial=0.0))
                if moved <= tol * scale:
                    break
        return W, b

    def partial_fit(self, X, users=None, previous=None) -> MaskedNMF:
        """Re-solve the touched rows to convergence with the rest fixed: the changed and new
        users, then the new items and the items the touched users rated, then the touched
        users again. The global mean is kept."""
        X, _, touched, _ = self._prepare_update(X, users, previous, nonnegative=not self.biases)
        W, bu = grown(self.user_factors_, X.shape[0]), grown(self.user_bias_, X.shape[0])
        H, bi = grown(self.item_factors_, X.shape[1]), grown(self.item_bias_, X.shape[1])
        items = self._touched_items(X, touched)
        if touched.size:
            W[touched], bu[touched] = self._solve_side(X[touched], H, bi)
        if items.size:
            H[items], bi[items] = self._solve_side(transpose_csr(X)[items], W, bu)
        if touched.size:
            W[touched], bu[touched] = self._solve_side(X[touched], H, bi)
        self._store(W, H, bu, bi, list(self.loss_))
        self.n_users_, self.n_items_ = (int(n) for n in X.shape)
        return self


def transpose_positions(X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR structure of ``X.T`` and, for each of its entries, the position in ``X.data``
    (int32 positions: a canonical CSR has fewer than 2^31 entries)."""
    return transpose(X.indptr, X.indices, None, X.shape[1])


def _cd_block(indptr, indices, entries, rows, start, other, inner, use_bias, threads):
    """A Dask task: the coordinate-descent passes of one row block (its residuals, factors
    and biases updated on copies and returned)."""
    factors = np.array(rows["factors"], order="C")
    resid = np.array(entries["resid"])
    bias = np.array(rows["bias"])
    cd_rows(indptr, indices, resid, factors, other, bias, rows["reg"], inner, True, use_bias,
            threads)
    return factors, resid, bias


__all__ = ["MaskedNMF", "transpose_positions"]
