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

    python benchmarks/bench_simplex.py [--quick] [--dataset gowalla-lightgcn]

Full run: gowalla-lightgcn training part (29,858 x 40,981, 810,128 positives), 1000 negatives,
d = 64. ``--quick`` (CI smoke run): ML-100K u1 positives, 100 negatives.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import scipy.sparse as sp
from _common import TORCH_PEERS, machine, print_table, run_peer, timed, write_csv

from recsys.datasets import load
from recsys.models import SimpleX


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataset", default="gowalla-lightgcn")
    parser.add_argument("--negatives", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--gamma", type=float, default=0.8)
    parser.add_argument("--recbole-batches", type=int, default=20)
    args = parser.parse_args()
    print(f"# {machine()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    if args.quick:
        split = load("ml-100k", split="u1")
        X = split.train.binarize(4).matrix
        negatives, repeats, batches, name = 100, 1, 3, "ml-100k u1 (ratings >= 4)"
    else:
        X = load(args.dataset).train.matrix
        negatives, repeats, batches, name = (args.negatives, 3, args.recbole_batches,
                                             args.dataset)
    rows = speed_table(X, negatives, args.dim, args.gamma, repeats, batches)
    print(f"\nSimpleX epoch, {name}: {X.shape[0]} x {X.shape[1]}, {X.nnz} positives, "
          f"{negatives} negatives, d = {args.dim}, gamma = {args.gamma}")
    print_table(rows, list(rows[0]))
    ours = {r["threads"]: r["epoch_s"] for r in rows if r["trainer"] == "recsys SimpleX"}
    print(f"\nrecsys 1 -> 2 threads: {ours[1] / ours[2]:.2f}x")
    write_csv("simplex_speed_quick" if args.quick else "simplex_speed", rows)


if __name__ == "__main__":
    main()
