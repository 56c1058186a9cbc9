"""Accuracy on the real splits: Recall@20 / NDCG@20 of every model, with published numbers.

Protocol (full ranking over all items, every training item of the user excluded; recall =
hits / |test items|, NDCG with binary gains, as in the papers):

1. Each model's grid is searched on the validation part (ml-1m-lcfn ships one; on
   gowalla-lightgcn 10% of every user's training items are carved out, seed 0), by NDCG@20.
2. The chosen configuration is refitted on the training part and evaluated once on test, with
   the training items as the history (ml-1m-lcfn: train only, as in the papers; merging the
   validation part into the history would also take its items out of the test rankings,
   which lifts EASE's test Recall@20 from 0.276 to 0.313: not the published protocol).
   SimpleX is the exception: each of its configurations early-stops on the validation part
   (reduce-on-plateau, best epoch kept) and the best validation NDCG@20 at the kept epoch
   picks one (whichever metric the configuration monitors). On
   ml-1m-lcfn that model is tested (its training part is the whole training split); where
   the validation part was carved out of the training split (gowalla-lightgcn) it is refitted
   on the whole training split with the learning rates of its epochs (``schedule_``); its
   fit time is the chosen validation run plus the refit (time to that quality).
3. Fit time and peak memory (VmHWM above the RSS before the fit) of that final fit; evaluation
   throughput (test users per second of ``recsys.evaluation.evaluate``).
4. Decision-grade columns from the same test evaluation: seeded bootstrap 95% intervals of
   Recall@20 and NDCG@20 (2,000 resamples of the test users), the beyond-accuracy metrics at 20
   (``recsys.beyond``: coverage, EPC, MIUF, ILD over training co-occurrence, ARP, APLT, Gini,
   entropy), and per data set a paired comparison of every model with the best one on NDCG@20
   (``recsys.significance.compare``: Holm-corrected paired t and Wilcoxon p-values), written to
   accuracy_compare.csv from the per-user arrays kept in results/accuracy_per_user/.

Rating models (MaskedNMF, AltMin) and NBMF fit observed entries only; on implicit data every
observed entry is a 1, so they get sampled negatives: 4 uniformly drawn unobserved items per
positive, stored with the value 1e-6 (a CSR matrix drops exact zeros; 1e-6 is 0 to the fit).

    python benchmarks/bench_accuracy.py [--quick] [--datasets ml-1m-lcfn gowalla-lightgcn]
        [--models EASE SimpleX ...] [--threads N] [--reuse-choice]

``--reuse-choice``: take each model's configuration from the existing accuracy.csv row instead
of searching its grid again (the grid size recorded there is kept; SimpleX still runs its
validation run, which early-stops and gives the refit's schedule).

``--defaults``: every model as a new user builds it, ``Model()`` with nothing set but the seed
and the threads, fitted on the training part (the rating models with the same sampled zeros)
and tested the same way, into accuracy_defaults.csv: the page sets it beside the tuned row.

``--quick``: ML-100K u1 (ratings >= 4), tiny grids, 3 SimpleX epochs (CI smoke run).
Writes benchmarks/results/accuracy.csv (accuracy_quick.csv).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import time

import numpy as np
import scipy.sparse as sp
from _common import DATASETS, RESULTS, machine, merged_rows, peak_memory, print_table, write_csv

from recsys._threads import resolve_num_threads
from recsys.data import with_sampled_negatives
from recsys.evaluation import ALL_METRICS, evaluate
from recsys.experiment import load_experiment
from recsys.models import SimpleX, make_model
from recsys.models.iterative import EarlyStopping, ReduceOnPlateau
from recsys.significance import bootstrap_means, compare
from recsys.tuning import EARLY_STOPPING
from recsys.tuning.spaces import FIXED

# Published Recall@20 / NDCG@20 on these splits (../shared/datasets/README.md: the SimpleX
# paper's tables and BARS); the papers chose their hyperparameters on test.
PUBLISHED = {
    ("ml-1m-lcfn", "SimpleX"): (0.2802, 0.2670),
    ("gowalla-lightgcn", "SimpleX"): (0.1872, 0.1557),
    ("gowalla-lightgcn", "EASE"): (0.1765, 0.1467),
    ("gowalla-lightgcn", "BPR"): (0.1627, 0.1378),
}
#: Beyond-accuracy columns of accuracy.csv (at 20)
BEYOND = ("coverage", "epc", "miuf", "ild", "arp", "aplt", "gini", "entropy")
#: Per-user test arrays of each row, ``<data>__<model>.npz`` (quick runs: ``..._quick``)
PER_USER_DIR = {False: RESULTS / "accuracy_per_user", True: RESULTS / "accuracy_per_user_quick"}
#: Bookkeeping that a SimpleX row records beside its parameters (not constructor arguments)
RUN_KEYS = ("best_epoch", "epochs_run", "refit_epochs")


def grid(**axes) -> list[dict]:
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*axes.values())]


# name -> (registered model, fixed parameters, grid per data set ("*": any), sampled negatives)
# the official configurations and trainers (SimpleX.PRESETS: torch's Adam over whole tables
# from N(0, 1e-4^2), its whole-table L2 as our summed one; ML-1M with item, user and global
# biases and excluded positives; Gowalla with the mean history, NDCG@20 monitored as
# officially), two or three flat evaluations per decay on Gowalla
# (a configuration is one flat dict: the constructor's parameters and the fit-time ones below)
TRAINING_KEYS = ("metric", "patience", "decay_patience", "min_learning_rate")


def official(preset: str) -> dict:
    """A SimpleX preset with its official trainer's early stopping and decays, flat."""
    training = SimpleX.TRAINING[preset]
    stop, plateau = training["early_stopping"], training["lr_schedule"]
    return {**SimpleX.PRESETS[preset], "metric": stop.metric, "patience": stop.patience,
            "decay_patience": plateau.patience, "min_learning_rate": plateau.min_learning_rate}


