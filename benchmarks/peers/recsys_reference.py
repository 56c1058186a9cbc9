"""SimpleX epochs of whichever recsys build is importable (``PYTHONPATH`` picks one): the
current tree or a reference build (an older commit's checkout with its compiled kernels), so
that bench_simplex.py times both in one run under the same conditions.

    python recsys_reference.py train.npz --params '{"negatives": 1000}' --repeats 3
    python recsys_reference.py train.npz --params '{...}' --validation valid.npz --epochs 10

Prints one JSON line: the seconds of each timed one-epoch fit (set-up included; after a
warm-up), or with ``--validation`` the validation NDCG@20 / Recall@20 after every epoch of one
fit, each epoch's training seconds (evaluation excluded) and where recsys was imported from.
"""

from __future__ import annotations

import argparse
import json
import time

import scipy.sparse as sp

import recsys
from recsys.evaluation import evaluate
from recsys.models import SimpleX


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train")
    parser.add_argument("--params", default="{}")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--validation")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    X = sp.load_npz(args.train).tocsr()
    params = json.loads(args.params)
    out = {"recsys": recsys.__file__}
    if args.validation is None:
        SimpleX(**{**params, "epochs": 1}).fit(X)  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            SimpleX(**{**params, "epochs": 1}).fit(X)
            times.append(time.perf_counter() - start)
        out["epoch_s"] = times
    else:
        V = sp.load_npz(args.validation).tocsr()
        ticks, quality = [time.perf_counter()], []

        def callback(epoch, model):  # time the epoch, then evaluate off the clock
            ticks.append(time.perf_counter())
            quality.append(evaluate(model, X, V, k=20, metrics=("ndcg", "recall")))
            ticks.append(time.perf_counter())

        SimpleX(**{**params, "epochs": args.epochs}).fit(X, callback=callback)
        out["epoch_s"] = [ticks[2 * e + 1] - ticks[2 * e] for e in range(args.epochs)]
        out["ndcg_at_20"] = [q["ndcg_at_20"] for q in quality]
        out["recall_at_20"] = [q["recall_at_20"] for q in quality]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
