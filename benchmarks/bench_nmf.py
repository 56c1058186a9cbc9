"""Masked NMF and NBMF against their peers, on ML-100K.

1. Quality on the official folds (u1..u5): RMSE / MAE, NDCG@10 (test ratings >= 4, training
   items excluded) and fit seconds of MaskedNMF, NBMF masked and unmasked (the paper's
   comparison), AltMin and Surprise's NMF, SVD and SVD++ (run here, and its published numbers;
   SVD++ only in the full run: ~1 min per fold).
2. Rating prediction on an official fold (u1): ``MaskedNMF`` (at Surprise NMF's 15 factors,
   and its own defaults) and ``NBMF`` against Surprise's NMF (unbiased, its default, and
   biased) and SVD: fit seconds (median of the repeats after a warm-up) and test RMSE / MAE.
   Surprise is single-threaded; recsys is timed at 1 and 2 threads. Ratio = Surprise NMF time
   / recsys time (> 1: recsys faster).
3. The H step's QUBOs: the per-item k-bit problems of an ML-100K NBMF H step (k = 16, W from a
   short fit on u1), solved by the Cython annealer and by dwave-samplers'
   ``SimulatedAnnealingSampler`` at the same reads and sweeps, from random starts, against the
   exact optimum (Gray-code enumeration). dwave-samplers runs one call per item (how an NBMF
   adapter calls it) and one block-diagonal call over all items (its fastest use).

Peers run in their own virtualenv (``make bench-peers``); a peer that cannot run is listed with
its error. Writes benchmarks/results/nmf_folds.csv, nmf_rmse.csv and nmf_anneal.csv.

    python benchmarks/bench_nmf.py [--quick] [--parts rmse folds anneal]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from _common import machine, print_table, run_peer, timed, write_csv

from recsys._ext._nbmf import qubo_terms, solve_qubos
from recsys._threads import resolve_num_threads
from recsys.datasets import data_home as default_data_home
from recsys.datasets import load
from recsys.evaluation import evaluate, evaluate_ratings
from recsys.models import NBMF, AltMin, MaskedNMF

# Surprise's published ML-100K 5-fold numbers (RMSE, MAE), from its documentation
SURPRISE_PUBLISHED = {"NMF": (0.963, 0.758), "SVD": (0.934, 0.737), "SVD++": (0.919, 0.721)}


def _fit(make, threads, X):
    return make(threads).fit(X)


def _anneal(a, B, starts, energies, reads, sweeps, threads):
    solve_qubos(a, B, starts.copy(), energies, 0, reads, sweeps, 1, threads)


def rating_table(split, folder, repeats: int) -> list[dict]:
    rows = []
    # the speed ratio at Surprise NMF's 15 factors (the same size of model), then the defaults
    models = {"recsys MaskedNMF": lambda t: MaskedNMF(factors=15, random_state=0,
                                                      num_threads=t),
              "recsys MaskedNMF, defaults (64 factors)":
                  lambda t: MaskedNMF(random_state=0, num_threads=t),
              "recsys NBMF": lambda t: NBMF(random_state=0, num_threads=t)}
    for name, make in models.items():
        for threads in (1, 2):
            t = timed(repeats, _fit, make, threads, split.train)
            scores = evaluate_ratings(make(threads).fit(split.train), split.test, split.train)
            rows.append({"model": name, "threads": threads, "fit_s": t["median"],
                         "fit_min_s": t["min"], "fit_max_s": t["max"],
                         "rmse": scores["rmse"], "mae": scores["mae"]})
    peer = run_peer("surprise_fit.py", str(folder), "--fold", "u1", "--repeats", str(repeats))
    if "error" in peer:
        print(f"Surprise not run: {peer['error']}")
        rows.append({"model": "Surprise (not run)", "threads": 1, "fit_s": float("nan"),
                     "fit_min_s": float("nan"), "fit_max_s": float("nan"),
                     "rmse": float("nan"), "mae": float("nan")})
        return rows
    for name, res in peer.items():
        rows.append({"model": f"Surprise {name}", "threads": 1, "fit_s": res["median"],
                     "fit_min_s": res["min"], "fit_max_s": res["max"], "rmse": res["rmse"],
                     "mae": res["mae"]})
    surprise_nmf = peer["NMF"]["median"]
    for row in rows:
        row["surprise_nmf_over_this"] = surprise_nmf / row["fit_s"]
    return rows


def five_fold_table(folds, surprise: list[str]) -> list[dict]:
    """RMSE / MAE, NDCG@10 (test ratings >= 4, training items excluded) and fit seconds, mean
    over folds; recsys on all cores, Surprise (``surprise`` algorithms) single-threaded."""
    models = {"MaskedNMF": lambda: MaskedNMF(random_state=0),
              "NBMF (masked)": lambda: NBMF(random_state=0),
              "NBMF (unmasked)": lambda: NBMF(masked=False, random_state=0),
              "AltMin": lambda: AltMin(random_state=0)}
    scores = {name: [] for name in models}
    threads = {name: resolve_num_threads(0) for name in models}
    for fold in folds:
        split = load("ml-100k", split=fold)
        liked = split.test.binarize(4)
        for name, make in models.items():
            start = time.perf_counter()
            model = make().fit(split.train)
            fit_s = time.perf_counter() - start
            ratings = evaluate_ratings(model, split.test, split.train)
            ndcg = evaluate(model, split.train, liked, k=10)["ndcg_at_10"]
            scores[name].append((ratings["rmse"], ratings["mae"], ndcg, fit_s))
        peer = run_peer("surprise_fit.py", str(default_data_home() / "ml-100k"), "--fold",
                        fold, "--repeats", "1", "--no-warmup", "--algorithms", *surprise)
        if "error" in peer:
            print(f"Surprise not run on {fold}: {peer['error']}")
            continue
        for name, res in peer.items():
            scores.setdefault(f"Surprise {name}", []).append(
                (res["rmse"], res["mae"], float("nan"), res["median"]))
            threads[f"Surprise {name}"] = 1
    rows = []
    for name, values in scores.items():
        mean = np.mean(values, axis=0)
        published = SURPRISE_PUBLISHED.get(name.removeprefix("Surprise "), (np.nan, np.nan))
        rows.append({"model": name, "folds": len(values), "rmse": mean[0], "mae": mean[1],
                     "ndcg_at_10": mean[2], "fit_s": mean[3], "threads": threads[name],
                     "published_rmse": published[0], "published_mae": published[1]})
    return rows


def h_step_qubos(split, k: int, n_items: int | None):
    """The QUBOs of one H step of NBMF on ``split.train`` (W after a 5-iteration fit)."""
    model = NBMF(factors=k, epochs=5, random_state=0).fit(split.train)
    XT = split.train.matrix.T.tocsr()
    XT.sort_indices()
    items = np.flatnonzero(np.diff(XT.indptr))[:n_items].astype(np.int64)
    a = np.zeros((items.size, k))
    B = np.zeros((items.size, k, k))
    qubo_terms(XT.indptr, XT.indices, XT.data.astype(np.float64), model.user_factors_, items,
               a, B, 2)
    return a, B


def anneal_table(a, B, reads: int, sweeps: int, grid, repeats: int) -> tuple[list[dict], dict]:
    """Our annealer over ``grid`` of (reads, sweeps) and dwave-samplers at (reads, sweeps)."""
    n, k = a.shape
    optimum = np.zeros(n)
    exact_t = timed(1, solve_qubos, a, B, np.zeros(n, dtype=np.uint64), optimum, 1, 1, 1, 0, 2)
    starts = np.random.default_rng(0).integers(0, 2 ** k, n, dtype=np.uint64)
    rows = []

    def row(name, threads, n_reads, n_sweeps, t, energies):
        energies = np.asarray(energies)
        return {"solver": name, "threads": threads, "reads": n_reads, "sweeps": n_sweeps,
                "seconds": t["median"], "min_s": t["min"], "max_s": t["max"],
                "mean_energy": float(energies.mean()),
                "mean_gap": float((energies - optimum).mean()),
                "at_optimum": float(np.mean(np.isclose(energies, optimum, rtol=1e-9,
                                                       atol=1e-9)))}

    for n_reads, n_sweeps, threads in grid:
        energies = np.zeros(n)
        t = timed(repeats, _anneal, a, B, starts, energies, n_reads, n_sweeps, threads)
        rows.append(row("recsys anneal", threads, n_reads, n_sweeps, t, energies))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "qubos.npz")
        np.savez(path, a=a, B=B)
        for mode in ("per-item", "block"):
            peer = run_peer("dwave_anneal.py", path, "--mode", mode, "--num-reads", str(reads),
                            "--num-sweeps", str(sweeps))
            if "error" in peer:
                print(f"dwave-samplers ({mode}) not run: {peer['error']}")
                continue
            t = {"median": peer["seconds"], "min": peer["seconds"], "max": peer["seconds"]}
            rows.append(row(f"dwave-samplers SA ({mode})", 1, reads, sweeps, t,
                            peer["energies"]))
    rows.append(row("exact (Gray code)", 2, 0, 0, exact_t, optimum))
    summary = {}
    for peer_row in (r for r in rows if r["solver"].startswith("dwave")):
        for threads in (1, 2):
            ours = [r for r in rows if r["solver"] == "recsys anneal" and r["threads"] == threads
                    and r["mean_energy"] <= peer_row["mean_energy"]]
            if ours:
                best = min(ours, key=lambda r: r["seconds"])
                summary[f"{peer_row['solver']} vs recsys {threads} thread(s)"] = (
                    peer_row["seconds"] / best["seconds"], best["reads"], best["sweeps"])
    return rows, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", nargs="+", default=["rmse", "folds", "anneal"],
                        choices=["rmse", "folds", "anneal"])
    args = parser.parse_args()
    print(f"# {machine()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    split = load("ml-100k", split="u1")
    repeats = 1 if args.quick else 3
    if "rmse" in args.parts:
        rows = rating_table(split, default_data_home() / "ml-100k", repeats)
        print("\nRating prediction, ML-100K u1 (fit seconds, test RMSE / MAE)")
        print_table(rows, [c for c in rows[0] if c in rows[-1]])
        write_csv("nmf_rmse_quick" if args.quick else "nmf_rmse", rows)
    if "folds" in args.parts:
        folds_table(args.quick)
    if "anneal" in args.parts:
        anneal_part(split, args.quick, repeats)


def folds_table(quick: bool) -> None:
    folds = ("u1",) if quick else ("u1", "u2", "u3", "u4", "u5")
    surprise = ["NMF", "NMF-biased", "SVD"] + ([] if quick else ["SVD++"])
    rows = five_fold_table(folds, surprise)
    print(f"\nML-100K official folds {', '.join(folds)}: mean RMSE / MAE, NDCG@10 on test "
          "ratings >= 4")
    print_table(rows, list(rows[0]))
    write_csv("nmf_folds_quick" if quick else "nmf_folds", rows)


def anneal_part(split, quick: bool, repeats: int) -> None:
    a, B = h_step_qubos(split, 16, 200 if quick else None)
    reads, sweeps = 10, 100
    settings = [(1, s) for s in range(50, 301, 25)] + [(2, 100), (3, 100), (10, 100)]
    grid = [(r, s, t) for t in (1, 2) for r, s in settings]
    rows, summary = anneal_table(a, B, reads, sweeps, grid, repeats)
    print(f"\nNBMF H-step QUBOs, ML-100K u1: {a.shape[0]} items, k = {a.shape[1]}, random "
          f"starts; dwave-samplers at {reads} reads x {sweeps} sweeps, its default schedule")
    print_table(rows, list(rows[0]))
    write_csv("nmf_anneal_quick" if quick else "nmf_anneal", rows)
    print("\nTime to the peer's mean energy (peer seconds / fastest recsys setting that reaches "
          "a mean energy <= the peer's):")
    for name, (ratio, n_reads, n_sweeps) in summary.items():
        print(f"  {name}: {ratio:.1f}x (recsys at {n_reads} reads x {n_sweeps} sweeps)")

if __name__ == "__main__":
    main()
