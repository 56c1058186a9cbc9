"""The one model interface: ``fit``, ``score``, ``recommend``, ``predict``, ``save``/``load``.

Models see row and column indices only; :class:`~recsys.data.IdMap` converts at the edges.
``X`` is always the *full* users x items history matrix and ``users`` are row indices into it.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
import tempfile
import warnings
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recsys._constraints import validate_params
from recsys._ext._gram import rows_times_csr
from recsys._threads import resolve_num_threads
from recsys._validation import as_csr, check_k, check_users
from recsys.models.explain import Explanation
from recsys.models.ids import check_grown_ids, recommend_raw, record_training_data
from recsys.models.schema import Array, Scalar, check_fitted
from recsys.models.similarity import cosine_neighbours, history_cosine_rows, row_neighbours
from recsys.topk import rows_per_batch, topk_factors, topk_history, topk_scores

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[Recommender]] = {}
_FORMAT_VERSION = 1
_META_KEY = "__meta__"


def _translating_init(init):
    """Wrap a model's ``__init__`` so that renamed parameters are accepted under their old
    names (``inspect.signature`` still shows the current ones)."""
    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **type(self).translate_params(kwargs))

    return __init__


def registered_models() -> dict[str, type[Recommender]]:
    """Every concrete model class, by class name (a copy of the registry that
    ``Recommender`` subclasses join when they are defined)."""
    return dict(_REGISTRY)


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit``."""