def simplex_fit(params: dict) -> tuple[dict, dict]:
    """A flat SimpleX configuration as (constructor parameters, ``fit`` arguments)."""
    params = dict(params)
    stop = EarlyStopping(metric=params.pop("metric", "ndcg_at_20"),
                         patience=params.pop("patience", 3))
    plateau = ReduceOnPlateau(factor=0.1, patience=params.pop("decay_patience", 1),
                              min_learning_rate=params.pop("min_learning_rate", 1e-6))
    return params, {"early_stopping": stop, "lr_schedule": plateau}


def as_trial(params: dict) -> dict:
    """A swept SimpleX configuration trained as a sweep trial trains (``recsys.tuning``'s
    ``FIXED`` epochs and ``EARLY_STOPPING``, NDCG@20 monitored), flat."""
    stop = EARLY_STOPPING["SimpleX"]
    plateau = stop["lr_schedule"]
    return {**params, **FIXED["SimpleX"], "metric": "ndcg_at_20", "patience": stop["patience"],
            "decay_patience": plateau.patience, "min_learning_rate": plateau.min_learning_rate}


# the best configuration of each seed-0 SimpleX sweep on record (bench_sweep.py --parts
# simplex, results/sweep_simplex.csv), for the data sets that have no official one
SWEPT = {
    "ml-100k": {"factors": 111, "negatives": 955, "margin": 0.6916620480159705,
                "negative_weight": 9.595358417645839, "gamma": 0.8154908224564485,
                "learning_rate": 0.0014343934079604037, "l2": 0.002665812548047733,
                "dropout": 0.31079187178355694, "biases": True, "exclude_positives": True,
                "optimizer": "dense_adam", "init_std": 0.000377736864528473},
    "lastfm-hetrec": {"factors": 144, "negatives": 325, "margin": 0.648354195461028,
                      "negative_weight": 35.808351737787866, "gamma": 0.8950738886947509,
                      "learning_rate": 0.004342712480092967, "l2": 0.0003793126428448146,
                      "dropout": 0.21037368285633068, "biases": True,
                      "exclude_positives": True, "optimizer": "dense_adam",
                      "init_std": 0.0007239971996644136},
}

