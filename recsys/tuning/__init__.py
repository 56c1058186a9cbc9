"""Hyperparameter sweeps: search spaces as data, Optuna studies logged to MLflow."""

from recsys.tuning.spaces import FIXED, PRESETS, SPACES, suggest
from recsys.tuning.sweep import (
    SweepResult,
    latest_best_params,
    make_model,
    model_class,
    sweep,
    trial_seed,
)

__all__ = ["FIXED", "PRESETS", "SPACES", "SweepResult", "latest_best_params", "make_model",
           "model_class", "suggest", "sweep", "trial_seed"]