class Recommender(ABC):
    """Base class of every recsys model (scikit-learn style estimator hygiene).

    ``__init__`` only stores its keyword arguments; ``fit`` validates, learns, sets attributes
    ending in ``_`` and returns ``self``. :meth:`get_params` / :meth:`set_params` come from the
    constructor signature.

    Subclasses implement :meth:`fit` and one way to score:

    - :meth:`_factors` (factor models: scores ``U @ V.T``, ranked by the fused top-k kernel
      without a dense score matrix);
    - :meth:`_item_weights` (item-item models: scores ``X[users] @ W``; a dense ``W`` is
      ranked by the fused history kernel, a sparse one in batches);
    - or :meth:`_score_block` (anything producing dense scores for a batch of users).
    """

    #: True when the model keeps per-user state learned in ``fit`` (user factors): then ``X``
    #: passed at scoring time holds the fitted users in its first rows and new users after
    #: them (folded in, :meth:`fold_in`). History-based models (kNN, EASE, popularity) score
    #: any rows of any ``X``.
    uses_user_state: ClassVar[bool] = False
    #: True for models of explicit ratings (fitted on the rated values, e.g. to predict them);
    #: False for implicit-feedback models (fitted on positives). Pipelines pick the training
    #: matrix from it.
    rating_model: ClassVar[bool] = False
    #: What each constructor argument may be (see :mod:`recsys._constraints`), checked by
    #: :meth:`_validate_params` at ``fit`` and ``load``; every parameter must be declared.
    _parameter_constraints: ClassVar[dict[str, list]] = {}
    #: The fitted attributes a model file may set (see :mod:`recsys.models.schema`), beyond
    #: ``n_users_`` and ``n_items_``.
    _fitted: ClassVar[dict[str, Array | Scalar]] = {}
    #: Parameters renamed by the vocabulary pass (see the glossary, :mod:`recsys.glossary`):
    #: old name -> new name, or (new name, conversion of the old value). The old names keep
    #: working for one release, with a ``FutureWarning``: in the constructor, ``set_params``,
    #: model files and sweep records.
    _renamed_params: ClassVar[dict[str, str | tuple[str, Callable[[Any], Any]]]] = {}
    #: Constructor parameters that moved elsewhere (to ``fit``): old name -> where it went.
    #: Given to the constructor or ``set_params`` they raise a ``TypeError`` that says so; in
    #: model files and sweep records (``stored``) they are dropped with a ``FutureWarning``.
    _moved_params: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _translating_init(cls.__dict__["__init__"])
        for method in ("fit", "partial_fit"):
            if method in cls.__dict__ and not getattr(cls.__dict__[method], "_checks_result",
                                                      False):
                setattr(cls, method, _checked_fit(cls.__dict__[method]))
        if not inspect.isabstract(cls) and not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    # -- parameters ---------------------------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self"
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters as a flat dict (the constructor's keyword arguments)."""
        return {name: getattr(self, name) for name in self._param_names()}

    @classmethod
    def translate_params(cls, params: dict[str, Any], stored: bool = False) -> dict[str, Any]:
        """``params`` with renamed parameters under their current names (a ``FutureWarning``
        for each old name; giving both names is a ``TypeError``) and without the moved ones
        (see ``_moved_params``: a ``TypeError``, or with ``stored``, for what a model file or
        a sweep record holds, a ``FutureWarning``)."""
        out = dict(params)
        for old, where in cls._moved_params.items():
            if old not in out:
                continue
            message = f"{cls.__name__}: parameter {old!r} moved to {where}"
            if not stored:
                raise TypeError(message)
            warnings.warn(f"{message}; the stored value {out.pop(old)!r} is not used",
                          FutureWarning, stacklevel=3)
        for old, rule in cls._renamed_params.items():
            if old not in out:
                continue
            new, convert = (rule, None) if isinstance(rule, str) else rule
            if new in params:
                raise TypeError(f"{cls.__name__}: give {new!r} or its old name {old!r}, not "
                                "both")
            warnings.warn(f"{cls.__name__}: parameter {old!r} is now called {new!r}; the old "
                          "name is accepted until the next release", FutureWarning,
                          stacklevel=3)
            value = out.pop(old)
            out[new] = convert(value) if convert is not None else value
        return out

    def set_params(self, **params) -> Recommender:
        """Set hyperparameters by name; unknown names raise ``ValueError``."""
        params = self.translate_params(params)
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; "
                                 f"valid: {valid}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- learning -----------------------------------------------------------------------------
    @abstractmethod
    def fit(self, X) -> Recommender:
        """Learn from ``X`` (CSR users x items, or an ``Interactions``); returns ``self``."""

    def resolved_params(self, X) -> dict[str, float]:
        """The value each data-aware parameter takes when the model is fitted on ``X``: a
        parameter left at ``"auto"`` read off the matrix (see :mod:`recsys.models.auto`), a
        number as it is. ``fit`` records them as ``<name>_``; a sweep starts from them. Empty
        for a model without data-aware parameters."""
        return self._resolved_params(as_csr(X, "X"))

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {}

    def _validate_params(self) -> None:
        """Check every hyperparameter against ``_parameter_constraints`` (named errors)."""
        validate_params(type(self).__name__, self.get_params(), self._parameter_constraints)

    def _prepare_fit(self, X, nonnegative: bool = False) -> sp.csr_matrix:
        """Validate the hyperparameters and ``X`` (canonical CSR), record the shape and the
        values of the data-aware parameters (:meth:`resolved_params`, as ``<name>_``)."""
        self._validate_params()
        X = as_csr(X, "X", nonnegative=nonnegative)
        self.n_users_, self.n_items_ = (int(n) for n in X.shape)
        for name, value in self._resolved_params(X).items():
            setattr(self, f"{name}_", value)
        return X

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X)")

    # -- scoring ------------------------------------------------------------------------------
    def _factors(self, users: np.ndarray, X: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
        """``(user_vectors, item_vectors)`` with scores ``user_vectors @ item_vectors.T``."""
        raise NotImplementedError

    def _item_weights(self) -> np.ndarray | sp.csr_matrix:
        """Item-item weights ``W`` (n_items x n_items) with scores ``X[users] @ W``."""
        raise NotImplementedError

    def _score_block(self, users: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """Dense scores ``(len(users), n_items)`` for one batch."""
        if self._is_factor_model():
            U, V = self._factors(users, X)
            return U @ V.T
        W = self._item_weights()
        if sp.issparse(W):  # rows of X times the CSR weights, straight into dense scores
            W = W.tocsr()
            out = np.zeros((users.size, W.shape[1]), dtype=W.dtype)
            rows_times_csr(X.indptr, X.indices, X.data, W.indptr, W.indices, W.data,
                           np.ascontiguousarray(users, dtype=np.int32), out,
                           resolve_num_threads(getattr(self, "num_threads", 0) or 0))
            return out
        return np.asarray(X[users] @ W)

    def _is_factor_model(self) -> bool:
        return type(self)._factors is not Recommender._factors

    def _is_item_model(self) -> bool:
        return type(self)._item_weights is not Recommender._item_weights

    def _dense_item_weights(self) -> np.ndarray | None:
        if not self._is_item_model():
            return None
        W = self._item_weights()
        return None if sp.issparse(W) else W

    def _check_query(self, users, X) -> tuple[np.ndarray, bool, sp.csr_matrix]:
        self._check_fitted()
        X = as_csr(X, "X", allow_empty=True, n_items=self.n_items_)
        if self.uses_user_state and X.shape[0] < self.n_users_:
            raise ValueError(
                f"X has {X.shape[0]} rows but {type(self).__name__} was fitted on "
                f"{self.n_users_} users and keeps per-user factors. Pass the full history "
                "matrix X (the fitted users first, as in fit; rows beyond them are new users, "
                "folded in) with `users` as row indices, not X[users]")
        users, scalar = check_users(users, X.shape[0])
        return users, scalar, X

    # -- new users ----------------------------------------------------------------------------
    def fold_in(self, X_new):
        """The per-user state (factors, and biases where the model has them) of new users,
        learned from their history rows ``X_new`` (n_new x n_items) with everything else fixed.

        ``recommend``, ``score`` and ``predict`` call it for the rows of ``X`` beyond the
        fitted users. History-based models (EASE, ItemKNN, MostPopular) keep no per-user
        state: they score any row as it is.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no per-user state: it scores "
                                  "any history row directly, so there is nothing to fold in")

    def _user_state(self, users: np.ndarray, X: sp.csr_matrix,
                    *fitted: np.ndarray) -> tuple[np.ndarray, ...]:
        """Rows ``users`` of the fitted per-user arrays ``fitted``; rows of ``X`` beyond the
        fitted users get theirs from :meth:`fold_in` of their history."""
        new = users >= self.n_users_
        known = np.where(new, 0, users)
        out = [a[known] if len(a) else np.zeros((users.size, *a.shape[1:]), a.dtype)
               for a in fitted]
        if new.any():
            folded = self.fold_in(X[users[new]])
            folded = folded if isinstance(folded, tuple) else (folded,)
            for part, value in zip(out, folded):
                part[new] = value
        return tuple(out)

    def score(self, users, X) -> np.ndarray:
        """Dense scores for ``users`` (row indices of ``X``) over all items.

        Returns an array of shape ``(len(users), n_items)``; ``(n_items,)`` for a scalar user.
        For many users prefer :meth:`recommend`, which never holds all scores at once.
        """
        users, scalar, X = self._check_query(users, X)
        scores = self._score_block(users, X)
        return scores[0] if scalar else scores

    def recommend(self, users, X, k: int = 10, exclude_seen: bool = True, items=None,
                  batch_size: int | None = None, filter_items=None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items for ``users`` (row indices of the full history matrix ``X``).

        Parameters
        ----------
        users : int or array of int
        X : CSR (n_rows, n_items)
            History of every user; row ``users[i]`` is user ``i``'s history. Models with
            per-user state read their fitted users from the first rows and fold in the rows
            beyond them (new users, :meth:`fold_in`).
        k : int
            Number of items; clipped to the number of candidates (then all are ranked).
        exclude_seen : bool
            Never recommend items in the user's row of ``X`` (their scores become -inf).
        items : array of int, optional
            Rank only these candidate items.
        batch_size : int, optional
            Users per scoring batch for dense-score models (bounds memory).
        filter_items : array of int or CSR (n_rows, n_items), optional
            A block-list: item indices never recommended to anyone, or a matrix of items never
            recommended per row of ``X`` (e.g. every training interaction of the user when
            ``X`` holds only the positives the model scores from). Combines with ``items``
            and ``exclude_seen``; a row gets exactly ``k`` items whenever ``k`` candidates
            remain.

        Returns
        -------
        ids : int32 ndarray (n_users, k), best first; ``-1`` pads rows with fewer than ``k``
            candidates left after exclusion. 1-D for a scalar ``users``.
        scores : ndarray of the same shape (``-inf`` for padding).
        """
        users, scalar, X = self._check_query(users, X)
        n_items = self.n_items_
        candidates = None
        if items is not None:
            candidates = _check_items(items, n_items, "items")
            if candidates.size == 0:
                raise ValueError("items is empty")
        blocked = None
        if filter_items is not None and not sp.issparse(filter_items):
            banned = _check_items(filter_items, n_items, "filter_items")
            keep = np.setdiff1d(np.arange(n_items) if candidates is None else candidates,
                                banned, assume_unique=True)
            if candidates is not None:  # keep the caller's order of candidates
                keep = candidates[np.isin(candidates, keep)]
            if keep.size == 0:
                raise ValueError("filter_items blocks every candidate item")
            candidates = keep
        elif filter_items is not None:
            blocked = as_csr(filter_items, "filter_items", allow_empty=True, n_items=n_items)
            if blocked.shape[0] != X.shape[0]:
                raise ValueError(f"filter_items has {blocked.shape[0]} rows but X has "
                                 f"{X.shape[0]}")
            blocked = blocked[users]
        exclude = X[users] if exclude_seen else None
        if blocked is not None:
            exclude = blocked if exclude is None else _union(exclude, blocked)
        if candidates is not None and exclude is not None:
            exclude = _restrict_columns(exclude, candidates, n_items)
        threads = getattr(self, "num_threads", 0) or 0
        if self._is_factor_model():
            U, V = self._factors(users, X)
            if candidates is not None:
                V = V[candidates]
            ids, scores = topk_factors(U, V, k, exclude, num_threads=threads)
        elif (W := self._dense_item_weights()) is not None:
            if candidates is not None:
                W = np.ascontiguousarray(W[:, candidates])
            ids, scores = topk_history(X[users], W, k, exclude, num_threads=threads)
        else:
            if batch_size is None:
                batch_size = rows_per_batch(n_items)
            parts = []
            for start in range(0, users.size, batch_size):
                block = self._score_block(users[start:start + batch_size], X)
                if candidates is not None:
                    block = block[:, candidates]
                part_excl = None if exclude is None else exclude[start:start + batch_size]
                parts.append(topk_scores(block, k, part_excl, num_threads=threads, copy=False))
            ids = np.concatenate([p[0] for p in parts]) if parts else np.empty((0, k), np.int32)
            scores = np.concatenate([p[1] for p in parts]) if parts else \
                np.empty((0, k), np.float32)
        if candidates is not None:
            ids = np.where(ids >= 0, candidates[np.maximum(ids, 0)], -1).astype(np.int32)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def recommend_raw(self, users=None, history=None, k: int = 10, exclude: str = "training",
                      threshold: float | None = None, fallback: bool = True,
                      user: str = "user", item: str = "item", value: str | None = None,
                      batch_size: int = 4096):
        """Top-``k`` items in raw ids for raw user ids (the model must be fitted on an
        ``Interactions``, whose id maps it keeps).

        Parameters
        ----------
        users : array-like of raw user ids, optional
            Default: every user of ``history`` (every fitted user when there is none).
        history : DataFrame or Interactions, optional
            Interactions in raw ids (columns ``user``, ``item`` and optionally ``value``):
            what users unseen at fit are scored from, what history-based models score every
            user from, and what is never recommended back (every row, whatever its value,
            by default). Rows of items unknown to the model are ignored (counted); rows
            without a value (no value column, or NaN) are positives.
        k : int
            Items per user (every candidate when ``k`` exceeds the catalogue).
        exclude : {"training", "positives", "none"}
            Never recommend back every history row of the user (whatever its value), only
            the positives the model scores from, or nothing.
        threshold : float, optional
            Values ``>= threshold`` are the positives implicit models score from (rating
            models score from every rated value, as they are fitted); default
            ``training_data_["threshold"]`` (set by pipelines), else every row.
        fallback : bool
            Users with no usable history (unseen at fit, or with only unknown items, or a
            history-based model's user with an empty history) get the items with the most
            training users (``item_counts_``), minus their seen items. False: such users
            raise ``ValueError``.
        user, item, value : str
            Column names of a DataFrame ``history``.

        Returns
        -------
        DataFrame with ``user``, ``rank`` (1..k), ``item``, ``score`` (float32) and
        ``source`` (``"model"``: a fitted user; ``"fold_in"``: a user unseen at fit, scored
        from the history; ``"popularity"``: the fallback, scored by the item counts), in the
        order of ``users``; ``.attrs["counts"]`` holds the number of users of each source
        and of ignored history rows (also logged).
        """
        return recommend_raw(self, users, history, k, exclude, threshold, fallback,
                             user, item, value, batch_size)

    def predict(self, users, items, X) -> np.ndarray:
        """Scores of (user, item) pairs, e.g. predicted ratings; ``users`` index rows of ``X``."""
        users, _, X = self._check_query(users, X)
        items = np.atleast_1d(np.asarray(items))
        if items.shape != users.shape:
            raise ValueError("users and items must have the same length")
        if items.size and (items.min() < 0 or items.max() >= self.n_items_):
            raise ValueError(f"items must lie in [0, {self.n_items_})")
        if self._is_factor_model():
            U, V = self._factors(users, X)
            return np.einsum("ij,ij->i", U, V[items])
        unique, inverse = np.unique(users, return_inverse=True)
        out = np.empty(users.size, dtype=np.float32)
        step = rows_per_batch(self.n_items_)
        for start in range(0, unique.size, step):
            block = self._score_block(unique[start:start + step], X)
            sel = (inverse >= start) & (inverse < start + step)
            out[sel] = block[inverse[sel] - start, items[sel]]
        return out

    # -- incremental updates ------------------------------------------------------------------
    def partial_fit(self, X, users=None, previous=None) -> Recommender:
        """Update the fitted model for changed and new users and new items, without a refit.

        Parameters
        ----------
        X : CSR (n_users', n_items')
            The whole updated history: the fitted users first, new users in the rows beyond
            them, new items in the columns beyond the fitted ones (the id maps grow the same
            way, e.g. ``IdMap`` of the old ids followed by the new ones).
        users : array of int, optional
            Fitted users whose rows changed (new rows are always included).
        previous : CSR (n_users, n_items), optional
            The matrix the model was fitted on; models whose update subtracts the old rows'
            contribution (EASE) need it when ``users`` holds fitted users.

        Returns ``self``; see each model for what is exact.
        """
        raise NotImplementedError(f"{type(self).__name__} has no incremental update yet; "
                                  "refit it on the updated matrix")

    def _prepare_update(self, X, users, previous, nonnegative: bool = False):
        """Checked ``(X, touched users, previous)`` for :meth:`partial_fit`."""
        self._check_fitted()
        self._validate_params()
        X = as_csr(X, "X", nonnegative=nonnegative)
        if X.shape[0] < self.n_users_ or X.shape[1] < self.n_items_:
            raise ValueError(f"X has shape {X.shape} but the model was fitted on "
                             f"({self.n_users_}, {self.n_items_}): an update only adds rows "
                             "and columns")
        changed = np.zeros(0, np.int64) if users is None else \
            check_users(users, self.n_users_, "users")[0].astype(np.int64)
        touched = np.union1d(changed, np.arange(self.n_users_, X.shape[0]))
        if previous is not None:
            previous = as_csr(previous, "previous", allow_empty=True, nonnegative=nonnegative)
            if previous.shape != (self.n_users_, self.n_items_):
                raise ValueError(f"previous has shape {previous.shape} but the model was "
                                 f"fitted on ({self.n_users_}, {self.n_items_})")
        return X, changed, touched, previous

    def _touched_items(self, X: sp.csr_matrix, touched: np.ndarray) -> np.ndarray:
        """Items to re-solve in an update: those in the touched users' rows and the new ones."""
        return np.union1d(np.unique(X[touched].indices), np.arange(self.n_items_, X.shape[1]))

    # -- explanations -------------------------------------------------------------------------
    def explain(self, user: int, item: int, X) -> Explanation:
        """The score of ``item`` for ``user`` (a row of ``X``) split into the contributions of
        the user's history items (see :mod:`recsys.models.explain`); they sum to the score.
        Models whose score is not a linear function of the history raise
        ``NotImplementedError`` saying why."""
        users, _, X = self._check_query(np.asarray([user]), X)
        items = _check_items(np.asarray([item]), self.n_items_, "item")
        return self._explain(int(users[0]), int(items[0]), X[int(users[0])])

    def _explain(self, user: int, item: int, row: sp.csr_matrix) -> Explanation:
        if not self._is_item_model():
            raise NotImplementedError(f"{type(self).__name__} does not explain its scores")
        # item-item models: score(u, i) = sum_{j in I_u} x_uj W_ji, exact term by term
        column = self._item_rows(row.indices)[:, item] if row.nnz else np.zeros(0)
        return Explanation.of(user, item, row.indices, row.data * column)

    # -- neighbours ---------------------------------------------------------------------------
    def _item_vectors(self) -> np.ndarray:
        """The item representation whose cosine ranks :meth:`similar_items` (factor models)."""
        if hasattr(self, "item_factors_"):
            return self.item_factors_
        raise NotImplementedError(f"{type(self).__name__} has no item representation to "
                                  "compare items by")

    def _user_vectors(self, users: np.ndarray, X: sp.csr_matrix) -> np.ndarray:
        """The user representation whose cosine ranks :meth:`similar_users`."""
        return self._user_state(users, X, self.user_factors_)[0]

    def _item_rows(self, items: np.ndarray) -> np.ndarray:
        """Item-item models: the dense rows ``W[items]`` of their item-item weights."""
        rows = self._item_weights()[items]
        return rows.toarray() if sp.issparse(rows) else np.asarray(rows)

    def similar_items(self, items, k: int = 10, filter_items=None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each of ``items`` (never the item itself).

        Factor models rank by the cosine of their item vectors; EASE by the row ``B[i, :]``
        (how much having ``i`` in a history raises each item's score), ItemKNN by its
        similarity row. ``filter_items``: item indices never returned. Returns ``(ids,
        scores)`` shaped as :meth:`recommend`'s (``-1`` / ``-inf`` padding).
        """
        self._check_fitted()
        items, scalar = check_users(items, self.n_items_, "items")
        blocked = None if filter_items is None else \
            _check_items(filter_items, self.n_items_, "filter_items")
        k = check_k(k, self.n_items_)
        threads = getattr(self, "num_threads", 0) or 0
        if self._is_item_model():
            ids, scores = row_neighbours(self._item_rows, items, self.n_items_, k, blocked,
                                         threads)
        else:
            ids, scores = cosine_neighbours(self._item_vectors(), items, k, blocked, threads)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    def similar_users(self, users, X, k: int = 10, filter_users=None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of ``X`` (users) most similar to each of ``users`` (never itself).

        Models with per-user state rank by the cosine of their user vectors (rows beyond the
        fitted users folded in); history-based models (EASE, ItemKNN, MostPopular) by the
        cosine of the users' history rows. ``filter_users``: rows never returned.
        """
        users, scalar, X = self._check_query(users, X)
        blocked = None if filter_users is None else \
            _check_items(filter_users, X.shape[0], "filter_users")
        k = check_k(k, X.shape[0])
        threads = getattr(self, "num_threads", 0) or 0
        if self.uses_user_state:
            vectors = self._user_vectors(np.arange(X.shape[0]), X)
            ids, scores = cosine_neighbours(vectors, users, k, blocked, threads)
        else:
            ids, scores = row_neighbours(history_cosine_rows(X), users, X.shape[0], k,
                                         blocked, threads)
        return (ids[0], scores[0]) if scalar else (ids, scores)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to one ``.npz`` file (arrays) with JSON metadata; no pickle.

        The file is written to a temporary name and renamed, so a crash never leaves a
        half-written model. Returns the path written (``.npz`` is appended when missing).
        """
        self._check_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        sparse: list[str] = []
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if sp.issparse(value):
                value = value.tocsr()
                sparse.append(name)
                for part in ("data", "indices", "indptr"):
                    arrays[f"{name}.{part}"] = getattr(value, part)
                arrays[f"{name}.shape"] = np.asarray(value.shape, dtype=np.int64)
            elif isinstance(value, np.ndarray):
                if value.dtype == object:
                    raise TypeError(f"{name} is an object array and cannot be saved without "
                                    "pickle")
                arrays[name] = value
            else:
                scalars[name] = value.item() if isinstance(value, np.generic) else value
        params = self.get_params()
        meta = {"format": _FORMAT_VERSION, "class": type(self).__name__,
                "params": json_params(params), "fitted": scalars, "sparse": sparse,
                "unsaved": [name for name, value in params.items() if not _jsonable(value)]}
        arrays[_META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recommender:
        """Read a model written by :meth:`save` (``allow_pickle=False``).

        The file is checked before anything is set: it must be an ``.npz`` archive with the
        metadata, of a registered class; only the attributes that class declares (its
        ``_fitted`` schema) are set, each with its declared dtype and a shape consistent with
        the metadata and the other arrays, and the hyperparameters pass the class's
        constraints. Anything else is a ``ValueError`` naming the problem.
        """
        path = Path(path)
        if path.is_file() and path.stat().st_size == 0:
            raise ValueError(f"{path} is empty (0 bytes): not a recsys model file")
        try:
            npz = np.load(path, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a bare array, not an .npz archive")
            with npz:
                if _META_KEY not in npz.files:
                    raise ValueError("no metadata")
                meta = json.loads(npz[_META_KEY].tobytes().decode())
                arrays = {name: npz[name] for name in npz.files if name != _META_KEY}
        except FileNotFoundError:
            raise
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a readable recsys model file: {exc}") from exc
        if not isinstance(meta, dict) or not {"format", "class", "params", "fitted",
                                              "sparse"} <= set(meta):
            raise ValueError(f"{path}: malformed metadata")
        if meta.get("format") != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported model format {meta.get('format')}")
        model_cls = _REGISTRY.get(meta["class"])
        if model_cls is None:
            raise ValueError(f"{path} holds an unknown model class {meta['class']!r}")
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise TypeError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
        params = dict(meta["params"]) if isinstance(meta["params"], dict) else {}
        params = model_cls.translate_params(params, stored=True)  # written before a rename
        defaults = model_cls().get_params()
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ValueError(f"{path}: {meta['class']} has no parameter {', '.join(unknown)}")
        for name in meta.get("unsaved", []):  # an object saved as its repr: back to default
            if name in params:
                logger.warning("%s: parameter %s was not saved (%s); the loaded model uses "
                               "the default %r", path, name, params[name], defaults[name])
                params[name] = defaults[name]
        model = model_cls(**params)
        try:
            model._validate_params()
        except TypeError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        for name in meta["sparse"]:
            parts = [f"{name}.{p}" for p in ("data", "indices", "indptr", "shape")]
            if not all(part in arrays for part in parts):
                raise ValueError(f"{path}: sparse {name} lacks one of {parts}")
            data, indices, indptr, shape = (arrays.pop(part) for part in parts)
            if shape.shape != (2,) or shape.dtype.kind not in "iu" or (shape < 0).any():
                raise ValueError(f"{path}: sparse {name} has a bad shape {shape.tolist()}")
            if indptr.ndim != 1 or indptr.size != int(shape[0]) + 1:
                raise ValueError(f"{path}: sparse {name} has {indptr.size} row pointers for "
                                 f"{int(shape[0])} rows")
            X = sp.csr_matrix((int(shape[0]), int(shape[1])), dtype=data.dtype)
            X.data, X.indices, X.indptr = data, indices, indptr  # checked by check_fitted
            arrays[name] = X
        attributes = check_fitted(meta["class"], model_cls._fitted, meta["fitted"], arrays)
        for name, value in attributes.items():
            setattr(model, name, value)
        return model


def _checked_fit(fit):
    """Wrap a model's ``fit`` (or ``partial_fit``): a fit ending with NaN or infinite learned
    values is a ``ValueError`` naming the attribute (e.g. values so large that X^T X
    overflows float32), never a model that silently scores NaN; a successful one records its
    training data (raw ids of an ``Interactions``, item counts, fingerprint:
    :func:`recsys.models.ids.record_training_data`)."""

    @functools.wraps(fit)
    def checked(self, X, *args, **kwargs):
        if fit.__name__ == "partial_fit":
            check_grown_ids(self, X)
        out = fit(self, X, *args, **kwargs)
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            data = value.data if sp.issparse(value) else value
            if isinstance(data, np.ndarray) and data.dtype.kind == "f" and \
                    not np.isfinite(data).all():
                raise ValueError(
                    f"{type(self).__name__} fit produced NaN or infinite values in {name}: "
                    "the input values are probably too large for the arithmetic (rescale "
                    "them, e.g. log1p of counts) or a hyperparameter makes the fit diverge")
        record_training_data(self, X)
        return out

    checked._checks_result = True
    return checked


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values; an object (e.g. an external sampler) is stored as its repr,
    with a warning, since it only matters for fitting and cannot be saved without pickle."""
    out = {}
    for name, value in params.items():
        if _jsonable(value):
            out[name] = value
        else:
            logger.warning("parameter %s=%r is not JSON-serialisable; saved as its repr "
                           "(the loaded model predicts the same, with %s back at its default)",
                           name, value, name)
            out[name] = repr(value)
    return out


def biased_factors(user_factors: np.ndarray, user_bias: np.ndarray, item_factors: np.ndarray,
                   item_bias: np.ndarray, mean: float) -> tuple[np.ndarray, np.ndarray]:
    """``(U, V)`` with ``U @ V.T = user_factors @ item_factors.T + b_u + b_i + mean``.

    The biases ride along as extra columns, ``[x_u, b_u, 1, 1] . [y_i, 1, b_i, mean]``, so a
    biased factor model ranks through the same fused top-k kernel as a plain one.
    """
    dtype = np.result_type(user_factors, item_factors)
    n_users, n_items = len(user_factors), len(item_factors)
    U = np.hstack([user_factors, user_bias[:, None], np.ones((n_users, 2))]).astype(dtype)
    V = np.hstack([item_factors, np.ones((n_items, 1)), item_bias[:, None],
                   np.full((n_items, 1), mean)]).astype(dtype)
    return U, V


def grown(table: np.ndarray, n: int) -> np.ndarray:
    """``table`` (1-D or 2-D) with zero rows appended up to ``n`` rows, same dtype."""
    extra = np.zeros((n - len(table), *table.shape[1:]), dtype=table.dtype)
    return np.ascontiguousarray(np.concatenate([table, extra]))


def _check_items(items, n_items: int, name: str) -> np.ndarray:
    """A 1-D array of distinct item indices in ``[0, n_items)``."""
    arr = np.asarray(items)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a 1-D array of integer item indices")
    if arr.size and (arr.min() < 0 or arr.max() >= n_items):
        raise ValueError(f"{name} must lie in [0, {n_items})")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name} holds duplicates")
    return arr.astype(np.int64)


def _union(a: sp.csr_matrix, b: sp.csr_matrix) -> sp.csr_matrix:
    """The stored positions of either matrix (values 1), sorted."""
    out = ((a != 0) + (b != 0)).astype(np.float32).tocsr()
    out.sort_indices()
    return out


def _restrict_columns(X: sp.csr_matrix, columns: np.ndarray, n_cols: int) -> sp.csr_matrix:
    """``X[:, columns]`` as a CSR whose column j is ``columns[j]`` (sorted indices)."""
    position = np.full(n_cols, -1, dtype=np.int64)
    position[columns] = np.arange(columns.size)
    sub = X[:, np.sort(columns)].tocsr()
    sub.indices = position[np.sort(columns)[sub.indices]].astype(np.int32)
    sub = sp.csr_matrix((sub.data, sub.indices, sub.indptr), shape=(X.shape[0], columns.size))
    sub.sort_indices()
    return sub
