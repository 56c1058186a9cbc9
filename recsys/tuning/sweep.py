"""Optuna sweeps whose trials are MLflow runs nested under one parent run per study.

One study = one Optuna study + one MLflow parent run. A new study first runs the model's
defaults and its presets (known-good configurations, :data:`~recsys.tuning.spaces.PRESETS`),
then seeded multivariate TPE whose random start scales with the budget; median pruning, which
never stops those first known-good trials (they report, so they set the median, but a slow
starter such as SimpleX's Gowalla configuration, which peaks at epoch 50, runs to its end). Each
trial fits the model on the tuning part of the data (a validation split carved from the
training data, never the test part) with the ``fixed`` parameters, logs its parameters, seed,
fit time, metrics at every k and, for iterative models, the validation metric every
``eval_every`` epochs on a sample of validation users (which also feeds the pruner); the
models in :data:`~recsys.tuning.spaces.EARLY_STOPPING` (SimpleX) instead early-stop on that
sample every epoch with a reduce-on-plateau learning rate, their ``epochs`` a ceiling (an
enqueued official configuration with its own trainer's patience and decays). When
the worker's trials are done, the best parameters are refitted on the whole training data
(an early-stopped trial's learning rate per kept epoch replayed) and evaluated on the test
part; the parent run gets the best parameters (and the ones at an edge
of their range, tagged), the test metrics, the saved model (unless ``log_model="none"``) and
a plot of the optimisation history.

Storage: an Optuna journal file by default (rerunning the same command continues the study),
or any SQLAlchemy URL (PostgreSQL for many machines; create the study once first, e.g. with
``n_trials=0``, since concurrent schema creation races). ``n_trials`` is the number of finished
trials the study should reach, so several workers can share one target.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys._sparse import row_of_values, select_entries
from recsys.data.spec import DataSpec
from recsys.evaluation import evaluate, parse_metric
from recsys.experiment import Experiment, load_experiment
from recsys.models.base import Recommender, json_params
from recsys.models.registry import make_model, model_class
from recsys.tuning.spaces import (
    EARLY_STOPPING,
    FIXED,
    PRESETS,
    SPACES,
    in_space,
    on_edge,
    suggest,
)
from recsys.tuning.tracking import (
    BEST_PARAMS_TAG,
    end_trial_run,
    fail_orphaned_runs,
    finish_parent_run,
    history_plot,
    latest_best_params,
    log_artifacts,
    log_epoch,
    open_experiment,
    parent_run,
    scalars,
    trial_run,
)

logger = logging.getLogger(__name__)

DEFAULT_STORAGE = "optuna-journal.log"


@dataclass
class SweepResult:
    """What :func:`sweep` returns."""

    study: Any
    #: The best trial's parameters with the fixed ones.
    best_params: dict[str, Any]
    best_value: float
    test_metrics: dict[str, float]
    parent_run_id: str
    model_path: Path | None
    #: Tuned parameters whose best value sits at an end of its range ("low" / "high").
    edges: dict[str, str] = field(default_factory=dict)
    #: Bytes of the model file logged to MLflow (0 with ``log_model="none"``).
    logged_model_bytes: int = 0
    #: The refitted best model's per-user test metrics (``evaluate(..., per_user=True)``),
    #: for :func:`recsys.significance.compare`.
    test_per_user: dict[str, Any] = field(default_factory=dict)


def trial_seed(study_seed: int, params: dict[str, Any]) -> int:
    """The seed of a trial, derived from the study seed and its parameters, so a trial is
    reproducible from its logged parameters alone."""
    blob = json.dumps([study_seed, sorted(params.items())], default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:4], "little") & 0x7FFFFFFF


def trial_model(cls: type[Recommender], params: dict[str, Any], seed: int,
                show_progress: bool = False) -> Recommender:
    """``cls`` as a sweep builds it: the sweep's :data:`~recsys.tuning.spaces.FIXED` values,
    then ``params``, and ``seed`` as its ``random_state``."""
    return make_model(cls, {**FIXED.get(cls.__name__, {}), **params}, seed,
                      show_progress=show_progress)


def open_storage(storage: str | None):
    """Optuna storage: a journal file path (default) or an SQLAlchemy URL (with heartbeats)."""
    import optuna

    storage = storage or DEFAULT_STORAGE
    if "://" in storage:
        return optuna.storages.RDBStorage(storage, heartbeat_interval=30, grace_period=90)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(storage)))


def sweep(model: str | type, data: str | DataSpec | Experiment = "ml-100k", n_trials: int = 20,
          metric: str = "ndcg_at_10", k=(10, 20), storage: str | None = None,
          study_name: str | None = None, tracking_uri: str | None = None,
          experiment_name: str | None = None, seed: int = 0, timeout: float | None = None,
          data_home=None, model_dir=None, show_progress: bool = True,
          fixed: dict[str, Any] | None = None, log_model: str = "best",
          eval_every: int | None = None, eval_users: int | None = 2000,
          informed: bool = True, verbose: bool = False) -> SweepResult:
    """Tune ``model`` on ``data`` and log everything to MLflow (see the module docstring).

    Parameters
    ----------
    model : str or Recommender subclass
        e.g. ``"ease"``; its search space is ``recsys.tuning.SPACES[class name]``.
    data : str, DataSpec or Experiment
        A data set name or a data description (a log file and its split protocol) for
        :func:`recsys.experiment.load_experiment`, or a prepared experiment.
    n_trials : int
        Finished (complete or pruned) trials the study should have; 0 only creates the study
        and the parent run (do that once before starting several workers).
    metric : str
        Validation metric to maximise, an ``evaluate`` key such as ``"ndcg_at_10"``.
    storage : str, optional
        Journal file path (default ``optuna-journal.log``) or SQLAlchemy URL.
    study_name : str, optional
        Default ``"<data>-<model>"``; also the MLflow experiment name unless given.
    tracking_uri : str, optional
        Default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlflow.db``.
    seed : int
        Seeds the sampler and, with the parameters, every trial's model.
    model_dir : path, optional
        Also save the refitted best model there.
    fixed : dict, optional
        Parameters pinned for every trial (e.g. ``{"num_threads": 1, "epochs": 20}``): left
        out of the search space, logged to the parent run (``fixed.<name>``).
    log_model : {"best", "none"}
        Log the refitted best model to the parent run, or nothing (its size is logged as the
        metric ``logged_model_bytes`` either way: 0 for none).
    eval_every : int, optional
        Iterative models report the validation metric to the pruner every ``eval_every``
        epochs (default: about four reports per fit), from a seeded sample of ``eval_users``
        validation users (None: all); the trial's final score always uses every one.
    informed : bool
        Enqueue the model's defaults and its :data:`~recsys.tuning.spaces.PRESETS` as the first
        trials of a new study (never pruned), then multivariate TPE (random start scaled to
        ``n_trials``). False: TPE from its own random start.
    verbose : bool
        Show the models' own progress bars inside trials (the sweep's bar shows otherwise).
    """
    import optuna

    cls = model_class(model)
    if cls.__name__ not in SPACES:
        raise ValueError(f"no search space for {cls.__name__}")
    if log_model not in LOG_MODEL:
        raise ValueError(f"log_model must be one of {LOG_MODEL}, got {log_model!r}")
    _, metric_k = parse_metric(metric)  # a bad metric fails here, before any fit or run
    fixed = dict(fixed or {})
    trial_model(cls, fixed, seed)  # an unknown or invalid fixed parameter fails here too
    space = {name: spec for name, spec in SPACES[cls.__name__].items() if name not in fixed}
    ks = tuple(sorted({*((k,) if isinstance(k, int) else tuple(k)), metric_k}))
    exp = data if isinstance(data, Experiment) else load_experiment(data, data_home=data_home)
    study_name = study_name or f"{exp.name}-{cls.__name__.lower()}"
    tune = exp.tuning(random_state=seed)
    sample = validation_sample(tune, eval_users, seed)
    if not show_progress or not verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)

    store = open_storage(storage)
    with warnings.catch_warnings():  # multivariate TPE is "experimental" in Optuna
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed, multivariate=informed, n_startup_trials=startup_trials(n_trials)
            if informed else 10)
    study = optuna.create_study(
        study_name=study_name, storage=store, direction="maximize", load_if_exists=True,
        sampler=sampler, pruner=optuna.pruners.MedianPruner(n_startup_trials=3))
    _fail_orphaned_trials(study, store)
    if informed and not study.trials:
        train = tune.training(trial_model(cls, fixed, seed))
        for params in first_trials(cls, space, n_trials, train, fixed):
            attrs = {KNOWN_GOOD: True}
            if (name := preset_trainer(cls, space, params)) is not None:
                attrs[TRAINER] = name
            study.enqueue_trial(params, user_attrs=attrs, skip_if_exists=True)

    client, experiment_id = open_experiment(tracking_uri, experiment_name or study_name)
    parent_id = parent_run(client, experiment_id, study_name, exp, cls, seed, fixed)
    fail_orphaned_runs(client, experiment_id, parent_id, study)

    def objective(trial):
        # first, so that a worker killed from here on is recognised as dead by the next run
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = suggest(trial, space)
        seed_t = trial_seed(seed, params)
        estimator = trial_model(cls, {**fixed, **params}, seed_t, show_progress=verbose)
        trial.set_user_attr("seed", seed_t)
        with trial_run(experiment_id, parent_id, study_name, trial.number,
                       {**json_params(estimator.get_params()), "seed": seed_t}) as run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
            start = time.perf_counter()
            try:
                trial_fit(estimator, tune.training(estimator), tune, trial, metric,
                          eval_every, sample, prunable=not trial.user_attrs.get(KNOWN_GOOD),
                          trainer=trial.user_attrs.get(TRAINER))
            except optuna.TrialPruned:
                end_trial_run(time.perf_counter() - start, None)
                pruned = True
            else:
                fit_s = time.perf_counter() - start
                metrics = evaluate(estimator, tune.history, tune.test, k=ks)
                end_trial_run(fit_s, metrics)
                pruned = False
        if pruned:  # raised outside the run, so that MLflow records it as finished
            raise optuna.TrialPruned()
        return metrics[metric]

    if not space:
        n_trials = min(n_trials, 1)  # nothing to tune: one trial records the model
    finished = _finished(study)
    if n_trials > finished:
        bar = _SweepBar(n_trials, finished, metric, show_progress and not verbose)
        # a trial whose parameters make the model fail numerically is recorded as FAIL and the
        # sweep goes on; anything else (a bug) stops it
        try:
            study.optimize(objective, timeout=timeout, show_progress_bar=False,
                           catch=(ValueError, ArithmeticError, np.linalg.LinAlgError,
                                  MemoryError),
                           callbacks=[optuna.study.MaxTrialsCallback(
                               n_trials, states=(optuna.trial.TrialState.COMPLETE,
                                                 optuna.trial.TrialState.PRUNED)), bar])
        finally:
            bar.close()
    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        return SweepResult(study, {}, float("nan"), {}, parent_id, None)
    return _summarise(study, cls, exp, seed, ks, client, parent_id, model_dir, fixed, space,
                      log_model)


#: ``sweep(log_model=...)`` choices.
LOG_MODEL = ("best", "none")

#: User attribute of the enqueued defaults and presets: the pruner never stops them.
KNOWN_GOOD = "known_good"
#: User attribute of an enqueued official configuration: the name of its trainer (a key of
#: the model's ``TRAINING``), with which the trial trains instead of the sweep's rule.
TRAINER = "trainer"


def startup_trials(n_trials: int) -> int:
    """TPE's random start for a budget of ``n_trials``: a quarter of it, 3 to 10 trials (the
    enqueued defaults and presets count among them)."""
    return int(min(10, max(3, n_trials // 4)))


def first_trials(cls, space: dict[str, tuple], n_trials: int, train=None,
                 fixed: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The model's defaults and presets inside ``space`` (distinct, at most ``n_trials``).
    With the training matrix ``train``, the defaults left at ``"auto"`` take the values
    ``fit`` would give them there (:meth:`~recsys.models.base.Recommender.resolved_params`;
    ``fixed``: the parameters the sweep pins, which the rules may read); without it they
    are left to the sampler."""
    defaults = trial_model(cls, fixed or {}, seed=0)
    params = defaults.get_params()
    if train is not None:
        params.update(defaults.resolved_params(train))
    candidates = [in_space(space, params),
                  *(in_space(space, p) for p in PRESETS.get(cls.__name__, []))]
    out: list[dict[str, Any]] = []
    for params in candidates:
        if params and params not in out:
            out.append(params)
    return out[:max(n_trials, 0)]


