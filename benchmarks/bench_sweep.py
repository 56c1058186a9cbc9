"""Sweeps on the benchmark's data: quality of a 10-trial sweep, sweep overhead, threads under
contention.

1. **Quality**: for each (data set, model), the best validation NDCG@20 of the accuracy
   benchmark's grid (``bench_accuracy.MODELS``, fixed parameters included) against that of a
   10-trial ``recsys.tuning.sweep`` (defaults and presets first, then TPE; ``metric =
   ndcg_at_20``), both on the same validation part (``Experiment.tuning``: ml-1m-lcfn's own,
   gowalla-lightgcn's carved 10%, seed 0). Ratio = sweep / grid (target >= 0.98).
2. **Overhead** of iterative models: the wall time of a trial's fit, with its pruning
   reports (every ``eval_every`` epochs, on 2,000 sampled validation users), against a plain
   fit of the same configuration (the model's preset); the final evaluation, which both need,
   is shown apart. Target <= 1.5x.
3. **SimpleX on every shared data set** (``--parts simplex``): a 20-trial sweep (seed 0) and a
   second one (seed 1, on its own validation carve; its choice refitted and scored on seed
   0's), each trial early-stopped on validation, against the best known validation NDCG@20:
   the best of the official configurations with their trainers and of both sweeps, all on
   seed 0's validation part. Ratio = run / best known (target >= 0.97).
4. **Contention**: EASE's dense fit (Gram in OpenMP, Cholesky inverse in LAPACK) at 1 and 2
   threads and at the default (``num_threads=0``: BLAS on the cores idle at the start), alone
   and beside a competing CPU-bound process; ratio = time / time on 1 thread in the same
   condition (target for the default <= 1.3x).

    python benchmarks/bench_sweep.py [--quick] [--parts quality overhead contention simplex]
        [--datasets ml-100k lastfm-hetrec]

``--quick``: ML-100K u1 (ratings >= 4), 3 trials, small grids (CI smoke run).
Writes benchmarks/results/sweep_quality.csv, sweep_overhead.csv, contention.csv,
sweep_simplex.csv (``_quick``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import RESULTS, machine, merged_rows, print_table, write_csv

QUALITY = {"ml-1m-lcfn": ["ALS", "ItemKNN", "EASE"], "gowalla-lightgcn": ["ALS", "ItemKNN"],
           "quick": ["ALS", "ItemKNN", "EASE"]}
ITERATIVE = ["ALS", "BPR", "AltMin", "MaskedNMF", "NBMF", "SimpleX"]
SIMPLEX_DATA = ["ml-100k", "lastfm-hetrec", "ml-1m-lcfn", "gowalla-lightgcn"]


def _experiment(data: str):
    from recsys.experiment import load_experiment

    return load_experiment("ml-100k" if data == "quick" else data).tuning(random_state=0)


def quality(data: str, models: list[str], trials: int) -> list[dict]:
    """Grid best vs 10-trial sweep best, validation NDCG@20."""
    from bench_accuracy import MODELS

    from recsys.evaluation import evaluate
    from recsys.models import make_model
    from recsys.tuning import sweep

    tune = _experiment(data)
    rows = []
    for name in models:
        model_name, fixed, grids, _ = MODELS[name]
        grid = grids.get(data, grids.get("*")) if data != "quick" else grids["quick"]
        start = time.perf_counter()
        best_grid, best_params = -1.0, None
        for params in grid:
            model = make_model(model_name, {**fixed, **params})
            tune.fit(model)
            value = evaluate(model, tune.history, tune.test, k=20,
                             metrics=("ndcg",))["ndcg_at_20"]
            if value > best_grid:
                best_grid, best_params = value, {**fixed, **params}
        grid_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = sweep(name, _experiment_full(data), n_trials=trials, metric="ndcg_at_20",
                           storage=str(Path(tmp) / "journal.log"),
                           tracking_uri=f"sqlite:///{tmp}/mlflow.db", log_model="none",
                           show_progress=False)
            sweep_s = time.perf_counter() - start
        rows.append({"data": data, "model": name, "grid_size": len(grid),
                     "grid_best": best_grid, "grid_params": str(best_params),
                     "grid_s": grid_s, "trials": trials, "sweep_best": result.best_value,
                     "sweep_params": str(result.best_params), "sweep_s": sweep_s,
                     "ratio": result.best_value / best_grid,
                     "edges": ",".join(f"{k}:{v}" for k, v in result.edges.items()) or "-"})
        print(f"{data} {name}: grid {best_grid:.4f} ({grid_s:.0f} s), sweep "
              f"{result.best_value:.4f} ({sweep_s:.0f} s)", flush=True)
    return rows


def _trained(params: dict, tune, fit_args: dict, seed: int = 0):
    """SimpleX with ``params`` fitted on ``tune``'s training part, early-stopped on its
    validation part as ``fit_args`` say; its validation NDCG@20 at the kept epoch."""
    from recsys.evaluation import evaluate
    from recsys.models import SimpleX

    model = SimpleX(**params, random_state=seed)
    model.fit(tune.training(model), validation=tune.test.matrix, **fit_args)
    return evaluate(model, tune.history, tune.test, k=20, metrics=("ndcg",))["ndcg_at_20"]


#: The runs of the simplex part, in the order they run: the official configuration of the
#: split first, then the sweeps, then the other presets (each run's row is stored as it ends).
SIMPLEX_RUNS = {"gowalla-lightgcn": ["preset gowalla", "sweep seed 0", "sweep seed 1",
                                     "preset ml-1m-fast", "preset ml-1m"]}


def simplex_sweeps(data: str, trials: int, runs: list[str] | None = None, store=None
                   ) -> list[dict]:
    """SimpleX: a ``trials``-trial sweep (seed 0) and another (seed 1, its own validation
    carve; its choice refitted and scored on seed 0's validation part), and the official
    configurations (``SimpleX.PRESETS`` with their trainers), all scored by validation NDCG@20
    on the validation part of seed 0. ``runs`` picks and orders them (default: the presets,
    then the sweeps); ``store(row)`` is called as each run ends."""
    from recsys.models import SimpleX
    from recsys.tuning import sweep
    from recsys.tuning.spaces import FIXED
    from recsys.tuning.sweep import TRAINER, early_stopped_training

    tune = _experiment(data)
    runs = runs or [f"preset {name}" for name in SimpleX.PRESETS] + [
        "sweep seed 0", "sweep seed 1"]
    rows = []
    for run in runs:
        start = time.perf_counter()
        params = "-"
        if run.startswith("preset "):
            name = run.removeprefix("preset ")
            value = _trained(SimpleX.PRESETS[name], tune, SimpleX.TRAINING[name])
            seconds = time.perf_counter() - start
        else:
            seed = int(run.removeprefix("sweep seed "))
            # kept until the row is stored: a stopped sweep continues where it was, its
            # finished trials' time counted
            study_dir = RESULTS / "studies" / f"{data}-simplex-seed{seed}"
            study_dir.mkdir(parents=True, exist_ok=True)
            journal = str(study_dir / "journal.log")
            start -= _finished_seconds(journal)
            result = sweep("SimpleX", _experiment_full(data), n_trials=trials,
                           metric="ndcg_at_20", seed=seed, storage=journal,
                           tracking_uri=f"sqlite:///{study_dir}/mlflow.db", log_model="none",
                           show_progress=False)
            seconds = time.perf_counter() - start  # the sweep's, not seed 1's refit
            params = str(result.best_params)
            # trained as the chosen trial was (an enqueued preset with its own trainer)
            trainer = early_stopped_training("SimpleX", "ndcg_at_20",
                                             result.study.best_trial.user_attrs.get(TRAINER))[0]
            value = result.best_value if seed == 0 else _trained(
                {**FIXED["SimpleX"], **result.best_params}, tune, trainer)
        row = {"data": data, "run": run, "trials": trials if run.startswith("sweep") else 1,
               "ndcg_at_20": value, "seconds": seconds, "params": params}
        print(f"{data} SimpleX {run}: {value:.4f} ({row['seconds']:.0f} s) {params}",
              flush=True)
        rows.append(row)
        if store is not None:
            store(row)
        if run.startswith("sweep"):
            shutil.rmtree(study_dir)
    return rows


def _finished_seconds(journal: str) -> float:
    """Seconds spent on the finished trials of the study in ``journal`` (0 if none)."""
    import optuna

    from recsys.tuning.sweep import open_storage

    if not Path(journal).exists():
        return 0.0
    storage = open_storage(journal)
    return sum(t.duration.total_seconds() for summary in optuna.get_all_study_summaries(storage)
               for t in optuna.load_study(study_name=summary.study_name, storage=storage).trials
               if t.duration is not None)


def store_simplex(name: str, rows: list[dict]) -> list[dict]:
    """Merge ``rows`` into results/<name>.csv by (data, run) and set every row's
    ``vs_best_known``: its NDCG@20 over the best one stored for its data set."""
    merged = merged_rows(name, rows, key=("data", "run"))
    best: dict[str, float] = {}
    for row in merged:
        best[row["data"]] = max(best.get(row["data"], 0.0), float(row["ndcg_at_20"]))
    for row in merged:
        row["vs_best_known"] = float(row["ndcg_at_20"]) / best[row["data"]]
    write_csv(name, merged)
    return merged


def _experiment_full(data: str):
    from recsys.experiment import load_experiment

    return load_experiment("ml-100k" if data == "quick" else data)


def overhead(data: str, models: list[str]) -> list[dict]:
    """Trial fit (with pruning reports) / plain fit, for each iterative model's preset."""
    import mlflow
    import optuna

    from recsys.evaluation import evaluate
    from recsys.models import model_class
    from recsys.tuning import PRESETS
    from recsys.tuning.sweep import trial_fit, trial_model, validation_sample

    tune = _experiment(data)
    sample = validation_sample(tune, 2000, 0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("overhead")
        for name in models:
            cls = model_class(name)
            params = dict(PRESETS.get(name, [{}])[0])
            if data == "quick" and "epochs" in params:
                params["epochs"] = min(params["epochs"], 20)
            plain = trial_model(cls, params, 0)
            start = time.perf_counter()
            tune.fit(plain)
            plain_s = time.perf_counter() - start
            study = optuna.create_study(direction="maximize",
                                        pruner=optuna.pruners.NopPruner())
            trial = study.ask()
            model = trial_model(cls, params, 0)
            with mlflow.start_run():
                start = time.perf_counter()
                trial_fit(model, tune.training(model), tune, trial, "ndcg_at_20", None, sample)
                trial_s = time.perf_counter() - start
            start = time.perf_counter()
            evaluate(model, tune.history, tune.test, k=20)
            eval_s = time.perf_counter() - start
            rows.append({"data": data, "model": name, "params": str(params),
                         "plain_fit_s": plain_s, "trial_fit_s": trial_s,
                         "final_eval_s": eval_s, "overhead": trial_s / plain_s})
            print(f"{name}: plain {plain_s:.2f} s, trial {trial_s:.2f} s "
                  f"({trial_s / plain_s:.2f}x), final evaluation {eval_s:.2f} s", flush=True)
    return rows


_EASE_FIT = """
import sys, time
import numpy as np
sys.path.insert(0, {here!r})
from _common import load_split
from recsys.models import EASE
X = load_split({data!r})[0]
model = EASE(l2=500.0, num_threads={threads})
model.fit(X)  # warm-up
times = []
for _ in range({repeats}):
    start = time.perf_counter()
    model.fit(X)
    times.append(time.perf_counter() - start)
print(min(times))
"""


def contention(data: str, repeats: int) -> list[dict]:
    """EASE fit seconds at 1, 2 and default threads, alone and beside a busy process."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS",
                                                              "OMP_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = "2"  # the library decides; this only lifts the cap
    rows = []
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            if hog is not None:
                time.sleep(1.0)
            seconds = {}
            for threads in (1, 2, 0):
                code = _EASE_FIT.format(here=str(Path(__file__).parent), data=data,
                                        threads=threads, repeats=repeats)
                out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                     capture_output=True, text=True)
                seconds[threads] = float(out.stdout.strip().splitlines()[-1])
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        for threads in (1, 2, 0):
            rows.append({"data": data, "competing_process": busy,
                         "threads": "default (0)" if threads == 0 else threads,
                         "fit_s": seconds[threads], "vs_1_thread": seconds[threads] / seconds[1]})
        print(f"{'busy' if busy else 'idle'}: " + ", ".join(
            f"{t}: {s:.3f} s" for t, s in seconds.items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", nargs="+", default=["quality", "overhead", "contention"])
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--datasets", nargs="+", default=None,
                        help="data sets of the simplex part (default: every shared one)")
    parser.add_argument("--runs", nargs="+", default=None,
                        help='runs of the simplex part, e.g. "preset gowalla" "sweep seed 1" '
                             "(default: SIMPLEX_RUNS, else the presets then both sweeps)")
    args = parser.parse_args()
    suffix = "_quick" if args.quick else ""
    datasets = ["quick"] if args.quick else ["ml-1m-lcfn", "gowalla-lightgcn"]
    print(machine())
    if "quality" in args.parts:
        rows = []
        for data in datasets:
            rows += quality(data, QUALITY[data], args.trials or (3 if args.quick else 10))
        print_table(rows, ["data", "model", "grid_size", "grid_best", "trials", "sweep_best",
                           "ratio", "grid_s", "sweep_s", "edges"])
        write_csv(f"sweep_quality{suffix}", rows)
    if "simplex" in args.parts:
        rows, name = [], f"sweep_simplex{suffix}"
        for data in (["quick"] if args.quick else args.datasets or SIMPLEX_DATA):
            # each run's row is stored as it ends; a partial run keeps the other rows
            rows += simplex_sweeps(data, args.trials or (2 if args.quick else 20),
                                   args.runs or SIMPLEX_RUNS.get(data),
                                   lambda row: store_simplex(name, [row]))
        done = {(r["data"], r["run"]) for r in rows}
        rows = [{**r, **{k: float(r[k]) for k in ("ndcg_at_20", "vs_best_known", "seconds")}}
                for r in merged_rows(name, [], ("data", "run")) if (r["data"], r["run"]) in done]
        print_table(rows, ["data", "run", "trials", "ndcg_at_20", "vs_best_known", "seconds"])
    if "overhead" in args.parts:
        rows = overhead(datasets[0], ["ALS", "MaskedNMF"] if args.quick else ITERATIVE)
        print_table(rows, ["data", "model", "plain_fit_s", "trial_fit_s", "overhead",
                           "final_eval_s"])
        write_csv(f"sweep_overhead{suffix}", rows)
    if "contention" in args.parts:
        rows = contention("ml-100k" if args.quick else "ml-1m-lcfn", 1 if args.quick else 3)
        print_table(rows, ["data", "competing_process", "threads", "fit_s", "vs_1_thread"])
        write_csv(f"contention{suffix}", rows)


if __name__ == "__main__":
    main()
