"""Shared helpers for the benchmark scripts: timing with repetitions, tables, CSV output."""

from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.sparse as sp

RESULTS = Path(__file__).parent / "results"
#: The shared data sets of the accuracy tables, in the page's order (the papers' splits first)
DATASETS = ["ml-1m-lcfn", "gowalla-lightgcn", "ml-100k", "lastfm-hetrec"]


def timed(repeats: int, fn: Callable, *args, **kwargs) -> dict[str, float]:
    """Run ``fn(*args, **kwargs)`` once to warm up, then ``repeats`` times.

    Returns the median, min and max wall seconds.
    """
    fn(*args, **kwargs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times)}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_memory(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    """Run ``fn`` once; return its result and the peak resident memory it added, in bytes.

    Linux: the process's high-water mark (VmHWM) is reset (``/proc/self/clear_refs``) before
    the call, so the peak is the call's own, minus the resident set before it (C and BLAS
    allocations included, which tracemalloc would miss). Elsewhere: NaN.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        before = _status_kib("VmRSS")
    except OSError:
        return fn(*args, **kwargs), float("nan")
    result = fn(*args, **kwargs)
    return result, max(_status_kib("VmHWM") - before, 0) * 1024.0


def power_law_matrix(n_users: int, n_items: int, per_user: int, rng,
                     exponent: float = 0.8) -> sp.csr_matrix:
    """``per_user`` items per user drawn with popularity ~ rank^-exponent (duplicates merged),
    value 1 (a synthetic implicit-feedback matrix with a realistic long tail)."""
    weights = 1.0 / np.arange(1, n_items + 1) ** exponent
    weights /= weights.sum()
    cols = rng.choice(n_items, size=(n_users, per_user), p=weights)
    X = sp.csr_matrix((np.ones(cols.size, np.float32), cols.ravel(),
                       np.arange(0, cols.size + 1, per_user)), shape=(n_users, n_items))
    X.sum_duplicates()
    X.data[:] = 1.0
    return X


#: EASE's l2 per data set (chosen on validation; bench_ease.py and bench_updates.py)
EASE_L2 = {"ml-100k": 500.0, "ml-1m-lcfn": 1000.0, "gowalla-lightgcn": 80.0}


def load_split(name: str) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(train, test) positives of ``name`` (ML-100K: fold u1, ratings >= 4); ``name:N`` keeps
    only its N most popular training items, in both parts."""
    from recsys.datasets import load

    base, _, top = name.partition(":")
    if base == "ml-100k":
        split = load(base, split="u1", download=False)
        train, test = split.train.binarize(4).matrix, split.test.binarize(4).matrix
    else:
        split = load(base, download=False)
        train, test = split.train.matrix, split.test.matrix
    if top:
        popular = np.sort(np.argsort(-np.bincount(train.indices, minlength=train.shape[1]),
                                     kind="stable")[:int(top)])
        train, test = train[:, popular].tocsr(), test[:, popular].tocsr()
    return train, test


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(widths[c]) for c in columns))


def write_csv(name: str, rows: list[dict]) -> Path:
    """Write rows atomically to benchmarks/results/<name>.csv."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.csv"
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        # rows of a partial run may carry columns the kept rows lack: the union, first seen first
        writer = csv.DictWriter(fh, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def merged_rows(name: str, rows: list[dict], key: tuple[str, ...] = ("data",)) -> list[dict]:
    """The rows of results/<name>.csv whose ``key`` no row of ``rows`` has, then ``rows``:
    a partial run (some data sets, some models) replaces only what it ran."""
    path = RESULTS / f"{name}.csv"
    if not path.exists():
        return list(rows)
    fresh = {tuple(str(r[k]) for k in key) for r in rows}
    with open(path, newline="") as fh:
        kept = [r for r in csv.DictReader(fh) if tuple(r[k] for k in key) not in fresh]
    return kept + list(rows)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


PEERS = Path(__file__).parent / ".peers"  # make bench-peers
TORCH_PEERS = Path(__file__).parent / ".peers-torch"  # make bench-peers-torch


def run_peer(script: str, *args: str, timeout: float = 3600, venv: Path = PEERS) -> dict:
    """Run ``benchmarks/peers/<script>`` in a peers' virtualenv and parse its JSON output.

    Returns ``{"error": "..."}`` (the exact reason) when the virtualenv is missing (create it
    with ``make bench-peers`` or ``make bench-peers-torch``) or the peer fails, so a table can
    list the peer as not run.
    """
    import json
    import subprocess

    python = venv / "bin" / "python"
    if not python.exists():
        target = "bench-peers-torch" if venv == TORCH_PEERS else "bench-peers"
        return {"error": f"no peers virtualenv at {venv} (make {target})"}
    path = Path(__file__).parent / "peers" / script
    try:
        proc = subprocess.run([str(python), str(path), *args], capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"{script} ran past {timeout:.0f} s"}
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])
