"""EASE: embarrassingly shallow autoencoder (Steck, WWW 2019), dense and sparse.

Dense closed form (eq. 8 of the paper): with ``G = X^T X + l2 I`` and ``P = G^{-1}``,
``B = I - P diagMat(1 / diag(P))``, i.e. ``B_ij = -P_ij / P_jj`` and ``B_jj = 0``;
scores are ``x_u B``. Because the zero-diagonal constraint decouples the columns, column ``j``
of ``B`` is also the ridge regression of item ``j`` on every other item,
``B_{-j,j} = (G_{-j,-j})^{-1} G_{-j,j}`` — the sparse variant restricts that regression to
``j``'s ``neighbors`` most similar items ``N_j`` (cosine of the columns),
``(G[N_j, N_j] + l2 I) b_j = G[N_j, j]``, solved exactly for every item. It never holds an
n x n buffer nor the sparse Gram (which at 10^5 items outgrows memory): the Gram is read in dense
blocks of rows, once to choose the neighbours and once per group of items to fill their
systems (``SYSTEMS_BYTES`` of systems at a time). Memory: the CSR, its transpose, one block of
rows and the group's systems.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from scipy.linalg import get_blas_funcs, lapack, solve_triangular

from recsys._constraints import BOOLEAN, NUM_THREADS, Integer, Options, Real
from recsys._ext._ease import fill_systems, solve_systems
from recsys._ext._gram import gram_dense
from recsys._similarity import GramRows, shrunk_cosine_neighbours
from recsys._threads import blas_limit, blas_threads, resolve_num_threads
from recsys._validation import check_memory
from recsys.models.auto import AUTO, AUTO_OPTION, gram_ridge, in_use
from recsys.models.base import Recommender
from recsys.models.schema import Array, Scalar

logger = logging.getLogger(__name__)

# Multi-threaded OpenBLAS ?potrf segfaults on very large matrices here (n = 32,000 float32 with
# 2 threads crashed, n = 24,000 ran, n = 32,000 on one thread ran): from about 3 GB of matrix
# on, factorize by blocks instead (see _cholesky_inverse).
_THREADED_LAPACK_MAX_BYTES = 3.0e9


class EASE(Recommender):
    """EASE item-item model, exact (dense inverse) or neighbourhood-sparse.

    Parameters
    ----------
    l2 : float or "auto"
        Ridge strength lambda (> 0). ``"auto"``: ``1.5 sum_j G_jj^2 / sum_j G_jj`` with
        ``G_jj = sum_u x_uj^2``, the Gram diagonal of the item behind an average interaction
        (:func:`recsys.models.auto.gram_ridge`: about 150 on ML-100K, 1,000 on ML-1M, 110 on
        Gowalla); the value used is ``l2_``, kept by :meth:`partial_fit`.
    dtype : {"float32", "float64"}
        Precision of the Gram matrix, its Cholesky inverse and ``B``.
    max_items_dense : int or None
        Catalogues with more items use the sparse variant. ``None``: dense whenever the
        n x n buffer fits in available memory (else a ``MemoryError`` naming the size).
    neighbors : int
        Sparse variant: regressors kept per item (its most co-occurring items, by cosine).
    num_threads : int
        OpenMP threads for the Gram kernel and scoring (0: the available cores); LAPACK/BLAS
        use the same count when given, and with 0 only the cores idle when the fit starts
        (:func:`recsys._threads.blas_threads`: threaded OpenBLAS collapses when a core is
        busy).
    show_progress : bool

    Attributes
    ----------
    B_ : ndarray (n_items, n_items) or CSR
        Item-item weights with zero diagonal; dense for the exact model, CSR for the sparse one.
    """

    _parameter_constraints = {"l2": [Real(0, low_open=True), AUTO_OPTION],
                              "dtype": [Options("float32", "float64")],
                              "max_items_dense": [Integer(0), None], "neighbors": [Integer(1)],
                              "num_threads": NUM_THREADS, "show_progress": BOOLEAN}

    _fitted = {"B_": Array("f", ("n_items_", "n_items_"), sparse=None),
               "inverse_diagonal_": Array("f", ("p",), optional=True),
               "l2_": Scalar(float, optional=True)}

    def __init__(self, *, l2: float | str = AUTO, dtype: str = "float32",
                 max_items_dense: int | None = None, neighbors: int = 256,
                 num_threads: int = 0, show_progress: bool = False):
        self.l2 = l2
        self.dtype = dtype
        self.max_items_dense = max_items_dense
        self.neighbors = neighbors
        self.num_threads = num_threads
        self.show_progress = show_progress

    def fit(self, X) -> EASE:
        X = self._prepare_fit(X)
        n = X.shape[1]
        if self.max_items_dense is not None and n > self.max_items_dense:
            self.B_ = self._fit_sparse(X)
            self.inverse_diagonal_ = np.zeros(0, dtype=self.B_.dtype)
        else:
            self.B_ = self._fit_dense(X)
        return self

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {"l2": gram_ridge(self.l2, X)}

    def partial_fit(self, X, users=None, previous=None) -> EASE:
        """Exact update of the dense model for changed or new users and new items.

        With ``P = (X^T X + l2 I)^{-1}`` (recovered from ``B`` and its kept diagonal as
        ``P = (I - B) diagMat(diag P)``), r changed user rows change the Gram matrix by
        ``V C V^T`` (``V`` the new rows and the old ones, ``C = diag(+1, -1)``) and the
        Woodbury identity gives ``P' = P - P V (C + V^T P V)^{-1} V^T P`` in O(n^2 r); new items
        border the matrix, ``[[A, g], [g^T, c]]^{-1}`` from ``P'`` and the Schur complement
        ``S = c - g^T P' g`` in O(n^2 m). Then ``B = I - P' diagMat(1 / diag P')`` as in fit.
        ``previous`` (the fitted matrix) supplies the old rows of changed fitted users.
        """
        if sp.issparse(self.B_):
            raise NotImplementedError("the neighbourhood-sparse EASE keeps no inverse to "
                                      "update: refit it on the updated matrix")
        X, changed, touched, previous = self._prepare_update(X, users, previous)
        if changed.size and previous is None:
            raise ValueError("EASE.partial_fit needs previous= (the matrix it was fitted on) "
                             "to take out the old rows of changed users")
        n_old, dtype = self.n_items_, self.B_.dtype
        P = self.B_
        P *= -1
        P[np.diag_indices(n_old)] = 1.0
        P *= self.inverse_diagonal_[None, :]  # P = (I - B) diag(P), in B's buffer
        if touched.size:
            new_rows = X[touched][:, :n_old]
            old_rows = previous[changed] if changed.size else sp.csr_matrix((0, n_old))
            V = sp.vstack([new_rows, old_rows]).tocsr().astype(dtype)
            signs = np.r_[np.ones(new_rows.shape[0]), -np.ones(old_rows.shape[0])]
            PV = np.ascontiguousarray((V @ P).T)  # P V^T (P symmetric), n x r
            M = np.diag(signs) + np.asarray(V @ PV, dtype=np.float64)
            K = np.linalg.solve(M, PV.T.astype(np.float64)).astype(dtype)  # r x n
            gemm = get_blas_funcs("gemm", (P,))
            threads = blas_threads(self.num_threads, flops=2.0 * n_old ** 2 * V.shape[0])
            with blas_limit(threads):  # P^T (Fortran view of P) -= K^T PV^T, in place
                gemm(-1.0, K.T, PV.T, beta=1.0, c=P.T, overwrite_c=True)
        m = X.shape[1] - n_old
        if m:
            Xn = X[:, n_old:].astype(np.float64)
            g = np.asarray((X[:, :n_old].T.astype(np.float64) @ Xn).todense())  # n x m
            c = np.asarray((Xn.T @ Xn).todense()) + in_use(self, "l2") * np.eye(m)
            Pg = P.astype(np.float64) @ g
            S_inv = np.linalg.inv(c - g.T @ Pg)
            grown = np.empty((n_old + m, n_old + m), dtype=dtype)
            grown[:n_old, :n_old] = P + (Pg @ S_inv @ Pg.T).astype(dtype)
            grown[:n_old, n_old:] = -(Pg @ S_inv)
            grown[n_old:, :n_old] = grown[:n_old, n_old:].T
            grown[n_old:, n_old:] = S_inv
            P = grown
        self.B_ = self._weights_from_inverse(P)
        self.n_users_, self.n_items_ = (int(n) for n in X.shape)
        return self

    def _weights_from_inverse(self, P: np.ndarray) -> np.ndarray:
        """``B = I - P diagMat(1 / diag P)`` (eq. 8), in ``P``'s buffer; ``diag P`` is kept
        (``inverse_diagonal_``) so that :meth:`partial_fit` can recover ``P = (I - B) diag``."""
        self.inverse_diagonal_ = np.diag(P).copy()
        P /= -self.inverse_diagonal_[None, :]  # B_ij = -P_ij / P_jj
        P[np.diag_indices(P.shape[0])] = 0
        return P

    def _item_weights(self):
        return self.B_


    # -- exact ------------------------------------------------------------------------------
    def _fit_dense(self, X: sp.csr_matrix) -> np.ndarray:
        n = X.shape[1]
        dtype = np.dtype(self.dtype)
        check_memory(n * n * dtype.itemsize, f"EASE's dense {n} x {n} {self.dtype} matrix",
                     f"Use the sparse variant: EASE(max_items_dense=<n below {n}>, "
                     "neighbors=...)" + (", or dtype='float32'." if dtype.itemsize > 4
                                         else "."))
        threads = resolve_num_threads(self.num_threads)
        # sampled before the Gram kernel, whose spinning OpenMP threads would look busy
        lapack_threads = blas_threads(self.num_threads, flops=n ** 3)  # potrf + potri
        G = np.zeros((n, n), dtype=dtype)
        gram_dense(X.indptr, X.indices, X.data, G, 64, threads)
        G[np.diag_indices(n)] += dtype.type(self.l2_)
        _cholesky_inverse(G, lapack_threads)
        _mirror_lower(G)
        return self._weights_from_inverse(G)

    # -- neighbourhood-sparse -----------------------------------------------------------------
    def _fit_sparse(self, X: sp.csr_matrix) -> sp.csr_matrix:
        n = X.shape[1]
        dtype = np.dtype(self.dtype)
        m = int(min(self.neighbors, n - 1))
        if m <= 0:
            raise ValueError(f"neighbors must be positive, got {self.neighbors}")
        gram = GramRows(X, self.num_threads, dtype)  # dense blocks of G's rows, never all of G
        neigh, _ = shrunk_cosine_neighbours(gram.range, gram.norms, m,
                                            block_size=gram.block_rows(),
                                            num_threads=gram.threads,
                                            show_progress=self.show_progress,
                                            desc="EASE neighbours")
        neigh.sort(axis=1)
        values = np.empty((n, m), dtype=dtype)
        group = int(max(1, min(n, SYSTEMS_BYTES // (m * m * dtype.itemsize))))
        for start in range(0, n, group):
            stop = min(start + group, n)
            values[start:stop] = _solve_group(gram, neigh[start:stop],
                                              np.arange(start, stop, dtype=np.int32),
                                              float(self.l2_))
        B = sp.csc_matrix((values.ravel(), neigh.ravel(), np.arange(0, n * m + 1, m)),
                          shape=(n, n)).tocsr()
        B.eliminate_zeros()
        B.sort_indices()
        return B


#: Bytes of the neighbourhood systems held at once by the sparse EASE (items are solved in
#: groups of ``SYSTEMS_BYTES / (m^2 itemsize)``; each group reads the Gram rows it needs).
SYSTEMS_BYTES = 1 << 30


def _solve_group(gram: GramRows, support: np.ndarray, items: np.ndarray,
                 l2: float) -> np.ndarray:
    """Columns ``items`` of B on their ``support`` (g x m): ``(G[N, N] + l2 I) b = G[N, j]``.

    Each Gram row needed (an item in some support) is computed once per group, in dense
    blocks, and copied into every system that has it (``fill_systems``).
    """
    g, m = support.shape
    A = np.empty((g, m, m), dtype=gram.dtype)
    b = np.empty((g, m), dtype=gram.dtype)
    flat = support.ravel()
    order = np.argsort(flat, kind="stable")  # entries grouped by the Gram row they need
    rows, starts, counts = np.unique(flat[order], return_index=True, return_counts=True)
    step = gram.block_rows()
    for lo in range(0, rows.size, step):
        hi = min(lo + step, rows.size)
        entries = order[starts[lo]:starts[hi - 1] + counts[hi - 1]]
        local = np.repeat(np.arange(hi - lo, dtype=np.int32), counts[lo:hi])
        fill_systems(gram(rows[lo:hi]), local, (entries // m).astype(np.int32),
                     (entries % m).astype(np.int32), support, items, A, b, gram.threads)
    with blas_limit(1):
        solve_systems(A, b, l2, gram.threads)
    return b


def _cholesky_inverse(G: np.ndarray, threads: int) -> None:
    """Overwrite the lower triangle of SPD ``G`` with that of ``G^{-1}`` (Cholesky, in place).

    ``G`` is symmetric, so its transpose is a Fortran-ordered view that LAPACK works on in place;
    LAPACK's "upper" triangle of ``G.T`` is the lower triangle of ``G``. Large matrices are
    factorized by blocks (LAPACK on the diagonal blocks, threaded BLAS for the rest), because
    OpenBLAS's own threaded ?potrf crashes on them.
    """
    potrf, potri = lapack.get_lapack_funcs(("potrf", "potri"), (G,))
    with blas_limit(threads):
        if G.nbytes < _THREADED_LAPACK_MAX_BYTES:
            _, info = potrf(G.T, lower=0, overwrite_a=1, clean=0)
        else:
            info = _blocked_cholesky(G, potrf)
        if info != 0:
            raise np.linalg.LinAlgError(
                f"Cholesky of X^T X + l2 I failed (LAPACK info {info}); increase l2")
        _, info = potri(G.T, lower=0, overwrite_c=1)  # threaded ?potri ran fine at n = 32,000
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky inverse failed (LAPACK info {info})")


def _blocked_cholesky(A: np.ndarray, potrf, block: int = 2048) -> int:
    """Right-looking blocked Cholesky: the lower triangle of ``A`` becomes L (A = L L^T).

    Returns LAPACK's ``info`` (0 on success, else the failing pivot, 1-based).
    """
    n = A.shape[0]
    for k0 in range(0, n, block):
        k1 = min(k0 + block, n)
        L_kk, info = potrf(np.array(A[k0:k1, k0:k1]), lower=1, clean=1)
        if info != 0:
            return k0 + info
        A[k0:k1, k0:k1] = L_kk
        if k1 == n:
            break
        # panel: A21 <- A21 L_kk^{-T}; trailing update: A22 <- A22 - A21 A21^T (lower part)
        panel = solve_triangular(L_kk, A[k1:, k0:k1].T, lower=True, check_finite=False).T
        A[k1:, k0:k1] = panel
        for j0 in range(k1, n, block):
            j1 = min(j0 + block, n)
            A[j0:, j0:j1] -= panel[j0 - k1:] @ panel[j0 - k1:j1 - k1].T
    return 0


def _mirror_lower(A: np.ndarray, block: int = 2048) -> None:
    """Copy the lower triangle of square ``A`` onto its upper triangle, in place, by strips."""
    n = A.shape[0]
    for start in range(0, n, block):
        stop = min(start + block, n)
        A[start:stop, stop:] = A[stop:, start:stop].T
        strip = A[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        strip[upper] = strip.T[upper]
