"""Search spaces of every model, kept as data: ``{parameter: (kind, *arguments)}``.

Kinds map onto Optuna's ``trial.suggest_*``: ``("float", low, high)``, ``("float", low, high,
"log")``, ``("int", low, high)``, ``("int", low, high, "log")``, ``("categorical", [choices])``.
Parameters not listed keep the model's defaults (``FIXED`` overrides a few for sweeps: fewer
iterations where a model's default is tuned for a full run). Ranges bracket the values the
papers and our own validation runs chose (see each model's docstring and tests).
"""

from __future__ import annotations

from typing import Any

SPACES: dict[str, dict[str, tuple]] = {
    "MostPopular": {},
    "ItemKNN": {"neighbors": ("int", 10, 1000, "log"), "shrink": ("float", 0.0, 100.0)},
    "EASE": {"l2": ("float", 1.0, 1e4, "log")},
    "ALS": {"factors": ("int", 8, 256, "log"), "regularization": ("float", 1e-3, 10.0, "log"),
            "alpha": ("float", 0.1, 50.0, "log"), "iterations": ("int", 5, 30)},
    "BPR": {"factors": ("int", 8, 256, "log"), "learning_rate": ("float", 1e-3, 0.1, "log"),
            "regularization": ("float", 1e-4, 0.1, "log"), "iterations": ("int", 20, 300, "log")},
    "AltMin": {"factors": ("int", 2, 128, "log"), "l2": ("float", 0.01, 10.0, "log"),
               "frequency_scaling": ("float", 0.0, 1.0)},
    "MaskedNMF": {"factors": ("int", 2, 128, "log"), "l2": ("float", 0.01, 3.0, "log"),
                  "frequency_scaling": ("float", 0.0, 1.0)},
    "NBMF": {"factors": ("int", 4, 48), "l2": ("float", 0.01, 10.0, "log"),
             "frequency_scaling": ("float", 0.0, 1.0)},
    "SimpleX": {"negatives": ("int", 100, 2000, "log"), "margin": ("float", 0.3, 0.95),
                "negative_weight": ("float", 1.0, 300.0, "log"),
                "gamma": ("float", 0.5, 1.0), "learning_rate": ("float", 0.001, 0.1, "log"),
                "l2": ("float", 1e-8, 1e-3, "log"), "dropout": ("float", 0.0, 0.5),
                "biases": ("categorical", [False, True]),
                "exclude_positives": ("categorical", [False, True])},
}

FIXED: dict[str, dict[str, Any]] = {
    "NBMF": {"iterations": 10},
    "SimpleX": {"epochs": 10},
}


def suggest(trial, space: dict[str, tuple]) -> dict[str, Any]:
    """Draw one value per parameter of ``space`` from an Optuna ``trial``."""
    params = {}
    for name, spec in space.items():
        kind, *args = spec
        log = bool(args and args[-1] == "log")
        if log:
            args = args[:-1]
        if kind == "float":
            params[name] = trial.suggest_float(name, *args, log=log)
        elif kind == "int":
            params[name] = trial.suggest_int(name, *args, log=log)
        elif kind == "categorical":
            params[name] = trial.suggest_categorical(name, args[0])
        else:
            raise ValueError(f"unknown kind {kind!r} for parameter {name!r}")
    return params


__all__ = ["FIXED", "SPACES", "suggest"]
