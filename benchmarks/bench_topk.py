"""Top-k throughput on factor models: recsys.topk.topk_factors vs implicit.cpu.topk.topk.

Same inputs for both (float32 factors, the same seen-item CSR), same thread count, BLAS limited
to one thread (both kernels parallelise with OpenMP themselves). Prints a table and writes
benchmarks/results/topk.csv. Ratio = implicit time / recsys time (> 1: recsys is faster).

    python benchmarks/bench_topk.py [--quick] [--threads N] [--repeats R]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import machine, power_law_matrix, print_table, timed, write_csv
from implicit.cpu.topk import topk as implicit_topk
from threadpoolctl import threadpool_limits

from recsys._threads import resolve_num_threads
from recsys.topk import topk_factors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    threads = resolve_num_threads(args.threads)
    sizes = [(2_000, 1_000, 32)] if args.quick else \
        [(50_000, 10_000, 64), (50_000, 40_000, 64), (20_000, 20_000, 128)]
    rng = np.random.default_rng(0)
    rows = []
    for n_users, n_items, factors in sizes:
        U = rng.standard_normal((n_users, factors)).astype(np.float32)
        V = rng.standard_normal((n_items, factors)).astype(np.float32)
        seen = power_law_matrix(n_users, n_items, 50, rng)
        for filtered in (False, True):
            excl = seen if filtered else None
            with threadpool_limits(1, "blas"):
                ours = timed(args.repeats, topk_factors, U, V, 20, excl, num_threads=threads)
                theirs = timed(args.repeats, implicit_topk, V, U, 20, filter_query_items=excl,
                               num_threads=threads)
                a = topk_factors(U, V, 20, excl, num_threads=threads)[0]
                b = implicit_topk(V, U, 20, filter_query_items=excl, num_threads=threads)[0]
            rows.append({
                "users": n_users, "items": n_items, "factors": factors, "k": 20,
                "filter_seen": filtered, "threads": threads,
                "recsys_s": ours["median"], "implicit_s": theirs["median"],
                "recsys_min_max": f"{ours['min']:.3f}-{ours['max']:.3f}",
                "implicit_min_max": f"{theirs['min']:.3f}-{theirs['max']:.3f}",
                "users_per_s": n_users / ours["median"],
                "speedup": theirs["median"] / ours["median"],
                "same_ids": float(np.mean(a == b)),
            })
    print(f"top-k, factor models ({machine()}, median of {args.repeats})")
    print_table(rows, ["users", "items", "factors", "filter_seen", "threads", "recsys_s",
                       "implicit_s", "speedup", "users_per_s", "same_ids"])
    write_csv("topk_quick" if args.quick else "topk", rows)


if __name__ == "__main__":
    main()
