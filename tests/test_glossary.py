"""The glossary's names across the registry: no model uses a synonym for a shared concept,
renamed parameters still work (with a FutureWarning) in every way a saved value comes back."""

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.glossary import GLOSSARY, SYNONYMS
from recsys.models import ALS, BPR, ItemKNN, MaskedNMF, Recommender, make_model
from recsys.models.base import registered_models


def test_no_model_parameter_is_a_synonym():
    offenders = {f"{name}.{param} (use {SYNONYMS[param]!r})"
                 for name, cls in registered_models().items()
                 for param in cls._param_names() if param in SYNONYMS}
    assert not offenders, sorted(offenders)


def test_shared_concepts_share_their_name():
    params = {name: set(cls._param_names()) for name, cls in registered_models().items()}
    for concept in ("l2", "epochs", "factors", "random_state", "num_threads"):
        users = [n for n, p in params.items() if concept in p]
        assert len(users) >= 2, concept  # a concept of two or more models, one name
    assert "block_size" in params["ItemKNN"] and "batch_size" in params["SimpleX"]
    for term in GLOSSARY.values():
        assert term.meaning and not set(term.synonyms) & set(GLOSSARY)


@pytest.mark.parametrize("cls, old, new, value, expected", [
    (ALS, "regularization", "l2", 0.3, 0.3), (ALS, "iterations", "epochs", 3, 3),
    (ALS, "use_cg", "solver", False, "cholesky"), (BPR, "regularization", "l2", 0.2, 0.2),
    (MaskedNMF, "iterations", "epochs", 4, 4), (ItemKNN, "batch_size", "block_size", 9, 9)])
def test_old_names_work_for_one_release(cls, old, new, value, expected, tmp_path):
    with pytest.warns(FutureWarning, match=f"'{old}' is now called '{new}'"):
        model = cls(**{old: value})
    assert getattr(model, new) == expected and old not in model.get_params()
    with pytest.warns(FutureWarning):
        assert getattr(cls().set_params(**{old: value}), new) == expected
    with pytest.warns(FutureWarning):  # a sweep record written before the rename
        assert getattr(make_model(cls.__name__, {old: value}), new) == expected
    with pytest.raises(TypeError, match="not both"):
        cls(**{old: value, new: value})


def test_a_model_file_from_before_the_rename_loads(tmp_path):
    X = sp.random(30, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    X.data[:] = 1.0
    path = ALS(factors=3, epochs=2, l2=0.5, random_state=0).fit(X).save(tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as f:
        arrays = dict(f)
    meta = json.loads(arrays["__meta__"].tobytes().decode())
    meta["params"]["regularization"] = meta["params"].pop("l2")
    meta["params"]["iterations"] = meta["params"].pop("epochs")
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.warns(FutureWarning):
        old = Recommender.load(tmp_path / "old.npz")
    assert old.l2 == 0.5 and old.epochs == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert Recommender.load(path).l2 == 0.5  # current files load without a warning


def test_history_is_the_trace_name():
    X = sp.random(30, 20, density=0.3, format="csr", random_state=0, dtype=np.float32)
    X.data[:] = 4.0
    model = MaskedNMF(factors=2, epochs=3, random_state=0).fit(X)
    assert [h["epoch"] for h in model.history_] == [0, 1, 2]
    assert np.allclose([h["loss"] for h in model.history_], model.loss_)


def test_constructors_take_keywords_only():
    import inspect

    for name, cls in registered_models().items():
        params = [p for p in inspect.signature(cls.__init__).parameters.values()
                  if p.name != "self"]
        assert all(p.kind is p.KEYWORD_ONLY for p in params), name
        with pytest.raises(TypeError):
            cls(1)


def test_fit_arguments_use_the_glossary_names():
    import inspect

    from recsys.models.iterative import IterativeModel

    for name, cls in registered_models().items():
        params = set(inspect.signature(cls.fit).parameters) - {"self", "X"}
        assert not params & set(SYNONYMS), (name, params & set(SYNONYMS))
        if issubclass(cls, IterativeModel):
            assert {"validation", "early_stopping", "callback"} <= params, name
