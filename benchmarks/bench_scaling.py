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

At large sizes (the ``scaling_large`` series: 10^7 to 10^8 interactions, 100 per user, so
10^6 users at 10^8, and 10^5 items) every iterative model does one epoch (``--epochs 1``),
dense EASE is attempted and its refusal recorded, the neighbourhood-sparse EASE runs instead,
and the models named by ``--evaluate`` / ``--recommend`` are fitted on a leave-one-out split
(``recsys.data.splits.leave_k_out``) and then evaluated on all users (Recall/NDCG@20) and
write every user's top 20 to Parquet (``recsys.batch.recommend_to_parquet``), each with its
time and peak memory:

    python benchmarks/bench_scaling.py --sizes 1e7 3e7 1e8 --items 100000 --per-user 100 \
        --epochs 1 --negatives 100 --evaluate ALS ItemKNN EASE-sparse --recommend ALS \
        --out scaling_large

``--quick``: 1e4 and 3e4 interactions over 1,000 items (CI smoke run).
Writes benchmarks/results/scaling.csv (``--out``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import machine, peak_memory, power_law_matrix, print_table, write_csv

from recsys._threads import resolve_num_threads
from recsys.batch import recommend_to_parquet
from recsys.data.interactions import Interactions
from recsys.data.splits import leave_k_out
from recsys.evaluation import evaluate
from recsys.models import ALS, BPR, EASE, NBMF, AltMin, ItemKNN, MaskedNMF, MostPopular, SimpleX

N_ITEMS = 10_000
PER_USER = 50

# fixed work per fit (t: threads, e: epochs of the iterative models)
MODELS = {
    "MostPopular": lambda t, e: MostPopular(),
    "ItemKNN": lambda t, e: ItemKNN(neighbors=100, num_threads=t),
    "EASE": lambda t, e: EASE(l2=500.0, num_threads=t),
    "EASE-sparse": lambda t, e: EASE(l2=500.0, max_items_dense=0, neighbors=100,
                                     num_threads=t),
    "ALS": lambda t, e: ALS(factors=64, epochs=e or 10, random_state=0, num_threads=t),
    "BPR": lambda t, e: BPR(factors=64, epochs=e or 10, random_state=0, num_threads=t),
    "MaskedNMF": lambda t, e: MaskedNMF(factors=64, epochs=e or 10, random_state=0,
                                        num_threads=t),
    "NBMF": lambda t, e: NBMF(factors=32, epochs=e or 5, random_state=0, num_threads=t),
    "AltMin": lambda t, e: AltMin(factors=64, epochs=e or 10, solver="cg", init="random",
                                  random_state=0, num_threads=t),
    "SimpleX": lambda t, e: SimpleX(factors=64, negatives=NEGATIVES[0], epochs=1,
                                    random_state=0, num_threads=t),
}
DEFAULT_MODELS = [m for m in MODELS if m != "EASE-sparse"]
WORK = {"ItemKNN": "100 neighbours", "EASE": "l2 500, dense",
        "EASE-sparse": "l2 500, 100 neighbours", "ALS": "k 64, {e} iterations",
        "BPR": "k 64, {e} epochs", "MaskedNMF": "k 64, {e} sweeps",
        "NBMF": "k 32, {e} iterations", "AltMin": "k 64, CG, {e} sweeps",
        "SimpleX": "d 64, {n} negatives, 1 epoch", "MostPopular": "counts"}
NEGATIVES = [1000]  # SimpleX's, set by --negatives
DEFAULT_EPOCHS = {"ALS": 10, "BPR": 10, "MaskedNMF": 10, "NBMF": 5, "AltMin": 10}


def synthetic(nnz: int, n_items: int = N_ITEMS, seed: int = 0, per_user: int = PER_USER):
    rng = np.random.default_rng(seed)
    X = power_law_matrix(max(nnz // per_user, 1), n_items, per_user, rng)
    X.data = rng.integers(1, 6, X.nnz).astype(np.float32)
    return X


def _fit(name: str, X, threads: int, epochs: int | None):
    return MODELS[name](threads, epochs).fit(X)


def _csr_bytes(X) -> int:
    return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes


def _timed_memory(fn, *args):
    start = time.perf_counter()
    result, memory = peak_memory(fn, *args)
    return result, time.perf_counter() - start, memory


def _parquet_load(X, threads: int) -> dict:
    """Write ``X`` as a Parquet log (user, item, value; row groups of 2^20 rows) and time
    ``Interactions.from_parquet`` reading it back, with its peak memory over the CSR."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.parquet"
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))  # each value's user
        step = 1 << 20
        schema = pa.schema([("user", pa.int64()), ("item", pa.int64()),
                            ("value", pa.float32())])
        with pq.ParquetWriter(path, schema) as writer:
            for lo in range(0, X.nnz, step):
                part = slice(lo, lo + step)
                writer.write_table(pa.table({"user": rows[part].astype(np.int64),
                                             "item": X.indices[part].astype(np.int64),
                                             "value": X.data[part]}, schema=schema))
        del rows
        loaded, seconds, memory = _timed_memory(
            lambda: Interactions.from_parquet(path, value="value"))
        items = np.asarray(loaded.items.raw_ids)  # the items that occur, in id order
        assert loaded.shape[0] == X.shape[0] and (loaded.matrix != X[:, items]).nnz == 0
        size = path.stat().st_size
    csr = _csr_bytes(X)
    return {"model": "from_parquet", "work": "stream a Parquet log into Interactions",
            "nnz": X.nnz, "users": X.shape[0], "items": X.shape[1], "threads": threads,
            "fit_s": seconds, "min_s": seconds, "max_s": seconds,
            "peak_mem_gib": memory / 2 ** 30, "csr_gib": csr / 2 ** 30,
            "mem_over_csr": memory / csr, "note": f"{size / 2 ** 20:.0f} MiB file"}


def _serve(model, train, test, threads: int, evaluate_it: bool, recommend_it: bool) -> dict:
    """Evaluate ``model`` on all users and/or write every user's top 20 to Parquet."""
    out, csr = {}, _csr_bytes(train)
    if evaluate_it:
        metrics, seconds, memory = _timed_memory(
            lambda: evaluate(model, train, test, k=20, metrics=("recall", "ndcg"),
                             num_threads=threads))
        out.update(eval_s=seconds, eval_mem_gib=memory / 2 ** 30, eval_over_csr=memory / csr,
                   ndcg_at_20=metrics["ndcg_at_20"])
    if recommend_it:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "top20.parquet"
            history = Interactions.from_csr(train)
            _, seconds, memory = _timed_memory(
                lambda: recommend_to_parquet(model, history, 20, path, show_progress=False))
            out.update(recommend_s=seconds, recommend_mem_gib=memory / 2 ** 30,
                       recommend_over_csr=memory / csr,
                       parquet_mib=path.stat().st_size / 2 ** 20)
    return out


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
    parser.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=0, help="0: all cores")
    parser.add_argument("--items", type=int, default=N_ITEMS, help="catalogue size")
    parser.add_argument("--per-user", type=int, default=PER_USER,
                        help="interactions drawn per user")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every iterative model (default: the fixed work above)")
    parser.add_argument("--evaluate", nargs="*", default=[], metavar="MODEL",
                        help="also evaluate these models on all users (leave-one-out split)")
    parser.add_argument("--recommend", nargs="*", default=[], metavar="MODEL",
                        help="also write every user's top 20 of these models to Parquet")
    parser.add_argument("--negatives", type=int, default=1000, help="SimpleX's negatives")
    parser.add_argument("--parquet", action="store_true",
                        help="also time streaming the log from Parquet into Interactions")
    parser.add_argument("--out", default="scaling", help="results name (results/NAME.csv)")
    args = parser.parse_args()
    threads = resolve_num_threads(args.threads)
    NEGATIVES[0] = args.negatives
    sizes = [1e4, 3e4] if args.quick else args.sizes
    serving = set(args.evaluate) | set(args.recommend)
    print(f"# {machine()}; OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    rows = []
    for size in sizes:
        X = synthetic(int(size), 1000 if args.quick else args.items, per_user=args.per_user)
        if args.parquet:
            rows.append(_parquet_load(X, threads))
            print(f"nnz {X.nnz:>11,}  from_parquet {rows[-1]['fit_s']:9.3f} s  "
                  f"{rows[-1]['mem_over_csr']:.2f}x CSR  {rows[-1]['note']}", flush=True)
        test = None
        if serving:  # fit on a leave-one-out split so that there is something to evaluate
            split = leave_k_out(Interactions.from_csr(X), k=1, random_state=0)
            X, test = split.train.matrix, split.test.matrix
        csr_bytes = _csr_bytes(X)
        repeats = 3 if X.nnz < 1e6 else 1
        for name in args.models:
            times, memory, model, note = [], float("nan"), None, ""
            for _ in range(repeats):
                try:
                    model, seconds, memory = _timed_memory(_fit, name, X, threads, args.epochs)
                except MemoryError as error:  # dense EASE past its memory check
                    note, seconds = f"refused: {error}", float("nan")
                times.append(seconds)
            epochs = args.epochs or DEFAULT_EPOCHS.get(name)
            row = {"model": name, "work": WORK[name].format(e=epochs, n=args.negatives),
                   "nnz": X.nnz, "users": X.shape[0], "items": X.shape[1], "threads": threads,
                   "fit_s": statistics.median(times), "min_s": min(times),
                   "max_s": max(times), "peak_mem_gib": memory / 2 ** 30,
                   "csr_gib": csr_bytes / 2 ** 30, "mem_over_csr": memory / csr_bytes,
                   "note": note}
            if model is not None and name in serving:
                row.update(_serve(model, X, test, threads, name in args.evaluate,
                                  name in args.recommend))
            rows.append(row)
            write_csv(f"{args.out}_quick" if args.quick else args.out, rows)  # kept if killed
            del model
            extra = "".join(f"  {key} {row[key]:.3f}" for key in
                            ("eval_s", "eval_over_csr", "recommend_s", "recommend_over_csr")
                            if key in row)
            print(f"nnz {X.nnz:>11,}  {name:<12} {row['fit_s']:9.3f} s  "
                  f"{row['peak_mem_gib']:.3f} GiB  {row['mem_over_csr']:.2f}x CSR{extra}"
                  f"  {note[:90]}", flush=True)
    for name in {r["model"] for r in rows}:
        mine = [r for r in rows if r["model"] == name]
        slope = exponent([r["nnz"] for r in mine], [r["fit_s"] for r in mine])
        for r in mine:
            r["exponent"] = slope
    print(f"\nFit time vs nnz ({X.shape[1]} items, {args.per_user} per user, {threads} threads)")
    print_table(rows, ["model", "nnz", "users", "fit_s", "peak_mem_gib", "mem_over_csr",
                       "exponent"])
    write_csv(f"{args.out}_quick" if args.quick else args.out, rows)


if __name__ == "__main__":
    main()