SIMPLEX = {
    **{data: [official(name) for name in SimpleX.PRESETS] + [as_trial(params)]
       for data, params in SWEPT.items()},
    "ml-1m-lcfn": grid(**{k: [v] for k, v in official("ml-1m").items()}),
    "gowalla-lightgcn": grid(**{**{k: [v] for k, v in official("gowalla").items()},
                                "decay_patience": [2, 3]}),
    "quick": grid(factors=[32], negatives=[100], epochs=[3]),
}
MODELS = {
    "MostPopular": ("MostPopular", {}, {"*": [{}]}, False),
    "ItemKNN": ("ItemKNN", {}, {"*": grid(neighbors=[10, 25, 50, 100, 200]),
                              "quick": grid(neighbors=[50])}, False),
    "EASE": ("EASE", {}, {"*": grid(l2=[100.0, 300.0, 1000.0, 3000.0]),
                        "ml-1m-lcfn": grid(l2=[300.0, 1000.0, 3000.0]),
                        # 80: the EASE paper's and BARS' value (exact fit ~4 min here)
                        "gowalla-lightgcn": grid(l2=[80.0]),
                        "quick": grid(l2=[500.0])}, False),
    "ALS": ("ALS", {"factors": 128, "epochs": 15},
            {"*": grid(l2=[1.0, 10.0, 30.0, 60.0], alpha=[2.0, 5.0, 15.0, 40.0]),
             "quick": grid(l2=[0.1], alpha=[1.0])}, False),
    "BPR": ("BPR", {"factors": 128, "epochs": 300},
            {"*": grid(learning_rate=[0.005, 0.01], l2=[0.001, 0.01]),
             "quick": grid(learning_rate=[0.05], l2=[0.01])}, False),
    "MaskedNMF": ("MaskedNMF", {"factors": 64},
                  {"*": grid(l2=[0.03, 0.1, 0.3]) + grid(l2=[3.0, 10.0], frequency_scaling=[0.0]),
                   "quick": grid(l2=[0.1])}, True),
    "NBMF": ("NBMF", {"factors": 32}, {"*": grid(l2=[0.01, 0.03, 0.1]), "quick": grid(l2=[0.5])},
             True),
    # frequency_scaling 0 (plain ridge): with the default count-scaled l2 the factors of rows
    # holding ~5x their positives in sampled zeros shrink to nothing (NDCG@20 0.117 on ML-1M)
    "AltMin": ("AltMin", {"factors": 64, "solver": "cg", "frequency_scaling": 0.0},
               {"*": grid(l2=[3.0, 10.0, 30.0, 100.0]), "quick": grid(l2=[10.0])}, True),
    "SimpleX": ("SimpleX", {}, SIMPLEX, False),
}


def _make(name: str, params: dict, threads: int):
    model, fixed, _, _ = MODELS[name]
    return make_model(model, {**fixed, **params}, seed=0, num_threads=threads)


def training_matrix(name: str, X: sp.csr_matrix) -> sp.csr_matrix:
    """What ``name`` is fitted on: the positives, plus sampled zeros for the models that fit
    observed entries only."""
    return with_sampled_negatives(X, 4, random_state=0) if MODELS[name][3] else X


def _fit(name: str, params: dict, X: sp.csr_matrix, threads: int, validation=None,
         **fit_args):
    model = _make(name, params, threads)
    if validation is not None:
        return model.fit(X, validation=validation, **fit_args)
    return model.fit(X, **fit_args)


def _final_fit(name: str, params: dict, X: sp.csr_matrix, threads: int):
    """The timed fit: sampling the zeros is part of fitting these models on implicit data."""
    return _fit(name, params, training_matrix(name, X), threads)


def previous_choice(data: str, name: str) -> tuple[list[dict], int]:
    """The configuration (and grid size) accuracy.csv recorded for ``(data, name)``."""
    path = RESULTS / "accuracy.csv"
    if path.exists():
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                if (row["data"], row["model"]) == (data, name):
                    params = {k: v for k, v in json.loads(row["params"]).items()
                              if k not in RUN_KEYS}
                    return [params], int(row["grid_size"])
    raise SystemExit(f"--reuse-choice: no ({data}, {name}) row in {path}")


def test_columns(model, exp, threads: int, seed: int = 0) -> tuple[dict, dict]:
    """Every metric at 20 on test, per user; the means with bootstrap intervals of Recall and
    NDCG, and the per-user arrays kept for the comparison across models."""
    start = time.perf_counter()
    means, per_user = evaluate(model, exp.history, exp.test, k=20, metrics=ALL_METRICS,
                               per_user=True, num_threads=threads)
    eval_s = time.perf_counter() - start
    out = {"recall_at_20": means["recall_at_20"], "ndcg_at_20": means["ndcg_at_20"]}
    metrics = ("recall_at_20", "ndcg_at_20")
    boots = bootstrap_means(np.column_stack([per_user[m] for m in metrics]), seed=seed)
    for j, metric in enumerate(metrics):
        out[f"{metric}_low"], out[f"{metric}_high"] = np.quantile(boots[:, j], [0.025, 0.975])
    out.update({f"{m}_at_20": means[m + "_at_20"] for m in BEYOND})
    out["eval_users_per_s"] = means["n_users"] / eval_s
    kept = {"users": per_user["users"], **{m: per_user[m].astype(np.float32) for m in metrics}}
    return out, kept


