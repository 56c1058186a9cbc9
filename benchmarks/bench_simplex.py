"""SimpleX training speed: our Cython epoch against RecBole's SimpleX (PyTorch, CPU).

Epoch seconds at the same negatives per positive (uniform), embedding size, gamma (the mean
history branch on) and thread count on both sides:

- recsys: ``SimpleX(epochs=1).fit`` (one full epoch, set-up included), median / min / max of
  the repeats after a warm-up, at 1 and 2 threads; the 1 -> 2 thread scaling; and one epoch
  with ``aggregator="user_attention"`` at 2 threads (RecBole has no attention to compare).
- RecBole 1.2.1: its own dataset, dataloader (which draws the negatives) and SimpleX model,
  trained as its trainer does (Adam, 256 positives x N negatives per batch); a full epoch takes
  hours here, so a run times ``--recbole-batches`` batches after two warm-up ones and the
  epoch time is seconds per positive x positives (median over the timed batches; min and
  max are the fastest and slowest batch). It runs in its own virtualenv
  (``make bench-peers-torch``); if it cannot run, the table says why.

Ratio = RecBole epoch / recsys epoch at equal threads (> 1: recsys faster).

Against an older build of our own kernel (``--reference DIR``: a checkout of that commit with
its compiled kernels, e.g. ``git worktree add ../ref 38ff94e`` then ``make install`` there):
one-epoch fits of both at 2 threads, ours at ``negative_sharing`` 1 (every positive its own
negatives, as the reference does), the default and 64, each in a fresh process
(``peers/recsys_reference.py``), and the default sharing again on the baseline build
(``RECSYS_SIMD=baseline``: no AVX2/FMA); with ``--quality-epochs K`` also K epochs of the official
Gowalla configuration (``SimpleX.PRESETS["gowalla"]``, constant rate) on the validation part
carved from the training split, validation NDCG@20 after each epoch for the reference and the
default sharing: the same quality per epoch is the condition of the speed-up.

    python benchmarks/bench_simplex.py [--quick] [--dataset gowalla-lightgcn]
        [--reference DIR [--quality-epochs 10]] [--time-to-quality [--seeds 0 1 2]]

``--time-to-quality``: on ml-1m-lcfn, ``SimpleX.preset("ml-1m-fast")`` fitted as
``SimpleX.TRAINING`` says (early stopping on the shipped validation part), once per seed:
fit seconds and test Recall@20 / NDCG@20 against 97% of the paper's (simplex_time_to_quality).

``--defaults-curve [CANDIDATE ...] [--datasets ...] [--epochs 40]``: validation NDCG@20 after
every epoch of candidate defaults (``CANDIDATES``, constant rate, one thread) on each shared
data set's validation part (simplex_defaults_curve; each fit's rows are stored as it ends).

Full run: gowalla-lightgcn training part (29,858 x 40,981, 810,128 positives), 1000 negatives,
d = 64. ``--quick`` (CI smoke run): ML-100K u1 positives, 100 negatives.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scipy.sparse as sp
from _common import (
    TORCH_PEERS,
    machine,
    merged_rows,
    print_table,
    run_peer,
    timed,
    write_csv,
)

from recsys.datasets import load
from recsys.experiment import load_experiment
from recsys.models import SimpleX
from recsys.models.simplex import NEGATIVE_SHARING

RUNNER = Path(__file__).parent / "peers" / "recsys_reference.py"


def _epoch(X, negatives, dim, gamma, threads, aggregator="mean"):
    return SimpleX(factors=dim, negatives=negatives, gamma=gamma, aggregator=aggregator,
                   epochs=1, random_state=0, num_threads=threads).fit(X)


def speed_table(X, negatives: int, dim: int, gamma: float, repeats: int,
                recbole_batches: int) -> list[dict]:
    rows = []
    ours = {}
    for threads in (1, 2):
        t = timed(repeats, _epoch, X, negatives, dim, gamma, threads)
        ours[threads] = t["median"]
        rows.append({"trainer": "recsys SimpleX", "threads": threads, "epoch_s": t["median"],
                     "min_s": t["min"], "max_s": t["max"],
                     "positives_per_s": X.nnz / t["median"], "ratio": float("nan")})
    # the official Gowalla aggregator (RecBole has none): its price over the mean
    t = timed(1, _epoch, X, negatives, dim, gamma, 2, "user_attention")
    rows.append({"trainer": "recsys SimpleX, user attention", "threads": 2,
                 "epoch_s": t["median"], "min_s": t["min"], "max_s": t["max"],
                 "positives_per_s": X.nnz / t["median"], "ratio": float("nan")})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.npz")
        sp.save_npz(path, X)
        for threads in (1, 2):
            peer = run_peer("recbole_simplex.py", path, "--negatives", str(negatives),
                            "--dim", str(dim), "--gamma", str(gamma), "--threads",
                            str(threads), "--batches", str(recbole_batches),
                            venv=TORCH_PEERS)
            if "error" in peer:
                print(f"RecBole SimpleX ({threads} thread(s)) not run: {peer['error']}")
                continue
            per = peer["seconds_per_positive"]
            rows.append({"trainer": f"RecBole {peer.get('recbole', '?')} (torch "
                                    f"{peer['torch']})", "threads": threads,
                         "epoch_s": peer["epoch_seconds"], "min_s": per["min"] * X.nnz,
                         "max_s": per["max"] * X.nnz,
                         "positives_per_s": 1 / per["median"],
                         "ratio": peer["epoch_seconds"] / ours[threads]})
    return rows


def _runner(build: Path | None, *args: str, simd: str = "") -> dict:
    """``peers/recsys_reference.py`` with ``build`` (None: this tree) first on the path
    (``simd="baseline"``: this tree's baseline build, not the one for this CPU)."""
    env = {**os.environ, "RECSYS_SIMD": simd}
    if build is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(build), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True,
                          text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{RUNNER.name} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _commit(checkout: Path) -> str:
    """The short commit of a checkout (its folder name when it is not a git checkout)."""
    proc = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False)
    return proc.stdout.strip() or checkout.name


