"""A data set prepared for fitting and full-ranking evaluation, shared by sweeps, the CLI, the
batch job and the demo.

Rating models (``model.rating_model``) are fitted on the raw values (ratings); implicit
models on the positives (values >= ``threshold``). Ranking is always evaluated against the
positives of the held-out part, with every training item of the user excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from recsys.data import Interactions
from recsys.data.idmap import IdMap
from recsys.data.spec import DATASET_DEFAULTS, DataSpec
from recsys.data.splits import Split, temporal_split, validation_split


@dataclass(frozen=True)
class Experiment:
    """Train / (validation) / test parts of one data set over shared id maps.

    Attributes
    ----------
    name : str
    split : Split
        Raw values (ratings, play counts, or ones).
    threshold : float or None
        Values >= threshold are positives (None: every stored value is).
    """

    name: str
    split: Split
    threshold: float | None = None
    spec: DataSpec | None = None

    def training(self, model) -> Interactions:
        """What ``model`` is fitted on: raw values for rating models, else the positives
        (under the ``users`` protocol, only the rows of the training users: the held-out
        users come after them and are folded in at test time)."""
        train = self.split.train if model.rating_model else self.split.train.binarize(
            self.threshold)
        return _trained_rows(train) if self.split.fold_in is not None else train

    def fit(self, model, **fit_options):
        """Fit ``model`` on :meth:`training` (``fit_options`` go to its ``fit``, e.g. a Dask
        ``cluster``) and record this data description in it (its ``training_data_`` keeps the
        source and the positive threshold beside the ids and the fingerprint, so a saved model
        knows what it was fitted on)."""
        model.fit(self.training(model), **fit_options)
        model.training_data_.update(self.description())
        return model

    def description(self) -> dict:
        return {"source": self.spec.to_dict() if self.spec is not None else {"name": self.name},
                "threshold": self.threshold}

    @property
    def history(self) -> Interactions:
        """Training positives: the history excluded from rankings (and used as input by
        history-based models at scoring time; with held-out users, their fold-in part)."""
        return self._known().binarize(self.threshold)

    @property
    def seen(self) -> Interactions:
        """Every training interaction, whatever its value (a movie rated 1 included): what a
        batch job must never recommend back to the user."""
        return self._known().binarize(None)

    def _known(self) -> Interactions:
        train = self.split.train
        return train + self.split.fold_in if self.split.fold_in is not None else train

    @property
    def test(self) -> Interactions:
        """Held-out positives."""
        return self.split.test.binarize(self.threshold)

    def tuning(self, fraction: float = 0.1, random_state=0) -> Experiment:
        """The experiment for hyperparameter search: the split's own validation part when it has
        one, else one carved from the training data the way the test part was cut (each
        user's latest ``leave_k`` under ``leave-last-k``, the latest ``fraction`` of the
        training interactions under ``temporal``, else a random ``fraction`` of each user's;
        ``random_state`` seeds the draw and breaks timestamp ties); its ``test`` is that
        validation part. The real test part is never touched."""
        protocol = self.spec.protocol if self.spec is not None else None
        if self.split.validation is not None:
            inner = Split(train=self.split.train, test=self.split.validation)
        elif protocol == "temporal":
            inner = temporal_split(self.split.train, test_fraction=fraction)
        else:
            base = Split(train=self.split.train, test=self.split.test)
            carved = validation_split(base, k=self.spec.leave_k, order="latest",
                                      random_state=random_state) \
                if protocol == "leave-last-k" else \
                validation_split(base, fraction=fraction, random_state=random_state)
            inner = Split(train=carved.train, test=carved.validation)
        return replace(self, split=inner)

    def serving(self, data: Interactions | None = None) -> Experiment:
        """Every interaction of the source (or ``data``, when it was read already) as the
        training part: a model refitted on it serves recommendations. Its test part is
        empty."""
        if data is None:
            data = self.spec.read() if self.spec is not None else self.full()._known()
        return replace(self, split=Split(train=data, test=data.select(np.zeros(data.nnz,
                                                                              dtype=bool))))

    def full(self) -> Experiment:
        """Train + validation as the training part (to refit the chosen model before test)."""
        if self.split.validation is None:
            return self
        return replace(self, split=Split(train=self.split.train + self.split.validation,
                                         test=self.split.test, fold_in=self.split.fold_in))


def load_experiment(data: str | DataSpec, split: str | None = None,
                    threshold: float | None = None, data_home=None,
                    random_state=0, interactions: Interactions | None = None) -> Experiment:
    """An :class:`Experiment` from a data set name or a :class:`~recsys.data.spec.DataSpec`.

    For a name, ``split`` is its official fold (ml-100k ``u1`` by default) and ``threshold``
    defaults to the data set's (:data:`DEFAULTS`); data sets without a predefined split
    (lastfm-hetrec) get a seeded 80/20 random holdout. A spec carries all of that itself;
    ``interactions``: its :meth:`~recsys.data.spec.DataSpec.read`, when already read.
    """
    if isinstance(data, str):
        data = DataSpec(dataset=data, fold=split, threshold=threshold,
                        data_home=None if data_home is None else str(data_home),
                        seed=random_state)
    elif data_home is not None and data.data_home is None:
        data = data.replace(data_home=str(data_home))
    return Experiment(name=data.name, split=data.split_data(interactions),
                      threshold=data.positive_threshold, spec=data)


def _trained_rows(data: Interactions) -> Interactions:
    """The leading users with interactions (the held-out users' empty rows cut off)."""
    counts = np.diff(data.matrix.indptr)
    n = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 0
    X = data.matrix[:n]
    ts = None if data.timestamps is None else data.timestamps[:X.nnz]
    return Interactions(X, IdMap(data.users.raw_ids[:n]), data.items, ts)


#: Default fold and positive threshold per built-in data set.
DEFAULTS = DATASET_DEFAULTS

__all__ = ["DEFAULTS", "Experiment", "load_experiment"]
