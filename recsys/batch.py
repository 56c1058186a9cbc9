"""Batch recommendation: top-N per user with raw ids, written to Parquet atomically.

``recommend_to_parquet`` scores users in batches in this process; ``recommend_sharded`` runs
the same job over contiguous user shards as tasks on a Dask cluster (a LocalCluster by
default), each task loading the model and the data itself (only paths and ids travel) and
writing its own part. Every file is written to a temporary name in the target folder and
renamed, so a killed job never leaves a partial file behind; a sharded run writes
``_SUCCESS`` after its last part.

Output columns: ``user`` (raw id), ``rank`` (1..N), ``item`` (raw id), ``score`` (float32).
What is excluded from a user's list is chosen with ``exclude`` (:data:`EXCLUDE`): by default
every training interaction of the user, whatever its value (a movie rated 1 is as "seen" as
one rated 5), not only the positives the model scores from.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from recsys.data import Interactions
from recsys.models.base import Recommender

logger = logging.getLogger(__name__)


#: ``exclude`` choices: every training interaction (``"training"``), only the training
#: positives the model scores from (``"positives"``), or nothing (``"none"``).
EXCLUDE = ("training", "positives", "none")


def recommend_frame(model: Recommender, history: Interactions, users: np.ndarray, k: int,
                    batch_size: int = 4096, show_progress: bool = False,
                    seen: Interactions | None = None, exclude_seen: bool = True):
    """A pyarrow Table of the top-``k`` items of ``users`` (row indices of ``history``).

    ``history`` is what the model scores from; its items are excluded, and so are those of
    ``seen`` (same index space; e.g. every training interaction, rated or not) when given;
    ``exclude_seen=False`` excludes nothing. ``k`` above the catalogue lists every candidate.
    """
    import pyarrow as pa

    X = history.matrix
    extra = None
    if seen is not None:
        if seen.users != history.users or seen.items != history.items:
            raise ValueError("seen and history must share their id maps")
        extra = seen.matrix
    parts = []
    for start in tqdm(range(0, users.size, batch_size), desc="recommend",
                      disable=not show_progress):
        block = users[start:start + batch_size]
        ids, scores = model.recommend(block, X, k=k, exclude_seen=exclude_seen,
                                      filter_items=extra if exclude_seen else None)
        width = ids.shape[1]  # k, or the catalogue when k is larger
        valid = ids >= 0  # rows run short only when a user has fewer than k unseen items
        rows = np.repeat(block, width).reshape(block.size, width)[valid]
        ranks = np.tile(np.arange(1, width + 1, dtype=np.int32), (block.size, 1))[valid]
        parts.append((rows, ranks, ids[valid], scores[valid]))
    rows, ranks, items, scores = (np.concatenate(p) for p in zip(*parts)) if parts else (
        np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0))
    return pa.table({"user": history.users.to_raw(rows), "rank": ranks.astype(np.int32),
                     "item": history.items.to_raw(items),
                     "score": np.asarray(scores, dtype=np.float32)})


def _stale_temporaries(folder: Path, name: str) -> list[Path]:
    return list(folder.glob(f".{name}.*.tmp"))


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp)`` on a temporary file in ``path``'s folder, then rename it to
    ``path``: a killed or failed write leaves no partial file (and the temporaries of an
    earlier killed run are removed first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in _stale_temporaries(path.parent, path.name):  # left by a killed run
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_parquet_atomic(table, path: str | os.PathLike) -> Path:
    """Write ``table`` to ``path`` through a temporary file in the same folder + rename."""
    import pyarrow.parquet as pq

    return atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def write_csv_atomic(frame, path: str | os.PathLike) -> Path:
    """Write a DataFrame to ``path`` as CSV through a temporary file + rename."""
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def recommend_to_parquet(model: Recommender, history: Interactions, k: int, out,
                         users=None, batch_size: int = 4096, show_progress: bool = True,
                         seen: Interactions | None = None, exclude_seen: bool = True) -> Path:
    """Top-``k`` for ``users`` (row indices; default every user) into one Parquet file
    (``seen``: more items to exclude, see :func:`recommend_frame`)."""
    users = np.arange(history.shape[0]) if users is None else np.asarray(users)
    table = recommend_frame(model, history, users, k, batch_size, show_progress, seen,
                            exclude_seen)
    path = write_parquet_atomic(table, out)
    logger.info("wrote %d recommendations for %d users to %s", table.num_rows, users.size, path)
    return path


def job_inputs(exp, exclude: str = "training") -> tuple[Interactions, dict]:
    """``(history, exclusion)`` of a prepared experiment for a batch job: the positives the
    model scores from, and :func:`recommend_to_parquet`'s ``seen`` / ``exclude_seen``
    arguments for ``exclude`` (one of :data:`EXCLUDE`)."""
    if exclude not in EXCLUDE:
        raise ValueError(f"exclude must be one of {EXCLUDE}, got {exclude!r}")
    return exp.history, {"seen": exp.seen if exclude == "training" else None,
                         "exclude_seen": exclude != "none"}


def recommend_raw_to_parquet(model: Recommender, history, k: int, out, users=None,
                             exclude: str = "training", batch_size: int = 4096) -> dict:
    """:meth:`Recommender.recommend_raw` of ``users`` (raw ids; default every user of
    ``history``, raw-id interactions) into one Parquet file, atomically. Returns the counts
    of :meth:`~Recommender.recommend_raw` (users by source, ignored rows) and ``rows``."""
    import pyarrow as pa

    frame = model.recommend_raw(users, history, k, exclude=exclude, batch_size=batch_size)
    path = write_parquet_atomic(pa.Table.from_pandas(frame, preserve_index=False), out)
    counts = {**frame.attrs["counts"], "rows": len(frame)}
    logger.info("wrote %d recommendations for %d users to %s", len(frame), counts["users"],
                path)
    return counts


def _score_shard(model_path: str, data: dict, users: list, k: int, part: str,
                 batch_size: int, exclude: str = "training") -> dict:
    """One Dask task: load the model and the data, score ``users`` (raw ids), write ``part``."""
    from recsys.data.spec import DataSpec

    model = Recommender.load(model_path)
    history = DataSpec.from_dict(data).read()
    return recommend_raw_to_parquet(model, history, k, part, np.asarray(users), exclude,
                                    batch_size)


def clear_output_folder(out_dir: Path) -> None:
    """Remove what an earlier sharded run left in ``out_dir`` (its ``_SUCCESS``, its parts and
    the temporary files of a killed run); nothing else is touched."""
    (out_dir / "_SUCCESS").unlink(missing_ok=True)
    for old in [*out_dir.glob("part-*.parquet"), *out_dir.glob(".part-*.parquet.*.tmp")]:
        old.unlink(missing_ok=True)


def recommend_sharded(model_path, data, k: int, out_dir, n_shards: int,
                      scheduler: str | None = None, data_home=None, batch_size: int = 4096,
                      n_workers: int | None = None, exclude: str = "training") -> dict:
    """Top-``k`` for every user of ``data`` over ``n_shards`` user shards on Dask.

    ``data``: a data set name or a :class:`~recsys.data.spec.DataSpec`; every interaction of
    it is the history (scored from, and excluded per ``exclude``). ``scheduler``: a
    ``tcp://host:port`` address, or None for a LocalCluster of ``n_workers``
    single-threaded processes. Writes ``part-00000.parquet`` ... and ``_SUCCESS`` into
    ``out_dir`` (after clearing the parts and ``_SUCCESS`` of an earlier run there, so two
    runs never mix); each task reads the model and the data itself (only paths and ids
    travel). Returns the summed counts (rows, users by source) and the part paths. recsys
    must be installed on the workers (the Dask scheduler also unpickles the task graph).
    """
    from recsys.data.spec import DataSpec
    from recsys.distributed import dask_client

    spec = DataSpec(dataset=data) if isinstance(data, str) else data
    if data_home is not None and spec.data_home is None:
        spec = spec.replace(data_home=str(data_home))
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    if exclude not in EXCLUDE:
        raise ValueError(f"exclude must be one of {EXCLUDE}, got {exclude!r}")
    users = spec.read().users.raw_ids
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_output_folder(out_dir)
    bounds = np.linspace(0, users.size, n_shards + 1).astype(int)
    description = {**spec.to_dict(), "data_home": spec.data_home}
    with dask_client(scheduler, n_workers or min(n_shards, os.cpu_count() or 1)) as client:
        futures = [client.submit(_score_shard, str(model_path), description,
                                 users[bounds[i]:bounds[i + 1]].tolist(), k,
                                 str(out_dir / f"part-{i:05d}.parquet"), batch_size, exclude,
                                 pure=False)
                   for i in range(n_shards)]
        results = client.gather(futures)
    (out_dir / "_SUCCESS").write_text("")
    counts = {key: sum(r[key] for r in results) for key in results[0]}
    logger.info("wrote %d parts for %d users to %s", n_shards, users.size, out_dir)
    return {**counts, "parts": [str(out_dir / f"part-{i:05d}.parquet")
                                for i in range(n_shards)]}


__all__ = ["EXCLUDE", "atomic_write", "clear_output_folder", "job_inputs", "recommend_frame",
           "recommend_raw_to_parquet", "recommend_sharded", "recommend_to_parquet",
           "write_csv_atomic", "write_parquet_atomic"]
