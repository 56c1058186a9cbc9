"""Main job: a short sweep of every model on MovieLens 100K (or on your own log: the data
flags of the ``recsys`` commands, or ``--config job.toml``), logged to a local MLflow store.

For each model, ``recsys.tuning.sweep`` runs a few Optuna trials on a validation split carved
from the official u1 training fold (ratings >= 4 are the positives; rating models fit the
ratings themselves), refits the best parameters on the whole training fold and evaluates the
full ranking on the test fold, training items excluded. Everything goes to ``runs/``:
``mlflow.db`` (one parent run per model with its trials nested), ``optuna-journal.log``
(rerunning continues the studies), ``results.csv`` and ``comparison.png``. Browse with

    mlflow ui --backend-store-uri sqlite:///runs/mlflow.db

    python pipelines/demo.py [--trials 5] [--models ease als ...] [--out runs] [--quiet]
    python pipelines/demo.py --path log.csv --user user_id --item item_id --split temporal
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import time
from pathlib import Path

from recsys.cli import add_data_flags, config_from_args, spec_from_args
from recsys.experiment import load_experiment
from recsys.significance import compare
from recsys.tuning import sweep

logger = logging.getLogger("recsys.demo")

MODELS = ["mostpopular", "itemknn", "ease", "als", "bpr", "simplex", "altmin", "maskednmf", "nbmf"]


def _title(spec, threshold) -> str:
    if spec.dataset == "ml-100k" and spec.protocol == "predefined":
        return f"MovieLens 100K, fold {spec.fold or 'u1'} (ratings >= 4 as positives)"
    positives = f", values >= {threshold:g} as positives" if threshold is not None else ""
    return f"{spec.name} ({spec.protocol} split{positives})"


def comparison_plot(rows: list[dict], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["model"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 3.8), dpi=100)
    for offset, key, label in ((-0.2, "test_ndcg_at_10", "NDCG@10"),
                               (0.2, "test_recall_at_20", "Recall@20")):
        ax.bar(x + offset, [r[key] for r in rows], width=0.4, label=label)
    ax.set_xticks(x, names, rotation=20)
    ax.set_ylabel("test")
    ax.set_title(f"{title}: tuned models, full ranking", fontsize=9)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="Sweep every model on MovieLens 100K or a log")
    add_data_flags(parser)
    parser.add_argument("--trials", type=int, default=5, help="trials per model")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--out", default="runs", help="folder for MLflow, Optuna and results")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="only the results table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("mlflow", "alembic", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = spec_from_args(args, config_from_args(args))
    exp = load_experiment(spec)
    rows, per_user = [], {}
    for name in args.models:
        start = time.perf_counter()
        result = sweep(name, exp, n_trials=args.trials, storage=str(out / "optuna-journal.log"),
                       study_name=f"demo-{spec.name}-{name}", experiment_name="recsys-demo",
                       tracking_uri=f"sqlite:///{out / 'mlflow.db'}", seed=args.seed,
                       show_progress=not args.quiet)
        seconds = time.perf_counter() - start
        logger.info("%s: best %s, validation NDCG@10 %.4f, test NDCG@10 %.4f (%.1fs)", name,
                    result.best_params, result.best_value, result.test_metrics["ndcg_at_10"],
                    seconds)
        per_user[name] = result.test_per_user
        rows.append({"model": name, "trials": len(result.study.trials),
                     "validation_ndcg_at_10": result.best_value,
                     **{f"test_{m}": result.test_metrics[m] for m in (
                         "ndcg_at_10", "recall_at_10", "ndcg_at_20", "recall_at_20",
                         "coverage_at_10")},
                     "seconds": seconds, "best_params": result.best_params})

    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot = comparison_plot(rows, out / "comparison.png", _title(spec, exp.threshold))
    print(f"\n{_title(spec, exp.threshold)}, {args.trials} trials per model tuned on a "
          "validation split of the training part; test = full ranking, training items "
          "excluded")
    table = compare(per_user, metric="ndcg_at_10", seed=args.seed).set_index("model")
    print(f"{'model':<12}{'trials':>7}{'val NDCG@10':>13}{'NDCG@10':>9}{'95% CI':>17}"
          f"{'Recall@10':>11}{'NDCG@20':>9}{'Recall@20':>11}{'cov@10':>8}{'time s':>8}"
          "  best params")
    for r in rows:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in r["best_params"].items())
        c = table.loc[r["model"]]
        mark = "*" if c["significant"] else " "
        print(f"{r['model']:<12}{r['trials']:>7}{r['validation_ndcg_at_10']:>13.4f}"
              f"{r['test_ndcg_at_10']:>9.4f}{mark} [{c['ci_low']:.3f}, {c['ci_high']:.3f}]"
              f"{r['test_recall_at_10']:>11.4f}"
              f"{r['test_ndcg_at_20']:>9.4f}{r['test_recall_at_20']:>11.4f}"
              f"{r['test_coverage_at_10']:>8.3f}{r['seconds']:>8.1f}  {params}")
    print(f"(95% bootstrap CI over the {table.attrs['n_users']} test users; * = NDCG@10 "
          f"differs from {table.attrs['baseline']}'s, paired t-test after Holm at 0.05)")
    print(f"\nresults: {out / 'results.csv'}, plot: {plot}\n"
          f"MLflow: mlflow ui --backend-store-uri sqlite:///{out / 'mlflow.db'}")


if __name__ == "__main__":
    main()
