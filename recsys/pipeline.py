"""The nightly batch job (``recsys run job.toml``): a user's log in, top-N in their ids out.

Steps, all logged to one MLflow run (``recsys.role = pipeline``) of the job's experiment:

1. read the log (:class:`~recsys.data.spec.DataSpec` of the job file) and describe it;
2. split it with the job's protocol;
3. choose the parameters: with ``[sweep] reuse = true``, the best parameters of the latest
   finished study of this model in the experiment (the day after a sweep, the job refits
   without tuning); otherwise, or when there is none, an Optuna sweep of ``trials`` trials
   on that split (its study is named after the data's fingerprint, so a grown log gets a
   fresh study), logged as nested MLflow runs; ``trials = 0`` takes ``[model] params``;
4. refit the model on every interaction of the log (and save it to ``[model] path`` when
   given);
5. log it as an MLflow pyfunc model (:mod:`recsys.serving`), registered in the Model Registry
   under ``[mlflow] registered_model`` with the sweep's metrics and the data fingerprint as
   version tags;
6. recommend for every user of the log, in raw ids, every interaction excluded: Parquet
   parts written atomically into ``[recommend] out`` (Dask-sharded with ``shards > 0``),
   then ``_SUCCESS``;
7. log a summary (rows, users, fallback counts, coverage, the popularity of what was
   recommended against the catalogue's, as a plot) to the same run; return it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys._sparse import column_counts
from recsys.config import data_spec, load_config, setting, sweep_options
from recsys.data.describe import describe

logger = logging.getLogger(__name__)


def run_job(job, show_progress: bool = True) -> dict[str, Any]:
    """Run the job file ``job`` (path to TOML, or an already loaded config dict); returns
    the summary (also logged to MLflow)."""
    import mlflow

    from recsys.batch import clear_output_folder, recommend_raw_to_parquet, recommend_sharded
    from recsys.experiment import load_experiment
    from recsys.models import make_model, model_class
    from recsys.models.ids import fingerprint
    from recsys.serving import log_model
    from recsys.tuning import latest_best_params, sweep
    from recsys.tuning.tracking import resolve_tracking_uri

    config = load_config(job) if not isinstance(job, dict) else job
    spec = data_spec(config, default_dataset=None)
    name = setting(config, "model", "name")
    if name is None:
        raise ValueError("the job needs [model] name")
    cls = model_class(name)
    seed = int(setting(config, "model", "seed", default=0))
    out = setting(config, "recommend", "out")
    if out is None:
        raise ValueError("the job needs [recommend] out (a folder for the Parquet parts)")
    k = int(setting(config, "recommend", "k", default=100))
    exclude = setting(config, "recommend", "exclude", default="training")
    shards = int(setting(config, "recommend", "shards", default=0))
    tracking_uri = resolve_tracking_uri(setting(config, "mlflow", "tracking_uri"))
    experiment = setting(config, "mlflow", "experiment", default=f"recsys-{spec.name}")
    registered = setting(config, "mlflow", "registered_model")
    mlflow.set_tracking_uri(tracking_uri)
    started = time.perf_counter()

    log = spec.read()
    description = describe(log)
    exp = load_experiment(spec, interactions=log)
    data_id = fingerprint(log.matrix, log.users.raw_ids, log.items.raw_ids)[:12]
    chosen = _choose_params(config, cls, exp, seed, data_id, tracking_uri, experiment,
                            show_progress, latest_best_params, sweep)
    model = make_model(cls, chosen["params"], seed, show_progress=False)
    exp.serving(log).fit(model)
    model_path = setting(config, "model", "path")
    if model_path:  # also a plain model file, for `recsys recommend --config` and friends
        model_path = str(model.save(model_path))

    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{spec.name}-{cls.__name__.lower()}-{data_id[:8]}",
                          tags={"recsys.role": "pipeline", "recsys.model": cls.__name__,
                                "recsys.data_fingerprint": data_id}) as run:
        mlflow.log_params({"model": cls.__name__, "params_from": chosen["source"],
                           **{f"param.{key}": value for key, value in
                              chosen["params"].items()}})
        mlflow.log_dict({"source": spec.to_dict(), "describe": description},
                        "data/description.json")
        metrics = {f"validation_{chosen['metric']}": chosen["validation"],
                   **{f"test_{key}": value for key, value in chosen["test"].items()}}
        metrics = {key: float(value) for key, value in metrics.items() if value is not None}
        mlflow.log_metrics(metrics)
        info, version = log_model(model, log, registered,
                                  tags={**metrics, "data_fingerprint": data_id,
                                        "params": json.dumps(chosen["params"])})
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        clear_output_folder(out_dir)
        if shards > 0:
            with tempfile.TemporaryDirectory() as tmp:
                model_path = model.save(Path(tmp) / "model.npz")
                counts = recommend_sharded(model_path, spec, k, out_dir, shards,
                                           scheduler=setting(config, "recommend",
                                                             "dask_scheduler"),
                                           exclude=exclude)
            counts.pop("parts")
        else:
            counts = recommend_raw_to_parquet(model, log, k, out_dir / "part-00000.parquet",
                                              exclude=exclude)
            (out_dir / "_SUCCESS").write_text("")
        recs = pd.read_parquet(out_dir, columns=["item"])
        summary = {
            "run_id": run.info.run_id, "model_uri": info.model_uri,
            "registered_model": registered, "model_path": model_path,
            "version": None if version is None else int(version.version),
            "model": cls.__name__, "params": chosen["params"], "params_from": chosen["source"],
            "data_fingerprint": data_id, "out": str(out_dir), "k": k, "rows": counts["rows"],
            "users": counts["users"], "served_by": {source: counts[source] for source in
                                                    ("model", "fold_in", "popularity")},
            "unknown_items_ignored": counts["unknown_items_ignored"],
            "coverage": float(recs["item"].nunique() / log.shape[1]),
            "elapsed_s": time.perf_counter() - started}
        mlflow.log_metrics({"rows": counts["rows"], "users": counts["users"],
                            "coverage": summary["coverage"],
                            **{f"users_{key}": value for key, value in
                               summary["served_by"].items()}})
        mlflow.log_dict(summary, "summary.json")
        with tempfile.TemporaryDirectory() as tmp:
            mlflow.log_artifact(str(_popularity_plot(recs["item"], log, Path(tmp) /
                                                     "recommended_popularity.png")))
    logger.info("pipeline done: %d rows for %d users in %s", summary["rows"],
                summary["users"], out_dir)
    return summary


def _choose_params(config, cls, exp, seed: int, data_id: str, tracking_uri: str,
                   experiment: str, show_progress: bool, latest_best_params, sweep) -> dict:
    """The parameters to refit with, where they came from and their metrics."""
    trials = int(setting(config, "sweep", "trials", default=0))
    metric = setting(config, "sweep", "metric", default="ndcg_at_10")
    fixed = dict(config.get("model", {}).get("params", {}))
    if setting(config, "sweep", "reuse", default=False):
        found = latest_best_params(experiment, cls, tracking_uri)
        if found is not None:
            logger.info("reusing the parameters of study run %s", found["run_id"])
            return {"params": {**fixed, **found["params"]}, "source": f"run:{found['run_id']}",
                    "metric": metric, "validation": found["validation"], "test": {}}
    if trials <= 0:
        return {"params": fixed, "source": "config", "metric": metric, "validation": None,
                "test": {}}
    study = setting(config, "sweep", "study_name") or \
        f"{exp.name}-{cls.__name__.lower()}-{data_id[:8]}"
    result = sweep(cls, exp, n_trials=trials, metric=metric,
                   storage=setting(config, "sweep", "storage"), study_name=study,
                   tracking_uri=tracking_uri, experiment_name=experiment, seed=seed,
                   timeout=setting(config, "sweep", "timeout"), show_progress=show_progress,
                   **sweep_options(config))
    return {"params": {**fixed, **result.best_params}, "source": f"sweep:{study}",
            "metric": metric, "validation": result.best_value,
            "test": dict(result.test_metrics)}


def _popularity_plot(items: pd.Series, log, path: Path) -> Path:
    """Share of recommendations and of interactions per item-popularity decile: how far the
    lists lean on the head of the catalogue."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = column_counts(log.matrix)
    order = np.argsort(-counts, kind="stable")
    decile = np.empty(log.shape[1], dtype=np.int64)
    decile[order] = np.arange(log.shape[1]) * 10 // max(log.shape[1], 1)
    recommended = np.bincount(decile[log.items.to_index(items.to_numpy())], minlength=10)
    interactions = np.bincount(decile, weights=counts, minlength=10)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.arange(10)
    ax.bar(x - 0.2, interactions / max(interactions.sum(), 1), 0.4, label="interactions")
    ax.bar(x + 0.2, recommended / max(recommended.sum(), 1), 0.4, label="recommendations")
    ax.set_xticks(x, [f"{10 * i}-{10 * i + 10}%" for i in x], rotation=45, fontsize=7)
    ax.set_xlabel("items by popularity (most popular first)")
    ax.set_ylabel("share")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["run_job"]
