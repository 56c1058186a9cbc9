"""The ``recsys`` command line: sweep, fit, evaluate, recommend.

    recsys sweep --model ease --dataset ml-100k --trials 30
    recsys fit --model ease --dataset ml-100k --param l2=300 --out ease.npz
    recsys evaluate --model-path ease.npz --dataset ml-100k
    recsys recommend --model-path ease.npz --dataset ml-100k --k 100 --out recs.parquet
    recsys data describe --path log.parquet --user user_id --item item_id --timestamp ts
    recsys recommend --mlflow-experiment ml-100k-ease --dataset ml-100k --k 100 --out recs/ \\
        --shards 4 [--dask-scheduler tcp://host:8786]

Models are fitted on the data set's training part (train + validation where the split has
one) and evaluated on its test part; see :mod:`recsys.experiment`. Progress bars go to stderr;
``--quiet`` silences them and the log. Results go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import zipfile
from pathlib import Path

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
            raise SystemExit(f"--param expects NAME=VALUE, got {pair!r}")
        params[name] = _parse_value(value)
    return params


def cmd_sweep(args) -> dict:
    from recsys.tuning import sweep

    result = sweep(args.model, args.dataset, n_trials=args.trials, metric=args.metric,
                   storage=args.storage, study_name=args.study_name,
                   tracking_uri=args.tracking_uri, experiment_name=args.experiment,
                   seed=args.seed, timeout=args.timeout, data_home=args.data_home,
                   model_dir=args.model_dir, show_progress=not args.quiet)
    return {"study": result.study.study_name, "trials": len(result.study.trials),
            "best_params": result.best_params, "best_validation": result.best_value,
            "test": result.test_metrics, "parent_run_id": result.parent_run_id,
            "model_path": str(result.model_path) if result.model_path else None}


def cmd_fit(args) -> dict:
    from recsys.experiment import load_experiment
    from recsys.tuning import make_model, model_class

    exp = load_experiment(args.dataset, data_home=args.data_home).full()
    model = make_model(model_class(args.model), _params(args.param), args.seed)
    start = time.perf_counter()
    model.fit(exp.training(model))
    fit_s = time.perf_counter() - start
    path = model.save(args.out)
    return {"model": type(model).__name__, "params": model.get_params(), "fit_s": fit_s,
            "path": str(path)}


def _load_model(args):
    from recsys.models import Recommender

    if args.model_path:
        return Recommender.load(args.model_path)
    if not args.mlflow_experiment:
        raise SystemExit("give --model-path or --mlflow-experiment")
    import mlflow

    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(args.mlflow_experiment)
    if experiment is None:
        raise SystemExit(f"no MLflow experiment {args.mlflow_experiment!r}")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`recsys.role` = 'parent'",
                              order_by=["metrics.best_validation DESC"], max_results=1)
    if not runs:
        raise SystemExit(f"experiment {args.mlflow_experiment!r} has no sweep parent run")
    names = [a.path for a in client.list_artifacts(runs[0].info.run_id)
             if a.path.endswith("-best.npz")]
    if not names:
        raise SystemExit(f"run {runs[0].info.run_id} has no saved model (did a trial finish?)")
    local = client.download_artifacts(runs[0].info.run_id, names[0], tempfile.mkdtemp())
    return Recommender.load(local)


def cmd_evaluate(args) -> dict:
    from recsys.evaluation import evaluate
    from recsys.experiment import load_experiment

    model = _load_model(args)
    exp = load_experiment(args.dataset, data_home=args.data_home).full()
    metrics = evaluate(model, exp.history, exp.test, k=tuple(args.k),
                       show_progress=not args.quiet)
    return {name: float(value) for name, value in metrics.items()}


def cmd_recommend(args) -> dict:
    from recsys.batch import job_inputs, recommend_sharded, recommend_to_parquet
    from recsys.experiment import load_experiment

    if args.shards:
        model_path = args.model_path
        if model_path is None:
            model_path = str(Path(tempfile.mkdtemp()) / "model.npz")
            _load_model(args).save(model_path)
        parts = recommend_sharded(model_path, args.dataset, args.k, args.out, args.shards,
                                  scheduler=args.dask_scheduler, data_home=args.data_home,
                                  exclude=args.exclude)
        return {"parts": [str(p) for p in parts]}
    model = _load_model(args)
    exp = load_experiment(args.dataset, data_home=args.data_home).full()
    history, exclusion = job_inputs(exp, args.exclude)
    path = recommend_to_parquet(model, history, args.k, args.out,
                                show_progress=not args.quiet, **exclusion)
    return {"path": str(path), "users": history.shape[0], "k": args.k,
            "excluded": args.exclude}


def cmd_data_describe(args) -> dict:
    from recsys.data.describe import describe, describe_frame, read_log

    if args.path:
        columns = [c for c in (args.user, args.item, args.value, args.timestamp) if c]
        return describe_frame(read_log(args.path, args.sep, columns), args.user, args.item,
                              args.value, args.timestamp)
    from recsys.datasets import load

    data = load(args.dataset, data_home=args.data_home)
    parts = {"data": data} if hasattr(data, "matrix") else {
        name: part for name in ("train", "validation", "test", "fold_in")
        if (part := getattr(data, name, None)) is not None}
    return {name: describe(part) for name, part in parts.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--dataset", default="ml-100k")
        p.add_argument("--data-home", default=None, help="data cache ($RECSYS_DATA_HOME)")
        p.add_argument("--quiet", action="store_true", help="no progress bars or log")
        p.add_argument("--verbose", action="store_true",
                       help="debug log, and the traceback of an error")

    p = sub.add_parser("sweep", help="tune a model with Optuna, log trials to MLflow")
    common(p)
    p.add_argument("--model", required=True)
    p.add_argument("--trials", type=int, default=20,
                   help="finished trials the study should reach (0: only create it)")
    p.add_argument("--metric", default="ndcg_at_10")
    p.add_argument("--storage", default=None,
                   help="Optuna journal file (default optuna-journal.log) or SQLAlchemy URL")
    p.add_argument("--study-name", default=None)
    p.add_argument("--tracking-uri", default=None, help="MLflow (default sqlite:///mlflow.db)")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: study)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=None)
    p.add_argument("--model-dir", default=None, help="also save the best model here")
    p.set_defaults(run=cmd_sweep)

    p = sub.add_parser("fit", help="fit a model on the training data and save it")
    common(p)
    p.add_argument("--model", required=True)
    p.add_argument("--param", action="append", help="NAME=VALUE (JSON values)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_fit)

    p = sub.add_parser("data", help="look at a data set or a log file")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    d = data_sub.add_parser("describe", help="users, items, density, interactions per user "
                            "and per item, popularity Gini, time range, duplicates")
    common(d)
    d.add_argument("--path", default=None, help="a CSV/TSV/Parquet file or a folder of "
                   "Parquet parts (instead of --dataset)")
    d.add_argument("--user", default="user", help="user id column (with --path)")
    d.add_argument("--item", default="item", help="item id column (with --path)")
    d.add_argument("--value", default=None, help="value column (with --path)")
    d.add_argument("--timestamp", default=None, help="timestamp column (with --path)")
    d.add_argument("--sep", default=None, help="CSV separator (default: by extension)")
    d.set_defaults(run=cmd_data_describe, command="data describe")

    for name, func, helptext in (("evaluate", cmd_evaluate, "full-ranking test metrics"),
                                 ("recommend", cmd_recommend, "top-N per user to Parquet")):
        p = sub.add_parser(name, help=helptext)
        common(p)
        p.add_argument("--model-path", default=None)
        p.add_argument("--mlflow-experiment", default=None,
                       help="take the best model of this experiment's sweep")
        p.add_argument("--tracking-uri", default=None)
        if name == "evaluate":
            p.add_argument("--k", type=int, nargs="+", default=[10, 20])
        else:
            p.add_argument("--k", type=int, default=100)
            p.add_argument("--out", required=True, help="a .parquet file, or a folder with "
                           "--shards")
            p.add_argument("--shards", type=int, default=0, help="score user shards on Dask")
            p.add_argument("--dask-scheduler", default=None,
                           help="tcp://host:port (default: a LocalCluster)")
            p.add_argument("--exclude", choices=("training", "positives", "none"),
                           default="training",
                           help="what is never recommended back to a user: every training "
                           "interaction of theirs, rated or not (training, the default), only "
                           "the training positives the model scores from (positives: e.g. a "
                           "movie rated 2 can come back), or nothing (none)")
        p.set_defaults(run=func)
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
