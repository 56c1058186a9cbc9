"""Nearest neighbours of items and users under a model, through the shared top-k kernel.

``similar_items`` ranks items by the cosine of the model's item vectors (factor models) or by
the model's own item-item weights (EASE's ``B`` row, ItemKNN's similarity row);
``similar_users`` ranks users by the cosine of the model's user vectors (factor models, new
rows folded in) or of their history rows (history-based models). Queries are never their own
neighbour; everything is computed in batches (no n x n dense matrix).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.topk import rows_per_batch, topk_factors, topk_scores


def self_and_blocked(queries: np.ndarray, n: int, blocked: np.ndarray | None) -> sp.csr_matrix:
    """CSR (len(queries) x n): row r holds ``queries[r]`` and every ``blocked`` index."""
    blocked = np.zeros(0, np.int64) if blocked is None else np.asarray(blocked, np.int64)
    rows = [np.union1d([q], blocked) for q in queries]
    indptr = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    indices = np.concatenate(rows).astype(np.int32) if rows else np.zeros(0, np.int32)
    return sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr.astype(np.int32)),
                         shape=(len(queries), n))


def unit_rows(V: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    V = np.asarray(V, dtype=np.float64)
    norms = np.linalg.norm(V, axis=1, keepdims=True)
    return np.divide(V, norms, out=np.zeros_like(V), where=norms > 0).astype(np.float32)


def cosine_neighbours(vectors: np.ndarray, queries: np.ndarray, k: int,
                      blocked: np.ndarray | None, num_threads: int):
    """Top-``k`` rows of ``vectors`` by cosine to each row ``queries[r]`` of ``vectors``."""
    V = unit_rows(vectors)
    return topk_factors(V[queries], V, k, self_and_blocked(queries, len(V), blocked),
                        num_threads=num_threads)


def row_neighbours(rows_of, queries: np.ndarray, n: int, k: int, blocked: np.ndarray | None,
                   num_threads: int):
    """Top-``k`` columns of the dense blocks ``rows_of(queries[a:b])`` (n columns each, about
    64 MiB of float32 per block)."""
    batch = rows_per_batch(n)
    ids, scores = [], []
    for start in range(0, len(queries), batch):
        part = queries[start:start + batch]
        block = np.asarray(rows_of(part), dtype=np.float32)
        got = topk_scores(block, k, self_and_blocked(part, n, blocked), num_threads=num_threads,
                          copy=False)
        ids.append(got[0])
        scores.append(got[1])
    return np.concatenate(ids), np.concatenate(scores)


def history_cosine_rows(X: sp.csr_matrix):
    """``rows_of(users)``: the cosine of those users' history rows with every row of X."""
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    Xn = sp.diags(scale.astype(np.float32)) @ X
    Xt = Xn.T.tocsr()
    return lambda users: (Xn[users] @ Xt).toarray()


__all__ = ["cosine_neighbours", "history_cosine_rows", "row_neighbours", "self_and_blocked",
           "unit_rows"]
