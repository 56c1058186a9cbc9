"""Hyperparameter sweeps: search spaces as data, Optuna studies logged to MLflow."""

from recsys.models.registry import make_model, model_class
from recsys.tuning.spaces import EARLY_STOPPING, FIXED, PRESETS, SPACES, suggest
from recsys.tuning.sweep import SweepResult, sweep, trial_model, trial_seed
from recsys.tuning.tracking import latest_best_params

# make_model and model_class live in recsys.models (re-exported here for earlier callers)
__all__ = ["EARLY_STOPPING", "FIXED", "PRESETS", "SPACES", "SweepResult", "latest_best_params",
           "make_model", "model_class", "suggest", "sweep", "trial_model", "trial_seed"]
