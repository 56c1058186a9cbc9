"""ALS and BPR baselines: implicit's CPU trainers behind the recsys interface.

implicit fits the factors; ranking, evaluation and persistence go through recsys (the shared
top-k, ``save``/``load`` without pickle). The CPU classes are used directly so that a machine with
a GPU does not silently switch implementations.
"""

from __future__ import annotations

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.recommender_base import ModelFitError

from recsys._constraints import BOOLEAN, NUM_THREADS, RANDOM_STATE, Integer, Real
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import check_random_state
from recsys.models.base import Recommender
from recsys.models.schema import Array


def _seed(random_state) -> int:
    """An int seed for implicit (which takes ints) from our int/Generator/None convention."""
    if isinstance(random_state, int | np.integer):
        return int(random_state)
    return int(check_random_state(random_state).integers(2**31 - 1))


class _ImplicitFactors(Recommender):
    uses_user_state = True

    _fitted = {"user_factors_": Array("f", ("n_users_", "k")),
               "item_factors_": Array("f", ("n_items_", "k"))}

    def _make(self):
        raise NotImplementedError

    def fit(self, X, callback=None):
        """Fit on ``X``; ``callback(iteration, model)`` is called after every epoch."""
        X = self._prepare_fit(X, nonnegative=True)
        model = self._make()

        def epoch_done(iteration, *_):
            self._store(model)
            callback(iteration, self)

        with blas_limit(1):  # implicit's OpenMP loops must not fight BLAS threads
            try:
                model.fit(X, show_progress=self.show_progress,
                          callback=epoch_done if callback is not None else None)
            except ModelFitError as exc:
                raise ValueError(
                    f"{type(self).__name__} diverged ({exc}); the largest value in X is "
                    f"{X.data.max():.3g}: rescale the values (or lower alpha / learning_rate)"
                ) from exc
        self._store(model)
        if not (np.isfinite(self.user_factors_).all() and np.isfinite(self.item_factors_).all()):
            raise ValueError(f"{type(self).__name__} diverged: its factors hold NaN or inf "
                             f"(largest value in X {X.data.max():.3g}; rescale the values or "
                             "lower the learning rate)")
        return self

    def _store(self, model) -> None:
        self.user_factors_ = np.ascontiguousarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(model.item_factors, dtype=np.float32)

    def _factors(self, users, X):
        return self.user_factors_[users], self.item_factors_


class ALS(_ImplicitFactors):
    """Implicit-feedback ALS (Hu, Koren, Volinsky, ICDM 2008), trained by implicit.

    Minimises ``sum_ui c_ui (p_ui - x_u . y_i)^2 + regularization (|X|^2 + |Y|^2)`` with
    ``p_ui = [r_ui > 0]`` and confidence ``c_ui = 1 + alpha r_ui``.

    Parameters
    ----------
    factors, regularization, alpha, iterations : as in the paper / implicit.
    use_cg : bool
        Conjugate-gradient solver (implicit's default) instead of Cholesky.
    random_state : int, Generator or None
    num_threads : int
        0 for all cores.
    show_progress : bool
    """

    _parameter_constraints = {"factors": [Integer(1)], "regularization": [Real(0)],
                              "alpha": [Real(0, low_open=True)], "iterations": [Integer(1)],
                              "use_cg": BOOLEAN, "random_state": RANDOM_STATE,
                              "num_threads": NUM_THREADS, "show_progress": BOOLEAN}

    def __init__(self, factors: int = 64, regularization: float = 0.01, alpha: float = 1.0,
                 iterations: int = 15, use_cg: bool = True, random_state=None,
                 num_threads: int = 0, show_progress: bool = False):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.use_cg = use_cg
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def _make(self):
        return AlternatingLeastSquares(
            factors=self.factors, regularization=self.regularization, alpha=self.alpha,
            iterations=self.iterations, use_cg=self.use_cg,
            num_threads=resolve_num_threads(self.num_threads),
            random_state=_seed(self.random_state))


class BPR(_ImplicitFactors):
    """Bayesian personalised ranking (Rendle et al., UAI 2009), trained by implicit.

    The item bias is the last item factor (user factors end in a constant 1), so plain
    ``x_u . y_i`` scores include it.

    Parameters
    ----------
    factors, learning_rate, regularization, iterations : as in implicit.
    random_state : int, Generator or None
    num_threads : int
        0 for all cores (Hogwild SGD: multi-threaded runs are not bit-reproducible).
    show_progress : bool
    """

    _parameter_constraints = {"factors": [Integer(1)],
                              "learning_rate": [Real(0, low_open=True)],
                              "regularization": [Real(0)], "iterations": [Integer(1)],
                              "random_state": RANDOM_STATE, "num_threads": NUM_THREADS,
                              "show_progress": BOOLEAN}

    def __init__(self, factors: int = 64, learning_rate: float = 0.01,
                 regularization: float = 0.01, iterations: int = 100, random_state=None,
                 num_threads: int = 0, show_progress: bool = False):
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def _make(self):
        return BayesianPersonalizedRanking(
            factors=self.factors, learning_rate=self.learning_rate,
            regularization=self.regularization, iterations=self.iterations,
            num_threads=resolve_num_threads(self.num_threads),
            random_state=_seed(self.random_state))
