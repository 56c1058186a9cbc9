"""Item-item similarity helpers shared by the neighbourhood models (ItemKNN, sparse EASE),
below the models so that no model imports another."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._threads import resolve_num_threads
from recsys.topk import topk_scores


def shrunk_cosine_neighbours(gram_rows: Callable[[int, int], sp.spmatrix], norms: np.ndarray,
                             k: int, shrink: float = 0.0, block_size: int = 512,
                             num_threads: int = 0, show_progress: bool = False,
                             desc: str = "neighbours") -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` most similar items by shrunk cosine, ``g_ij / (n_i n_j + shrink)``.

    ``gram_rows(start, stop)`` returns rows ``start:stop`` of the Gram matrix ``X^T X`` (sparse);
    ``norms`` are the item norms ``sqrt(diag(X^T X))``. Items never neighbour themselves; a zero
    denominator gives similarity 0. Works block by block (``block_size`` x n_items dense).

    Returns ``(ids, similarities)``, each ``(n_items, k)``, best first (ties: lower index).
    """
    n_items = norms.shape[0]
    threads = resolve_num_threads(num_threads)
    ids = np.empty((n_items, k), dtype=np.int32)
    sims = np.empty((n_items, k), dtype=norms.dtype)
    for start in tqdm(range(0, n_items, block_size), desc=desc, disable=not show_progress):
        stop = min(start + block_size, n_items)
        dots = gram_rows(start, stop).toarray().astype(norms.dtype, copy=False)
        denom = np.outer(norms[start:stop], norms) + norms.dtype.type(shrink)
        with np.errstate(divide="ignore", invalid="ignore"):
            block = np.where(denom > 0, dots / denom, 0.0).astype(norms.dtype)
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # no self-neighbour
        ids[start:stop], sims[start:stop] = topk_scores(block, k, num_threads=threads,
                                                        copy=False)
    return ids, sims


__all__ = ["shrunk_cosine_neighbours"]
