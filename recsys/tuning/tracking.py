"""The MLflow side of sweeps: one parent run per study, trial runs nested under it, tags that
let a later job find a study's best parameters, and the cleanup of runs of killed workers."""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from recsys.models.registry import model_class

if TYPE_CHECKING:
    from recsys.experiment import Experiment

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: Tag naming the study of a parent or trial run.
PARENT_TAG = "recsys.study"
#: The parent run's tag holding the best parameters as JSON (their types kept).
BEST_PARAMS_TAG = "recsys.best_params"


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri``, else ``$MLFLOW_TRACKING_URI``, else :data:`DEFAULT_TRACKING_URI`."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def scalars(metrics: dict) -> dict[str, float]:
    return {key: float(value) for key, value in metrics.items()
            if np.isscalar(value) and np.isfinite(value)}


def open_experiment(uri: str | None, name: str):
    """Point MLflow at ``uri`` (see :func:`resolve_tracking_uri`) and the experiment ``name``
    (created if absent); returns ``(client, experiment_id)``."""
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(uri))
    experiment = mlflow.set_experiment(name)
    return mlflow.MlflowClient(), experiment.experiment_id


def parent_run(client, experiment_id: str, study_name: str, exp: Experiment, cls,
               seed: int, fixed: dict[str, Any] | None = None) -> str:
    """The study's parent run: found by tag (resumed sweeps reuse it) or created; the
    sweep's fixed parameters are logged as ``fixed.<name>``."""
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.`{PARENT_TAG}` = '{study_name}' and tags.`recsys.role` = 'parent'"),
        max_results=1, order_by=["attributes.start_time ASC"])
    if runs:
        run_id = runs[0].info.run_id
    else:
        run_id = _create_parent(client, experiment_id, study_name, exp, cls, seed)
    for name, value in (fixed or {}).items():
        client.log_param(run_id, f"fixed.{name}", json.dumps(value, default=str))
    return run_id


def _create_parent(client, experiment_id: str, study_name: str, exp: Experiment, cls,
                   seed: int) -> str:
    run = client.create_run(experiment_id, run_name=study_name, tags={
        PARENT_TAG: study_name, "recsys.role": "parent", "recsys.model": cls.__name__,
        "recsys.data": exp.name})
    client.log_param(run.info.run_id, "model", cls.__name__)
    client.log_param(run.info.run_id, "data", exp.name)
    client.log_param(run.info.run_id, "data_spec", json.dumps(exp.description()["source"]))
    client.log_param(run.info.run_id, "study_seed", seed)
    return run.info.run_id


def fail_orphaned_runs(client, experiment_id: str, parent_id: str, study) -> None:
    """MLflow trial runs still RUNNING whose Optuna trial failed (a killed worker) -> FAILED."""
    import optuna

    failed = {str(t.number) for t in study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.FAIL,))}
    if not failed:
        return
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'"))
    for run in runs:
        if run.data.tags.get("recsys.trial") in failed:
            client.set_terminated(run.info.run_id, status="FAILED")
            logger.warning("MLflow run of failed trial %s marked FAILED",
                           run.data.tags["recsys.trial"])


def latest_best_params(experiment_name: str, model: str | type | None = None,
                       tracking_uri: str | None = None) -> dict[str, Any] | None:
    """The best parameters of the most recently finished study of ``model`` in the MLflow
    experiment ``experiment_name`` (``{"model", "params", "run_id", "validation"}``), or None
    when it has none: a nightly job reuses them instead of sweeping again."""
    import mlflow

    client = mlflow.MlflowClient(resolve_tracking_uri(tracking_uri))
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    query = "tags.`recsys.role` = 'parent' and attributes.status = 'FINISHED'"
    if model is not None:
        query += f" and tags.`recsys.model` = '{model_class(model).__name__}'"
    for run in client.search_runs([experiment.experiment_id], filter_string=query,
                                  order_by=["attributes.end_time DESC"], max_results=20):
        if BEST_PARAMS_TAG in run.data.tags:
            return {"model": run.data.tags["recsys.model"],
                    "params": json.loads(run.data.tags[BEST_PARAMS_TAG]),
                    "run_id": run.info.run_id,
                    "validation": run.data.metrics.get("best_validation")}
    return None


