"""The epoch-loop contract every iteratively trained model shares (recsys.models.iterative)."""

import numpy as np
import pytest

from recsys.datasets import load
from recsys.evaluation import evaluate, evaluate_ratings
from recsys.models import ALS, BPR, NBMF, AltMin, MaskedNMF, Recommender, SimpleX
from recsys.models.base import registered_models
from recsys.models.iterative import EarlyStopping, IterativeModel, StopTraining

MODELS = {  # name -> (make, rating model)
    "ALS": (lambda e: ALS(factors=16, epochs=e, random_state=0, num_threads=1), False),
    "BPR": (lambda e: BPR(factors=16, epochs=e, learning_rate=0.05, random_state=0,
                          num_threads=1), False),
    "SimpleX": (lambda e: SimpleX(factors=16, negatives=20, epochs=e, random_state=0,
                                  num_threads=1), False),
    "AltMin": (lambda e: AltMin(factors=4, epochs=e, random_state=0, num_threads=1), True),
    "MaskedNMF": (lambda e: MaskedNMF(factors=8, epochs=e, random_state=0, num_threads=1),
                  True),
    "NBMF": (lambda e: NBMF(factors=6, epochs=e, random_state=0, num_threads=1), True),
}


@pytest.fixture(scope="module")
def splits(data_home):
    split = load("ml-100k", split="u1", data_home=data_home)
    ratings = (split.train.matrix, split.test.matrix)
    positives = (split.train.binarize(4).matrix, split.test.binarize(4).matrix)
    return {"ratings": ratings, "positives": positives}


def data(splits, name):
    return splits["ratings" if MODELS[name][1] else "positives"]


def measure(model, X, validation, metric):
    if metric in ("rmse", "mae"):
        return evaluate_ratings(model, validation, X)[metric]
    return evaluate(model, X, validation, k=(10, 20))[metric]


def test_every_iterative_model_shares_the_contract():
    iterative = {name for name, cls in registered_models().items()
                 if issubclass(cls, IterativeModel)}
    assert iterative == set(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_early_stopping_keeps_the_best_epoch(splits, name):
    X, validation = data(splits, name)
    rule = EarlyStopping(metric="rmse" if MODELS[name][1] else "ndcg_at_20", patience=2)
    model = MODELS[name][0](6).fit(X, validation, early_stopping=rule)
    values = [h[rule.metric] for h in model.history_]
    assert [h["epoch"] for h in model.history_] == list(range(len(values)))
    best = int(np.argmin(values) if rule.rating else np.argmax(values))
    assert model.best_epoch_ == best
    # the run stops exactly when `patience` evaluations in a row did not improve
    since = len(values) - 1 - best
    assert since == rule.patience or (len(values) == 6 and since < rule.patience)
    # the returned model is the best epoch's: its validation metric is that epoch's
    assert measure(model, X, validation, rule.metric) == pytest.approx(values[best], rel=1e-9)


@pytest.mark.parametrize("name", list(MODELS))
def test_callback_stops_training_and_sees_each_epoch(splits, name):
    X, _ = data(splits, name)
    seen = []

    def stop_at_two(epoch, model):
        seen.append((epoch, len(model.history_)))
        if epoch == 1:
            raise StopTraining

    model = MODELS[name][0](5).fit(X, callback=stop_at_two)
    assert seen == [(0, 1), (1, 2)]
    assert [h["epoch"] for h in model.history_] == [0, 1]
    assert not hasattr(model, "best_epoch_")


@pytest.mark.parametrize("name", ["ALS", "MaskedNMF"])
def test_keep_best_false_returns_the_last_epoch(splits, name):
    X, validation = data(splits, name)
    metric = "rmse" if MODELS[name][1] else "ndcg_at_20"
    rule = EarlyStopping(metric=metric, patience=10, keep_best=False)
    model = MODELS[name][0](4).fit(X, validation, early_stopping=rule)
    assert len(model.history_) == 4
    last = model.history_[-1][metric]
    assert measure(model, X, validation, metric) == pytest.approx(last, rel=1e-9)


def test_eval_every_evaluates_those_epochs_and_the_last(splits):
    X, validation = splits["positives"]
    rule = EarlyStopping(metric="recall_at_10", eval_every=2, patience=10)
    model = ALS(factors=8, epochs=5, random_state=0, num_threads=1).fit(
        X, validation, early_stopping=rule)
    assert [h["epoch"] for h in model.history_ if "recall_at_10" in h] == [1, 3, 4]


def test_history_and_best_epoch_are_saved(splits, tmp_path):
    X, validation = splits["ratings"]
    model = AltMin(factors=4, epochs=3, random_state=0, num_threads=1).fit(X, validation)
    loaded = Recommender.load(model.save(tmp_path / "altmin"))
    assert loaded.history_ == model.history_ and loaded.best_epoch_ == model.best_epoch_


def test_bad_early_stopping():
    with pytest.raises(ValueError, match="unknown metric 'ndcg'"):
        EarlyStopping(metric="ndcg")
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    X = np.eye(5, dtype=np.float32)
    import scipy.sparse as sp

    with pytest.raises(ValueError, match="early_stopping needs validation"):
        ALS(factors=2, epochs=1).fit(sp.csr_matrix(X), early_stopping=EarlyStopping())
    with pytest.raises(ValueError, match="validation has 4 rows"):
        ALS(factors=2, epochs=1).fit(sp.csr_matrix(X), sp.csr_matrix(X[:4]))
