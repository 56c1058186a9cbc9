"""Alternating-minimisation matrix completion on observed entries (explicit ratings).

Minimises over user factors x_u, item factors y_i, biases b_u, b_i (mean mu fixed)::

    sum_{(u,i) in Omega} (r_ui - mu - b_u - b_i - x_u . y_i)^2
        + l2 * sum_u |Omega_u|^nu (|x_u|^2 + b_u^2) + l2 * sum_i |Omega_i|^nu (|y_i|^2 + b_i^2)

by alternating exact or approximate per-row least squares (Jain, Netrapalli, Sanghavi, STOC 2013;
Gu, Song, Yin, Zhang 2023 for approximate solves; nu = 1 is ALS-WR's weighted lambda, Zhou et
al. 2008, nu as in Rendle et al. 2022's frequency-scaled regularisation). Biases ride along as
constant columns: the user side solves for (x_u, b_u) against [y_i, 1], the item side for
(y_i, b_i) against [x_u, 1].
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from tqdm.auto import tqdm

from recsys._constraints import BOOLEAN, NUM_THREADS, RANDOM_STATE, Integer, Options, Real
from recsys._ext._altmin import solve_rows
from recsys._sparse import select_entries, transpose_csr
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import as_csr, check_memory, check_random_state
from recsys.distributed import open_shards, update_row_blocks
from recsys.models.auto import AUTO, AUTO_OPTION, in_use, ridge, row_ridge, warn_if_constant
from recsys.models.base import biased_factors, grown
from recsys.models.explain import Explanation, ridge_contributions
from recsys.models.iterative import EarlyStopping, IterativeModel, Training
from recsys.models.schema import Array, Scalar

logger = logging.getLogger(__name__)

_SOLVERS = {"cholesky": 0, "cg": 1, "sketch": 2}
#: ``l2="auto"``: this many standard deviations of the stored values
L2_PER_UNIT = 0.9


class AltMin(IterativeModel):
    """Matrix completion by alternating minimisation (see the module docstring).

    Parameters
    ----------
    factors : int
        Rank k.
    l2 : float or "auto"
        Regularisation lambda (>= 0; rows with fewer than k + 1 observations need > 0).
        ``"auto"``: 0.9 times the standard deviation of the stored values (their root mean
        square without ``biases``; :mod:`recsys.models.auto`): 1.01 on ML-100K's ratings,
        about 0.36 on implicit feedback with sampled zeros. The value used is ``l2_``.
    epochs : int
        Passes over the data: alternating sweeps (users, then items).
    solver : {"cholesky", "cg", "sketch"}
        Exact per-row solve (d x d Cholesky, ``O(|Omega| d^2)`` per sweep); ``cg_steps`` of
        conjugate gradient warm-started from the current row (``O(|Omega| d cg_steps)``); or
        Gu et al.'s approximate solver: ``cg_steps`` of CG preconditioned by the R factor of a
        CountSketch (4d rows) of the row's design, whose convergence does not depend on the
        row's conditioning (``O(|Omega| d + d^3) + O(|Omega| d)`` per step).
    cg_steps : int
    biases : bool
        Learn b_u and b_i (and centre on the global mean).
    frequency_scaling : float
        nu in ``l2 * |Omega_u|^nu``; 0 gives a plain ridge.
    sample_splitting : bool
        JNS13's Algorithm 2 as analysed: the observed entries are split at random into
        2 * epochs + 1 disjoint parts; the spectral start uses part 0 and half-step t of
        sweep s (users, then items) only part 2s + 1 + t, so every least-squares step sees
        fresh samples. Needs several times more observations than the default (which reuses
        all of them every step, as practitioners do); rows with no entry in a part keep their
        factors through that half-step.
    init : {"svd", "random"}
        Spectral start (top-k SVD of the centred observed matrix rescaled by 1/p, with JNS13's
        clipping for incoherence) or small Gaussian noise.
    incoherence : float
        mu of the clipping step: entries of the left singular vectors above
        ``2 mu sqrt(k / m)`` are zeroed and the vectors re-orthonormalised (same on the right).
    random_state : int, Generator or None
    num_threads : int
        0 for all cores. Each row is solved by one thread; results do not depend on threads.
    show_progress : bool
    """

    uses_user_state = True
    rating_model = True

    _renamed_params = {"iterations": "epochs"}
    _parameter_constraints = {
        "factors": [Integer(1)], "l2": [Real(0), AUTO_OPTION], "epochs": [Integer(0)],
        "solver": [Options(*_SOLVERS)], "cg_steps": [Integer(1)], "biases": BOOLEAN,
        "frequency_scaling": [Real(0)], "init": [Options("svd", "random")],
        "incoherence": [Real(0, low_open=True)], "sample_splitting": BOOLEAN,
        "random_state": RANDOM_STATE, "num_threads": NUM_THREADS,
        "dtype": [Options("float32", "float64")], "show_progress": BOOLEAN}

    _fitted = {"user_factors_": Array("f", ("n_users_", "k")),
               "item_factors_": Array("f", ("n_items_", "k")),
               "user_bias_": Array("f", ("n_users_",)), "item_bias_": Array("f", ("n_items_",)),
               "global_mean_": Scalar(float), "l2_": Scalar(float, optional=True)}

    _default_metric = "rmse"  # early stopping on the validation RMSE

    def __init__(self, *, factors: int = 8, l2: float | str = AUTO, epochs: int = 20,
                 solver: str = "cholesky", cg_steps: int = 3, biases: bool = True,
                 frequency_scaling: float = 0.5, init: str = "svd", incoherence: float = 4.0,
                 sample_splitting: bool = False, random_state=None,
                 num_threads: int = 0, dtype: str = "float64", show_progress: bool = False):
        self.factors = factors
        self.l2 = l2
        self.epochs = epochs
        self.solver = solver
        self.cg_steps = cg_steps
        self.biases = biases
        self.frequency_scaling = frequency_scaling
        self.init = init
        self.incoherence = incoherence
        self.sample_splitting = sample_splitting
        self.random_state = random_state
        self.num_threads = num_threads
        self.dtype = dtype
        self.show_progress = show_progress

    def fit(self, X, validation=None, *, early_stopping: EarlyStopping | None = None,
            callback=None, cluster=None, n_shards: int | None = None) -> AltMin:
        """Fit on observed ratings ``X`` (CSR users x items; stored values are the ratings).

        The epoch contract of :class:`~recsys.models.iterative.IterativeModel`:
        ``callback(epoch, model)`` after every sweep; with ``validation`` (held-out ratings)
        early stopping on its RMSE by default. With ``cluster`` (a
        ``distributed.Client``, a scheduler address, or ``"local"`` for a LocalCluster) each
        half-step's row solves run as Dask tasks over ``n_shards`` row blocks (default: two
        per worker), the other side's factors broadcast once per half-step; the result is the
        single-process fit's.
        """
        X = self._prepare_fit(X)
        warn_if_constant("AltMin", X)
        training = self._start_training(X, validation, early_stopping, callback)
        with open_shards(cluster, n_shards) as shards:
            return self._fit(X, training, shards)

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {"l2": ridge(self.l2, X, L2_PER_UNIT, centred=self.biases)}

    def _fit(self, X, training: Training, shards) -> AltMin:
        dtype = np.dtype(self.dtype)
        rng = check_random_state(self.random_state)
        threads = resolve_num_threads(self.num_threads)
        d = self.factors + 1
        check_memory(dtype.itemsize * (threads * 5.0 * d * d + 3.0 * sum(X.shape) * d),
                     f"AltMin(factors={self.factors}) with {threads} threads (per-thread "
                     f"{d} x {d} solver scratch and the factor tables)", "Lower factors")
        self.global_mean_ = float(X.data.mean()) if self.biases else 0.0
        k = self.factors
        if self.sample_splitting:  # part 0: the start; 2 s + 1, 2 s + 2: sweep s
            parts = split_entries(X, 2 * self.epochs + 1, rng)
            start, steps = parts[0], parts[1:]
        else:
            start, steps = X, [X] * (2 * self.epochs)
        if self.init == "svd":
            users, items = self._spectral_init(start, k, rng)
        else:
            users = rng.normal(0, 0.01, (X.shape[0], k))
            items = rng.normal(0, 0.01, (X.shape[1], k))
        d = k + 1 if self.biases else k
        U = np.zeros((X.shape[0], d), dtype=dtype)
        V = np.zeros((X.shape[1], d), dtype=dtype)
        U[:, :k], V[:, :k] = users, items
        del users, items
        if not self.sample_splitting:  # the split mode builds each half-step's part instead
            XT = transpose_csr(X)
            regs = (self._row_reg(X, dtype), self._row_reg(XT, dtype))
        for it in tqdm(range(self.epochs), desc="AltMin", disable=not self.show_progress):
            with blas_limit(1):
                for side, (rows, other) in enumerate(((U, V), (V, U))):
                    seed = int(rng.integers(2**63))
                    if not self.sample_splitting:
                        self._half_step((X, XT)[side], rows, other, regs[side], threads, seed,
                                        shards=shards)
                        continue
                    part = steps[2 * it + side]
                    part = part if side == 0 else transpose_csr(part)
                    reg = self._row_reg(part, dtype)
                    empty = np.diff(part.indptr) == 0
                    reg[empty] = 1  # solved to zero, then restored: no entry, no update
                    kept = rows[empty].copy()
                    self._half_step(part, rows, other, reg, threads, seed, shards=shards)
                    rows[empty] = kept
            if training.watched:  # the callback or the validation reads the model
                self._store(U, V)
            if training.end_epoch(it, last=it == self.epochs - 1):
                break
        self._store(U, V)
        training.finish()
        return self

    def _spectral_init(self, X, k, rng):
        p = X.nnz / (X.shape[0] * X.shape[1])
        # the centred values in float64, sharing X's index arrays (never modified in place);
        # an entry equal to the mean is a stored zero, which changes no product
        centred = sp.csr_matrix((np.subtract(X.data, self.global_mean_, dtype=np.float64),
                                 X.indices, X.indptr), shape=X.shape, copy=False)
        users = np.zeros((X.shape[0], k))
        items = np.zeros((X.shape[1], k))
        if not centred.data.any():  # constant ratings: nothing beyond the mean to start from
            return users, items
        k_svd = min(k, min(X.shape) - 1)
        if k_svd < 1:  # one row or one column: ARPACK needs k < min(shape); the SVD is exact
            u, s, vt = np.linalg.svd(centred.toarray() / p, full_matrices=False)  # 1 row/col
            k_svd = 1
            u, s, vt = u[:, :1], s[:1], vt[:1]
        else:
            v0 = rng.standard_normal(min(X.shape))
            centred.data /= p
            u, s, vt = svds(centred, k=k_svd, v0=v0)
        root = np.sqrt(s * p)  # undo the 1/p rescaling in the factor scale
        users[:, :k_svd] = clip_incoherent(u, self.incoherence) * root
        items[:, :k_svd] = clip_incoherent(vt.T, self.incoherence) * root
        return users, items

    def _row_reg(self, X, dtype) -> np.ndarray:
        return row_ridge(self, X.indptr).astype(dtype)

    def _half_step(self, X, rows, other, reg, threads, seed, solver=None,
                   shards=None) -> None:
        """Solve ``rows`` given ``other``: design [other_factors, 1], target minus other bias."""
        k = self.factors
        dtype = rows.dtype
        design = other.copy()
        targets = np.empty(X.nnz, dtype=dtype)  # r - mean (in float64, buffered), then - b
        np.subtract(X.data, self.global_mean_, out=targets, dtype=np.float64,
                    casting="same_kind")
        if self.biases:  # minus the other side's bias (fixed), gathered chunk by chunk
            bias = np.ascontiguousarray(other[:, k])
            for lo in range(0, X.nnz, _CHUNK):
                targets[lo:lo + _CHUNK] -= bias[X.indices[lo:lo + _CHUNK]]
            design[:, k] = 1.0
        solver = _SOLVERS[solver or self.solver]
        if shards is None:
            failed = solve_rows(X.indptr, X.indices, targets, design, reg, rows,
                                solver, self.cg_steps, threads, seed)
        else:  # the same solves, row block by row block on the cluster
            extras = update_row_blocks(shards, _solve_block, X, [(rows, "rows")],
                                       entries={"targets": targets},
                                       rows={"rows": rows, "reg": reg},
                                       shared={"design": design}, solver=solver,
                                       cg_steps=self.cg_steps, seed=seed)
            failed = sum(f for (f,) in extras)
        if failed:
            logger.warning("%d rows had a singular system (no observations, or l2 = 0 with "
                           "too few); their factors were set to zero", failed)

    def _store(self, U, V) -> None:
        k = self.factors
        self.user_factors_ = np.ascontiguousarray(U[:, :k])
        self.item_factors_ = np.ascontiguousarray(V[:, :k])
        self.user_bias_ = U[:, k].copy() if self.biases else np.zeros(len(U), U.dtype)
        self.item_bias_ = V[:, k].copy() if self.biases else np.zeros(len(V), V.dtype)

    def _factors(self, users, X):
        U, b = self._user_state(users, X, self.user_factors_, self.user_bias_)
        return biased_factors(U, b, self.item_factors_, self.item_bias_, self.global_mean_)

    def fold_in(self, X_new) -> tuple[np.ndarray, np.ndarray]:
        """Factors and biases of new users from their ratings (users x the fitted items).

        Solves only the user side against the fitted item factors (exact solve).
        Returns ``(user_factors, user_bias)``.
        """
        self._check_fitted()
        X_new = as_csr(X_new, "X_new", allow_empty=True, n_items=self.n_items_)
        return self._solve_side(X_new, self.item_factors_, self.item_bias_)

    def _solve_side(self, rows, other: np.ndarray, other_bias: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact factors and biases of ``rows`` (users x items or items x users) against the
        other side's fixed factors and biases (the fit's half-step, Cholesky)."""
        k = self.factors
        d = k + 1 if self.biases else k
        dtype = other.dtype
        V = np.zeros((other.shape[0], d), dtype=dtype)
        V[:, :k] = other
        if self.biases:
            V[:, k] = other_bias
        U = np.zeros((rows.shape[0], d), dtype=dtype)
        reg = self._row_reg(rows, dtype)
        if in_use(self, "l2") == 0:
            reg = np.maximum(reg, np.finfo(dtype).eps)
        with blas_limit(1):
            self._half_step(rows, U, V, reg, resolve_num_threads(self.num_threads), 0,
                            solver="cholesky")
        bias = U[:, k].copy() if self.biases else np.zeros(len(U), dtype)
        return np.ascontiguousarray(U[:, :k]), bias

    def partial_fit(self, X, users=None, previous=None) -> AltMin:
        """Re-solve the touched rows exactly with the rest fixed: the changed and new users
        (on the fitted items), then the new items and the items the touched users rated,
        then the touched users again. The global mean is kept."""
        X, _, touched, _ = self._prepare_update(X, users, previous)
        n_old_items = self.n_items_
        U, bu = grown(self.user_factors_, X.shape[0]), grown(self.user_bias_, X.shape[0])
        V, bi = grown(self.item_factors_, X.shape[1]), grown(self.item_bias_, X.shape[1])
        items = self._touched_items(X, touched)
        if touched.size:
            U[touched], bu[touched] = self._solve_side(X[touched][:, :n_old_items],
                                                       V[:n_old_items], bi[:n_old_items])
        if items.size:
            V[items], bi[items] = self._solve_side(transpose_csr(X)[items], U, bu)
        if touched.size:
            U[touched], bu[touched] = self._solve_side(X[touched], V, bi)
        self.user_factors_, self.item_factors_ = U, V
        self.user_bias_, self.item_bias_ = bu, bi
        self.n_users_, self.n_items_ = (int(n) for n in X.shape)
        return self

    def _explain(self, user, item, row):
        # the user's exact solve: [x_u, b_u] = A^{-1} sum_j t_j z_j with z_j = [y_j, 1] and
        # t_j = r_uj - mu - b_j, so the score is sum_j t_j z_i^T A^{-1} z_j + mu + b_i
        Z = self.item_factors_.astype(np.float64)
        if self.biases:
            Z = np.hstack([Z, np.ones((len(Z), 1))])
        targets = row.data.astype(np.float64) - self.global_mean_
        if self.biases:
            targets -= self.item_bias_[row.indices]
        reg = self._row_reg(row, np.float64)[0]
        if in_use(self, "l2") == 0:
            reg = max(reg, np.finfo(np.float64).eps)
        Zh = Z[row.indices]
        A = Zh.T @ Zh + reg * np.eye(Z.shape[1])
        base = self.global_mean_ + (self.item_bias_[item] if self.biases else 0.0)
        return Explanation.of(user, item, row.indices,
                              ridge_contributions(Z, targets, A, Z[item], row.indices), base)

    def predict_new(self, X_new, items) -> np.ndarray:
        """Predicted ratings of folded-in users: ``items[u]`` for row u of ``X_new``."""
        factors, bias = self.fold_in(X_new)
        items = np.asarray(items)
        if items.shape[0] != factors.shape[0]:
            raise ValueError("items must have one row per row of X_new")
        return (np.einsum("uf,uif->ui", factors, self.item_factors_[items]) + bias[:, None]
                + self.item_bias_[items] + self.global_mean_)


