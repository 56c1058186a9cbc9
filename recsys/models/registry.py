"""Model lookup and construction by name, over the registry of :class:`Recommender`
subclasses (every model module joins it when it is imported by :mod:`recsys.models`)."""

from __future__ import annotations

from typing import Any

from recsys.models.base import Recommender, registered_models


def model_class(name: str | type) -> type[Recommender]:
    """A model class from its name, case-insensitively (``"ease"`` -> ``EASE``); a class is
    returned as it is."""
    if isinstance(name, type):
        return name
    by_lower = {cls_name.lower(): cls for cls_name, cls in registered_models().items()}
    cls = by_lower.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown model {name!r}; known: {sorted(by_lower)}")
    return cls


def make_model(model: str | type, params: dict[str, Any] | None = None, seed: int | None = None,
               show_progress: bool | None = None, num_threads: int | None = None) -> Recommender:
    """``model`` (a class or its name) built with ``params``; ``seed``, ``show_progress`` and
    ``num_threads`` are set as ``random_state``, ``show_progress``, ``num_threads`` where the
    model takes them (and left to its defaults when None). Unknown parameters are a
    ``ValueError`` listing the valid ones."""
    cls = model_class(model)
    params = cls.translate_params(dict(params or {}))  # a sweep record before a rename
    names = cls._param_names()
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}; "
                         f"valid: {names}")
    for name, value in (("random_state", seed), ("show_progress", show_progress),
                        ("num_threads", num_threads)):
        if value is not None and name in names:
            params[name] = value
    return cls(**params)


__all__ = ["make_model", "model_class"]
