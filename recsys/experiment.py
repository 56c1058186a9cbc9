"""A data set prepared for fitting and full-ranking evaluation, shared by sweeps, the CLI, the
batch job and the demo.

Rating models (``model.rating_model``) are fitted on the raw values (ratings); implicit
models on the positives (values >= ``threshold``). Ranking is always evaluated against the
positives of the held-out part, with every training item of the user excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from recsys.data import Interactions
from recsys.data.splits import Split, random_holdout, validation_split
from recsys.datasets import load

#: Default split and positive threshold per data set.
DEFAULTS: dict[str, dict] = {
    "ml-100k": {"split": "u1", "threshold": 4.0},
    "ml-1m-lcfn": {"threshold": None},
    "gowalla-lightgcn": {"threshold": None},
    "lastfm-hetrec": {"threshold": None},
}


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

    def training(self, model) -> Interactions:
        """What ``model`` is fitted on: raw values for rating models, else the positives."""
        return self.split.train if model.rating_model else self.split.train.binarize(
            self.threshold)

    @property
    def history(self) -> Interactions:
        """Training positives: the history excluded from rankings (and used as input by
        history-based models at scoring time)."""
        return self.split.train.binarize(self.threshold)

    @property
    def seen(self) -> Interactions:
        """Every training interaction, whatever its value (a movie rated 1 included): what a
        batch job must never recommend back to the user."""
        return self.split.train.binarize(None)

    @property
    def test(self) -> Interactions:
        """Held-out positives."""
        return self.split.test.binarize(self.threshold)

    def tuning(self, fraction: float = 0.1, random_state=0) -> Experiment:
        """The experiment for hyperparameter search: the split's own validation part when it has
        one, else one carved from the training data (``fraction`` of each user's interactions);
        its ``test`` is that validation part. The real test part is never touched."""
        if self.split.validation is not None:
            inner = Split(train=self.split.train, test=self.split.validation)
        else:
            carved = validation_split(self.split, fraction=fraction, random_state=random_state)
            inner = Split(train=carved.train, test=carved.validation)
        return replace(self, split=inner)

    def full(self) -> Experiment:
        """Train + validation as the training part (to refit the chosen model before test)."""
        if self.split.validation is None:
            return self
        return replace(self, split=Split(train=self.split.train + self.split.validation,
                                         test=self.split.test))


def load_experiment(name: str, split: str | None = None, threshold: float | None = None,
                    data_home=None, random_state=0) -> Experiment:
    """Load a data set by name (``recsys.datasets.load``) as an :class:`Experiment`.

    ``split`` and ``threshold`` default to :data:`DEFAULTS`; data sets without a predefined
    split (lastfm-hetrec) get a seeded 80/20 random holdout.
    """
    defaults = DEFAULTS.get(name)
    if defaults is None:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DEFAULTS)}")
    split = split if split is not None else defaults.get("split")
    threshold = threshold if threshold is not None else defaults["threshold"]
    data = load(name, split=split, data_home=data_home)
    if isinstance(data, Interactions):
        data = random_holdout(data, test_fraction=0.2, random_state=random_state)
    return Experiment(name=name, split=data, threshold=threshold)


__all__ = ["DEFAULTS", "Experiment", "load_experiment"]
