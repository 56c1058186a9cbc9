"""New users without a refit: fold-in quality and ``partial_fit`` against a full refit.

1. Fold-in on held-out users (``strong_generalization``: 10% of the users, 20% of each one's
   interactions held out as targets): every implicit-feedback model is fitted on the other
   users, then scores the held-out users from their remaining history (rows beyond the fitted
   users: ``fold_in``). Reference: the same model refitted with those histories in its
   training data. Recall@20 / NDCG@20 on the targets, training and fold-in items excluded.
2. ``partial_fit`` for 1%, 5% and 20% new users (the last rows of a random permutation of the
   training users), and EASE's for 1% changed users (20% of each one's interactions missing
   from the fitted matrix): update seconds against a refit on the updated matrix, 2 threads,
   and how far the update is from the refit (EASE: max |B - B_refit| / max |B_refit|, exact in
   exact arithmetic; ALS: the new users' Recall@20 on their test items after the update and
   after the refit).

Writes benchmarks/results/updates_foldin.csv and updates_partial.csv.

    python benchmarks/bench_updates.py [--quick] [--data ml-1m-lcfn gowalla-lightgcn:20000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
from _common import EASE_L2, load_split, machine, print_table, write_csv

from recsys.evaluation import evaluate
from recsys.models import ALS, BPR, EASE, ItemKNN, MostPopular, SimpleX


def models(name: str, quick: bool) -> dict:
    epochs = 3 if quick else 10
    return {
        "MostPopular": lambda: MostPopular(),
        "ItemKNN": lambda: ItemKNN(neighbors=200, num_threads=2),
        "EASE": lambda: EASE(l2=EASE_L2[name.partition(":")[0]], num_threads=2),
        "ALS": lambda: ALS(factors=64, epochs=15, l2=1.0, random_state=0,
                           num_threads=2),
        "BPR": lambda: BPR(factors=64, epochs=100, random_state=0, num_threads=2),
        "SimpleX": lambda: SimpleX(negatives=200, epochs=epochs, random_state=0,
                                   num_threads=2),
    }


def fold_in_table(name: str, train: sp.csr_matrix, quick: bool) -> list[dict]:
    from recsys.data import Interactions
    from recsys.data.splits import strong_generalization

    split = strong_generalization(Interactions.from_csr(train), test_users=0.1, fold_out=0.2,
                                  random_state=0)
    held = np.flatnonzero(np.diff(split.fold_in.matrix.indptr) > 0)
    kept = np.setdiff1d(np.arange(train.shape[0]), held)
    fitted_on = split.train.matrix[kept]
    history = sp.vstack([fitted_on, split.fold_in.matrix[held]]).tocsr()  # new users last
    targets = sp.vstack([sp.csr_matrix(fitted_on.shape, dtype=np.float32),
                         split.test.matrix[held]]).tocsr()
    rows = []
    for model_name, make in models(name, quick).items():
        model = make().fit(fitted_on)
        start = time.perf_counter()
        folded = evaluate(model, history, targets, k=20, metrics=("recall", "ndcg"))
        seconds = time.perf_counter() - start
        refit = make().fit(history)
        ref = evaluate(refit, history, targets, k=20, metrics=("recall", "ndcg"))
        rows.append({"data": name, "model": model_name, "held_users": held.size,
                     "fold_in_recall_at_20": folded["recall_at_20"],
                     "fold_in_ndcg_at_20": folded["ndcg_at_20"],
                     "refit_recall_at_20": ref["recall_at_20"],
                     "refit_ndcg_at_20": ref["ndcg_at_20"],
                     "fold_in_over_refit": folded["ndcg_at_20"] / ref["ndcg_at_20"],
                     "score_s": seconds})
        print(rows[-1], flush=True)
    return rows


def partial_table(name: str, train: sp.csr_matrix, test: sp.csr_matrix,
                  quick: bool) -> list[dict]:
    rng = np.random.default_rng(0)
    order = rng.permutation(train.shape[0])
    grown, grown_test = train[order], test[order]
    rows = changed_rows(name, train, quick, rng)
    for fraction in (0.01, 0.05, 0.2):
        n_new = max(1, int(round(fraction * train.shape[0])))
        before = grown[:-n_new]
        new = np.arange(grown.shape[0] - n_new, grown.shape[0])
        targets = sp.csr_matrix(grown_test.multiply(
            sp.csr_matrix(np.isin(np.arange(grown.shape[0]), new)[:, None].astype(np.float32))))
        for model_name in ("EASE", "ALS"):
            make = models(name, quick)[model_name]
            model = make().fit(before)
            start = time.perf_counter()
            model.partial_fit(grown)
            update_s = time.perf_counter() - start
            start = time.perf_counter()
            refit = make().fit(grown)
            refit_s = time.perf_counter() - start
            row = {"data": name, "model": model_name, "new_users": n_new,
                   "fraction": fraction, "update_s": update_s, "refit_s": refit_s,
                   "refit_over_update": refit_s / update_s, "max_rel_diff_B": None,
                   "update_recall_at_20": None, "refit_recall_at_20": None}
            if model_name == "EASE":
                row["max_rel_diff_B"] = float(np.abs(model.B_ - refit.B_).max()
                                              / np.abs(refit.B_).max())
            else:
                row["update_recall_at_20"] = evaluate(model, grown, targets, k=20,
                                                      metrics=("recall",))["recall_at_20"]
                row["refit_recall_at_20"] = evaluate(refit, grown, targets, k=20,
                                                     metrics=("recall",))["recall_at_20"]
            rows.append(row)
            print(row, flush=True)
    return rows


def changed_rows(name: str, train: sp.csr_matrix, quick: bool, rng) -> list[dict]:
    """EASE's exact update when 1% of the fitted users change: each one's row lacks a random
    20% of its interactions in the fitted matrix and has them back in the updated one."""
    changed = np.sort(rng.choice(train.shape[0], max(1, train.shape[0] // 100), replace=False))
    keep = np.ones(train.nnz, dtype=bool)
    for u in changed:
        start, stop = train.indptr[u], train.indptr[u + 1]
        drop = rng.choice(stop - start, (stop - start) // 5, replace=False)
        keep[start + drop] = False
    from recsys.data.interactions import select_entries

    before = select_entries(train, keep)
    make = models(name, quick)["EASE"]
    model = make().fit(before)
    start = time.perf_counter()
    model.partial_fit(train, users=changed, previous=before)
    update_s = time.perf_counter() - start
    start = time.perf_counter()
    refit = make().fit(train)
    refit_s = time.perf_counter() - start
    row = {"data": name, "model": "EASE (changed users)", "new_users": changed.size,
           "fraction": changed.size / train.shape[0], "update_s": update_s, "refit_s": refit_s,
           "refit_over_update": refit_s / update_s,
           "max_rel_diff_B": float(np.abs(model.B_ - refit.B_).max() / np.abs(refit.B_).max()),
           "update_recall_at_20": None, "refit_recall_at_20": None}
    print(row, flush=True)
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ML-100K only (CI smoke run)")
    parser.add_argument("--data", nargs="*", default=None)
    parser.add_argument("--parts", nargs="*", choices=("foldin", "partial"),
                        default=["foldin", "partial"], help="tables to measure (the other "
                        "table's CSV is left as it is)")
    args = parser.parse_args()
    names = args.data or (["ml-100k"] if args.quick else
                          ["ml-1m-lcfn", "gowalla-lightgcn:20000"])
    fold, partial = [], []
    for name in names:
        try:
            train, test = load_split(name)
        except FileNotFoundError as err:
            print(f"skipping {name}: {err}")
            continue
        if "foldin" in args.parts:
            fold += fold_in_table(name, train, args.quick)
        if "partial" in args.parts:
            partial += partial_table(name, train, test, args.quick)
    if not fold and not partial:
        print("no data set available")
        return
    suffix = "_quick" if args.quick else ""
    if fold:
        print(f"fold-in of held-out users against a refit ({machine()})")
        print_table(fold, ["data", "model", "held_users", "fold_in_ndcg_at_20",
                           "refit_ndcg_at_20", "fold_in_over_refit", "score_s"])
        write_csv("updates_foldin" + suffix, fold)
    if partial:
        print("partial_fit for new users against a refit")
        print_table(partial, ["data", "model", "new_users", "update_s", "refit_s",
                              "refit_over_update", "max_rel_diff_B", "update_recall_at_20",
                              "refit_recall_at_20"])
        write_csv("updates_partial" + suffix, partial)


if __name__ == "__main__":
    main()
