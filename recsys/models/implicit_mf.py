"""ALS and BPR baselines: implicit's CPU trainers behind the recsys interface.

implicit fits the factors; ranking, evaluation and persistence go through recsys (the shared
top-k, ``save``/``load`` without pickle). The CPU classes are used directly so that a machine with
a GPU does not silently switch implementations.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from implicit.cpu import _als as implicit_als
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.recommender_base import ModelFitError
from implicit.utils import check_random_state as implicit_random_state

from recsys._constraints import BOOLEAN, NUM_THREADS, RANDOM_STATE, Integer, Options, Real
from recsys._sparse import transpose_csr
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import as_csr, check_random_state
from recsys.distributed import open_shards, update_row_blocks
from recsys.models.auto import AUTO, AUTO_OPTION, confidence_slope, in_use, sgd_rate
from recsys.models.base import grown
from recsys.models.explain import Explanation, ridge_contributions
from recsys.models.iterative import EarlyStopping, IterativeModel, StopTraining, Training
from recsys.models.schema import Array, Scalar


def _seed(random_state) -> int:
    """An int seed for implicit (which takes ints) from our int/Generator/None convention."""
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    return int(check_random_state(random_state).integers(2**31 - 1))


def _sample_pairs(rows: sp.csr_matrix, pairs: int, rng: np.random.Generator):
    """``pairs`` (positive, non-positive) item pairs per row: ``(pos, neg, valid)`` arrays of
    shape (rows, pairs); rows without a positive (or without a non-positive) are not valid."""
    n, n_items = rows.shape
    counts = np.diff(rows.indptr)
    pos = np.zeros((n, pairs), np.int64)
    neg = np.zeros((n, pairs), np.int64)
    valid = np.zeros((n, pairs), bool)
    for r in range(n):
        seen = rows.indices[rows.indptr[r]:rows.indptr[r + 1]]
        if counts[r] == 0 or counts[r] == n_items:
            continue
        pos[r] = seen[rng.integers(0, counts[r], pairs)]
        draws = rng.integers(0, n_items - counts[r], pairs)  # the draws-th unseen item
        neg[r] = draws + np.searchsorted(seen - np.arange(counts[r]), draws, side="right")
        valid[r] = True
    return pos, neg, valid


class _ImplicitFactors(IterativeModel):
    uses_user_state = True

    _fitted = {"user_factors_": Array("f", ("n_users_", "k")),
               "item_factors_": Array("f", ("n_items_", "k"))}

    def _make(self):
        """implicit's model of these parameters (built with BLAS at one thread, which is what
        its construction-time check wants)."""
        with blas_limit(1):
            return self._make_implicit()

    def _make_implicit(self):
        raise NotImplementedError

    def fit(self, X, validation=None, *, early_stopping: EarlyStopping | None = None,
            callback=None):
        """Fit on ``X`` with the epoch contract of
        :class:`~recsys.models.iterative.IterativeModel` (``callback(epoch, model)`` after
        every epoch; early stopping on ``validation``, NDCG@20 by default)."""
        X = self._prepare_fit(X, nonnegative=True)
        return self._fit_here(X, self._start_training(X, validation, early_stopping, callback))

    def _fit_here(self, X, training: Training):
        model = self._make()

        def epoch_done(iteration, *_):
            self._store(model)
            if training.end_epoch(iteration, last=iteration == self.epochs - 1):
                raise StopTraining  # out of implicit's loop, after this epoch

        with blas_limit(1):  # implicit's OpenMP loops must not fight BLAS threads
            try:
                model.fit(X, show_progress=self.show_progress, callback=epoch_done)
            except StopTraining:
                pass
            except ModelFitError as exc:
                raise ValueError(
                    f"{type(self).__name__} diverged ({exc}); the largest value in X is "
                    f"{X.data.max():.3g}: rescale the values (or lower alpha / learning_rate)"
                ) from exc
        self._store(model)  # NaN/inf factors are refused by the base's check of every fit
        training.finish()
        return self

    def _store(self, model) -> None:
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _factors(self, users, X):
        (U,) = self._user_state(users, X, self.user_factors_)
        return U, self.item_factors_

    def _new_rows(self, X_new) -> sp.csr_matrix:
        self._check_fitted()
        return as_csr(X_new, "X_new", allow_empty=True, nonnegative=True, n_items=self.n_items_)


class ALS(_ImplicitFactors):
    """Implicit-feedback ALS (Hu, Koren, Volinsky, ICDM 2008), trained by implicit.

    Minimises ``sum_ui c_ui (p_ui - x_u . y_i)^2 + l2 (|X|^2 + |Y|^2)`` with
    ``p_ui = [r_ui > 0]`` and confidence ``c_ui = 1 + alpha r_ui``.

    Parameters
    ----------
    factors : int
    l2 : float
        Ridge strength (implicit's ``regularization``, whose default is 0.01). It thresholds
        the factorisation like a singular-value shrinkage: too small keeps noise, too large
        (here from about 60 on the shared data sets) collapses the factors to zero.
    alpha : float or "auto"
        Confidence slope. ``"auto"``: ``0.6 / (sqrt(density) mean(r))``, at least 1
        (:mod:`recsys.models.auto`: about 2.9 on ML-1M, 25 on Gowalla); the value used is
        ``alpha_``.
    epochs : int
        Alternating sweeps (implicit's ``iterations``).
    solver : {"cg", "cholesky"}
        Conjugate-gradient steps (implicit's default) or the exact Cholesky solve per row.
    random_state : int, Generator or None
    num_threads : int
        0 for all cores.
    show_progress : bool
    """

    _parameter_constraints = {"factors": [Integer(1)], "l2": [Real(0)],
                              "alpha": [Real(0, low_open=True), AUTO_OPTION],
                              "epochs": [Integer(1)],
                              "solver": [Options("cg", "cholesky")],
                              "random_state": RANDOM_STATE, "num_threads": NUM_THREADS,
                              "show_progress": BOOLEAN}
    _renamed_params = {"regularization": "l2", "iterations": "epochs",
                       "use_cg": ("solver", lambda cg: "cg" if cg else "cholesky")}

    _fitted = {**_ImplicitFactors._fitted, "alpha_": Scalar(float, optional=True)}

    def __init__(self, *, factors: int = 64, l2: float = 20.0, alpha: float | str = AUTO,
                 epochs: int = 15, solver: str = "cg", random_state=None,
                 num_threads: int = 0, show_progress: bool = False):
        self.factors = factors
        self.l2 = l2
        self.alpha = alpha
        self.epochs = epochs
        self.solver = solver
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fit(self, X, validation=None, *, early_stopping: EarlyStopping | None = None,
            callback=None, cluster=None, n_shards: int | None = None) -> ALS:
        """Fit on ``X`` with the epoch contract of
        :class:`~recsys.models.iterative.IterativeModel` (``callback(epoch, model)`` after
        every epoch; early stopping on ``validation``, NDCG@20 by default).

        With ``cluster`` (a ``distributed.Client``, a scheduler address, or ``"local"``) each
        half-step runs implicit's own per-row solver (CG or Cholesky) on row blocks as Dask
        tasks over ``n_shards`` blocks (default: two per worker), the other side's factors
        broadcast once per half-step, from implicit's initialisation: the single-process fit.
        """
        X = self._prepare_fit(X, nonnegative=True)
        training = self._start_training(X, validation, early_stopping, callback)
        if cluster is None:
            return self._fit_here(X, training)
        model = self._make()
        # implicit's fit: confidences alpha * r (X is float32 already: one copy at most)
        Cui = X * np.float32(self.alpha_) if self.alpha_ != 1.0 else X
        Ciu = transpose_csr(Cui)
        rng = implicit_random_state(model.random_state)
        U = rng.random((X.shape[0], self.factors), dtype=model.dtype) * 0.01
        V = rng.random((X.shape[1], self.factors), dtype=model.dtype) * 0.01
        with open_shards(cluster, n_shards) as shards:
            for epoch in range(self.epochs):
                for rows, other, C in ((U, V, Cui), (V, U, Ciu)):
                    update_row_blocks(shards, _als_block, C, [(rows, "rows")],
                                      entries={"data": C.data}, rows={"rows": rows},
                                      shared={"other": other}, l2=self.l2,
                                      cg=self.solver == "cg", cg_steps=model.cg_steps)
                model.user_factors, model.item_factors = U, V
                self._store(model)
                if training.end_epoch(epoch, last=epoch == self.epochs - 1):
                    break
        model.user_factors, model.item_factors = U, V
        self._store(model)
        training.finish()
        return self

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {"alpha": confidence_slope(self.alpha, X)}

    def fold_in(self, X_new) -> np.ndarray:
        """Factors of new users: the exact least-squares solve of each row against the fixed
        item factors (implicit's ``recalculate_user``, Cholesky),

            x_u = (Y^T Y + l2 I + sum_{i in I_u} (c_ui - 1) y_i y_i^T)^{-1}
                  sum_{i in I_u} c_ui y_i,        c_ui = alpha r_ui,

        i.e. the user half-step of Hu et al.'s ALS (eq. 4 of the paper) for these rows.
        """
        X_new = self._new_rows(X_new)
        if X_new.shape[0] == 0:
            return np.zeros((0, self.item_factors_.shape[1]), np.float32)
        model = self._make()
        model.item_factors = self.item_factors_
        with blas_limit(1):
            U = model.recalculate_user(np.arange(X_new.shape[0]), X_new)
        return np.ascontiguousarray(U, dtype=np.float32)

    def partial_fit(self, X, users=None, previous=None) -> ALS:
        """Re-solve the touched rows exactly, as ALS half-steps (implicit's
        ``partial_fit_users`` / ``partial_fit_items``, Cholesky): the changed and new users
        against the item factors, then the new items and every item in the touched users'
        rows against all user factors, then the touched users again (so they see the new
        items). Everything else keeps its factors; ``previous`` is not needed."""
        X, _, touched, _ = self._prepare_update(X, users, previous, nonnegative=True)
        model = self._make()
        model.user_factors = grown(self.user_factors_, X.shape[0])
        model.item_factors = grown(self.item_factors_, X.shape[1])
        items = self._touched_items(X, touched)
        with blas_limit(1):
            if touched.size:
                model.partial_fit_users(touched, X[touched])
            if items.size:
                model.partial_fit_items(items, transpose_csr(X)[items])
            if touched.size:
                model.partial_fit_users(touched, X[touched])
        self._store(model)
        self.n_users_, self.n_items_ = (int(n) for n in X.shape)
        return self

    def _explain(self, user, item, row):
        # x_u = A^{-1} sum_j c_uj y_j (the fold-in), so y_i . x_u = sum_j c_uj y_i^T A^{-1} y_j
        Y = self.item_factors_.astype(np.float64)
        c = in_use(self, "alpha") * row.data.astype(np.float64)
        Yh = Y[row.indices]
        A = Y.T @ Y + self.l2 * np.eye(Y.shape[1]) + (Yh * (c - 1)[:, None]).T @ Yh
        return Explanation.of(user, item, row.indices,
                              ridge_contributions(Y, c, A, Y[item], row.indices))

    def _make_implicit(self):
        return AlternatingLeastSquares(
            factors=self.factors, regularization=self.l2, alpha=in_use(self, "alpha"),
            iterations=self.epochs, use_cg=self.solver == "cg",
            num_threads=resolve_num_threads(self.num_threads),
            random_state=_seed(self.random_state))


def _als_block(indptr, indices, entries, rows, start, other, l2, cg, cg_steps, threads):
    """A Dask task: implicit's per-row least squares (CG or Cholesky) for one row block."""
    C = sp.csr_matrix((entries["data"], indices, indptr), shape=(len(rows["rows"]), len(other)))
    X = np.array(rows["rows"], order="C")
    if cg:
        implicit_als.least_squares_cg(C, X, other, l2, num_threads=threads, cg_steps=cg_steps)
    else:
        implicit_als.least_squares(C, X, other, l2, num_threads=threads)
    return X


class BPR(_ImplicitFactors):
    """Bayesian personalised ranking (Rendle et al., UAI 2009), trained by implicit.

    The item bias is the last item factor (user factors end in a constant 1), so plain
    ``x_u . y_i`` scores include it.

    Parameters
    ----------
    factors : int
    learning_rate : float or "auto"
        SGD step. ``"auto"``: ``min(0.01, 1e-3 / sqrt(density))`` (:mod:`recsys.models.auto`:
        implicit's 0.01 on sparse data, 0.0048 on ML-1M); the value used is
        ``learning_rate_``.
    l2 : float
        Ridge strength (implicit's ``regularization``, whose default is 0.01: with the
        ``"auto"`` rate 1e-3 ranks as well or better on the shared data sets).
    epochs : int
        Passes of SGD over the positives (implicit's ``iterations``).
    random_state : int, Generator or None
    num_threads : int
        0 for all cores (Hogwild SGD: multi-threaded runs are not bit-reproducible).
    show_progress : bool
    """

    _parameter_constraints = {"factors": [Integer(1)],
                              "learning_rate": [Real(0, low_open=True), AUTO_OPTION],
                              "l2": [Real(0)], "epochs": [Integer(1)],
                              "random_state": RANDOM_STATE, "num_threads": NUM_THREADS,
                              "show_progress": BOOLEAN}
    _renamed_params = {"regularization": "l2", "iterations": "epochs"}

    _fitted = {**_ImplicitFactors._fitted, "learning_rate_": Scalar(float, optional=True)}

    def __init__(self, *, factors: int = 64, learning_rate: float | str = AUTO,
                 l2: float = 1e-3, epochs: int = 100, random_state=None,
                 num_threads: int = 0, show_progress: bool = False):
        self.factors = factors
        self.learning_rate = learning_rate
        self.l2 = l2
        self.epochs = epochs
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fold_in(self, X_new, steps: int = 30, pairs: int = 256) -> np.ndarray:
        """Factors of new users trained on BPR's own objective with the items fixed::

            max_x  mean_{(i, j)} log sigmoid(x . (y_i - y_j) + b_i - b_j) - l2 |x|^2

        over ``pairs`` (positive i, non-positive j) pairs per user drawn once (seeded by
        ``random_state`` and the row, so the result is reproducible), by at most ``steps``
        damped Newton steps from the mean of the user's positive item vectors; the objective
        is strictly concave, so they converge to its unique maximiser. The constant 1 that
        multiplies the item bias is appended. A user with no positive gets zeros.
        """
        X_new = self._new_rows(X_new)
        Y = self.item_factors_[:, :-1].astype(np.float64)
        bias = self.item_factors_[:, -1].astype(np.float64)
        n, f = X_new.shape[0], Y.shape[1]
        U = np.zeros((n, f))
        seed = self.random_state if isinstance(self.random_state, int | np.integer) else 0
        block = max(1, (16 << 20) // (8 * pairs * f))
        for start in range(0, n, block):
            rows = X_new[start:start + block]
            rng = np.random.default_rng([int(seed), start])
            pos, neg, valid = _sample_pairs(rows, pairs, rng)
            U[start:start + len(valid)] = self._bpr_steps(Y, bias, pos, neg, valid, steps)
        return np.hstack([U, np.ones((n, 1))]).astype(np.float32)

    def _bpr_steps(self, Y, bias, pos, neg, valid, steps) -> np.ndarray:
        """Damped Newton steps on each user's negated objective (strictly convex: the ridge
        term), halving a step until the objective does not increase; from the mean of the
        user's positive item vectors."""
        diff = Y[pos] - Y[neg]  # (users, pairs, f)
        offset = bias[pos] - bias[neg]
        counts = np.maximum(valid.sum(axis=1, keepdims=True), 1)
        lam = self.l2
        eye = np.eye(Y.shape[1])

        def loss(x):
            margin = np.einsum("upf,uf->up", diff, x) + offset
            return (valid * np.logaddexp(0, -margin)).sum(axis=1) / counts[:, 0] + \
                lam * (x * x).sum(axis=1)

        x = (Y[pos] * valid[..., None]).sum(axis=1) / counts
        current = loss(x)
        for _ in range(steps):
            margin = np.einsum("upf,uf->up", diff, x) + offset
            p = valid / (1.0 + np.exp(np.clip(margin, -50, 50)))  # sigmoid(-margin)
            grad = -np.einsum("up,upf->uf", p, diff) / counts + 2 * lam * x
            curvature = valid * p * (1 - p) / counts
            H = np.einsum("up,upf,upg->ufg", curvature, diff, diff) + 2 * lam * eye
            step = np.linalg.solve(H, grad[..., None])[..., 0]
            shrink = np.ones((len(x), 1))
            for _ in range(20):  # halve where the full step would increase the loss
                trial = x - shrink * step
                worse = loss(trial) > current + 1e-12
                if not worse.any():
                    break
                shrink[worse] /= 2
            x, previous = trial, current
            current = loss(x)
            if np.all(previous - current <= 1e-12 * np.abs(previous)):
                break
        return np.where(valid.any(axis=1, keepdims=True), x, 0.0)

    def partial_fit(self, X, users=None, previous=None) -> BPR:
        """Approximate update: the changed and new users by :meth:`fold_in` (BPR's objective
        with the items fixed), and the new items by a least-squares projection of their 0/1
        columns onto the user factors ``[x_u, 1]`` (factors and bias, ``l2``
        ridge); the fitted items keep the factors BPR's SGD gave them."""
        X, _, touched, _ = self._prepare_update(X, users, previous, nonnegative=True)
        U = grown(self.user_factors_, X.shape[0])
        U[self.n_users_:, -1] = 1.0
        V = grown(self.item_factors_, X.shape[1])
        n_old_items = self.n_items_
        if touched.size:
            self.user_factors_, self.item_factors_ = U, V[:n_old_items]
            U[touched] = self.fold_in(X[touched][:, :n_old_items])
        if X.shape[1] > n_old_items:
            design = U.astype(np.float64)  # [x_u, 1]: the item's factors and its bias
            A = design.T @ design + self.l2 * np.eye(design.shape[1])
            columns = (X[:, n_old_items:] != 0).astype(np.float64).T.tocsr()
            V[n_old_items:] = np.linalg.solve(A, (columns @ design).T).T
        self.user_factors_, self.item_factors_ = U, V
        self.n_users_, self.n_items_ = (int(n) for n in X.shape)
        return self

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {"learning_rate": sgd_rate(self.learning_rate, X)}

    def _explain(self, user, item, row):
        raise NotImplementedError("BPR's user vector maximises a nonlinear (log-sigmoid) "
                                  "objective: its score has no exact split over the history")

    def _item_vectors(self):
        return self.item_factors_[:, :-1]  # without the bias column

    def _user_vectors(self, users, X):
        return super()._user_vectors(users, X)[:, :-1]  # without the constant 1

    def _make_implicit(self):
        return BayesianPersonalizedRanking(
            factors=self.factors, learning_rate=in_use(self, "learning_rate"),
            regularization=self.l2, iterations=self.epochs,
            num_threads=resolve_num_threads(self.num_threads),
            random_state=_seed(self.random_state))