def preset_trainer(cls, space: dict[str, tuple], params: dict[str, Any]) -> str | None:
    """The name of the model's preset (``cls.PRESETS``) with a trainer of its own
    (``cls.TRAINING``) that ``params`` is, restricted to ``space`` (None if none)."""
    for name in getattr(cls, "TRAINING", {}):
        if in_space(space, cls.PRESETS[name]) == params:
            return name
    return None


def validation_sample(tune: Experiment, eval_users: int | None, seed: int):
    """Seeded validation users for intermediate reports (None: all of them)."""
    users = np.flatnonzero(np.diff(tune.test.matrix.indptr) > 0)
    if eval_users is None or users.size <= eval_users:
        return None
    return np.sort(np.random.default_rng(seed).choice(users, size=eval_users, replace=False))


def _epochs(estimator) -> int | None:
    value = getattr(estimator, "epochs", None)
    return value if isinstance(value, int) and value > 0 else None


def trial_fit(estimator, train, tune: Experiment, trial, metric: str,
              eval_every: int | None = None, sample=None, prunable: bool = True,
              trainer: str | None = None) -> None:
    """Fit; iterative models report the validation metric every ``eval_every`` epochs (on the
    ``sample`` of validation users) to the pruner, which may stop them from half-way on
    (never when not ``prunable``: the reports still feed the median). ``trainer``: the
    preset whose official trainer an early-stopped model uses (see
    :func:`early_stopped_training`)."""
    import optuna

    from recsys.models.iterative import IterativeModel

    if not isinstance(estimator, IterativeModel):
        estimator.fit(train)
        return
    if type(estimator).__name__ in EARLY_STOPPING:
        _early_stopped_fit(estimator, train, tune, trial, metric, sample, prunable, trainer)
        return
    name, at = parse_metric(metric)
    epochs = _epochs(estimator) or 1
    every = eval_every or max(1, round(epochs / 4))

    def callback(epoch, fitted):
        if (epoch + 1) % every or epoch + 1 >= epochs:  # the last one: the final evaluation
            return
        value = evaluate(fitted, tune.history, tune.test, k=at, metrics=(name,),
                         users=sample)[metric]
        log_epoch(metric, value, epoch)
        trial.report(value, epoch)
        if prunable and epoch + 1 >= epochs / 2 and trial.should_prune():
            raise optuna.TrialPruned()

    estimator.fit(train, callback=callback)


