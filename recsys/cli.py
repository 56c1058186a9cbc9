"""The ``recsys`` command line: describe, sweep, fit, evaluate, recommend, run.

    recsys data describe --path log.csv --user user_id --item item_id --timestamp ts
    recsys sweep --model ease --path log.csv --user user_id --item item_id --trials 30
    recsys fit --model ease --path log.csv --user user_id --item item_id --param l2=300 \\
        --out ease.npz
    recsys evaluate --model-path ease.npz --path log.csv --user user_id --item item_id
    recsys recommend --model-path ease.npz --data history.parquet --k 100 --out recs.parquet
    recsys recommend --config job.toml --shards 4 [--dask-scheduler tcp://host:8786]
    recsys run job.toml              # the nightly pipeline (recsys.pipeline)

Every command reads its data from ``--dataset NAME`` (default ml-100k) or a description of
the user's log (``--path`` and the column, threshold, duplicate and split flags), or from a
TOML job file (``--config``, see :mod:`recsys.config`) whose values the flags override.
Models are fitted on the training part of the split (train + validation where it has one;
``fit --all-data``: every interaction) and evaluated on its test part; ``recommend`` scores
from, and excludes, every interaction of the data it is given, in raw ids. Progress bars go
to stderr; ``--quiet`` silences them and the log. Results go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

logger = logging.getLogger("recsys.cli")


#: What bad input raises (bad files, parameters, data): reported in one line, exit code 2.
_USER_ERRORS = (ValueError, TypeError, KeyError, OSError, EOFError, zipfile.BadZipFile,
                MemoryError, NotImplementedError)


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--param / --fixed expect NAME=VALUE, got {pair!r}")
        params[name] = _parse_value(value)
    return params


def config_from_args(args) -> dict:
    """The job file of ``--config`` (empty without one)."""
    from recsys.config import load_config

    return load_config(args.config) if getattr(args, "config", None) else {}


def spec_from_args(args, config: dict):
    """The DataSpec of parsed data flags (:func:`add_data_flags`) over a loaded job file."""
    from recsys.config import data_spec

    overrides = {name: getattr(args, name, None) for name in _DATA_FLAGS}
    overrides["split"] = overrides.pop("protocol")
    overrides["seed"] = overrides.pop("split_seed")
    return data_spec(config, overrides)


def _model_settings(args, config: dict) -> tuple[str, dict, int]:
    from recsys.config import setting

    name = setting(config, "model", "name", getattr(args, "model", None))
    if name is None:
        raise ValueError("name the model: --model NAME, or [model] name in the config")
    params = {**config.get("model", {}).get("params", {}), **_params(getattr(args, "param",
                                                                             None))}
    return name, params, int(setting(config, "model", "seed", getattr(args, "seed", None), 0))


def cmd_sweep(args) -> dict:
    from recsys.config import setting, sweep_options
    from recsys.tuning import sweep

    config = config_from_args(args)
    name, _, seed = _model_settings(args, config)
    result = sweep(name, spec_from_args(args, config),
                   n_trials=setting(config, "sweep", "trials", args.trials, 20),
                   metric=setting(config, "sweep", "metric", args.metric, "ndcg_at_10"),
                   storage=setting(config, "sweep", "storage", args.storage),
                   study_name=setting(config, "sweep", "study_name", args.study_name),
                   tracking_uri=setting(config, "mlflow", "tracking_uri", args.tracking_uri),
                   experiment_name=setting(config, "mlflow", "experiment", args.experiment),
                   seed=seed, timeout=setting(config, "sweep", "timeout", args.timeout),
                   model_dir=args.model_dir, show_progress=not args.quiet,
                   **sweep_options(config, {"fixed": _params(args.fixed) or None,
                                            "log_model": args.log_model,
                                            "eval_every": args.eval_every}),
                   verbose=args.verbose)
    return {"study": result.study.study_name, "trials": len(result.study.trials),
            "best_params": result.best_params, "best_validation": result.best_value,
            "edges": result.edges, "test": result.test_metrics,
            "parent_run_id": result.parent_run_id, "logged_model_bytes":
            result.logged_model_bytes,
            "model_path": str(result.model_path) if result.model_path else None}


def cmd_fit(args) -> dict:
    from recsys.config import setting
    from recsys.experiment import load_experiment
    from recsys.models import make_model, model_class
    from recsys.models.ids import describe_ids

    config = config_from_args(args)
    name, params, seed = _model_settings(args, config)
    out = setting(config, "model", "path", args.out)
    if out is None:
        raise ValueError("say where to save the model: --out PATH, or [model] path")
    spec = spec_from_args(args, config)
    model = make_model(model_class(name), params, seed, show_progress=not args.quiet)
    fit_options = {}
    if args.dask_scheduler:
        if "cluster" not in inspect.signature(model.fit).parameters:
            raise ValueError(f"{type(model).__name__} trains in one process; --dask-scheduler "
                             "applies to the row-separable models (ALS, AltMin, MaskedNMF, "
                             "NBMF)")
        fit_options = {"cluster": args.dask_scheduler, "n_shards": args.shards or None}
    start = time.perf_counter()
    exp = load_experiment(spec)
    (exp.serving() if args.all_data else exp.full()).fit(model, **fit_options)
    fit_s = time.perf_counter() - start
    path = model.save(out)
    return {"model": type(model).__name__, "params": model.get_params(), "fit_s": fit_s,
            "path": str(path), "training_data": describe_ids(model)}


def _load_model(args, config: dict | None = None):
    from recsys.config import setting
    from recsys.models import Recommender

    model_path = setting(config or {}, "model", "path", args.model_path)
    if model_path:
        return Recommender.load(model_path)
    if not args.mlflow_experiment:
        raise SystemExit("give --model-path, [model] path in the config, or "
                         "--mlflow-experiment")
    return _best_sweep_model(args.mlflow_experiment,
                             setting(config or {}, "mlflow", "tracking_uri", args.tracking_uri))


def _best_sweep_model(experiment_name: str, tracking_uri: str | None):
    """The refitted best model of the best sweep (parent run) in an MLflow experiment."""
    import mlflow

    from recsys.models import Recommender

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise SystemExit(f"no MLflow experiment {experiment_name!r}")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`recsys.role` = 'parent'",
                              order_by=["metrics.best_validation DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"experiment {experiment_name!r} has no sweep parent run")
    names = [a.path for a in client.list_artifacts(runs[0].info.run_id)
             if a.path.endswith("-best.npz")]
    if not names:
        raise SystemExit(f"run {runs[0].info.run_id} has no saved model (did a trial finish, "
                         "and was it swept with --log-model best?)")
    local = client.download_artifacts(runs[0].info.run_id, names[0], tempfile.mkdtemp())
    return Recommender.load(local)


def cmd_evaluate(args) -> dict:
    from recsys.config import setting
    from recsys.evaluation import evaluate
    from recsys.experiment import load_experiment

    config = config_from_args(args)
    model = _load_model(args, config)
    exp = load_experiment(spec_from_args(args, config)).full()
    _check_same_ids(model, exp.history)
    k = setting(config, "evaluate", "k", args.k, [10, 20])
    metrics = evaluate(model, exp.history, exp.test, k=tuple(k),
                       show_progress=not args.quiet, cluster=args.dask_scheduler,
                       n_shards=args.shards)
    return {name: float(value) for name, value in metrics.items()}


def _check_same_ids(model, history) -> None:
    """Index-space evaluation needs the model's ids to be the data's (its first rows)."""
    if "user_ids_" not in vars(model):
        return
    n = model.n_users_
    if not (np.array_equal(history.users.raw_ids[:n], model.user_ids_)
            and np.array_equal(history.items.raw_ids, model.item_ids_)):
        raise ValueError("the model was fitted on other data than this split's training "
                         f"part (its fingerprint: {model.training_data_['fingerprint'][:12]}); "
                         "evaluate it with the data description it was fitted with")


def cmd_recommend(args) -> dict:
    from recsys.batch import recommend_raw_to_parquet, recommend_sharded
    from recsys.config import setting

    config = config_from_args(args)
    spec = spec_from_args(args, config)
    k = setting(config, "recommend", "k", args.k, 100)
    out = setting(config, "recommend", "out", args.out)
    if out is None:
        raise ValueError("say where to write: --out PATH, or [recommend] out")
    exclude = setting(config, "recommend", "exclude", args.exclude, "training")
    shards = setting(config, "recommend", "shards", args.shards, 0)
    if shards:
        model_path = setting(config, "model", "path", args.model_path)
        if model_path is None:
            model_path = str(Path(tempfile.mkdtemp()) / "model.npz")
            _load_model(args, config).save(model_path)
        return recommend_sharded(model_path, spec, k, out, shards,
                                 scheduler=setting(config, "recommend", "dask_scheduler",
                                                   args.dask_scheduler), exclude=exclude)
    model = _load_model(args, config)
    counts = recommend_raw_to_parquet(model, spec.read(), k, out, exclude=exclude)
    return {"path": str(out), "k": k, "excluded": exclude, **counts}


def cmd_data_describe(args) -> dict:
    from recsys.data.describe import describe, describe_frame

    spec = spec_from_args(args, config_from_args(args))
    if spec.path is not None:
        out = describe_frame(spec.frame(), spec.user, spec.item, spec.value, spec.timestamp)
    else:
        out = {"data": describe(spec.read())}
    split = spec.split_data()
    out["split"] = {"protocol": spec.protocol, **{
        name: {"users": int((np.diff(part.matrix.indptr) > 0).sum()),
               "items": int((np.bincount(part.matrix.indices,
                                         minlength=part.shape[1]) > 0).sum()),
               "interactions": int(part.nnz)}
        for name in ("train", "validation", "fold_in", "test")
        if (part := getattr(split, name, None)) is not None}}
    return out


def cmd_data_export(args) -> dict:
    from recsys.batch import write_csv_atomic

    spec = spec_from_args(args, config_from_args(args))
    frame = spec.read().to_pandas()
    path = write_csv_atomic(frame, args.out) if not args.out.endswith((".parquet", ".pq")) \
        else _write_parquet(frame, args.out)
    return {"path": str(path), "rows": len(frame), "columns": list(frame.columns)}


def _write_parquet(frame, out):
    import pyarrow as pa

    from recsys.batch import write_parquet_atomic

    return write_parquet_atomic(pa.Table.from_pandas(frame, preserve_index=False), out)


def cmd_compare(args) -> dict:
    from recsys.config import setting
    from recsys.experiment import load_experiment
    from recsys.models import Recommender
    from recsys.significance import comparison_plot, evaluate_and_compare, format_table

    config = config_from_args(args)
    models = {}
    for path in args.model_path or []:
        models[Path(path).stem] = Recommender.load(path)
    for experiment in args.mlflow_experiment or []:
        models[experiment] = _best_sweep_model(experiment, setting(
            config, "mlflow", "tracking_uri", args.tracking_uri))
    if len(models) < 2:
        raise ValueError("compare needs two models or more: --model-path A.npz B.npz, or "
                         "--mlflow-experiment (the best run of each sweep)")
    if args.names:
        if len(args.names) != len(models):
            raise ValueError(f"--names gives {len(args.names)} names for {len(models)} models")
        models = dict(zip(args.names, models.values()))
    exp = load_experiment(spec_from_args(args, config)).full()
    for model in models.values():
        _check_same_ids(model, exp.history)
    table, _ = evaluate_and_compare(models, exp, args.metric, tuple(args.k), args.baseline,
                                    args.bootstrap, args.seed, show_progress=not args.quiet)
    print(format_table(table), file=sys.stderr)
    out = Path(args.out)
    from recsys.batch import write_csv_atomic

    write_csv_atomic(table, out)
    plot = comparison_plot(table, out.with_suffix(".png"), bias=f"arp_at_{min(args.k)}")
    tracking_uri = setting(config, "mlflow", "tracking_uri", args.tracking_uri)
    run_id = None
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(args.experiment or f"compare-{exp.name}")
        with mlflow.start_run(run_name=f"compare-{args.metric}",
                              tags={"recsys.role": "compare"}) as run:
            mlflow.log_params({"metric": args.metric, "baseline": table.attrs["baseline"],
                               "models": ",".join(models), "data": exp.name})
            for _, row in table.iterrows():
                mlflow.log_metric(f"{row['model']}.{args.metric}", float(row["mean"]))
            mlflow.log_artifact(str(out))
            mlflow.log_artifact(str(plot))
            run_id = run.info.run_id
    return {"metric": args.metric, "baseline": table.attrs["baseline"],
            "n_users": table.attrs["n_users"], "csv": str(out), "plot": str(plot),
            "run_id": run_id,
            "models": {row["model"]: {"mean": row["mean"], "ci": [row["ci_low"], row["ci_high"]],
                                      "diff": row["diff"], "p_holm": None if np.isnan(
                                          row["t_p_holm"]) else row["t_p_holm"],
                                      "significant": bool(row["significant"])}
                       for _, row in table.iterrows()}}


def cmd_run(args) -> dict:
    from recsys.pipeline import run_job

    return run_job(args.job, show_progress=not args.quiet)


#: Data flags of every command (attribute names; see add_data_flags).
_DATA_FLAGS = ("dataset", "path", "format", "sep", "user", "item", "value", "timestamp",
               "threshold", "duplicates", "protocol", "fold", "test_fraction", "leave_k",
               "test_users", "cutoff", "train", "validation", "test", "split_seed",
               "data_home")


def add_data_flags(p) -> None:
    """Add the data flags (a data set, or a log and its split) and ``--config`` to a parser."""
    from recsys.data.spec import FORMATS, PROTOCOLS

    g = p.add_argument_group("data", "a built-in data set or your own log (flags override "
                             "--config)")
    g.add_argument("--config", default=None, help="a TOML job file (see recsys.config)")
    g.add_argument("--dataset", default=None, help="built-in data set (default ml-100k)")
    g.add_argument("--path", "--data", dest="path", default=None,
                   help="your log: CSV, TSV, Parquet file or folder of parts, or a lists file")
    g.add_argument("--format", choices=FORMATS, default=None)
    g.add_argument("--sep", default=None, help="CSV separator (default: by extension)")
    g.add_argument("--user", default=None, help="user id column (default user)")
    g.add_argument("--item", default=None, help="item id column (default item)")
    g.add_argument("--value", default=None, help="value column (rating, count); optional")
    g.add_argument("--timestamp", default=None, help="timestamp column; optional")
    g.add_argument("--threshold", type=float, default=None,
                   help="values >= threshold are positives (default: every row)")
    g.add_argument("--duplicates", choices=("sum", "last", "max", "error"), default=None)
    g.add_argument("--split", dest="protocol", choices=PROTOCOLS, default=None,
                   help="split protocol (default: predefined for a data set, random for a log)")
    g.add_argument("--fold", default=None, help="ml-100k fold (u1..u5, ua, ub)")
    g.add_argument("--test-fraction", type=float, default=None)
    g.add_argument("--leave-k", type=int, default=None, help="leave-last-k: test items per user")
    g.add_argument("--test-users", type=float, default=None, help="users: held-out fraction")
    g.add_argument("--cutoff", default=None, help="temporal: a date or Unix seconds")
    g.add_argument("--train", default=None, help="files: the training file")
    g.add_argument("--validation", default=None, help="files: the validation file")
    g.add_argument("--test", default=None, help="files: the test file")
    g.add_argument("--split-seed", type=int, default=None)
    g.add_argument("--data-home", default=None, help="data cache ($RECSYS_DATA_HOME)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, data: bool = True):
        if data:
            add_data_flags(p)
        p.add_argument("--quiet", action="store_true", help="no progress bars or log")
        p.add_argument("--verbose", action="store_true",
                       help="debug log, and the traceback of an error")

    p = sub.add_parser("sweep", help="tune a model with Optuna, log trials to MLflow")
    common(p)
    p.add_argument("--model", default=None)
    p.add_argument("--trials", type=int, default=None,
                   help="finished trials the study should reach (0: only create it; "
                   "default 20)")
    p.add_argument("--metric", default=None, help="default ndcg_at_10")
    p.add_argument("--storage", default=None,
                   help="Optuna journal file (default optuna-journal.log) or SQLAlchemy URL")
    p.add_argument("--study-name", default=None)
    p.add_argument("--tracking-uri", default=None, help="MLflow (default sqlite:///mlflow.db)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: study)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--model-dir", default=None, help="also save the best model here")
    p.add_argument("--fixed", action="append", metavar="NAME=VALUE",
                   help="pin a parameter for every trial (JSON value; repeatable)")
    p.add_argument("--log-model", choices=("best", "none"), default=None,
                   help="log the refitted best model to MLflow (default best)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="epochs between pruning reports of iterative models")
    p.set_defaults(run=cmd_sweep)

    p = sub.add_parser("fit", help="fit a model on the training data and save it")
    common(p)
    p.add_argument("--model", default=None)
    p.add_argument("--param", action="append", help="NAME=VALUE (JSON values)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", default=None)
    p.add_argument("--all-data", action="store_true",
                   help="fit on every interaction (to serve), not the training part")
    p.add_argument("--dask-scheduler", default=None,
                   help="train the row-separable models on Dask: 'local' (a LocalCluster) or "
                        "tcp://host:port")
    p.add_argument("--shards", type=int, default=0, help="row blocks per half-step with "
                                                          "--dask-scheduler (default: two per "
                                                          "worker)")
    p.set_defaults(run=cmd_fit)

    p = sub.add_parser("data", help="look at a data set or a log file")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    d = data_sub.add_parser("describe", help="users, items, density, interactions per user "
                            "and per item, popularity Gini, time range, duplicates")
    common(d)
    d.set_defaults(run=cmd_data_describe, command="data describe")
    e = data_sub.add_parser("export", help="write a data set (or a log, read with its "
                            "description) as a CSV or Parquet log: user, item, value, "
                            "timestamp in raw ids")
    common(e)
    e.add_argument("--out", required=True, help="a .csv or .parquet file")
    e.set_defaults(run=cmd_data_export, command="data export")

    for name, func, helptext in (("evaluate", cmd_evaluate, "full-ranking test metrics"),
                                 ("recommend", cmd_recommend, "top-N per user to Parquet")):
        p = sub.add_parser(name, help=helptext)
        common(p)
        p.add_argument("--model-path", default=None)
        p.add_argument("--mlflow-experiment", default=None,
                       help="take the best model of this experiment's sweep")
        p.add_argument("--tracking-uri", default=None)
        if name == "evaluate":
            p.add_argument("--k", type=int, nargs="+", default=None, help="default 10 20")
            p.add_argument("--dask-scheduler", default=None,
                           help="rank the users on Dask: 'local' (a LocalCluster) or "
                                "tcp://host:port")
            p.add_argument("--shards", type=int, default=None,
                           help="user blocks with --dask-scheduler (default: two per worker)")
        else:
            p.add_argument("--k", type=int, default=None, help="default 100")
            p.add_argument("--out", default=None, help="a .parquet file, or a folder with "
                           "--shards")
            p.add_argument("--shards", type=int, default=None,
                           help="score user shards on Dask")
            p.add_argument("--dask-scheduler", default=None,
                           help="tcp://host:port (default: a LocalCluster)")
            p.add_argument("--exclude", choices=("training", "positives", "none"),
                           default=None,
                           help="what is never recommended back to a user: every interaction "
                           "of theirs in the data, rated or not (training, the default), only "
                           "the positives the model scores from (positives: e.g. a movie "
                           "rated 2 can come back), or nothing (none)")
        p.set_defaults(run=func)

    p = sub.add_parser("compare", help="evaluate several models on one split: means with "
                       "bootstrap intervals, paired tests (Holm), beyond-accuracy metrics")
    common(p)
    p.add_argument("--model-path", nargs="+", default=None, help="saved models")
    p.add_argument("--mlflow-experiment", nargs="+", default=None,
                   help="the best model of each of these sweeps")
    p.add_argument("--names", nargs="+", default=None, help="names for the models")
    p.add_argument("--tracking-uri", default=None, help="also log the comparison to MLflow")
    p.add_argument("--experiment", default=None, help="MLflow experiment of the comparison")
    p.add_argument("--metric", default="ndcg_at_10")
    p.add_argument("--k", type=int, nargs="+", default=[10, 20])
    p.add_argument("--baseline", default=None, help="default: the best model")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="compare.csv", help="CSV (the plot goes beside it)")
    p.set_defaults(run=cmd_compare)

    p = sub.add_parser("run", help="run a TOML job: split, sweep or reuse, refit, log the "
                       "model to MLflow, recommend for every user")
    p.add_argument("job", help="the job file (see recsys.config)")
    common(p, data=False)
    p.set_defaults(run=cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s: %(message)s",
                        stream=sys.stderr)
    if args.quiet:
        for noisy in ("mlflow", "alembic", "optuna", "distributed"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        result = args.run(args)
    except _USER_ERRORS as exc:  # bad input: one line, not a traceback (--verbose shows it)
        logger.debug("failed", exc_info=True)
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"recsys {args.command}: error: {type(exc).__name__}: {message}".splitlines()[0],
              file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