def set_tags(client, run_id: str, tags: dict[str, str], attempts: int = 5) -> None:
    """Set tags on a run that other workers may be tagging at the same moment.

    Two workers finishing together both write the parent's ``best.*`` tags; with a SQL tracking
    store the second insert of a new key can fail on the unique (key, run) constraint. The
    write is retried: by then the row exists and the retry updates it.
    """
    from mlflow.exceptions import MlflowException

    for key, value in tags.items():
        for attempt in range(attempts):
            try:
                client.set_tag(run_id, key, value)
                break
            except MlflowException:
                if attempt == attempts - 1:
                    raise
                logger.debug("tag %s on run %s raced another worker; retrying", key, run_id)
                time.sleep(0.1 * (attempt + 1))


def history_plot(study, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    numbers = [t.number for t in done]
    values = [t.value for t in done]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(numbers, values, "o", alpha=0.6, label="trial")
    ax.plot(numbers, np.maximum.accumulate(values), "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation metric")
    ax.set_title(study.study_name)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


@contextmanager
def trial_run(experiment_id: str, parent_id: str, study_name: str, number: int,
              params: dict[str, Any]):
    """A trial's MLflow run, nested under the study's parent, with its parameters; yields
    the run id."""
    import mlflow

    tags = {"mlflow.parentRunId": parent_id, PARENT_TAG: study_name,
            "recsys.trial": str(number), "recsys.role": "trial"}
    with mlflow.start_run(run_name=f"trial-{number}", tags=tags,
                          experiment_id=experiment_id) as run:
        mlflow.log_params(params)
        yield run.info.run_id


def end_trial_run(fit_s: float, metrics: dict | None) -> None:
    """Log the active trial run's fit time and metrics (None: pruned)."""
    import mlflow

    mlflow.log_metric("fit_time_s", fit_s)
    if metrics is not None:
        mlflow.log_metrics(scalars(metrics))
    mlflow.set_tag("recsys.state", "PRUNED" if metrics is None else "COMPLETE")


def log_epoch(metric: str, value: float, epoch: int) -> None:
    """The validation metric of an intermediate epoch, on the active trial run."""
    import mlflow

    mlflow.log_metric(f"epoch_{metric}", value, step=epoch)


def log_artifacts(client, run_id: str, paths) -> None:
    for path in paths:
        client.log_artifact(run_id, str(path))


def finish_parent_run(client, parent_id: str, best, params: dict[str, Any],
                      edges: dict[str, str], fingerprint: str, test_metrics: dict,
                      logged_bytes: int, step: int) -> None:
    """Tag the parent with the best trial (``best.*``, :data:`BEST_PARAMS_TAG`, edges, the
    data fingerprint), log its validation and test metrics, and mark it finished (a later
    worker may reopen it)."""
    tags = {f"best.{name}": str(value) for name, value in best.params.items()}
    tags.update({f"recsys.edge.{name}": side for name, side in edges.items()})
    set_tags(client, parent_id, {**tags, "best.trial": str(best.number),
                                 BEST_PARAMS_TAG: json.dumps(params, default=str),
                                 "recsys.data_fingerprint": fingerprint})
    client.log_metric(parent_id, "best_validation", best.value, step=step)
    client.log_metric(parent_id, "logged_model_bytes", logged_bytes, step=step)
    for name, value in scalars(test_metrics).items():
        client.log_metric(parent_id, f"test_{name}", value, step=step)
    client.set_terminated(parent_id, status="FINISHED")


__all__ = ["BEST_PARAMS_TAG", "DEFAULT_TRACKING_URI", "PARENT_TAG", "end_trial_run",
           "resolve_tracking_uri",
           "fail_orphaned_runs", "finish_parent_run", "history_plot", "latest_best_params",
           "log_artifacts", "log_epoch", "open_experiment", "parent_run", "scalars", "set_tags",
           "trial_run"]
