"""SimpleX: cosine contrastive loss with a mean-aggregated history (Mao et al., CIKM 2021).

Scores are cosines between the user vector ``p_u = gamma e_u + (1 - gamma) W mean(q_k, k in
H_u)`` and the item embeddings ``q_i``; training minimises the CCL (eq. 3 of the paper)

    L = sum_{(u,i)} (1 - cos(p_u, q_i)) + (w / N) sum_{j in N_u} max(0, cos(p_u, q_j) - m)

with N uniformly (or popularity-) sampled negatives, in the Cython kernel ``ext/_simplex.pyx``
(gradients derived there). Choices that follow the official RecZoo code: the target item is
left out of its own history, dropout acts after normalisation, every epoch takes the positives
in a fresh random order in mini-batches (``batch_size``) after which the item rows and W step
(the threads share the mini-batches). Documented deviations: runs of ``negative_sharing``
consecutive positives of a mini-batch share their N negatives (scored by one matrix product;
officially each positive has its own), and their users' rows step after each run rather than
once per mini-batch; lazy Adam, dense Adam emulated row by row (``optimizer="dense_adam"``) or
Adagrad, with per-row state and l2 charged when a row steps (dense Adam charges it for every
mini-batch since the row's last step, as the official full-table L2 would); initial
embeddings N(0, init_std^2) instead of N(0, 1e-8).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._constraints import (
    BOOLEAN,
    NUM_THREADS,
    RANDOM_STATE,
    Integer,
    Options,
    Real,
)
from recsys._ext import kernel
from recsys._sparse import column_counts, row_of_values, select_entries
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import as_csr, check_memory, check_random_state
from recsys.models.auto import AUTO, AUTO_OPTION, contrastive_weight, in_use, table_ridge
from recsys.models.base import grown
from recsys.models.explain import Explanation
from recsys.models.iterative import EarlyStopping, IterativeModel, ReduceOnPlateau
from recsys.models.schema import Array, Scalar

logger = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "dense_adam", "adagrad")
NEGATIVE_SHARING = 16  # positives sharing their negatives (see benchmarks/README.md)
AGGREGATORS = ("mean", "user_attention")
STEPS, STEP_FACTOR = 3, 0.1  # fit's rate without validation: x0.1 after each third


def step_rates(learning_rate: float, epochs: int, steps: int = STEPS,
               factor: float = STEP_FACTOR) -> list[float]:
    """The rates of ``fit`` without validation: ``learning_rate`` x ``factor`` after each
    ``1 / steps`` of the ``epochs``, ``learning_rate * factor ** floor(steps e / epochs)`` at
    epoch e (30 epochs: 10 at 1e-3, 10 at 1e-4, 10 at 1e-5)."""
    return [learning_rate * factor ** (steps * e // epochs) for e in range(epochs)]


def _schedule(lr_schedule) -> tuple[list[float] | None, ReduceOnPlateau]:
    """``fit``'s ``lr_schedule`` as (the replayed rates or None, the decay rule)."""
    if lr_schedule is None:
        return None, ReduceOnPlateau(min_learning_rate=1e-6)
    if isinstance(lr_schedule, ReduceOnPlateau):
        return None, lr_schedule
    if not isinstance(lr_schedule, str | bytes) and hasattr(lr_schedule, "__len__"):
        try:
            rates = np.asarray(lr_schedule, dtype=np.float64)
        except (TypeError, ValueError):
            rates = None
        if rates is not None and rates.ndim == 1 and np.all(np.isfinite(rates)) and np.all(
                rates > 0):
            return [float(r) for r in rates], ReduceOnPlateau(factor=1.0)
    raise ValueError(f"lr_schedule must be a ReduceOnPlateau, a sequence of positive, finite "
                     f"rates or None, got {lr_schedule!r}")


