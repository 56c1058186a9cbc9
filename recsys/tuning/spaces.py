"""Search spaces of every model, kept as data: ``{parameter: (kind, *arguments)}``.

Kinds map onto Optuna's ``trial.suggest_*``: ``("float", low, high)``, ``("float", low, high,
"log")``, ``("int", low, high)``, ``("int", low, high, "log")``, ``("categorical", [choices])``.
Parameters not listed keep the model's defaults (``FIXED`` overrides a few for sweeps: fewer
epochs where a model's default is tuned for a full run; ``sweep(fixed=...)`` pins more).
Ranges bracket the values the papers and our own validation runs chose, and the values sweeps
on new data landed on (comments below); ``PRESETS`` are tried first.
"""

from __future__ import annotations

from typing import Any

from recsys.models.iterative import ReduceOnPlateau
from recsys.models.simplex import SimpleX

SPACES: dict[str, dict[str, tuple]] = {
    "MostPopular": {},
    # neighbours: the benchmark chose 10 on ML-1M and 200 on Gowalla; sweeps on new data hit
    # both 10 and ~850, so the range spans 5 .. 2000
    "ItemKNN": {"neighbors": ("int", 5, 2000, "log"), "shrink": ("float", 0.0, 100.0)},
    # l2: 80 (Gowalla, the paper's) to 1000 (ML-1M); a sweep on new data still improved at 1
    "EASE": {"l2": ("float", 0.1, 3e4, "log")},
    # the benchmark's best ALS rows sit at l2 10 and alpha 40; sweeps on new data
    # hit factors 8 and ~226
    "ALS": {"factors": ("int", 4, 512, "log"), "l2": ("float", 1e-3, 100.0, "log"),
            "alpha": ("float", 0.1, 100.0, "log"), "epochs": ("int", 5, 30)},
    "BPR": {"factors": ("int", 8, 256, "log"), "learning_rate": ("float", 1e-3, 0.1, "log"),
            "l2": ("float", 1e-4, 0.1, "log"), "epochs": ("int", 20, 300, "log")},
    "AltMin": {"factors": ("int", 2, 128, "log"), "l2": ("float", 0.01, 100.0, "log"),
               "frequency_scaling": ("float", 0.0, 1.0)},
    "MaskedNMF": {"factors": ("int", 2, 128, "log"), "l2": ("float", 0.01, 3.0, "log"),
                  "frequency_scaling": ("float", 0.0, 1.0)},
    "NBMF": {"factors": ("int", 4, 48), "l2": ("float", 0.01, 10.0, "log"),
             "frequency_scaling": ("float", 0.0, 1.0)},
    # margin: a sweep on new data chose 0.31 against the old bound 0.3; factors, optimizer
    # and init_std take in the official configurations (128 / 64, dense Adam from 1e-4)
    "SimpleX": {"factors": ("int", 16, 256, "log"), "negatives": ("int", 100, 2000, "log"),
                "margin": ("float", 0.0, 0.95),
                "negative_weight": ("float", 1.0, 300.0, "log"),
                "gamma": ("float", 0.5, 1.0), "learning_rate": ("float", 0.001, 0.1, "log"),
                "l2": ("float", 1e-8, 0.1, "log"), "dropout": ("float", 0.0, 0.5),
                "biases": ("categorical", [False, True]),
                "exclude_positives": ("categorical", [False, True]),
                "optimizer": ("categorical", ["adam", "dense_adam"]),
                "init_std": ("float", 1e-4, 0.1, "log")},
}

#: Known-good configurations, tried first by every sweep after the model's defaults: the
#: benchmark's chosen rows (``benchmarks/results/accuracy.csv``, ML-1M and Gowalla) and the
#: papers' settings, restricted to each space's parameters.
PRESETS: dict[str, list[dict[str, Any]]] = {
    "ItemKNN": [{"neighbors": 10}, {"neighbors": 200}],
    "EASE": [{"l2": 1000.0}, {"l2": 80.0}],
    "ALS": [{"factors": 128, "l2": 10.0, "alpha": 2.0, "epochs": 15},
            {"factors": 128, "l2": 10.0, "alpha": 40.0, "epochs": 15}],
    "BPR": [{"factors": 128, "learning_rate": 0.005, "l2": 0.001,
             "epochs": 300}],
    "AltMin": [{"factors": 64, "l2": 10.0, "frequency_scaling": 0.0},
               {"factors": 64, "l2": 3.0, "frequency_scaling": 0.0}],
    "MaskedNMF": [{"factors": 64, "l2": 0.3}],
    "NBMF": [{"factors": 32, "l2": 0.03}],
}

FIXED: dict[str, dict[str, Any]] = {
    "NBMF": {"epochs": 10},
    # a ceiling: SimpleX's trials early-stop (EARLY_STOPPING); the official configurations
    # peak at epoch 23 (ML-1M) and 50 (Gowalla) at learning rate 1e-3
    "SimpleX": {"epochs": 60},
}

#: Iterative models whose sweep trials train as their official trainers do: early-stopped on
#: the validation part by the sweep's metric (this ``patience``, the best epoch kept, so
#: ``epochs`` is a ceiling) with a reduce-on-plateau learning rate (``lr_schedule``). The
#: pruner reads the same per-epoch values from ``prune_from`` epochs on; the chosen trial's
#: learning rate per epoch is replayed by the refit on the whole training data.
EARLY_STOPPING: dict[str, dict[str, Any]] = {
    "SimpleX": {"patience": 3, "prune_from": 5,
                "lr_schedule": ReduceOnPlateau(factor=0.1, patience=2,
                                               min_learning_rate=1e-5)},
}


def in_space(space: dict[str, tuple], params: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``params`` that ``space`` tunes and that lie inside it (a preset or a
    default outside the range, or a parameter the sweep fixes, is left out)."""
    out = {}
    for name, value in params.items():
        if name not in space:
            continue
        kind, *args = space[name]
        if kind == "categorical":
            if value in args[0]:
                out[name] = value
        elif isinstance(value, int | float) and not isinstance(value, bool) and \
                args[0] <= value <= args[1] and (kind == "float" or float(value).is_integer()):
            out[name] = int(value) if kind == "int" else float(value)
    return out


# the official configurations (SimpleX.PRESETS), restricted to the parameters the space tunes
PRESETS["SimpleX"] = [in_space(SPACES["SimpleX"], p) for p in SimpleX.PRESETS.values()]


def on_edge(space: dict[str, tuple], params: dict[str, Any], tolerance: float = 0.05
            ) -> dict[str, str]:
    """``{parameter: "low"|"high"}`` for the numeric values of ``params`` within
    ``tolerance`` of an end of their range (measured on the log scale for log ranges): a best
    value there suggests the range is too narrow. Natural limits are not edges: 0 at the low
    end of a linear range (no shrinkage, no dropout) and 1 at the high end of a fraction."""
    import math

    edges = {}
    for name, value in params.items():
        kind, *args = space.get(name, ("categorical",))
        if kind == "categorical" or isinstance(value, bool):
            continue
        low, high, log = args[0], args[1], bool(args[2:] and args[2] == "log")
        if log and low > 0:
            position = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
        else:
            position = (value - low) / (high - low) if high > low else 0.5
        natural_low = not log and low == 0
        natural_high = kind == "float" and not log and low >= 0 and high == 1
        if position <= tolerance and not natural_low:
            edges[name] = "low"
        elif position >= 1 - tolerance and not natural_high:
            edges[name] = "high"
    return edges


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


__all__ = ["FIXED", "PRESETS", "SPACES", "in_space", "on_edge", "suggest"]
