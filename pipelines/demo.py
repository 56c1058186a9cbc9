"""Main job: baselines on MovieLens 100K (official u1 fold, ratings >= 4 as positives).

Loads the data through ``recsys.datasets.load`` (cache in $RECSYS_DATA_HOME, downloaded when
missing), fits MostPopular, ItemKNN, ALS and BPR on the training positives, evaluates full
rankings with training items excluded and prints NDCG@10 / Recall@10 (and more) per model.

    python pipelines/demo.py [--split u1] [--threshold 4] [--seed 0] [--quiet]
"""

from __future__ import annotations

import argparse
import logging
import time

from threadpoolctl import threadpool_limits

from recsys.datasets import load
from recsys.evaluation import evaluate
from recsys.models import ALS, BPR, ItemKNN, MostPopular

logger = logging.getLogger("recsys.demo")


def main() -> None:
    parser = argparse.ArgumentParser(description="Baselines on MovieLens 100K")
    parser.add_argument("--split", default="u1", help="official fold: u1..u5, ua, ub")
    parser.add_argument("--threshold", type=float, default=4.0, help="ratings >= this count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="only the results table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")

    split = load("ml-100k", split=args.split)
    train, test = split.train.binarize(args.threshold), split.test.binarize(args.threshold)
    logger.info("ml-100k %s: %d train / %d test positives (ratings >= %g), %d users x %d items",
                args.split, train.nnz, test.nnz, args.threshold, *train.shape)
    models = [
        MostPopular(),
        ItemKNN(neighbors=100),
        ALS(factors=64, regularization=0.05, iterations=15, random_state=args.seed),
        BPR(factors=64, learning_rate=0.01, iterations=100, random_state=args.seed),
    ]
    rows = []
    with threadpool_limits(1, "blas"):
        for model in models:
            start = time.perf_counter()
            model.fit(train)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            metrics = evaluate(model, train, test, k=(10,))
            eval_s = time.perf_counter() - start
            logger.info("%s fitted in %.2fs, evaluated in %.3fs", type(model).__name__, fit_s,
                        eval_s)
            rows.append((type(model).__name__, metrics, fit_s))

    print(f"\nMovieLens 100K, fold {args.split}, ratings >= {args.threshold:g} as positives; "
          f"full ranking, training items excluded, {rows[0][1]['n_users']} test users")
    header = f"{'model':<12}{'NDCG@10':>9}{'Recall@10':>11}{'Prec@10':>9}{'MAP@10':>8}" \
             f"{'MRR@10':>8}{'Cover@10':>10}{'fit s':>8}"
    print(header)
    print("-" * len(header))
    for name, m, fit_s in rows:
        print(f"{name:<12}{m['ndcg_at_10']:>9.4f}{m['recall_at_10']:>11.4f}"
              f"{m['precision_at_10']:>9.4f}{m['map_at_10']:>8.4f}{m['mrr_at_10']:>8.4f}"
              f"{m['coverage_at_10']:>10.4f}{fit_s:>8.2f}")


if __name__ == "__main__":
    main()
