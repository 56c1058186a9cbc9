"""Peer worker: RecBole's SimpleX (PyTorch, CPU) training speed on a given train matrix.

Runs in the torch peers' virtualenv (``make bench-peers-torch``). Writes the matrix as RecBole
atomic files, builds RecBole's own dataset, dataloader (uniform negative sampling, ``negatives``
per positive) and SimpleX model, then times its training loop (the dataloader's sampling, the
forward pass, backward and Adam, as in ``Trainer._train_epoch``) over the first ``--batches``
batches of an epoch after ``--warmup`` untimed ones. Prints JSON: seconds per positive
(median, min, max over the timed batches), the extrapolated epoch seconds and the set-up.

    python recbole_simplex.py TRAIN.npz --negatives 1000 --dim 64 --threads 2
"""

import argparse
import importlib.metadata
import json
import logging
import os
import statistics
import tempfile
import time

import scipy.sparse as sp


def write_atomic(folder: str, X: sp.csr_matrix) -> None:
    """RecBole benchmark files: all of X for training, one row each for valid / test."""
    coo = X.tocoo()
    os.makedirs(os.path.join(folder, "bench"), exist_ok=True)
    for part, rows in (("train", slice(None)), ("valid", slice(0, 1)), ("test", slice(1, 2))):
        with open(os.path.join(folder, "bench", f"bench.{part}.inter"), "w") as fh:
            fh.write("user_id:token\titem_id:token\n")
            for u, i in zip(coo.row[rows], coo.col[rows]):
                fh.write(f"{u}\t{i}\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("--negatives", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--gamma", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-positives", type=int, default=256)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import SimpleX
    from recbole.utils import init_seed

    torch.set_num_threads(args.threads)
    X = sp.load_npz(args.train).tocsr()
    folder = tempfile.mkdtemp(prefix="recbole-bench-")
    write_atomic(folder, X)
    config = Config(model="SimpleX", dataset="bench", config_dict={
        "data_path": folder, "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]}, "device": "cpu", "use_gpu": False,
        "embedding_size": args.dim, "gamma": args.gamma, "margin": 0.9, "negative_weight": 10,
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": args.negatives,
                                  "alpha": 1.0, "dynamic": False, "candidate_num": 0},
        "train_batch_size": args.negatives * args.batch_positives, "epochs": 1,
        "seed": 0, "reproducibility": True, "show_progress": False, "state": "ERROR",
        "save_dataset": False, "save_dataloaders": False, "checkpoint_dir": folder})
    logging.getLogger().setLevel(logging.ERROR)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    model = SimpleX(config, train_data.dataset)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    positives, times = dataset.inter_num - 2, []
    batch_iter = iter(train_data)
    start = time.perf_counter()
    for b in range(args.warmup + args.batches):
        interaction = next(batch_iter)  # RecBole samples the negatives here
        optimizer.zero_grad()
        loss = model.calculate_loss(interaction)
        loss.backward()
        optimizer.step()
        now = time.perf_counter()
        n_pos = len(interaction) // args.negatives
        if b >= args.warmup:
            times.append((now - start) / n_pos)
        start = now
    per_positive = statistics.median(times)
    print(json.dumps({
        "seconds_per_positive": {"median": per_positive, "min": min(times),
                                 "max": max(times)},
        "epoch_seconds": per_positive * positives, "positives": int(positives),
        "timed_batches": args.batches, "batch_positives": args.batch_positives,
        "torch": torch.__version__, "recbole": importlib.metadata.version("recbole"),
        "threads": torch.get_num_threads(),
        "loss": loss.item()}))


if __name__ == "__main__":
    main()
