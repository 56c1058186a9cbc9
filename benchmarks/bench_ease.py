"""EASE fit and recommend speed/memory against the paper's reference code.

Reference fit (Steck's code, float64):
    G = (X.T @ X).toarray(); G[diag] += l2; P = np.linalg.inv(G); B = P / (-np.diag(P));
    B[diag] = 0
Reference recommend: batched ``X[batch] @ B`` + ``np.argpartition`` + sort of the top k, seen
items at -inf. Each fit runs in a fresh subprocess so its peak memory (max RSS minus the RSS
after loading the data) is its own. Ratios are recsys / reference (< 1: recsys is cheaper).
A reference that cannot fit in memory is reported as such, not run.

    python benchmarks/bench_ease.py [--quick] [--data ml-1m-lcfn gowalla-lightgcn:20000]

``name:N`` restricts a data set to its N most popular items (a catalogue size at which the
reference still fits in memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import scipy.sparse as sp
from _common import EASE_L2, load_split, machine, print_table, write_csv


def load_train(name: str) -> sp.csr_matrix:
    """Training matrix of ``name``; ``name:N`` keeps only its N most popular items."""
    return load_split(name)[0]


def rss_gib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**30


def reference_fit(X: sp.csr_matrix, l2: float) -> np.ndarray:
    G = (X.T @ X).toarray().astype(np.float64)
    G[np.diag_indices_from(G)] += l2
    P = np.linalg.inv(G)
    B = P / (-np.diag(P))
    B[np.diag_indices_from(B)] = 0
    return B


def reference_recommend(X: sp.csr_matrix, B: np.ndarray, k: int, batch: int = 1000):
    out = np.empty((X.shape[0], k), dtype=np.int64)
    for start in range(0, X.shape[0], batch):
        rows = X[start:start + batch]
        scores = np.asarray(rows @ B)
        scores[rows.nonzero()] = -np.inf
        part = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, 1), axis=1, kind="stable")
        out[start:start + batch] = np.take_along_axis(part, order, 1)
    return out


def worker(name: str, which: str) -> None:
    """Fit (and time recommend-all) in this process; print one JSON line."""
    from recsys.models import EASE

    X = load_train(name)
    base = rss_gib()
    start = time.perf_counter()
    if which == "recsys":
        model = EASE(l2=EASE_L2[name.partition(":")[0]]).fit(X)
        B = model.B_
    else:
        B = reference_fit(X, EASE_L2[name.partition(":")[0]])
    fit_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20 - base
    result = {"fit_s": fit_s, "peak_gib": peak}
    if which == "recsys":
        start = time.perf_counter()
        ours = model.recommend(np.arange(X.shape[0]), X, k=20)[0]
        result["recommend_s"] = time.perf_counter() - start
        B32 = np.ascontiguousarray(B, dtype=np.float32)
        start = time.perf_counter()
        ref = reference_recommend(X, B32, 20)
        result["reference_recommend_s"] = time.perf_counter() - start
        result["same_ids"] = float(np.mean(ours == ref))
    print(json.dumps(result), flush=True)


def run(name: str, which: str) -> dict:
    # both sides get every core for BLAS/LAPACK (recsys caps BLAS itself around its own loops)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")}
    proc = subprocess.run([sys.executable, __file__, "--worker", which, "--data", name],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else
                f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ML-100K only (CI smoke run)")
    parser.add_argument("--data", nargs="*", default=None)
    parser.add_argument("--worker", choices=["recsys", "reference"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.data[0], args.worker)
        return
    names = args.data or (["ml-100k"] if args.quick else
                          ["ml-1m-lcfn", "gowalla-lightgcn:20000", "gowalla-lightgcn"])
    from recsys._validation import available_memory

    rows = []
    for name in names:
        try:
            n_items = load_train(name).shape[1]
        except FileNotFoundError as err:
            print(f"skipping {name}: {err}")
            continue
        ours = run(name, "recsys")
        # the reference holds G, inv(G) and B in float64 at once
        ref_need = 3 * n_items**2 * 8
        free = available_memory() or 0
        ref = run(name, "reference") if ref_need < 0.9 * free else \
            {"error": f"needs ~{ref_need / 2**30:.0f} GiB, {free / 2**30:.0f} GiB available"}
        row = {"data": name, "items": n_items, "l2": EASE_L2[name.partition(":")[0]],
               "recsys_fit_s": ours.get("fit_s"), "reference_fit_s": ref.get("fit_s"),
               "fit_ratio": None, "recsys_peak_gib": ours.get("peak_gib"),
               "reference_peak_gib": ref.get("peak_gib"), "memory_ratio": None,
               "recsys_recommend_s": ours.get("recommend_s"),
               "reference_recommend_s": ours.get("reference_recommend_s"),
               "recommend_speedup": None, "same_ids": ours.get("same_ids"),
               "note": ours.get("error") or ref.get("error") or ""}
        if "fit_s" in ours and "fit_s" in ref:
            row["fit_ratio"] = ours["fit_s"] / ref["fit_s"]
            row["memory_ratio"] = ours["peak_gib"] / ref["peak_gib"]
        if "recommend_s" in ours:
            row["recommend_speedup"] = ours["reference_recommend_s"] / ours["recommend_s"]
        rows.append(row)
    if not rows:
        print("no data set available")
        return
    print(f"EASE vs the paper's code ({machine()}); top-20 for all training users")
    print_table(rows, ["data", "items", "recsys_fit_s", "reference_fit_s", "fit_ratio",
                       "recsys_peak_gib", "reference_peak_gib", "memory_ratio",
                       "recsys_recommend_s", "reference_recommend_s", "recommend_speedup",
                       "note"])
    write_csv("ease_quick" if args.quick else "ease", rows)


if __name__ == "__main__":
    main()