def early_stopped_training(model: str, metric: str, trainer: str | None = None
                           ) -> tuple[dict[str, Any], int]:
    """How a trial of ``model`` (a key of :data:`~recsys.tuning.spaces.EARLY_STOPPING`) trains:
    its ``fit`` arguments (early stopping on ``metric``, the learning-rate schedule) and the
    epoch from which the pruner may stop it. With ``trainer`` (a preset of the model), the
    patience and schedule are that preset's official trainer's (``Model.TRAINING[trainer]``),
    the metric still the sweep's: a slow starter such as SimpleX's Gowalla configuration
    otherwise has its rate cut by the sweep's shorter decay patience after its first plateau."""
    from dataclasses import replace

    from recsys.models.iterative import EarlyStopping

    rule = dict(EARLY_STOPPING[model])
    prune_from = rule.pop("prune_from")
    if trainer is not None:
        official = dict(model_class(model).TRAINING[trainer])
        stop = replace(official.pop("early_stopping"), metric=metric)
        return {"early_stopping": stop, **official}, prune_from
    stop = EarlyStopping(metric=metric, patience=rule.pop("patience"))
    return {"early_stopping": stop, **rule}, prune_from


def _early_stopped_fit(estimator, train, tune: Experiment, trial, metric: str,
                       sample=None, prunable: bool = True, trainer: str | None = None) -> None:
    """Fit as :data:`~recsys.tuning.spaces.EARLY_STOPPING` says: early stopping on the
    validation part (its ``sample`` users, or all) by ``metric``, each evaluation reported to
    the pruner; the learning rate of each kept epoch (``schedule_``) is recorded in the trial
    for the refit."""
    import optuna

    fit_args, prune_from = early_stopped_training(type(estimator).__name__, metric, trainer)
    validation = tune.test.matrix
    if sample is not None:  # the sampled users' rows only
        kept = np.zeros(validation.shape[0], dtype=bool)
        kept[sample] = True
        validation = select_entries(validation, kept[row_of_values(validation)])

    def callback(epoch, fitted):
        value = fitted.history_[-1].get(metric)
        if value is None:
            return
        log_epoch(metric, value, epoch)
        trial.report(value, epoch)
        if prunable and epoch + 1 >= prune_from and trial.should_prune():
            raise optuna.TrialPruned()

    estimator.fit(train, validation=validation, callback=callback, **fit_args)
    if getattr(estimator, "schedule_", None) is not None:
        trial.set_user_attr("lr_schedule", [float(rate) for rate in estimator.schedule_])


