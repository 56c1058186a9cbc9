"""A recsys model as an MLflow ``pyfunc`` model: top-N in raw ids for a frame of user ids.

The MLflow model holds two artifacts, both plain ``.npz`` (no pickle): the recsys model file
and the serving history (the raw user, item and value of every interaction it was refitted
on). It is logged as a *model from code* (:data:`CODE_PATH`), so MLflow stores this module's
source, not a pickled object. ``predict`` takes a DataFrame with a ``user`` column and,
optionally, ``item`` (and ``value``) columns holding extra history rows (e.g. the events of a
user unseen at fit, or today's events of a known one): they are added to the stored history of
those users, which is what is scored from and excluded. It returns the rows of
:meth:`recsys.models.Recommender.recommend_raw` (``user, rank, item, score, source``); the
parameters ``k`` (default 10) and ``exclude`` (default ``"training"``) are passed per call::

    model = mlflow.pyfunc.load_model("models:/recsys-nightly/latest")
    model.predict(pd.DataFrame({"user": ["u1", "u2"]}), params={"k": 20})
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: The models-from-code file MLflow records (it builds a :class:`RecsysPyfunc`).
CODE_PATH = Path(__file__).with_name("_pyfunc_code.py")


def save_history(data, path) -> Path:
    """Write an ``Interactions``' raw rows (user, item, value) to ``path`` (npz, no pickle)."""
    coo = data.matrix.tocoo()
    path = Path(path)
    np.savez(path, user=data.users.to_raw(coo.row), item=data.items.to_raw(coo.col),
             value=coo.data.astype(np.float32))
    return path


def load_history(path) -> pd.DataFrame:
    with np.load(path, allow_pickle=False) as npz:
        return pd.DataFrame({"user": npz["user"], "item": npz["item"], "value": npz["value"]})


def _python_model_base():
    try:
        from mlflow.pyfunc import PythonModel
    except ImportError:  # pragma: no cover - MLflow is the tune extra
        return object
    return PythonModel


class RecsysPyfunc(_python_model_base()):
    """``mlflow.pyfunc.PythonModel`` serving a recsys model (see the module docstring)."""

    def load_context(self, context) -> None:
        from recsys.models import Recommender

        self.model = Recommender.load(context.artifacts["model"])
        self.history = load_history(context.artifacts["history"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        params = dict(params or {})
        if not isinstance(model_input, pd.DataFrame) or "user" not in model_input.columns:
            raise ValueError("predict takes a DataFrame with a 'user' column (and optionally "
                             "'item' and 'value' columns of extra history rows)")
        users = pd.unique(model_input["user"].to_numpy())
        history = self.history
        if "item" in model_input.columns:
            extra = model_input.dropna(subset=["item"])
            extra = pd.DataFrame({"user": extra["user"], "item": extra["item"],
                                  "value": extra["value"] if "value" in extra.columns
                                  else np.nan})  # no value: a positive
            history = pd.concat([history, extra], ignore_index=True)
        out = self.model.recommend_raw(users, history, k=int(params.get("k", 10)),
                                       exclude=params.get("exclude", "training"),
                                       value="value")
        return out.assign(source=out["source"].astype(str))


def log_model(model, history, registered_model_name: str | None = None,
              tags: dict | None = None, tmp_dir=None):
    """Log ``model`` (fitted on ``history``, an ``Interactions``) to the active MLflow run as
    a pyfunc model named ``"model"``; register it when ``registered_model_name`` is given,
    with ``tags`` (e.g. its metrics) on the new version. Returns the ``ModelInfo`` and the
    registered version (or None)."""
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        model_path = model.save(Path(tmp) / "model.npz")
        history_path = save_history(history, Path(tmp) / "history.npz")
        example = pd.DataFrame({"user": model.user_ids_[:2]})
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(CODE_PATH),
            artifacts={"model": str(model_path), "history": str(history_path)},
            signature=_signature(model), input_example=example,
            pip_requirements=_requirements())
    version = None
    if registered_model_name:
        version = mlflow.register_model(info.model_uri, registered_model_name)
        client = mlflow.MlflowClient()
        for key, value in (tags or {}).items():
            client.set_model_version_tag(registered_model_name, version.version, key,
                                         str(value))
    return info, version


def _signature(model):
    """Input: ``user`` and the optional history columns ``item`` and ``value``; output: the
    ``recommend_raw`` columns; parameters ``k`` and ``exclude``."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    def kind(ids):
        return "string" if ids.dtype.kind == "U" else "long"

    user, item = kind(model.user_ids_), kind(model.item_ids_)
    inputs = Schema([ColSpec(user, "user"), ColSpec(item, "item", required=False),
                     ColSpec("double", "value", required=False)])
    outputs = Schema([ColSpec(user, "user"), ColSpec("integer", "rank"), ColSpec(item, "item"),
                      ColSpec("float", "score"), ColSpec("string", "source")])
    params = ParamSchema([ParamSpec("k", "long", 10), ParamSpec("exclude", "string",
                                                                "training")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def _requirements() -> list[str]:
    """The serving environment: recsys (this version) and the libraries it loads with."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("recsys", "numpy", "scipy", "pandas", "implicit", "mlflow"):
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:  # pragma: no cover
            out.append(name)
    return out


__all__ = ["CODE_PATH", "RecsysPyfunc", "load_history", "log_model", "save_history"]
