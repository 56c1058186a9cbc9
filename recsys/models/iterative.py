"""The epoch-loop contract of the models trained epoch by epoch.

ALS, BPR, AltMin, MaskedNMF, NBMF and SimpleX derive from :class:`IterativeModel`: each runs its
own epochs (its kernels, or implicit's loop) and calls :meth:`Training.end_epoch` after each
one, which owns everything else the same way for all of them: the ``history_`` entry (epoch,
elapsed seconds, the loss when the model computes one, the validation metrics when evaluated),
early stopping on a validation matrix, keeping the best evaluated epoch, the user's callback
and stopping from it (e.g. a sweep's pruner).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from recsys._validation import as_csr
from recsys.models.base import Recommender
from recsys.models.schema import Scalar


@dataclass(frozen=True)
class EarlyStopping:
    """Stop training when a validation metric stops improving.

    Parameters
    ----------
    metric : str
        An :func:`recsys.evaluation.evaluate` key, e.g. ``"ndcg_at_20"`` (higher is better),
        or ``"rmse"`` / ``"mae"`` of :func:`recsys.evaluation.evaluate_ratings` (lower is
        better; the rating models' default).
    patience : int
        Evaluations in a row without an improvement of more than ``min_delta`` after which
        training stops.
    eval_every : int
        Epochs between evaluations (the last epoch is evaluated too).
    keep_best : bool
        Return the fitted state of the best evaluated epoch (``best_epoch_``), not the last.
    min_delta : float
        Smallest change that counts as an improvement.
    """

    metric: str = "ndcg_at_20"
    patience: int = 3
    eval_every: int = 1
    keep_best: bool = True
    min_delta: float = 0.0

    def __post_init__(self):
        from recsys.evaluation import parse_metric

        if not self.rating:
            parse_metric(self.metric)  # a ValueError naming a bad key, before any training
        if self.patience < 1 or self.eval_every < 1:
            raise ValueError(f"patience and eval_every must be >= 1, got {self.patience} and "
                             f"{self.eval_every}")
        if self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0, got {self.min_delta}")

    @property
    def rating(self) -> bool:
        """Whether the metric is a rating error (lower is better)."""
        return self.metric in ("rmse", "mae")

    def measure(self, model, X, validation) -> dict[str, float]:
        """The validation metrics of ``model`` with ``X`` as the history; the value compared
        is ``score(metrics)``."""
        from recsys.evaluation import evaluate, evaluate_ratings, parse_metric

        if self.rating:
            return evaluate_ratings(model, validation, X)
        k = parse_metric(self.metric)[1]
        return evaluate(model, X, validation, k=sorted({10, 20, k}))

    def score(self, metrics: dict[str, float]) -> float:
        """Higher is better: the metric, negated for rating errors."""
        return -metrics[self.metric] if self.rating else metrics[self.metric]


@dataclass(frozen=True)
class ReduceOnPlateau:
    """Decay the learning rate when a validation metric stops improving (with early
    stopping): after every ``patience`` evaluations in a row without improvement, go back to
    the best epoch's state and multiply the learning rate by ``factor``, down to
    ``min_learning_rate`` (torch's ``ReduceLROnPlateau`` with the best state restored, as the
    SimpleX paper's trainer does).

    Parameters
    ----------
    factor : float
        Multiplier of the learning rate at each decay, in (0, 1].
    patience : int
        Evaluations without improvement before each decay (fewer than early stopping's
        ``patience`` for a decay to happen before training stops).
    min_learning_rate : float
        Floor of the decayed learning rate.
    """

    factor: float = 0.1
    patience: int = 1
    min_learning_rate: float = 0.0

    def __post_init__(self):
        if not 0 < self.factor <= 1:
            raise ValueError(f"factor must lie in (0, 1], got {self.factor}")
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.min_learning_rate < 0:
            raise ValueError(f"min_learning_rate must be >= 0, got {self.min_learning_rate}")

    def decays(self, training: Training) -> bool:
        """Whether the epoch just ended calls for a decay."""
        return bool(training.evaluates and training.waited and self.factor < 1
                    and training.waited % self.patience == 0)

    def decayed(self, rate: float) -> float:
        return max(rate * self.factor, self.min_learning_rate)


class StopTraining(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a ``callback`` to end training after the current epoch (the model keeps the
    best evaluated epoch when early stopping keeps one, else the current state)."""


@dataclass
class Training:
    """One fit's loop state (created by :meth:`IterativeModel._start_training`)."""

    model: IterativeModel
    X: Any
    validation: Any = None
    early_stopping: EarlyStopping | None = None
    callback: Callable | None = None
    snapshot: Callable[[], Any] | None = None  # default: the model's fitted attributes
    restore: Callable[[Any], None] | None = None
    best: float = -np.inf
    best_state: dict | None = None
    waited: int = 0
    stopped: bool = False  # by the callback
    exhausted: bool = False  # patience ran out
    start: float = field(default_factory=time.perf_counter)

    @property
    def evaluates(self) -> bool:
        return self.validation is not None

    @property
    def watched(self) -> bool:
        """Whether anything reads the model between epochs (a callback or the validation):
        only then must a model store its fitted state after every epoch."""
        return self.callback is not None or self.evaluates

    def end_epoch(self, epoch: int, last: bool = False, **values: float) -> bool:
        """Record epoch ``epoch`` (the model's fitted attributes already hold its state) and
        return whether training must stop now. ``values``: the epoch's loss and whatever
        else the model reports; ``last``: the final epoch (always evaluated)."""
        model, rule = self.model, self.early_stopping
        entry = {"epoch": epoch, "elapsed": time.perf_counter() - self.start,
                 **{key: float(v) for key, v in values.items()}}
        if self.evaluates and ((epoch + 1) % rule.eval_every == 0 or last):
            metrics = rule.measure(model, self.X, self.validation)
            entry.update({key: v for key, v in metrics.items() if np.isscalar(v)})
            value = rule.score(metrics)
            if value > self.best + rule.min_delta:
                self.best, self.waited = value, 0
                self.best_state = (self.snapshot or model._fitted_state)()
                model.best_epoch_ = epoch
            else:
                self.waited += 1
        model.history_.append(entry)
        if self.callback is not None:
            try:
                self.callback(epoch, model)
            except StopTraining:
                self.stopped = True
        self.exhausted = self.evaluates and self.waited >= rule.patience
        return self.stopped or self.exhausted

    def restore_best(self) -> None:
        """Put the best evaluated epoch's state back (when one was kept)."""
        if self.best_state is not None:
            (self.restore or self.model._set_fitted_state)(self.best_state)

    def finish(self) -> None:
        """End of training: with early stopping that keeps the best epoch, its state."""
        if self.evaluates and self.early_stopping.keep_best:
            self.restore_best()


class IterativeModel(Recommender):
    """Base class of the models trained epoch by epoch.

    Their ``fit(X, validation=None, early_stopping=None, callback=None, ...)`` shares one
    contract: ``callback(epoch, model)`` runs after every epoch (raise :class:`StopTraining`
    in it to stop); with ``validation`` (held-out interactions, same shape as ``X``) the
    model is evaluated as :class:`EarlyStopping` says (default ``EarlyStopping()``: NDCG@20
    every epoch, patience 3, the best epoch kept) with ``X`` as the history.

    Attributes
    ----------
    history_ : list of dict
        Per epoch: ``epoch``, ``elapsed`` (seconds since fit started), ``loss`` where the
        model computes one, and the validation metrics when evaluated.
    best_epoch_ : int
        With validation: the best evaluated epoch (the returned state with ``keep_best``).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # the trace and the best epoch travel in the model file with the fitted arrays
        cls._fitted = {**cls._fitted, "history_": Scalar(list, optional=True),
                       "best_epoch_": Scalar(int, optional=True)}

    def _start_training(self, X, validation=None, early_stopping: EarlyStopping | None = None,
                        callback: Callable | None = None) -> Training:
        if early_stopping is not None and validation is None:
            raise ValueError("early_stopping needs validation= (held-out interactions)")
        if validation is not None:
            validation = as_csr(validation, "validation", allow_empty=True,
                                n_items=X.shape[1])
            if validation.shape[0] != X.shape[0]:
                raise ValueError(f"validation has {validation.shape[0]} rows but X has "
                                 f"{X.shape[0]}")
            early_stopping = early_stopping or self._default_early_stopping()
        self.history_ = []
        if hasattr(self, "best_epoch_"):
            del self.best_epoch_
        return Training(self, X, validation, early_stopping, callback)

    #: The metric early stopping watches unless told otherwise (rating models: ``"rmse"``)
    _default_metric: ClassVar[str] = "ndcg_at_20"

    def _default_early_stopping(self) -> EarlyStopping:
        return EarlyStopping(metric=self._default_metric)

    def _fitted_state(self) -> dict[str, Any]:
        """Copies of the fitted attributes the model file holds (its ``_fitted`` schema)."""
        return {name: copy.deepcopy(value) for name, value in vars(self).items()
                if name in type(self)._fitted and name not in ("history_", "best_epoch_")}

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, copy.deepcopy(value))


__all__ = ["EarlyStopping", "IterativeModel", "ReduceOnPlateau", "StopTraining", "Training"]