class _SweepBar:
    """One tqdm bar over a sweep's trials (done, best so far, ETA); an Optuna callback."""

    def __init__(self, n_trials: int, finished: int, metric: str, enabled: bool):
        from tqdm.auto import tqdm

        self.metric = metric
        self.bar = tqdm(total=n_trials, initial=finished, desc="sweep", unit="trial",
                        disable=not enabled)

    def __call__(self, study, trial) -> None:
        self.bar.update(1)
        try:
            self.bar.set_postfix({f"best {self.metric}": f"{study.best_value:.4f}"})
        except ValueError:  # no complete trial yet
            pass

    def close(self) -> None:
        self.bar.close()


def _finished(study) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(t.state in done for t in study.trials)


#: A RUNNING trial that has not recorded its worker this long after it started belongs to a
#: worker killed between Optuna creating the trial and the objective's first line.
ORPHAN_GRACE_S = 120.0


def _fail_orphaned_trials(study, storage) -> None:
    """Mark RUNNING trials of dead workers as FAIL: those of dead processes on this host
    (journal storage has no heartbeat; RDB storages fail stale trials by heartbeat
    themselves), and on any storage those that never recorded a worker within
    :data:`ORPHAN_GRACE_S` (killed before their first heartbeat or attribute)."""
    import datetime

    import optuna

    host = socket.gethostname()
    study_id = storage.get_study_id_from_name(study.study_name)
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker")
        if worker is None:
            started = t.datetime_start
            now = datetime.datetime.now(started.tzinfo if started is not None else None)
            age = (now - started).total_seconds() if started is not None else np.inf
            if age < ORPHAN_GRACE_S:
                continue
            why = f"no worker recorded {age:.0f} s after it started"
        else:
            name, _, pid = worker.rpartition(":")
            if not (name == host and pid.isdigit() and not _alive(int(pid))):
                continue
            why = f"its worker (pid {pid}) is dead"
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        logger.warning("trial %d marked FAIL: %s", t.number, why)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _summarise(study, cls, exp: Experiment, seed: int, ks, client, parent_id: str,
               model_dir, fixed: dict, space: dict, log_model: str) -> SweepResult:
    """Refit the best parameters on the whole training data, test, log to the parent run."""
    best = study.best_trial
    seed_t = trial_seed(seed, best.params)
    params = {**fixed, **best.params}
    model = trial_model(cls, params, seed_t)
    full = exp.full()
    # an early-stopped trial's learning rate per kept epoch, replayed on all the training data
    schedule = best.user_attrs.get("lr_schedule")
    full.fit(model, **({"lr_schedule": schedule} if schedule else {}))
    test_metrics, test_per_user = evaluate(model, full.history, full.test, k=ks,
                                           per_user=True)
    finished = _finished(study)
    edges = on_edge(space, best.params)
    for name, side in edges.items():
        logger.warning("%s: the best %s=%r sits at the %s end of its range %s: widen the "
                       "range (recsys.tuning.SPACES) and sweep again", study.study_name, name,
                       best.params[name], side, space[name][1:])
    logged = 0
    with tempfile.TemporaryDirectory() as tmp:
        model_path = model.save(Path(tmp) / f"{cls.__name__.lower()}-best.npz")
        best_file = Path(tmp) / "best_params.json"
        best_file.write_text(json.dumps({"params": params, "seed": seed_t,
                                         "trial": best.number, "value": best.value,
                                         "edges": edges}, indent=2, default=str))
        plot = history_plot(study, Path(tmp) / "optimization_history.png")
        artifacts = [best_file, plot]
        if log_model == "best":
            artifacts.append(model_path)
            logged = model_path.stat().st_size
        log_artifacts(client, parent_id, artifacts)
        saved = None
        if model_dir:
            saved = Path(model_dir) / f"{study.study_name}-best.npz"
            saved.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_path, saved)
    finish_parent_run(client, parent_id, best, params, edges, model.training_data_["fingerprint"],
                      test_metrics, logged, finished)
    return SweepResult(study, params, float(best.value), scalars(test_metrics), parent_id,
                       saved, edges, logged, test_per_user)


__all__ = ["BEST_PARAMS_TAG", "SweepResult", "early_stopped_training", "latest_best_params",
           "open_storage", "sweep", "trial_fit", "trial_model", "trial_seed", "validation_sample"]