def kept_score(model, metric: str) -> float:
    """Validation NDCG@20 at the epoch that early stopping (on ``metric``) kept: every
    configuration is compared on the same measure, whatever it monitored."""
    kept = max(model.history_, key=lambda entry: entry.get(metric, -np.inf))
    return kept.get("ndcg_at_20", -np.inf)


def run_model(name: str, exp, tune, key: str, threads: int, reuse: bool = False) -> dict:
    """Grid on ``tune`` (``exp.tuning()``), refit on ``exp``'s training part, test once."""
    configs = MODELS[name][2]
    configs = configs.get(key, configs.get("*"))
    search, grid_size = [], None
    if reuse:
        configs, grid_size = previous_choice(exp.name, name)
    if name == "SimpleX":
        # every configuration early-stops on the validation part; the best validation score
        # (the model's own metric at its kept epoch) chooses one
        runs = []
        for params in configs:
            start = time.perf_counter()
            built, fit_args = simplex_fit(params)
            metric = fit_args["early_stopping"].metric
            model, memory = peak_memory(_fit, name, built, tune.history.matrix, threads,
                                        validation=tune.test.matrix, **fit_args)
            score = kept_score(model, metric)
            runs.append((score, time.perf_counter() - start, memory, params, model))
            if len(configs) > 1 or reuse:
                print(f"  SimpleX {params}: validation NDCG@20 {score:.4f} (best epoch "
                      f"{getattr(model, 'best_epoch_', None)})", flush=True)
                search.append((score, params))
        score, elapsed, memory, params, model = max(runs, key=lambda run: run[0])
        chosen = {**params, "epochs_run": len(model.history_),
                  "best_epoch": getattr(model, "best_epoch_", None)}
        start = time.perf_counter() - elapsed  # time to quality: the chosen run (+ refit)
        if exp.split.validation is None:  # tuning() carved validation out of the training part
            print(f"  SimpleX validation run: best epoch {chosen['best_epoch']}, refit on the "
                  f"training part for {len(model.schedule_)} epochs", flush=True)
            schedule = model.schedule_
            model, refit_memory = peak_memory(_fit, name, simplex_fit(params)[0],
                                              exp.history.matrix, threads,
                                              lr_schedule=schedule)
            memory = max(memory, refit_memory)
            chosen["refit_epochs"] = len(schedule)
        fit_s = time.perf_counter() - start
    else:
        if len(configs) > 1:
            X_tune = training_matrix(name, tune.history.matrix)
            for params in configs:
                model = _fit(name, params, X_tune, threads)
                score = evaluate(model, tune.history, tune.test, k=20,
                                 num_threads=threads)["ndcg_at_20"]
                search.append((score, params))
                print(f"  {name} {params}: validation NDCG@20 {score:.4f}", flush=True)
            chosen = max(search, key=lambda s: s[0])[1]
        else:
            chosen = configs[0]
        start = time.perf_counter()
        model, memory = peak_memory(_final_fit, name, chosen, exp.history.matrix, threads)
        fit_s = time.perf_counter() - start
    scores, per_user = test_columns(model, exp, threads)
    folder = PER_USER_DIR[key == "quick"]
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{exp.name}__{name}.npz", **per_user)
    published = PUBLISHED.get((exp.name, name), (float("nan"), float("nan")))
    return {"data": exp.name, "model": name, "params": json.dumps(chosen, sort_keys=True),
            "grid_size": grid_size or max(len(search), 1),
            "published_recall_at_20": published[0], "published_ndcg_at_20": published[1],
            "fit_s": fit_s, "peak_mem_gib": memory / 2 ** 30, "threads": threads, **scores}


