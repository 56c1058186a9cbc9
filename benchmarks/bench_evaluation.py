"""Full-ranking evaluation speed: recsys.evaluation.evaluate vs implicit's ranking_metrics_at_k.

Both score the *same* fitted ALS model (implicit's factors are copied into recsys's ALS), on the
same train/test matrices, at K=10, with the same threads; BLAS limited to one thread. NDCG from
both is printed side by side (same definition: binary gains, IDCG over min(K, |test|)). Ratio =
implicit time / recsys time (> 1: recsys is faster). Writes benchmarks/results/evaluation.csv.

    python benchmarks/bench_evaluation.py [--quick] [--repeats R]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import scipy.sparse as sp
from _common import machine, print_table, timed, write_csv
from implicit.cpu.als import AlternatingLeastSquares
from implicit.evaluation import ranking_metrics_at_k
from threadpoolctl import threadpool_limits

from recsys.evaluation import evaluate
from recsys.models import ALS


def data_sets(quick: bool):
    """(name, train CSR, test CSR) pairs: real splits when available, else synthetic."""
    from recsys.datasets import load

    found = []
    try:
        if quick:
            split = load("ml-100k", split="u1", download=False)
            found.append(("ml-100k u1 (>=4)", split.train.binarize(4).matrix,
                          split.test.binarize(4).matrix))
        else:
            for name in ("ml-1m-lcfn", "gowalla-lightgcn"):
                split = load(name, download=False)
                found.append((name, split.train.matrix, split.test.matrix))
    except FileNotFoundError as err:
        print(f"real data not found ({err}); using synthetic data only")
    rng = np.random.default_rng(0)
    n_users, n_items, per_user = (3000, 2000, 30) if quick else (50_000, 20_000, 40)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    cols = rng.choice(n_items, size=(n_users, per_user), p=weights / weights.sum())
    X = sp.csr_matrix((np.ones(cols.size, np.float32), cols.ravel(),
                       np.arange(0, cols.size + 1, per_user)), shape=(n_users, n_items))
    X.sum_duplicates()
    X.data[:] = 1
    test_mask = rng.random(X.nnz) < 0.2
    train, test = X.copy(), X.copy()
    train.data[test_mask] = 0
    test.data[~test_mask] = 0
    train.eliminate_zeros()
    test.eliminate_zeros()
    found.append((f"synthetic {n_users}x{n_items}", train, test))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    rows = []
    for name, train, test in data_sets(args.quick):
        with threadpool_limits(1, "blas"):
            als = AlternatingLeastSquares(factors=64, iterations=5, random_state=0,
                                          num_threads=threads)
            als.fit(train, show_progress=False)
            ours = ALS(factors=64, num_threads=threads)
            ours.user_factors_, ours.item_factors_ = als.user_factors, als.item_factors
            ours.n_users_, ours.n_items_ = train.shape
            t_ours = timed(args.repeats, evaluate, ours, train, test, k=10)
            t_theirs = timed(args.repeats, ranking_metrics_at_k, als, train, test, K=10,
                             show_progress=False)
            ndcg_ours = evaluate(ours, train, test, k=10)["ndcg_at_10"]
            ndcg_theirs = ranking_metrics_at_k(als, train, test, K=10,
                                               show_progress=False)["ndcg"]
        rows.append({
            "data": name, "users": train.shape[0], "items": train.shape[1],
            "test_users": int((np.diff(test.indptr) > 0).sum()), "threads": threads,
            "recsys_s": t_ours["median"], "implicit_s": t_theirs["median"],
            "recsys_min_max": f"{t_ours['min']:.3f}-{t_ours['max']:.3f}",
            "implicit_min_max": f"{t_theirs['min']:.3f}-{t_theirs['max']:.3f}",
            "speedup": t_theirs["median"] / t_ours["median"],
            "ndcg_recsys": ndcg_ours, "ndcg_implicit": ndcg_theirs,
        })
    print(f"evaluation at K=10 on one ALS model ({machine()}, median of {args.repeats})")
    print_table(rows, ["data", "users", "items", "test_users", "threads", "recsys_s",
                       "implicit_s", "speedup", "ndcg_recsys", "ndcg_implicit"])
    write_csv("evaluation_quick" if args.quick else "evaluation", rows)


if __name__ == "__main__":
    main()
