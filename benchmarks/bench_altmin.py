"""AltMin epoch time: our CG / Cholesky row solvers vs implicit's ALS (use_cg=True).

implicit solves the implicit-feedback problem (all entries, confidence-weighted), AltMin the
explicit one (observed entries only); the kernels are of the same class (per-row k x k systems,
CG matvecs over the row's nonzeros). Same matrix (same nnz), same factors, same threads, BLAS at
one thread. Epoch = (fit with 3 sweeps - fit with 1 sweep) / 2, so set-up costs cancel.
Ratio = implicit / recsys (> 1: recsys faster). Writes benchmarks/results/altmin.csv.

A second table runs the three solvers on a synthetic incoherent rank-k matrix (about 30% of
the entries observed, so rows hold hundreds of observations) and reports the time each needs to
reach a relative recovery error below 1e-4, the regime Gu et al. analyse (singular values spread
over two decades, so that unpreconditioned CG struggles).

    python benchmarks/bench_altmin.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import scipy.sparse as sp
from _common import machine, print_table, write_csv
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from recsys.models import AltMin


def ratings(n_users: int, n_items: int, per_user: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    cols = rng.choice(n_items, size=(n_users, per_user), p=weights / weights.sum())
    X = sp.csr_matrix((rng.integers(1, 6, cols.size).astype(np.float32), cols.ravel(),
                       np.arange(0, cols.size + 1, per_user)), shape=(n_users, n_items))
    X.sum_duplicates()
    X.data = np.minimum(X.data, 5)
    return X


def epoch_seconds(make, X, fit_kwargs=None) -> float:
    def fit(sweeps):
        model = make(sweeps)
        start = time.perf_counter()
        model.fit(X, **(fit_kwargs or {}))
        return time.perf_counter() - start
    return (fit(3) - fit(1)) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--recovery-only", action="store_true",
                        help="only the recovery race, with the sizes below")
    parser.add_argument("--epoch-only", action="store_true",
                        help="only the epoch table (at --factors)")
    parser.add_argument("--factors", type=int, nargs="*", default=None,
                        help="epoch table: ranks (default 32 64 128 256)")
    parser.add_argument("--n", type=int, default=None, help="recovery: matrix size")
    parser.add_argument("--density", type=float, default=0.3, help="recovery: observed share")
    parser.add_argument("--ranks", type=int, nargs="*", default=None)
    parser.add_argument("--solvers", nargs="*", default=["cholesky", "cg", "sketch"])
    parser.add_argument("--threads", type=int, default=0, help="recovery: threads (0: all)")
    parser.add_argument("--max-sweeps", type=int, default=60, help="recovery: sweep cap")
    args = parser.parse_args()
    if args.recovery_only:
        return recovery_race(args)
    threads = os.cpu_count() or 1
    X = ratings(5_000, 2_000, 40) if args.quick else ratings(50_000, 10_000, 40)
    ks = args.factors or ((16, 64) if args.quick else (32, 64, 128, 256))
    rows = []
    with threadpool_limits(1, "blas"):
        for k in ks:
            imp = epoch_seconds(lambda s, k=k: AlternatingLeastSquares(
                factors=k, iterations=s, use_cg=True, regularization=0.1, random_state=0,
                num_threads=threads), X, {"show_progress": False})
            row = {"users": X.shape[0], "items": X.shape[1], "nnz": X.nnz, "factors": k,
                   "threads": threads, "implicit_cg_s": imp}
            for solver in ("cg", "cholesky", "sketch"):
                row[f"altmin_{solver}_s"] = epoch_seconds(lambda s, k=k, solver=solver: AltMin(
                    factors=k, epochs=s, solver=solver, init="random", l2=0.1,
                    random_state=0, num_threads=threads, dtype="float32"), X)
            row["cg_speedup_vs_implicit"] = imp / row["altmin_cg_s"]
            row["cg_speedup_vs_cholesky"] = row["altmin_cholesky_s"] / row["altmin_cg_s"]
            rows.append(row)
    print(f"AltMin epoch vs implicit ALS ({machine()}); seconds per sweep (users + items)")
    print_table(rows, ["nnz", "factors", "threads", "implicit_cg_s", "altmin_cg_s",
                       "altmin_cholesky_s", "altmin_sketch_s", "cg_speedup_vs_implicit",
                       "cg_speedup_vs_cholesky"])
    name = "altmin_quick" if args.quick else "altmin"
    if args.factors:
        name += "_k" + "_".join(map(str, args.factors))
    write_csv(name, rows)
    if not args.epoch_only:
        recovery_race(args)


def recovery_race(args) -> None:
    n = args.n or (600 if args.quick else 3000)
    ranks = args.ranks or ((4, 8) if args.quick else (8, 16, 32, 64))
    recovery = [time_to_recover(k, solver, n, args.density, args.max_sweeps, args.threads)
                for k in ranks for solver in args.solvers]
    print(f"\ntime to relative recovery error < 1e-4 (synthetic rank-k, condition number 100, "
          f"{args.density:.0%} observed, cg_steps=3, spectral start not timed)")
    print_table(recovery, ["n", "rank", "solver", "threads", "sweeps", "seconds",
                           "per_sweep_s", "error"])
    name = "altmin_recovery" + ("_quick" if args.quick else "")
    if args.recovery_only:
        name += f"_n{n}_d{int(args.density * 100)}"
    write_csv(name, recovery)


def time_to_recover(rank: int, solver: str, n: int, density: float = 0.3,
                    max_sweeps: int = 60, threads: int = 0) -> dict:
    rng = np.random.default_rng(rank)
    # singular values spread over 2 decades: rows are ill-conditioned, as in real data
    U = rng.standard_normal((n, rank)) * np.logspace(0, 2, rank)
    V = rng.standard_normal((n, rank))
    mask = rng.random((n, n)) < density
    rows, cols = np.nonzero(mask)
    M = U @ V.T  # n x n; gathering U[rows] instead would take |Omega| x rank floats
    X = sp.csr_matrix((M[rows, cols], (rows, cols)), shape=(n, n))
    norm = np.linalg.norm(M)
    state = {"sweeps": max_sweeps, "error": np.inf, "done": False, "check_s": 0.0}

    def check(iteration, model):  # its own time is not charged to the solver
        tic = time.perf_counter()
        err = np.linalg.norm(model.user_factors_ @ model.item_factors_.T - M) / norm
        state["error"] = err
        state["check_s"] += time.perf_counter() - tic
        if err < 1e-4:
            state["sweeps"], state["done"] = iteration + 1, True
            state["elapsed"] = time.perf_counter() - state["start"]
            raise StopIteration

    def make(sweeps):
        return AltMin(factors=rank, l2=0.0, epochs=sweeps, solver=solver, cg_steps=3,
                      biases=False, init="svd", random_state=0, dtype="float64",
                      num_threads=threads)

    tic = time.perf_counter()
    make(0).fit(X)  # the spectral start alone (the same for every solver), not charged
    start_s = time.perf_counter() - tic
    state["start"] = time.perf_counter()
    try:
        make(max_sweeps).fit(X, callback=check)
    except StopIteration:
        pass
    seconds = (state.get("elapsed", time.perf_counter() - state["start"]) - state["check_s"]
               - start_s)
    sweeps = state["sweeps"] if state["done"] else max_sweeps
    return {"n": n, "rank": rank, "solver": solver, "threads": threads or os.cpu_count(),
            "sweeps": sweeps if state["done"] else f">{max_sweeps}", "seconds": seconds,
            "per_sweep_s": seconds / sweeps, "start_s": start_s, "error": state["error"]}


if __name__ == "__main__":
    main()