class SimpleX(IterativeModel):
    """SimpleX / MF-CCL (``gamma=1``) trained with the cosine contrastive loss.

    The defaults sit where the 20-trial sweeps of the shared data sets ended (dense Adam at
    1e-3, biases, the user's positives left out of its negatives, margin 0.7, 500 negatives,
    d = 128, gamma 0.85), with the negative weight and the L2 read off the data
    (:mod:`recsys.models.auto`) and, without a validation part, 30 epochs whose rate drops
    x0.1 after each third (:func:`~recsys.models.simplex.step_rates`), so they need no
    validation part. The papers'
    settings are :attr:`PRESETS`.

    Parameters
    ----------
    factors : int
        Embedding size d.
    negatives : int
        N, negatives per positive, drawn afresh every epoch.
    margin : float
        m: negatives with cosine above m are penalised.
    negative_weight : float or "auto"
        w: weight of the averaged negative term. ``"auto"``: ``max(10, 0.1 / density)``
        (:func:`recsys.models.auto.contrastive_weight`: 10 on ML-1M, about 150 on Gowalla);
        the value used is ``negative_weight_``.
    gamma : float
        Weight of the user's own embedding; 1 gives MF-CCL (no history branch).
    aggregator : {"mean", "user_attention"}
        How the history branch (gamma < 1) pools the user's items: their mean, or the
        official ``user_attention`` (its Gowalla setting): weights
        ``softmax_k(tanh(A q_k + b) . e_u)``, keys from a learned ``A`` (d x d) and ``b``
        that step with W (``history_rate``). The softmax runs over the history items only
        (the official one also counts the padding of short histories in its denominator).
        About 3x the mean's cost per history item (how the two compare: benchmarks/README.md).
    biases : bool or "item"
        The official ``enable_bias`` (its ML-1M setting): scores become ``cos(p_u, q_i) +
        b_i`` (the bias column is dropped out with the user vector), and in training only
        every score of user u also gains ``b_u + b_0``, a user and a global bias that cannot
        change a ranking but move the loss's thresholds: the shift settles where the active
        negatives' weight balances the unsaturated positives, so it acts as a learned margin
        per user. The user bias steps with its row, the global one with the items.
        ``"item"``: item biases only.
    max_history : int or None
        Cap on the history behind the mean (the official ``max_len``, 500): a user with more
        positives averages a fixed pseudo-random subset of that many (seeded by the user's
        row, the same in training and scoring; the official code keeps the last ones of its
        ordered lists, which a CSR matrix does not have). None: no cap.
    l2 : float or "auto"
        L2 penalty (gradient ``l2 w``) of a row when it steps, and of W. With
        ``optimizer="dense_adam"`` a row is charged ``k l2 w`` after k mini-batches, the
        official whole-table L2 (1e-5 of its batch-mean loss is 0.01 of ours at batch 1024).
        ``"auto"``: ``6e-3 batch_size / n_items`` with dense Adam, else 2e-3
        (:func:`recsys.models.auto.table_ridge`); the value used is ``l2_``.
    learning_rate : float
        Step size of the optimiser (the first epochs' one: see ``fit``'s ``lr_schedule``).
    history_rate : float
        The step size of W (and of the attention's A and b) relative to ``learning_rate``
        (gamma < 1): W is one shared d x d matrix that steps at every mini-batch, so it moves
        far faster than any embedding row.
    epochs : int
        Epochs without validation (the rate x0.1 after each third of them); the most epochs
        with it.
    dropout : float
        Dropout rate on the normalised user vector during training.
    optimizer : {"adam", "dense_adam", "adagrad"}
        Per-row state: lazy Adam (moments and bias correction of touched rows only), dense
        Adam (the official trainer's torch Adam over whole tables, where a row keeps moving
        on its decaying momentum between its mini-batches and a rare row's second moment
        decays: the skipped steps are applied in closed form at the row's next touch, exact
        for one thread; users' blocks are spread evenly over the epoch's mini-batches, as
        shuffled positives would be) or Adagrad.
    batch_size : int
        Positives per mini-batch: the item rows and W step once per mini-batch. The official
        configurations use 1024 (ML-1M) and 256 (Gowalla).
    negative_sharing : int
        Consecutive positives of a mini-batch (of different users, mostly) that share their
        N negatives: their scores are one matrix product against the gathered negatives
        instead of N dot products each, which makes an epoch several times faster at the
        same quality per epoch (benchmarks/README.md); 1: every positive has its own, as
        officially.
    sampling : {"uniform", "popularity"}
        Negative distribution (with replacement; popularity: proportional to item counts).
    exclude_positives : bool
        Leave out of a positive's negatives the items its user has as training positives
        (the official ``ignore_pos_items``, used in its ML-1M setting; redrawn when all the
        positives sharing the negatives belong to one user).
    init_std : float
        Standard deviation of the initial embeddings.
    random_state : int, Generator or None
    num_threads : int
        0 for all cores. One thread: bit-reproducible epochs; more: Hogwild item updates.
    show_progress : bool

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray (float32)
    W_ : ndarray (d, d)
    item_bias_, user_bias_, global_bias_ : ndarray (float32)
        The biases (zeros without ``biases``; the user and global ones only shape training).
    attention_, attention_bias_ : ndarray (d, d), (d,)
        The user attention's A and b (unused with ``aggregator="mean"``).
    history_ : list of dict
        Per epoch: ``epoch``, ``elapsed`` (seconds since fit started), ``loss``,
        ``learning_rate`` and the validation metrics when evaluated. ``callback(epoch,
        model)`` can read the last entry.
    schedule_ : list of float
        The learning rates of the epochs that led to the returned model: up to the best
        epoch with validation, where epochs undone by a decay's return to the best embeddings
        drop out; every epoch without. ``fit(X_all, lr_schedule=model.schedule_)`` replays
        them (the refit on all the training data before test).
    """

    uses_user_state = True
    _renamed_params = {"block_size": "negative_sharing"}
    #: Parameters that moved from the constructor to :meth:`fit` (where they went).
    _moved_params = {
        "metric": "fit(..., early_stopping=EarlyStopping(metric=...))",
        "patience": "fit(..., early_stopping=EarlyStopping(patience=...))",
        "eval_every": "fit(..., early_stopping=EarlyStopping(eval_every=...))",
        "lr_decay": "fit(..., lr_schedule=ReduceOnPlateau(factor=...))",
        "decay_patience": "fit(..., lr_schedule=ReduceOnPlateau(patience=...))",
        "min_learning_rate": "fit(..., lr_schedule=ReduceOnPlateau(min_learning_rate=...))",
        "lr_schedule": "fit(..., lr_schedule=[...])",
        "order": "nothing: the shuffled trainer is the only one"}
    #: The official configurations (the paper's RecZoo code and its trainer) of the two splits
    #: it reports, for :meth:`preset`: ``"ml-1m"`` (the LCFN split) and ``"gowalla"`` (the
    #: LightGCN split, with the mean history in place of the official user attention); the
    #: official trainer's early stopping and decays are :attr:`TRAINING`. ``"ml-1m-fast"`` is
    #: ours: ML-1M's with 500 negatives and a decay patience of 3.
    PRESETS: dict[str, dict[str, Any]] = {
        "ml-1m": {"factors": 128, "negatives": 1500, "margin": 0.9, "negative_weight": 10.0,
                  "gamma": 0.8, "dropout": 0.4, "biases": True, "exclude_positives": True,
                  "learning_rate": 1e-3, "init_std": 1e-4, "l2": 0.01,
                  "optimizer": "dense_adam", "epochs": 60},
        # ML-1M's with a third of the negatives (trained with a decay patience of 3): the
        # paper's quality in under half the time (benchmarks/README.md)
        "ml-1m-fast": {"factors": 128, "negatives": 500, "margin": 0.9, "negative_weight": 10.0,
                       "gamma": 0.8, "dropout": 0.4, "biases": True, "exclude_positives": True,
                       "learning_rate": 1e-3, "init_std": 1e-4, "l2": 0.01,
                       "optimizer": "dense_adam", "epochs": 60},
        "gowalla": {"factors": 64, "negatives": 2000, "margin": 0.9, "negative_weight": 250.0,
                    "gamma": 0.8, "dropout": 0.1, "learning_rate": 1e-3, "init_std": 1e-4,
                    "l2": 1e-4, "optimizer": "dense_adam", "epochs": 80},
    }
    #: ``fit`` arguments of the official trainers, by preset: the metric it monitors, its
    #: patience and its reduce-on-plateau decays (used with ``fit(X, validation=...)``).
    TRAINING: dict[str, dict[str, Any]] = {
        "ml-1m": {"early_stopping": EarlyStopping(metric="recall_at_20", patience=4),
                  "lr_schedule": ReduceOnPlateau(factor=0.1, patience=2,
                                                 min_learning_rate=1e-4)},
        "ml-1m-fast": {"early_stopping": EarlyStopping(metric="recall_at_20", patience=4),
                       "lr_schedule": ReduceOnPlateau(factor=0.1, patience=3,
                                                      min_learning_rate=1e-4)},
        "gowalla": {"early_stopping": EarlyStopping(metric="ndcg_at_20", patience=4),
                    "lr_schedule": ReduceOnPlateau(factor=0.1, patience=3,
                                                   min_learning_rate=1e-5)},
    }

    @classmethod
    def preset(cls, name: str, **overrides) -> SimpleX:
        """A model with the official configuration ``name`` (see :attr:`PRESETS`), updated
        by ``overrides`` (e.g. ``random_state``, ``num_threads``); fit it with
        ``model.fit(X, validation=V, **SimpleX.TRAINING[name])`` to train it as the official
        trainer does."""
        if name not in cls.PRESETS:
            raise ValueError(f"unknown SimpleX preset {name!r}; known: {sorted(cls.PRESETS)}")
        return cls(**{**cls.PRESETS[name], **overrides})

    _parameter_constraints = {
        "factors": [Integer(1)], "negatives": [Integer(1)], "margin": [Real(-1, 1)],
        "negative_weight": [Real(0), AUTO_OPTION], "gamma": [Real(0, 1)],
        "aggregator": [Options(*AGGREGATORS)], "max_history": [Integer(1), None],
        "biases": [Options(False, True, "item")], "l2": [Real(0), AUTO_OPTION],
        "learning_rate": [Real(0, low_open=True)], "history_rate": [Real(0, low_open=True)],
        "epochs": [Integer(0)], "dropout": [Real(0, 1, high_open=True)],
        "optimizer": [Options(*OPTIMIZERS)], "batch_size": [Integer(1)],
        "negative_sharing": [Integer(1)], "sampling": [Options("uniform", "popularity")],
        "exclude_positives": BOOLEAN, "init_std": [Real(0, low_open=True)],
        "random_state": RANDOM_STATE, "num_threads": NUM_THREADS, "show_progress": BOOLEAN}

    _fitted = {
        "user_factors_": Array("f", ("n_users_", "d")),
        "item_factors_": Array("f", ("n_items_", "d")), "W_": Array("f", ("d", "d")),
        "item_bias_": Array("f", ("n_items_",)), "attention_": Array("f", ("d", "d")),
        "attention_bias_": Array("f", ("d",)), "user_bias_": Array("f", ("n_users_",)),
        "global_bias_": Array("f", (1,)), "history_": Scalar(list), "schedule_": Scalar(list),
        "best_epoch_": Scalar(int, optional=True),
        "negative_weight_": Scalar(float, optional=True), "l2_": Scalar(float, optional=True)}

    def __init__(self, *, factors: int = 128, negatives: int = 500, margin: float = 0.7,
                 negative_weight: float | str = AUTO, gamma: float = 0.85,
                 aggregator: str = "mean",
                 max_history: int | None = 500, biases: bool | str = True,
                 l2: float | str = AUTO, learning_rate: float = 1e-3, history_rate: float = 1.0,
                 epochs: int = 30, dropout: float = 0.3, optimizer: str = "dense_adam",
                 batch_size: int = 1024, negative_sharing: int = NEGATIVE_SHARING,
                 sampling: str = "uniform", exclude_positives: bool = True,
                 init_std: float = 1e-3, random_state=None, num_threads: int = 0,
                 show_progress: bool = False):
        self.factors = factors
        self.negatives = negatives
        self.margin = margin
        self.negative_weight = negative_weight
        self.gamma = gamma
        self.aggregator = aggregator
        self.max_history = max_history
        self.biases = biases
        self.l2 = l2
        self.learning_rate = learning_rate
        self.history_rate = history_rate
        self.epochs = epochs
        self.dropout = dropout
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.negative_sharing = negative_sharing
        self.sampling = sampling
        self.exclude_positives = exclude_positives
        self.init_std = init_std
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fit(self, X, validation=None, *, early_stopping: EarlyStopping | None = None,
            callback=None, lr_schedule: ReduceOnPlateau | Sequence[float] | None = None
            ) -> SimpleX:
        """Fit on positives ``X`` (CSR users x items; every stored entry is a positive).

        The epoch contract of :class:`~recsys.models.iterative.IterativeModel`:
        ``validation`` (held-out positives, same shape) for early stopping (default
        ``EarlyStopping()``: NDCG@20 every epoch, patience 3, the best epoch kept);
        ``callback(epoch, model)`` after every epoch (``model.history_[-1]`` holds the
        epoch's loss, learning rate, elapsed time and validation metrics).

        Parameters
        ----------
        lr_schedule : ReduceOnPlateau, sequence of float or None
            With ``validation``, how the learning rate decays (default
            ``ReduceOnPlateau(factor=0.1, patience=1, min_learning_rate=1e-6)``: back to the
            best epoch and x 0.1 after every evaluation without improvement, the official
            trainer's rule); ``ReduceOnPlateau(factor=1)`` keeps it constant. A sequence
            gives the rate of every epoch, replayed without decays or early stopping
            (``epochs`` and ``learning_rate`` unused), e.g. a validation run's ``schedule_``
            to refit on all the training data. Default without ``validation``:
            ``step_rates(learning_rate, epochs)``, x0.1 after each third of the epochs (a
            constant rate overfits sparse data such as Gowalla once the negative weight
            suits it: benchmarks/README.md).
        """
        X = self._prepare_fit(X, nonnegative=True)
        if lr_schedule is None and validation is None:
            lr_schedule = step_rates(self.learning_rate, self.epochs)
        rates, plateau = _schedule(lr_schedule)
        rng = check_random_state(self.random_state)
        threads = resolve_num_threads(self.num_threads)
        self._check_memory(X, threads)
        tables, state, clock = self._start_tables(X, rng)
        config = {name: getattr(self, name) for name in (
            "negatives", "margin", "gamma", "dropout", "history_rate", "batch_size",
            "negative_sharing")}
        config.update(negative_weight=self.negative_weight_, l2=self.l2_,
                      exclude_positives=bool(self.exclude_positives), num_threads=threads)
        cdf = (np.cumsum(column_counts(X).astype(np.float64))
               if self.sampling == "popularity" else None)
        H = capped_history(X, self.max_history)
        lr = rates[0] if rates else self.learning_rate
        path = []  # the rates of the epochs behind the current embeddings

        def restore(kept):  # the best epoch's embeddings and the rates behind them
            self._store(kept[0])
            self.schedule_ = list(kept[1])

        training = self._start_training(X, validation, early_stopping, callback)
        training.snapshot = lambda: ({k: v.copy() for k, v in tables.items()}, list(path))
        training.restore = restore
        self._store(tables)
        trained = self._trained(tables)
        identity = np.arange(X.nnz, dtype=np.int32)
        train_epoch = kernel("_simplex").train_epoch  # the build for this CPU
        for epoch in tqdm(range(len(rates) if rates is not None else self.epochs),
                          desc="SimpleX", disable=not self.show_progress):
            lr = rates[epoch] if rates is not None else lr
            # the same permutation as rng.permutation(nnz), drawn into int32 directly
            order = rng.permutation(identity)
            with blas_limit(1):
                loss = train_epoch(X.indptr, X.indices, H.indptr, H.indices, trained, state,
                                   {**config, "learning_rate": lr,
                                    "seed": int(rng.integers(2**63))}, order, cdf, clock)
            self._store(tables)
            path.append(lr)
            training.end_epoch(epoch, loss=loss, learning_rate=lr)
            self._log_epoch(training)
            if training.stopped or (training.exhausted and rates is None):
                break
            if rates is None and plateau.decays(training):  # back to the best, then decay
                for name, kept in training.best_state[0].items():
                    tables[name][...] = kept
                path = list(training.best_state[1])
                lr = plateau.decayed(lr)
        self.schedule_ = path
        training.finish()
        return self

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {"negative_weight": contrastive_weight(self.negative_weight, X),
                "l2": table_ridge(self.l2, X, self.batch_size, self.optimizer == "dense_adam")}

    def _start_tables(self, X: sp.csr_matrix, rng) -> tuple[dict, dict, np.ndarray | None]:
        """The initial tables by name, their optimiser states ``(m, v, t)`` and the
        dense-Adam clock (None for the other optimisers)."""
        d = self.factors
        tables = {"user_factors": _normal_float32(rng, X.shape[0], d, self.init_std),
                  "item_factors": _normal_float32(rng, X.shape[1], d, self.init_std),
                  "W": np.eye(d, dtype=np.float32),
                  "item_bias": np.zeros(X.shape[1], dtype=np.float32),
                  "attention": np.zeros((d, d), dtype=np.float32),
                  "attention_bias": np.zeros(d, dtype=np.float32),
                  "user_bias": np.zeros(X.shape[0], dtype=np.float32),
                  "global_bias": np.zeros(1, dtype=np.float32)}
        if self.aggregator == "user_attention":
            # the key map, torch's default Linear initialisation as officially (drawn only
            # here, so that mean fits keep their random stream)
            tables["attention"][...] = rng.uniform(-d ** -0.5, d ** -0.5, (d, d))
            tables["attention_bias"][...] = rng.uniform(-d ** -0.5, d ** -0.5, d)
        adam = self.optimizer != "adagrad"
        state = {}
        for name, table in tables.items():
            whole = name in ("W", "attention", "attention_bias")  # one row, one step count
            state[name] = (np.zeros_like(table) if adam else None, np.zeros_like(table),
                           np.zeros(1 if whole else max(len(table), 1), dtype=np.int32))
        clock = np.zeros(1, np.int32) if self.optimizer == "dense_adam" else None
        return tables, state, clock

    def _trained(self, tables: dict) -> dict:
        """The tables the kernel trains: the optional ones None when off."""
        trained = dict(tables)
        if not self.biases:
            trained["item_bias"] = None
        if self.biases is not True:  # the user and global biases
            trained["user_bias"] = trained["global_bias"] = None
        if self.aggregator != "user_attention" or self.gamma == 1:  # A and b stay
            trained["attention"] = trained["attention_bias"] = None
        return trained

    def _log_epoch(self, training) -> None:
        entry, watched = self.history_[-1], training.early_stopping
        shown = (f", {watched.metric} {entry[watched.metric]:.4f}"
                 if training.evaluates and watched.metric in entry else "")
        logger.info("SimpleX epoch %d: loss %.5f%s (%.1fs)", entry["epoch"], entry["loss"],
                    shown, entry["elapsed"])

    def _check_memory(self, X: sp.csr_matrix, threads: int) -> None:
        """``MemoryError`` before training when the tables and the kernel's per-thread scratch
        (negatives' rows and gradients, a block's scores, an item-gradient sink) cannot fit."""
        d, N, block = self.factors, self.negatives, self.negative_sharing
        n_users, n_items = X.shape
        history = 0
        if self.aggregator == "user_attention":  # the attention weights of a block
            longest = int(np.diff(X.indptr).max(initial=0))
            history = longest if self.max_history is None else min(longest, self.max_history)
        sink = n_items * d * (4 if self.aggregator == "user_attention" else 1) + 2 * n_items
        per_thread = 2 * N * d + block * (N + history + 12 * d) + sink
        tables = 5 * (n_users + n_items) * d  # embeddings, Adam moments, kept copies
        check_memory(4.0 * (threads * per_thread + tables),
                     f"SimpleX(factors={d}, negatives={N}) on {n_users} x {n_items} with "
                     f"{threads} threads", "Lower negatives, factors or num_threads")

    def _store(self, tables: dict) -> None:
        self.user_factors_ = tables["user_factors"].copy()
        self.item_factors_ = tables["item_factors"].copy()
        self.W_ = tables["W"].copy()
        self.item_bias_ = tables["item_bias"].copy()  # zeros without biases
        self.attention_ = tables["attention"].copy()
        self.attention_bias_ = tables["attention_bias"].copy()
        self.user_bias_ = tables["user_bias"].copy()
        self.global_bias_ = tables["global_bias"].copy()

    def _history_vectors(self, rows: sp.csr_matrix, row_ids: np.ndarray,
                         embeddings: np.ndarray) -> np.ndarray:
        """``W agg(q_k, k in H_u)`` of each row (the history branch before the gamma mix)."""
        rows = capped_history(rows, self.max_history, row_ids)
        weights = np.ones(rows.nnz)
        if self.aggregator == "user_attention":
            weights = self._attention_weights(rows, embeddings)
        else:  # the mean
            weights /= np.maximum(np.diff(rows.indptr), 1)[row_of_values(rows)]
        pool = sp.csr_matrix((weights, rows.indices, rows.indptr), shape=rows.shape)
        return (pool @ self.item_factors_.astype(np.float64)) @ self.W_.T

    def fold_in(self, X_new, steps: int = 100) -> np.ndarray:
        """User embeddings ``e_u`` of new users, trained as the fit trains a user's row: the
        cosine contrastive loss of the user's positives with every other parameter fixed::

            L_u = sum_{i in I_u} (1 - s_ui) + |I_u| w mean_j max(0, s_uj - m),

        (the negatives' term in its expectation under uniform sampling, the mean over every
        item, or over the items outside ``I_u`` with ``exclude_positives``, so the result is
        deterministic; ``s`` includes the item and global biases as in training), by ``steps``
        Adam steps from ``e_u`` = the history branch rescaled to the fitted users' mean norm.
        With ``gamma = 0`` the embedding does not enter the scores and stays zero.
        """
        self._check_fitted()
        X_new = as_csr(X_new, "X_new", allow_empty=True, nonnegative=True,
                       n_items=self.n_items_)
        n, d = X_new.shape[0], self.factors
        if n == 0 or self.gamma == 0:
            return np.zeros((n, d), np.float32)
        ids = self.n_users_ + np.arange(n)  # stable pseudo-random history caps for new rows
        branch = self._history_vectors(X_new, ids, np.zeros((n, d)))  # attention: from e = 0
        scale = float(np.linalg.norm(self.user_factors_, axis=1).mean()) or 1.0
        E = branch / (np.linalg.norm(branch, axis=1, keepdims=True) + 1e-12) * scale
        Q = self.item_factors_.astype(np.float64)
        Qn = Q / (np.linalg.norm(Q, axis=1, keepdims=True) + 1e-8)
        shift = self.item_bias_.astype(np.float64) if self.biases else np.zeros(len(Q))
        if self.biases and self.biases != "item":
            shift = shift + float(self.global_bias_[0])
        block = max(1, (32 << 20) // (8 * len(Q)))
        for start in range(0, n, block):
            stop = min(start + block, n)
            E[start:stop] = self._fold_in_block(X_new[start:stop], E[start:stop],
                                                branch[start:stop], Qn, shift, steps, scale)
        return E.astype(np.float32)

    def partial_fit(self, X, users=None, previous=None, steps: int = 100) -> SimpleX:
        """Approximate update: the changed and new users' embeddings trained as in
        :meth:`fold_in` (``steps`` Adam steps of their CCL, items fixed), and each new item's
        embedding set to the mean direction of its users' normalised vectors (the maximiser of
        the loss's positive term, ``sum_u cos(p_u, q)``), scaled to the fitted items' mean
        norm; a new item without users gets zeros. Other rows keep their values."""
        X, _, touched, _ = self._prepare_update(X, users, previous, nonnegative=True)
        n_old_items, d = self.n_items_, self.factors
        E = grown(self.user_factors_, X.shape[0])
        if touched.size:
            E[touched] = self.fold_in(X[touched][:, :n_old_items], steps=steps)
        self.user_bias_ = grown(self.user_bias_, X.shape[0])
        self.user_factors_, self.n_users_ = E, X.shape[0]
        m = X.shape[1] - n_old_items
        if m:
            P, _ = self._factors(np.arange(X.shape[0]), X[:, :n_old_items])
            directions = (X[:, n_old_items:] != 0).astype(np.float64).T @ P[:, :d]
            norms = np.linalg.norm(directions, axis=1, keepdims=True)
            scale = float(np.linalg.norm(self.item_factors_, axis=1).mean())
            new = np.divide(directions, norms, out=np.zeros_like(directions),
                            where=norms > 0) * scale
            self.item_factors_ = np.vstack([self.item_factors_, new.astype(np.float32)])
            self.item_bias_ = grown(self.item_bias_, X.shape[1])
            self.n_items_ = X.shape[1]
        return self

    def _fold_in_block(self, rows, E, branch, Qn, shift, steps, scale) -> np.ndarray:
        positives = (rows != 0).astype(np.float64).toarray()
        n_pos = positives.sum(axis=1, keepdims=True)
        # the negatives' expectation: uniform over every item, or over the user's
        # non-positives with exclude_positives
        pool = np.maximum(len(Qn) - n_pos, 1) if self.exclude_positives else len(Qn)
        weight = in_use(self, "negative_weight") / pool
        candidates = 1.0 - positives if self.exclude_positives else 1.0
        m1, m2 = np.zeros_like(E), np.zeros_like(E)
        lr = self.learning_rate * scale
        for t in range(1, steps + 1):
            P = self.gamma * E + (1 - self.gamma) * branch
            norm = np.linalg.norm(P, axis=1, keepdims=True) + 1e-8
            Ph = P / norm
            cos = Ph @ Qn.T
            # dL/ds: -1 per positive, w / n_items per active negative (expected over draws)
            coef = n_pos * weight * candidates * (cos + shift[None, :] > self.margin) - positives
            # d cos(p, q) / dp = (q^ - cos p^) / |p|, and dp / de = gamma
            grad = self.gamma * (coef @ Qn - (coef * cos).sum(axis=1, keepdims=True) * Ph) / norm
            m1 = 0.9 * m1 + 0.1 * grad
            m2 = 0.999 * m2 + 0.001 * grad ** 2
            E = E - lr * (m1 / (1 - 0.9 ** t)) / (np.sqrt(m2 / (1 - 0.999 ** t)) + 1e-8)
        return E

    def _factors(self, users, X):
        """Normalised user vectors (own embedding + history branch) and normalised items."""
        (E,) = self._user_state(users, X, self.user_factors_)
        P = self.gamma * E.astype(np.float64)
        if self.gamma < 1:
            P += (1 - self.gamma) * self._history_vectors(X[users], users, E)
        P /= np.linalg.norm(P, axis=1, keepdims=True) + 1e-8
        Q = self.item_factors_ / (np.linalg.norm(self.item_factors_, axis=1, keepdims=True)
                                  + 1e-8)
        if self.biases:  # score = cos + b_i, as [p^, 1] . [q^, b_i]
            P = np.hstack([P, np.ones((len(P), 1))])
            Q = np.hstack([Q, self.item_bias_[:, None]])
        return P.astype(np.float32), Q.astype(np.float32)

    def _explain(self, user, item, row):
        # p_u = gamma e_u + (1 - gamma) W sum_k a_k q_k (a_k: the mean's or the attention's
        # weights over the capped history) and score = p_u . q^_i / |p_u| + b_i: linear in
        # the history items' terms once |p_u| is fixed
        e = (self.user_factors_[user] if user < self.n_users_ else self.fold_in(row)[0])
        e = e.astype(np.float64)
        capped = capped_history(row, self.max_history, np.array([user]))
        weights = np.full(capped.nnz, 1.0 / max(capped.nnz, 1))
        if self.aggregator == "user_attention" and capped.nnz:
            weights = self._attention_weights(capped, e[None, :].astype(np.float32))
        Q = self.item_factors_.astype(np.float64)
        q_hat = Q[item] / (np.linalg.norm(Q[item]) + 1e-8)
        mapped = Q[capped.indices] @ self.W_.T.astype(np.float64)  # W q_k
        p = self.gamma * e + (1 - self.gamma) * weights @ mapped
        norm = np.linalg.norm(p) + 1e-8
        shares = (1 - self.gamma) * weights * (mapped @ q_hat) / norm
        base = self.gamma * (e @ q_hat) / norm + (float(self.item_bias_[item]) if self.biases
                                                  else 0.0)
        return Explanation.of(user, item, capped.indices, shares, base)

    def _user_vectors(self, users, X):
        return self._factors(users, X)[0][:, :self.factors]  # the scoring vectors p_u / |p_u|

    def _attention_weights(self, rows: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
        """Softmax weights of every stored history entry within its row; row r is the user
        whose embedding is ``users[r]``."""
        keys = np.tanh(self.item_factors_.astype(np.float64) @ self.attention_.T
                       + self.attention_bias_)
        owner = row_of_values(rows)
        logits = np.einsum("ij,ij->i", keys[rows.indices], users[owner])  # K_k . e_u
        starts = rows.indptr[:-1][np.diff(rows.indptr) > 0]
        top = np.maximum.reduceat(logits, starts) if len(starts) else np.zeros(0)
        full_top = np.zeros(rows.shape[0])
        full_top[np.diff(rows.indptr) > 0] = top
        alpha = np.exp(logits - full_top[owner])
        mass = np.bincount(owner, alpha, minlength=rows.shape[0])
        return alpha / mass[owner]



def _normal_float32(rng, n: int, d: int, std: float, rows: int = 1 << 14) -> np.ndarray:
    """``(rng.standard_normal((n, d)) * std).astype(float32)``, the same draws, made in row
    chunks so that no float64 table is held."""
    out = np.empty((n, d), dtype=np.float32)
    for lo in range(0, n, rows):
        out[lo:lo + rows] = rng.standard_normal((min(rows, n - lo), d)) * std
    return out


def capped_history(X: sp.csr_matrix, max_history: int | None,
                   row_ids: np.ndarray | None = None) -> sp.csr_matrix:
    """Rows of ``X`` with more than ``max_history`` entries cut to a pseudo-random subset of
    that size, fixed by the row's id (``row_ids[r]``, else r); indices stay sorted."""
    counts = np.diff(X.indptr)
    long = np.flatnonzero(counts > max_history) if max_history is not None else []
    if len(long) == 0:
        return X
    ids = np.arange(X.shape[0]) if row_ids is None else np.asarray(row_ids)
    keep = np.ones(X.nnz, dtype=bool)
    for r in long:
        drop = np.random.default_rng([0x51, int(ids[r])]).choice(
            counts[r], counts[r] - max_history, replace=False)
        keep[X.indptr[r] + drop] = False
    return select_entries(X, keep)


__all__ = ["SimpleX", "capped_history", "step_rates"]