def run_defaults(name: str, exp, threads: int) -> dict:
    """``name`` with its defaults, fitted on the training part and tested once."""
    def fit():
        return make_model(MODELS[name][0], {}, seed=0, num_threads=threads).fit(
            training_matrix(name, exp.history.matrix))

    start = time.perf_counter()
    model, memory = peak_memory(fit)
    fit_s = time.perf_counter() - start
    scores, _ = test_columns(model, exp, threads)
    return {"data": exp.name, "model": name, "params": "{}", "fit_s": fit_s,
            "peak_mem_gib": memory / 2 ** 30, "threads": threads,
            "recall_at_20": scores["recall_at_20"], "ndcg_at_20": scores["ndcg_at_20"],
            "ndcg_at_20_low": scores["ndcg_at_20_low"],
            "ndcg_at_20_high": scores["ndcg_at_20_high"]}


def merge_rows(name: str, rows: list[dict]) -> list[dict]:
    """``rows`` replacing their (data, model) rows of results/NAME.csv, the others kept, in
    the page's order."""
    rows = merged_rows(name, rows, ("data", "model"))
    datasets, models = DATASETS, list(MODELS)
    rows.sort(key=lambda r: (datasets.index(r["data"]) if r["data"] in datasets else 9,
                             r["data"], models.index(r["model"])))
    return rows


def comparisons(rows: list[dict], quick: bool, metric: str = "ndcg_at_20") -> list[dict]:
    """Per data set, every model against the best one on ``metric`` (paired, Holm), from the
    per-user arrays of results/accuracy_per_user/."""
    out = []
    for data in dict.fromkeys(r["data"] for r in rows):
        results = {}
        for r in rows:
            path = PER_USER_DIR[quick] / f"{data}__{r['model']}.npz"
            if r["data"] == data and path.exists():
                with np.load(path, allow_pickle=False) as f:
                    results[r["model"]] = {"users": f["users"], metric: f[metric]}
        if len(results) < 2:
            continue
        table = compare(results, metric)
        for rec in table.to_dict("records"):
            out.append({"data": data, "metric": metric, "baseline": table.attrs["baseline"],
                        "n_users": table.attrs["n_users"], **rec})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--datasets", nargs="+", default=["ml-1m-lcfn", "gowalla-lightgcn"])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--reuse-choice", action="store_true",
                        help="configurations from accuracy.csv instead of their grids")
    parser.add_argument("--defaults", action="store_true",
                        help="every model with its defaults (accuracy_defaults.csv)")
    args = parser.parse_args()
    threads = resolve_num_threads(args.threads)
    print(f"# {machine()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    rows = []
    for data in ["ml-100k"] if args.quick else args.datasets:
        exp = load_experiment(data)
        tune = exp.tuning()
        key = "quick" if args.quick else data
        for name in args.models:
            print(f"{data}: {name}", flush=True)
            if args.defaults:
                rows.append(run_defaults(name, exp, threads))
            else:
                rows.append(run_model(name, exp, tune, key, threads,
                                      reuse=args.reuse_choice and not args.quick))
            print(f"  test Recall@20 {rows[-1]['recall_at_20']:.4f} NDCG@20 "
                  f"{rows[-1]['ndcg_at_20']:.4f}, fit {rows[-1]['fit_s']:.1f} s", flush=True)
    if args.defaults:
        print_table(rows, ["data", "model", "recall_at_20", "ndcg_at_20", "fit_s"])
        write_csv("accuracy_defaults_quick" if args.quick else "accuracy_defaults",
                  rows if args.quick else merge_rows("accuracy_defaults", rows))
        return
    print("\nRecall@20 / NDCG@20 on test (chosen on validation)")
    print_table(rows, ["data", "model", "recall_at_20", "ndcg_at_20", "published_recall_at_20",
                       "published_ndcg_at_20", "fit_s", "peak_mem_gib", "eval_users_per_s"])
    print("\nBeyond accuracy at 20 on test")
    print_table(rows, ["data", "model"] + [f"{m}_at_20" for m in BEYOND])
    if args.quick:
        write_csv("accuracy_quick", rows)
        write_csv("accuracy_compare_quick", comparisons(rows, quick=True))
        return
    # a partial run replaces its (data, model) rows in accuracy.csv and keeps the others
    rows = merge_rows("accuracy", rows)
    write_csv("accuracy", rows)
    write_csv("accuracy_compare", comparisons(rows, quick=False))


if __name__ == "__main__":
    main()
