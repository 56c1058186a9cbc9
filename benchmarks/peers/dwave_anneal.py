"""Peer worker: dwave-samplers' SimulatedAnnealingSampler on QUBOs from an npz (a, B).

Runs in the peers' virtualenv. Prints JSON: wall seconds of the sample_qubo calls and each
problem's lowest energy. Modes: "per-item" (one call per QUBO, as an NBMF adapter calls it) and
"block" (all QUBOs as one block-diagonal problem in a single call, the peer's fastest use;
each problem's energy is the best over the reads).

    python dwave_anneal.py problems.npz --mode per-item --num-reads 10 --num-sweeps 100
"""

import argparse
import json
import time

import numpy as np
from dwave.samplers import SimulatedAnnealingSampler


def qubo(a, B, offset=0):
    k = a.size
    Q = {(offset + i, offset + i): float(a[i]) for i in range(k)}
    for i in range(k):
        for j in range(i + 1, k):
            if B[i, j] != 0:
                Q[(offset + i, offset + j)] = float(B[i, j])
    return Q


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("problems")
    parser.add_argument("--mode", choices=["per-item", "block"], default="per-item")
    parser.add_argument("--num-reads", type=int, default=10)
    parser.add_argument("--num-sweeps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with np.load(args.problems, allow_pickle=False) as npz:
        a, B = npz["a"], npz["B"]
    n, k = a.shape
    sampler = SimulatedAnnealingSampler()
    kwargs = dict(num_reads=args.num_reads, num_sweeps=args.num_sweeps)
    if args.mode == "per-item":
        problems = [qubo(a[r], B[r]) for r in range(n)]
        start = time.perf_counter()
        results = [sampler.sample_qubo(Q, seed=args.seed + r, **kwargs)
                   for r, Q in enumerate(problems)]
        seconds = time.perf_counter() - start
        energies = [float(res.first.energy) for res in results]
    else:
        Q = {}
        for r in range(n):
            Q.update(qubo(a[r], B[r], offset=r * k))
        start = time.perf_counter()
        result = sampler.sample_qubo(Q, seed=args.seed, **kwargs)
        seconds = time.perf_counter() - start
        samples = result.record.sample  # reads x variables, columns in result.variables order
        order = np.argsort(np.asarray(list(result.variables)))
        states = samples[:, order].reshape(len(samples), n, k).astype(np.float64)
        per_read = (np.einsum("snk,nk->sn", states, a)
                    + 0.5 * np.einsum("sni,nij,snj->sn", states, B, states))
        energies = per_read.min(axis=0).tolist()
    print(json.dumps({"seconds": seconds, "energies": energies}))


if __name__ == "__main__":
    main()
