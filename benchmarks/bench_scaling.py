"""Scaling: fit time and peak memory against the number of interactions, for every model.

Synthetic power-law data (item popularity ~ rank^-0.8, 50 interactions per user, 10,000 items,
so the number of users grows with nnz: 2,000 users at 1e5 up to 200,000 at 1e7; values are
random integer ratings 1-5, which the rating models fit and the implicit models read as
confidences). Every model is fitted with a fixed amount of work (epochs below), so
the curve shows how one fit's cost grows with the data. One fit per size and model (median of
3 below 1e6 interactions), all cores, BLAS at one thread outside the models' own calls.

The growth exponent in the table is the least-squares slope of log(fit time) on log(nnz) over
the sizes (1: linear). EASE's cost is dominated by the n_items^3 factorisation, which does not
grow with nnz at a fixed catalogue; its Gram matrix does.

    python benchmarks/bench_scaling.py [--quick] [--sizes 1e5 1e6 ...] [--models ...]
        [--items 10000]

Peak memory is also given as a multiple of the training CSR's own bytes (``mem_over_csr``).

``--quick``: 1e4 and 3e4 interactions over 1,000 items (CI smoke run).
Writes benchmarks/results/scaling.csv.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from _common import machine, peak_memory, power_law_matrix, print_table, write_csv

from recsys._threads import resolve_num_threads
from recsys.models import ALS, BPR, EASE, NBMF, AltMin, ItemKNN, MaskedNMF, MostPopular, SimpleX

N_ITEMS = 10_000
PER_USER = 50

# fixed work per fit; threads filled in at run time
MODELS = {
    "MostPopular": lambda t: MostPopular(),
    "ItemKNN": lambda t: ItemKNN(neighbors=100, num_threads=t),
    "EASE": lambda t: EASE(l2=500.0, num_threads=t),
    "ALS": lambda t: ALS(factors=64, epochs=10, random_state=0, num_threads=t),
    "BPR": lambda t: BPR(factors=64, epochs=10, random_state=0, num_threads=t),
    "MaskedNMF": lambda t: MaskedNMF(factors=64, epochs=10, random_state=0, num_threads=t),
    "NBMF": lambda t: NBMF(factors=32, epochs=5, random_state=0, num_threads=t),
    "AltMin": lambda t: AltMin(factors=64, epochs=10, solver="cg", init="random",
                               random_state=0, num_threads=t),
    "SimpleX": lambda t: SimpleX(factors=64, negatives=1000, epochs=1, random_state=0,
                                 num_threads=t),
}
WORK = {"ItemKNN": "100 neighbours", "EASE": "l2 500, dense", "ALS": "k 64, 10 iterations",
        "BPR": "k 64, 10 epochs", "MaskedNMF": "k 64, 10 sweeps", "NBMF": "k 32, 5 iterations",
        "AltMin": "k 64, CG, 10 sweeps", "SimpleX": "d 64, 1000 negatives, 1 epoch",
        "MostPopular": "counts"}


def synthetic(nnz: int, n_items: int = N_ITEMS, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = power_law_matrix(max(nnz // PER_USER, 1), n_items, PER_USER, rng)
    X.data = rng.integers(1, 6, X.nnz).astype(np.float32)
    return X


def _fit(name: str, X, threads: int):
    return MODELS[name](threads).fit(X)


def exponent(nnz: list[float], seconds: list[float]) -> float:
    """Slope of log(seconds) on log(nnz) (NaN with fewer than two positive times)."""
    pairs = [(n, s) for n, s in zip(nnz, seconds) if s > 0]
    if len(pairs) < 2:
        return float("nan")
    x, y = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return float(np.polyfit(x, y, 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", nargs="+", type=float,
                        default=[1e5, 3e5, 1e6, 3e6, 1e7])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--items", type=int, default=N_ITEMS, help="catalogue size")
    args = parser.parse_args()
    threads = resolve_num_threads(args.threads)
    sizes = [1e4, 3e4] if args.quick else args.sizes
    print(f"# {machine()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    rows = []
    for size in sizes:
        X = synthetic(int(size), 1000 if args.quick else args.items)
        csr_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        repeats = 3 if X.nnz < 1e6 else 1
        for name in args.models:
            times, memory = [], float("nan")
            for _ in range(repeats):
                start = time.perf_counter()
                _, memory = peak_memory(_fit, name, X, threads)
                times.append(time.perf_counter() - start)
            rows.append({"model": name, "work": WORK[name], "nnz": X.nnz, "users": X.shape[0],
                         "items": X.shape[1], "threads": threads,
                         "fit_s": statistics.median(times), "min_s": min(times),
                         "max_s": max(times), "peak_mem_gib": memory / 2 ** 30,
                         "csr_gib": csr_bytes / 2 ** 30, "mem_over_csr": memory / csr_bytes})
            print(f"nnz {X.nnz:>10,}  {name:<12} {rows[-1]['fit_s']:9.3f} s  "
                  f"{rows[-1]['peak_mem_gib']:.3f} GiB", flush=True)
    for name in args.models:
        mine = [r for r in rows if r["model"] == name]
        slope = exponent([r["nnz"] for r in mine], [r["fit_s"] for r in mine])
        for r in mine:
            r["exponent"] = slope
    print(f"\nFit time vs nnz ({X.shape[1]} items, {PER_USER} per user, {threads} threads)")
    print_table(rows, ["model", "nnz", "users", "fit_s", "peak_mem_gib", "mem_over_csr",
                       "exponent"])
    write_csv("scaling_quick" if args.quick else "scaling", rows)


if __name__ == "__main__":
    main()
