"""Peer worker: Surprise's NMF / SVD / SVD++ on one official ML-100K fold (u1.base / u1.test).

Runs in the peers' virtualenv. Prints JSON per algorithm: fit seconds (median, min, max of the
repeats, after one warm-up fit unless ``--no-warmup``), test RMSE and MAE.

    python surprise_fit.py ML100K_FOLDER --fold u1 --repeats 3 [--algorithms NMF SVD SVD++]
"""

import argparse
import json
import statistics
import time

from surprise import NMF, SVD, Dataset, Reader, SVDpp, accuracy
from surprise.model_selection import PredefinedKFold

ALGORITHMS = {
    "NMF": lambda: NMF(random_state=0),
    "NMF-biased": lambda: NMF(biased=True, random_state=0),
    "SVD": lambda: SVD(random_state=0),
    "SVD++": lambda: SVDpp(random_state=0),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--fold", default="u1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--algorithms", nargs="+", default=["NMF", "NMF-biased", "SVD"],
                        choices=list(ALGORITHMS))
    parser.add_argument("--no-warmup", action="store_true")
    args = parser.parse_args()
    reader = Reader(line_format="user item rating timestamp", sep="\t")
    folder = args.folder.rstrip("/") + "/"
    data = Dataset.load_from_folds(
        [(folder + f"{args.fold}.base", folder + f"{args.fold}.test")], reader)
    trainset, testset = next(PredefinedKFold().split(data))
    out = {}
    for name in args.algorithms:
        make = ALGORITHMS[name]
        if not args.no_warmup:
            make().fit(trainset)
        times = []
        for _ in range(args.repeats):
            algo = make()
            start = time.perf_counter()
            algo.fit(trainset)
            times.append(time.perf_counter() - start)
        predictions = algo.test(testset)
        out[name] = {"median": statistics.median(times), "min": min(times), "max": max(times),
                     "rmse": accuracy.rmse(predictions, verbose=False),
                     "mae": accuracy.mae(predictions, verbose=False)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
