"""Item-item similarity helpers shared by the neighbourhood models (ItemKNN, sparse EASE),
below the models so that no model imports another."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._ext._gram import rows_times_csr
from recsys._sparse import column_counts, transpose_csr
from recsys._threads import resolve_num_threads
from recsys.topk import topk_scores

#: Elements of one dense block of Gram rows (256 MiB of float32): the block's row count is
#: this over the catalogue size, so memory stays bounded at any number of items.
BLOCK_ELEMENTS = 1 << 26


class GramRows:
    """Dense rows of the Gram matrix ``G = X^T X`` on demand, never the whole matrix.

    ``GramRows(X, num_threads)(rows)`` is ``G[rows]`` as a dense ``(len(rows), n_items)``
    array, computed from X and its transpose (kept once) by the ``rows_times_csr`` kernel; its
    ``norms`` are ``sqrt(diag G)``. Peak memory: the transpose (one CSR) plus the block.
    """

    def __init__(self, X: sp.csr_matrix, num_threads: int = 0, dtype=np.float32):
        self.X = X
        self.XT = transpose_csr(X)  # items x users, sorted rows
        self.dtype = np.dtype(dtype)
        # X's values in the block's dtype, converted once (the kernel multiplies in it)
        self.values = X.data if self.dtype == X.data.dtype else X.data.astype(self.dtype)
        self.threads = resolve_num_threads(num_threads)
        squares = column_counts(X, power=2)
        self.norms = np.sqrt(squares).astype(self.dtype)

    @property
    def n_items(self) -> int:
        return self.X.shape[1]

    def block_rows(self, limit: int = 1024) -> int:
        """Rows per block: at most ``limit``, at most ``BLOCK_ELEMENTS`` elements."""
        return int(max(1, min(limit, BLOCK_ELEMENTS // max(self.n_items, 1))))

    def __call__(self, rows) -> np.ndarray:
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        out = np.zeros((rows.size, self.n_items), dtype=self.dtype)
        X, XT = self.X, self.XT
        rows_times_csr(XT.indptr, XT.indices, XT.data, X.indptr, X.indices, self.values, rows,
                       out, self.threads)
        return out

    def range(self, start: int, stop: int) -> np.ndarray:
        return self(np.arange(start, stop, dtype=np.int32))


def shrunk_cosine_blocks(gram_rows: Callable[[int, int], sp.spmatrix], norms: np.ndarray,
                         k: int, shrink: float = 0.0, block_size: int = 512,
                         num_threads: int = 0, show_progress: bool = False,
                         desc: str = "neighbours"
                         ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Each item's ``k`` most similar items by shrunk cosine, ``g_ij / (n_i n_j + shrink)``,
    one block of items at a time: yields ``(start, ids, similarities)``, each array
    ``(rows of the block, k)``, best first (ties: lower index).

    ``gram_rows(start, stop)`` returns rows ``start:stop`` of the Gram matrix ``X^T X`` (dense
    or sparse, e.g. :meth:`GramRows.range`);
    ``norms`` are the item norms ``sqrt(diag(X^T X))``. Items never neighbour themselves; a zero
    denominator gives similarity 0. Memory: one ``block_size`` x n_items dense block.
    """
    n_items = norms.shape[0]
    threads = resolve_num_threads(num_threads)
    for start in tqdm(range(0, n_items, block_size), desc=desc, disable=not show_progress):
        stop = min(start + block_size, n_items)
        block = gram_rows(start, stop)
        block = (block.toarray() if sp.issparse(block) else block).astype(norms.dtype,
                                                                          copy=False)
        denom = np.outer(norms[start:stop], norms)
        denom += norms.dtype.type(shrink)
        # a zero denominator has a zero dot product (an item without users): stays 0
        np.divide(block, denom, out=block, where=denom > 0)
        del denom
        block[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # no self-neighbour
        ids, sims = topk_scores(block, k, num_threads=threads, copy=False)
        yield start, ids, sims


def shrunk_cosine_neighbours(gram_rows: Callable[[int, int], sp.spmatrix], norms: np.ndarray,
                             k: int, shrink: float = 0.0, block_size: int = 512,
                             num_threads: int = 0, show_progress: bool = False,
                             desc: str = "neighbours") -> tuple[np.ndarray, np.ndarray]:
    """:func:`shrunk_cosine_blocks` gathered: ``(ids, similarities)``, each
    ``(n_items, k)``."""
    n_items = norms.shape[0]
    ids = np.empty((n_items, k), dtype=np.int32)
    sims = np.empty((n_items, k), dtype=norms.dtype)
    for start, block_ids, block_sims in shrunk_cosine_blocks(
            gram_rows, norms, k, shrink, block_size, num_threads, show_progress, desc):
        ids[start:start + len(block_ids)] = block_ids
        sims[start:start + len(block_ids)] = block_sims
    return ids, sims


def positive_neighbours(gram_rows: Callable[[int, int], sp.spmatrix], norms: np.ndarray,
                        k: int, shrink: float = 0.0, block_size: int = 512,
                        num_threads: int = 0, show_progress: bool = False,
                        desc: str = "neighbours") -> sp.csr_matrix:
    """:func:`shrunk_cosine_blocks` as an ``n_items x n_items`` CSR of the positive
    similarities only, sorted columns: memory grows with the entries kept (at most each
    item's co-occurring items), not with ``n_items x k``, so a large ``k`` on a sparse
    catalogue costs what it keeps."""
    n_items = norms.shape[0]
    counts, indices, data = [np.zeros(1, dtype=np.int64)], [], []
    for _, ids, sims in shrunk_cosine_blocks(gram_rows, norms, k, shrink, block_size,
                                             num_threads, show_progress, desc):
        keep = (ids >= 0) & (sims > 0)
        counts.append(keep.sum(axis=1, dtype=np.int64))
        indices.append(ids[keep])
        data.append(sims[keep])
    indptr = np.cumsum(np.concatenate(counts))
    S = sp.csr_matrix((np.concatenate(data) if data else np.zeros(0, norms.dtype),
                       np.concatenate(indices) if indices else np.zeros(0, np.int32), indptr),
                      shape=(n_items, n_items))
    S.sort_indices()
    return S


__all__ = ["BLOCK_ELEMENTS", "GramRows", "positive_neighbours", "shrunk_cosine_blocks",
           "shrunk_cosine_neighbours"]