def reference_table(X, reference: Path, negatives: int, dim: int, gamma: float, repeats: int,
                    threads: int = 2) -> list[dict]:
    """One-epoch fits of the reference build and of ours at several ``negative_sharing``."""
    base = {"factors": dim, "negatives": negatives, "gamma": gamma, "random_state": 0,
            "num_threads": threads}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "train.npz")
        sp.save_npz(path, X)
        ref = _runner(reference, path, "--params", json.dumps(base), "--repeats",
                      str(repeats))
        ref_s = sorted(ref["epoch_s"])[len(ref["epoch_s"]) // 2]
        rows.append({"kernel": f"reference ({_commit(reference)})", "negative_sharing": 1,
                     "threads": threads, "epoch_s": ref_s, "min_s": min(ref["epoch_s"]),
                     "ratio": 1.0})
        runs = [("this tree", sharing, "") for sharing in sorted({1, NEGATIVE_SHARING, 64})]
        runs.insert(1, ("this tree, baseline build", NEGATIVE_SHARING, "baseline"))
        for label, sharing, simd in runs:
            run = _runner(None, path, "--params",
                          json.dumps({**base, "negative_sharing": sharing}), "--repeats",
                          str(repeats), simd=simd)
            median = sorted(run["epoch_s"])[len(run["epoch_s"]) // 2]
            rows.append({"kernel": label, "negative_sharing": sharing,
                         "threads": threads, "epoch_s": median, "min_s": min(run["epoch_s"]),
                         "ratio": ref_s / median})
    return rows


def quality_table(data: str, reference: Path, epochs: int, threads: int = 2) -> list[dict]:
    """Validation NDCG@20 / Recall@20 after each epoch of the official Gowalla configuration
    (constant rate), the reference build against ours at the default sharing."""
    tune = load_experiment(data).tuning()
    params = {**SimpleX.PRESETS["gowalla"], "random_state": 0, "num_threads": threads}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        train, valid = os.path.join(tmp, "train.npz"), os.path.join(tmp, "valid.npz")
        sp.save_npz(train, tune.history.matrix)
        sp.save_npz(valid, tune.test.matrix)
        runs = {}
        for label, build, extra in [("reference", reference, {}),
                                    ("this tree", None,
                                     {"negative_sharing": NEGATIVE_SHARING})]:
            runs[label] = _runner(build, train, "--params", json.dumps({**params, **extra}),
                                  "--validation", valid, "--epochs", str(epochs))
        for epoch in range(epochs):
            row = {"epoch": epoch}
            for label, run in runs.items():
                key = label.replace(" ", "_")
                row[f"{key}_ndcg_at_20"] = run["ndcg_at_20"][epoch]
                row[f"{key}_recall_at_20"] = run["recall_at_20"][epoch]
                row[f"{key}_epoch_s"] = run["epoch_s"][epoch]
            rows.append(row)
    return rows


#: Published Recall@20 / NDCG@20 and the bar of issue 23 (97% of the paper's on ml-1m-lcfn:
#: 0.2745 / 0.2615) for the time-to-quality rows
BARS = {"ml-1m-lcfn": (0.2745, 0.2615)}


def time_to_quality(data: str, preset: str, seeds: list[int], threads: int = 2) -> list[dict]:
    """``SimpleX.preset(preset)`` trained as ``SimpleX.TRAINING[preset]`` says on ``data``'s
    training part, early-stopped on its validation part (which ml-1m-lcfn ships, so the model
    is tested as it is), once per seed: fit seconds (the evaluations included) and test
    Recall@20 / NDCG@20 against the bar."""
    from recsys.evaluation import evaluate

    exp = load_experiment(data)
    tune = exp.tuning()
    rows = []
    for seed in seeds:
        model = SimpleX.preset(preset, random_state=seed, num_threads=threads)
        start = time.perf_counter()
        model.fit(tune.history.matrix, validation=tune.test.matrix, **SimpleX.TRAINING[preset])
        fit_s = time.perf_counter() - start
        test = evaluate(model, exp.history, exp.test, k=20, metrics=("recall", "ndcg"))
        bar = BARS[data]
        rows.append({"data": data, "preset": preset, "seed": seed,
                     "epochs_run": len(model.history_), "best_epoch": model.best_epoch_,
                     "fit_s": fit_s, "recall_at_20": test["recall_at_20"],
                     "ndcg_at_20": test["ndcg_at_20"], "bar_recall": bar[0], "bar_ndcg": bar[1],
                     "met": bool(test["recall_at_20"] >= bar[0] and test["ndcg_at_20"] >= bar[1])})
        print(f"{data} {preset} seed {seed}: {rows[-1]}", flush=True)
    return rows


#: Candidate defaults of ``--defaults-curve``: the constructor defaults before 2026-12-04, and
#: the region where the sweeps of results/sweep_simplex.csv ended on ml-100k, lastfm-hetrec
#: and ml-1m-lcfn (dense Adam at a few 1e-3, biases, positives excluded from the negatives,
#: margin ~0.7, negative weight ~10) at two learning rates; "swept 1e-3" became the defaults.
CANDIDATES = {
    "defaults": {"factors": 64, "negatives": 1000, "margin": 0.9, "negative_weight": 150.0,
                 "gamma": 1.0, "dropout": 0.1, "biases": False, "exclude_positives": False,
                 "learning_rate": 0.01, "l2": 1e-6, "optimizer": "adam", "init_std": 0.1},
    "swept 1e-3": {"factors": 128, "negatives": 500, "margin": 0.7, "negative_weight": 10.0,
                   "gamma": 0.85, "dropout": 0.3, "biases": True, "exclude_positives": True,
                   "learning_rate": 1e-3, "l2": 2e-3, "optimizer": "dense_adam",
                   "init_std": 1e-3},
}
CANDIDATES["swept 3e-3"] = {**CANDIDATES["swept 1e-3"], "learning_rate": 3e-3}
# the defaults with a heavier negative term, for sparse catalogues: Gowalla's sweeps chose 143
# and 241, lastfm-hetrec's 36 and 12 (about a tenth of 1 / density, 1,680 and 500)
CANDIDATES.update({f"weight {w}": {**CANDIDATES["swept 1e-3"], "negative_weight": float(w)}
                   for w in (50, 170)})
# the defaults with the whole-table L2 scaled to the catalogue: l2 n_items / batch_size as on
# ML-1M (2e-3 x 3,043 / 1,024); Gowalla's sweeps and official configuration chose about 1e-4
CANDIDATES.update({f"l2 {l2:g}": {**CANDIDATES["swept 1e-3"], "l2": l2}
                   for l2 in (1.5e-4, 3.5e-4, 3.6e-3)})
# both, at the weight negative_weight="auto" gives there (Gowalla 168, lastfm-hetrec 50)
CANDIDATES.update({f"weight {w} l2 {l2:g}": {**CANDIDATES[f"weight {w}"], "l2": l2}
                   for w, l2 in ((170, 1.5e-4), (50, 3.5e-4))})


def defaults_curve(datasets: list[str], candidates: list[str], epochs: int,
                   threads: int = 1) -> list[dict]:
    """Validation NDCG@20 after every epoch (constant rate, no early stopping) of each
    candidate default (:data:`CANDIDATES`) on each data set's validation part
    (``Experiment.tuning``, seed 0): the curve a fixed epoch count is chosen from."""
    from recsys.models.iterative import EarlyStopping, ReduceOnPlateau

    rows = []
    for data in datasets:
        tune = load_experiment(data).tuning(random_state=0)
        for name in candidates:
            model = SimpleX(**{**CANDIDATES[name], "epochs": epochs}, random_state=0,
                            num_threads=threads)
            # factor 1: no decay, as fit(X) trains without validation (before 2026-12-05 the
            # curves ran with fit's default decays on plateau, the best epoch restored)
            model.fit(tune.training(model), validation=tune.test.matrix,
                      early_stopping=EarlyStopping(patience=epochs),
                      lr_schedule=ReduceOnPlateau(factor=1.0))
            curve = [{"data": data, "candidate": name, "epoch": entry["epoch"] + 1,
                      "elapsed_s": entry["elapsed"], "ndcg_at_20": entry["ndcg_at_20"]}
                     for entry in model.history_]
            rows += curve
            # stored as each fit ends (a stopped run keeps its curves), the other rows kept
            write_csv("simplex_defaults_curve", merged_rows("simplex_defaults_curve", rows,
                                                            ("data", "candidate")))
            best = max(curve, key=lambda r: r["ndcg_at_20"])
            tens = [r for r in curve if r["epoch"] % 10 == 0]
            print(f"{data} {name}: best epoch {best['epoch']} {best['ndcg_at_20']:.4f}, epochs "
                  + "/".join(str(r["epoch"]) for r in tens) + ": "
                  + " ".join(f"{r['ndcg_at_20']:.4f}" for r in tens), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataset", default="gowalla-lightgcn")
    parser.add_argument("--negatives", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--gamma", type=float, default=0.8)
    parser.add_argument("--recbole-batches", type=int, default=20)
    parser.add_argument("--reference", type=Path,
                        help="a checkout of an older build: time its kernel beside ours")
    parser.add_argument("--quality-epochs", type=int, default=0,
                        help="with --reference: validation NDCG@20 per epoch of both")
    parser.add_argument("--time-to-quality", action="store_true",
                        help="ml-1m-lcfn: SimpleX.preset('ml-1m-fast') once per --seeds")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--defaults-curve", nargs="*", metavar="CANDIDATE",
                        help="validation NDCG@20 per epoch of candidate defaults on "
                             "--datasets (default: every CANDIDATES entry)")
    parser.add_argument("--datasets", nargs="+",
                        default=["ml-100k", "lastfm-hetrec", "ml-1m-lcfn", "gowalla-lightgcn"])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"# {machine()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    if args.defaults_curve is not None:
        defaults_curve(args.datasets, args.defaults_curve or list(CANDIDATES), args.epochs,
                       args.threads)
        return
    if args.time_to_quality:
        rows = time_to_quality("ml-1m-lcfn", "ml-1m-fast", args.seeds)
        print_table(rows, list(rows[0]))
        write_csv("simplex_time_to_quality", rows)
        return
    if args.quick:
        split = load("ml-100k", split="u1")
        X = split.train.binarize(4).matrix
        negatives, repeats, batches, name = 100, 1, 3, "ml-100k u1 (ratings >= 4)"
    else:
        X = load(args.dataset).train.matrix
        negatives, repeats, batches, name = (args.negatives, 3, args.recbole_batches,
                                             args.dataset)
    if args.reference is not None:
        rows = reference_table(X, args.reference.resolve(), negatives, args.dim, args.gamma,
                               repeats)
        print(f"\nSimpleX epoch against the reference kernel, {name}: {negatives} negatives, "
              f"d = {args.dim}, gamma = {args.gamma}")
        print_table(rows, list(rows[0]))
        write_csv("simplex_reference_quick" if args.quick else "simplex_reference", rows)
        if args.quality_epochs:
            rows = quality_table(args.dataset, args.reference.resolve(), args.quality_epochs)
            print("\nValidation NDCG@20 / Recall@20 per epoch, official Gowalla configuration")
            print_table(rows, list(rows[0]))
            write_csv("simplex_quality", rows)
        return
    rows = speed_table(X, negatives, args.dim, args.gamma, repeats, batches)
    print(f"\nSimpleX epoch, {name}: {X.shape[0]} x {X.shape[1]}, {X.nnz} positives, "
          f"{negatives} negatives, d = {args.dim}, gamma = {args.gamma}")
    print_table(rows, list(rows[0]))
    ours = {r["threads"]: r["epoch_s"] for r in rows if r["trainer"] == "recsys SimpleX"}
    print(f"\nrecsys 1 -> 2 threads: {ours[1] / ours[2]:.2f}x")
    write_csv("simplex_speed_quick" if args.quick else "simplex_speed", rows)


if __name__ == "__main__":
    main()