#: Stored values per gather when building a half-step's targets (bounds the temporaries)
_CHUNK = 1 << 20


def split_entries(X, n_parts: int, rng: np.random.Generator) -> list:
    """Split the stored entries of CSR ``X`` uniformly at random into ``n_parts`` disjoint
    CSR matrices of X's shape (JNS13's sample splitting)."""
    label = rng.integers(0, n_parts, X.nnz)
    return [select_entries(X, label == p) for p in range(n_parts)]


def clip_incoherent(Q: np.ndarray, mu: float) -> np.ndarray:
    """JNS13's clipping: zero entries of orthonormal ``Q`` (m x k) above ``2 mu sqrt(k / m)``,
    then re-orthonormalise (QR), so no row dominates the start (incoherence)."""
    m, k = Q.shape
    limit = 2.0 * mu * np.sqrt(k / m)
    clipped = np.where(np.abs(Q) > limit, 0.0, Q)
    if np.array_equal(clipped, Q):
        return Q
    q, r = np.linalg.qr(clipped)
    return q * np.sign(np.where(np.diag(r) == 0, 1.0, np.diag(r)))  # keep column signs


def _solve_block(indptr, indices, entries, rows, start, design, solver, cg_steps, seed,
                 threads):
    """A Dask task: the row solves of one block (``start``: its first global row, which seeds
    the sketch solver as in the single-process fit)."""
    X = np.array(rows["rows"], order="C")  # a writable copy of the block's rows
    failed = solve_rows(indptr, indices, entries["targets"], design, rows["reg"], X, solver,
                        cg_steps, threads, seed, start)
    return X, failed


__all__ = ["AltMin", "clip_incoherent", "split_entries"]

