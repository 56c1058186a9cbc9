"""Masked nonnegative/binary matrix factorisation (NBMF) for collaborative filtering.

V ~ W H with W >= 0 (users x k) and H in {0, 1}^(k x items), fitted on the rated entries only
(Terui, Inoue, Hamakawa, Tatsumura, Kudo, arXiv 2410.10381; NBMF: O'Malley et al. 2018):

    min_{W >= 0, H binary}  sum_{(u,j) in Omega} (V_uj - w_u . h_j)^2 + l2 |W|_F^2

by alternating a per-user nonnegative least squares (W step) and a per-item k-bit QUBO over the
users who rated the item (H step), which the paper sends to an Ising machine; here a Cython
simulated annealer, exact enumeration, or any dimod-style sampler. The kernels and the QUBO are
documented in ``ext/_nbmf.pyx``. With ``masked=False`` every unrated entry counts as a 0 rating,
the original NBMF objective, which the paper shows to be worse for CF.

A prediction ``w_u . h_j`` is the sum of the user's weights over the item's active bits.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from recsys._constraints import (
    BOOLEAN,
    NUM_THREADS,
    RANDOM_STATE,
    Integer,
    Options,
    Real,
    Satisfies,
)
from recsys._ext._nbmf import h_step, nnls_rows, qubo_energy, qubo_terms
from recsys._sparse import transpose_csr
from recsys._threads import blas_limit, resolve_num_threads
from recsys._validation import as_csr, check_random_state
from recsys.distributed import open_shards, update_row_blocks
from recsys.models.auto import (
    AUTO,
    AUTO_OPTION,
    NBMF_L2_PER_LEVEL,
    level_ridge,
    row_ridge,
    warn_if_constant,
)
from recsys.models.base import grown
from recsys.models.iterative import EarlyStopping, IterativeModel, Training
from recsys.models.schema import Array, Scalar

logger = logging.getLogger(__name__)

_SOLVERS = {"anneal": 0, "exact": 1}
_W_SOLVERS = {"cd": 0, "pgm": 1}
_MAX_UNMASKED_CELLS = 50_000_000


class NBMF(IterativeModel):
    """Masked NBMF: nonnegative user weights times binary item codes.

    Parameters
    ----------
    factors : int
        Bits per item code, k (1 .. 64; the exact solver needs k <= 24).
    l2 : float or "auto"
        Ridge penalty on W (alpha; > 0 keeps every W step strictly convex), scaled per user
        by ``|Omega_u|^frequency_scaling``. ``"auto"``: ``0.16 mean(v) / std(v)`` of the
        stored values (:mod:`recsys.models.auto`): 0.5 on ML-100K's ratings, about 0.08 on
        implicit feedback with sampled zeros; the value used is ``l2_``.
    epochs : int
        Passes over the data: alternations (W step, then H step).
    solver : {"anneal", "exact"} or sampler
        H-step solver: the Cython simulated annealer, Gray-code enumeration, or any object with
        a dimod-style ``sample_qubo(Q, **sampler_params)`` returning a sample set (for example
        ``dwave.samplers.SimulatedAnnealingSampler()``, an ``openjij`` sampler or an Ising
        machine client). Samplers are called item by item from Python; the previous code is
        kept when the sampler's best state is worse.
    num_reads, num_sweeps : int
        Annealer restarts per item (read 0 starts from the previous code) and sweeps per read.
    sampler_params : dict, optional
        Keyword arguments for an external sampler's ``sample_qubo``.
    w_solver : {"cd", "pgm"}
        W step: projected coordinate descent to convergence, or the paper's projected gradient
        with the Armijo rule (Lin 2007); both reach the same NNLS optimum.
    w_iterations : int
        Cap on W-step iterations per user (they stop earlier at ``tol``).
    tol : float
        W-step tolerance (relative step for "cd", relative projected gradient for "pgm").
    frequency_scaling : float
        nu in ``alpha_u = l2 |Omega_u|^nu``; 0 is the paper's plain ridge, 1 (per-rating
        regularisation, as Surprise and Cornac) fits ML-100K better.
    masked : bool
        Fit only the rated entries (the paper's model); ``False`` fills unrated cells with 0.
    random_state : int, Generator or None
        Seeds the initial codes (fair coin per bit) and the annealer.
    num_threads : int
        0 for all cores; results do not depend on the thread count.
    show_progress : bool

    Attributes
    ----------
    user_factors_ : ndarray (n_users, k), nonnegative
    item_codes_ : ndarray (n_items,) uint64
        Bit l of ``item_codes_[j]`` is H[l, j]: the binary factor packed one word per item.
    loss_ : ndarray
        Training loss after each iteration (non-increasing with "exact"; the annealer keeps
        the previous code unless it finds a better one, so it is non-increasing too).
    """

    uses_user_state = True
    rating_model = True

    _renamed_params = {"iterations": "epochs"}
    _parameter_constraints = {
        "factors": [Integer(1, 64)], "l2": [Real(0), AUTO_OPTION], "epochs": [Integer(1)],
        "solver": [Options(*_SOLVERS), Satisfies(
            lambda s: callable(getattr(s, "sample_qubo", None)),
            "an object with a sample_qubo method (a dimod-style sampler)")],
        "num_reads": [Integer(1)], "num_sweeps": [Integer(1)],
        "sampler_params": [None, Satisfies(lambda p: isinstance(p, dict), "a dict")],
        "w_solver": [Options(*_W_SOLVERS)], "w_iterations": [Integer(1)], "tol": [Real(0)],
        "frequency_scaling": [Real(0)], "masked": BOOLEAN, "random_state": RANDOM_STATE,
        "num_threads": NUM_THREADS, "show_progress": BOOLEAN}

    _fitted = {"user_factors_": Array("f", ("n_users_", "k")),
               "item_codes_": Array("u", ("n_items_",)), "loss_": Array("f", ("t",)),
               "l2_": Scalar(float, optional=True)}

    _default_metric = "rmse"  # early stopping on the validation RMSE

    def _resolved_params(self, X: sp.csr_matrix) -> dict[str, float]:
        return {"l2": level_ridge(self.l2, X, NBMF_L2_PER_LEVEL)}

    def __init__(self, *, factors: int = 32, l2: float | str = AUTO, epochs: int = 20,
                 solver: Any = "anneal", num_reads: int = 1, num_sweeps: int = 100,
                 sampler_params: dict | None = None, w_solver: str = "cd",
                 w_iterations: int = 100, tol: float = 1e-6, frequency_scaling: float = 1.0,
                 masked: bool = True,
                 random_state=None, num_threads: int = 0, show_progress: bool = False):
        self.factors = factors
        self.l2 = l2
        self.epochs = epochs
        self.solver = solver
        self.num_reads = num_reads
        self.num_sweeps = num_sweeps
        self.sampler_params = sampler_params
        self.w_solver = w_solver
        self.w_iterations = w_iterations
        self.tol = tol
        self.frequency_scaling = frequency_scaling
        self.masked = masked
        self.random_state = random_state
        self.num_threads = num_threads
        self.show_progress = show_progress

    def _check_params(self) -> None:
        if self.solver == "exact" and self.factors > 24:
            raise ValueError(f"solver='exact' enumerates 2^k states; k = {self.factors} "
                             "is too large (k <= 24)")

    def fit(self, X, validation=None, *, early_stopping: EarlyStopping | None = None,
            callback=None, cluster=None, n_shards: int | None = None) -> NBMF:
        """Fit on ratings ``X`` (CSR users x items, nonnegative; stored entries are rated).

        The epoch contract of :class:`~recsys.models.iterative.IterativeModel`:
        ``callback(epoch, model)`` after every epoch, ``history_`` with each epoch's loss;
        with ``validation`` (held-out ratings) early stopping on its RMSE by default. With
        ``cluster`` (a
        ``distributed.Client``, a scheduler address, or ``"local"``) the W step's per-user
        NNLS and the H step's per-item QUBOs run as Dask tasks over ``n_shards`` blocks
        (default: two per worker; W or the codes broadcast once per step); every annealer
        draws from the global item index, so the result is the single-process fit's. An
        external sampler (``solver`` object) runs in this process.
        """
        X = self._prepare_fit(X, nonnegative=True)
        self._check_params()
        if self.masked:
            warn_if_constant("NBMF", X)
        training = self._start_training(X, validation, early_stopping, callback)
        with open_shards(cluster, n_shards) as shards:
            return self._fit(X, training, shards)

    def _fit(self, X, training: Training, shards) -> NBMF:
        if not self.masked:
            X = _fill_unrated(X)
        rng = check_random_state(self.random_state)
        threads = resolve_num_threads(self.num_threads)
        k = self.factors
        XT = transpose_csr(X)  # sorted rows
        t_data, data = XT.data, X.data  # float32: the kernels compute in float64
        constant = _sum_of_squares(data)  # sum of V^2 on Omega: loss = QUBO energies + this
        bits = rng.integers(0, 2, (X.shape[1], k), dtype=np.uint64)
        codes = (bits << np.arange(k, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)
        W = np.zeros((X.shape[0], k))
        alpha = row_ridge(self, X.indptr)
        used = np.zeros(X.shape[0], dtype=np.int32)
        energies = np.zeros(X.shape[1])
        losses = []
        progress = tqdm(range(self.epochs), desc="NBMF", disable=not self.show_progress)
        with blas_limit(1):
            for it in progress:
                self._w_step(X, data, codes, W, alpha, used, threads, shards)
                seed = int(rng.integers(2**63))
                if isinstance(self.solver, str):
                    self._h_step(XT, t_data, W, codes, energies, seed, threads, shards)
                else:
                    self._sampler_step(XT, t_data, W, codes, energies, threads)
                losses.append(float(energies.sum() + constant
                                    + alpha @ np.einsum("uf,uf->u", W, W)))
                logger.debug("NBMF iteration %d: loss %.6g, W step <= %d iterations", it,
                             losses[-1], used.max(initial=0))
                if training.watched:  # the callback or the validation reads the model
                    self._store(W, codes, losses)
                if training.end_epoch(it, last=it == self.epochs - 1, loss=losses[-1]):
                    break
        self._store(W, codes, losses)
        training.finish()
        return self

    def _w_step(self, X, data, codes, W, alpha, used, threads, shards) -> None:
        """Per-user NNLS of W against the codes, here or user block by user block on Dask."""
        method = _W_SOLVERS[self.w_solver]
        if shards is None:
            nnls_rows(X.indptr, X.indices, data, codes, W, alpha, method, self.w_iterations,
                      self.tol, used, threads)
            return
        update_row_blocks(shards, _w_block, X, [(W, "rows"), (used, "rows")],
                          entries={"data": data}, rows={"W": W, "alpha": alpha},
                          shared={"codes": codes}, method=method, max_iter=self.w_iterations,
                          tol=self.tol)

    def _h_step(self, XT, t_data, W, codes, energies, seed, threads, shards) -> None:
        """Every item's QUBO rebuilt and solved, here or item block by item block on Dask."""
        method = _SOLVERS[self.solver]
        if shards is None:
            h_step(XT.indptr, XT.indices, t_data, W, codes, energies, method, self.num_reads,
                   self.num_sweeps, seed, threads)
            return
        update_row_blocks(shards, _h_block, XT, [(codes, "rows"), (energies, "rows")],
                          entries={"data": t_data},
                          rows={"codes": codes, "energies": energies}, shared={"W": W},
                          method=method, reads=self.num_reads, sweeps=self.num_sweeps,
                          seed=seed)

    def _sampler_step(self, XT, t_data, W, codes, energies, threads) -> None:
        """H step through an external dimod-style sampler, item by item."""
        k = self.factors
        params = self.sampler_params or {}
        block = 1024
        for start in range(0, XT.shape[0], block):
            items = np.arange(start, min(start + block, XT.shape[0]), dtype=np.int64)
            a = np.zeros((items.size, k))
            B = np.zeros((items.size, k, k))
            qubo_terms(XT.indptr, XT.indices, t_data, W, items, a, B, threads)
            for r, j in enumerate(items):
                if XT.indptr[j] == XT.indptr[j + 1]:
                    codes[j], energies[j] = 0, 0.0
                    continue
                sample = _lowest(self.solver.sample_qubo(qubo_dict(a[r], B[r]), **params), k)
                energy = qubo_energy(a[r], B[r], sample)
                previous = qubo_energy(a[r], B[r], codes[j])
                if energy < previous:
                    codes[j], energies[j] = sample, energy
                else:
                    energies[j] = previous

    def _store(self, W, codes, losses) -> None:
        self.user_factors_ = W.copy()
        self.item_codes_ = codes.copy()
        self.loss_ = np.asarray(losses, dtype=np.float64)

    @property
    def item_factors_(self) -> np.ndarray:
        """H^T as a 0/1 float matrix (n_items x k), unpacked from ``item_codes_``."""
        return unpack_codes(self.item_codes_, self.factors)

    def _factors(self, users, X):
        (U,) = self._user_state(users, X, self.user_factors_)
        return U, self.item_factors_

    def _explain(self, user, item, row):
        raise NotImplementedError("NBMF's user factors are a nonnegative least-squares "
                                  "solution, not a linear function of the history")

    def partial_fit(self, X, users=None, previous=None) -> NBMF:
        """Re-solve the touched rows with the rest fixed: the changed and new users' W step
        (on the fitted items), then the H step (one QUBO each, the fit's solver) of the new
        items and the items the touched users rated, then the touched users' W step again.
        An external sampler is not used here: the annealer (or exact enumeration) is."""
        X, _, touched, _ = self._prepare_update(X, users, previous, nonnegative=True)
        n_old_items = self.n_items_
        W = grown(self.user_factors_, X.shape[0])
        codes = grown(self.item_codes_, X.shape[1])
        items = self._touched_items(X, touched)
        if touched.size:
            W[touched] = self.fold_in(X[touched][:, :n_old_items])
        if items.size:
            XT = transpose_csr(X)[items]
            sub, energies = codes[items].copy(), np.zeros(items.size)
            method = _SOLVERS[self.solver] if isinstance(self.solver, str) else 0
            seed = int(check_random_state(self.random_state).integers(2**63))
            with blas_limit(1):
                h_step(XT.indptr, XT.indices, XT.data, W, sub, energies,
                       method, self.num_reads, self.num_sweeps, seed,
                       resolve_num_threads(self.num_threads))
            codes[items] = sub
        self.item_codes_, self.n_items_ = codes, X.shape[1]
        if touched.size:
            W[touched] = self.fold_in(X[touched])
        self.user_factors_, self.n_users_ = W, X.shape[0]
        return self

    def fold_in(self, X_new) -> np.ndarray:
        """Factors of new users from their ratings: the W step of the fit (nonnegative least
        squares against the fixed binary item codes, to ``tol``) for these rows."""
        self._check_fitted()
        X_new = as_csr(X_new, "X_new", allow_empty=True, nonnegative=True,
                       n_items=self.n_items_)
        W = np.zeros((X_new.shape[0], self.user_factors_.shape[1]))
        alpha = row_ridge(self, X_new.indptr)
        used = np.zeros(X_new.shape[0], dtype=np.int32)
        with blas_limit(1):
            nnls_rows(X_new.indptr, X_new.indices, X_new.data,
                      self.item_codes_, W, alpha, _W_SOLVERS[self.w_solver],
                      self.w_iterations, self.tol, used, resolve_num_threads(self.num_threads))
        return W


def unpack_codes(codes: np.ndarray, k: int) -> np.ndarray:
    """Rows of 0/1 floats from uint64 codes (bit l -> column l)."""
    codes = np.asarray(codes, dtype=np.uint64)
    return ((codes[:, None] >> np.arange(k, dtype=np.uint64)) & np.uint64(1)).astype(np.float64)


def qubo_dict(a: np.ndarray, B: np.ndarray) -> dict[tuple[int, int], float]:
    """dimod's QUBO dict ``{(i, i): a_i, (i, j): B_ij for i < j}`` of one item."""
    Q = {(i, i): float(a[i]) for i in range(a.size)}
    rows, cols = np.nonzero(np.triu(B, 1))
    Q.update({(int(i), int(j)): float(B[i, j]) for i, j in zip(rows, cols)})
    return Q


def _lowest(sampleset, k: int) -> np.uint64:
    """The lowest-energy sample of a dimod SampleSet as a code."""
    sample = sampleset.first.sample
    code = 0
    for bit in range(k):
        if sample.get(bit, 0) > 0:
            code |= 1 << bit
    return np.uint64(code)


def _sum_of_squares(values: np.ndarray, chunk: int = 1 << 22) -> float:
    """``sum(values**2)`` accumulated in float64, chunk by chunk (no float64 copy of all)."""
    total = 0.0
    for start in range(0, values.size, chunk):
        part = values[start:start + chunk].astype(np.float64)
        total += float(part @ part)
    return total


def _fill_unrated(X: sp.csr_matrix) -> sp.csr_matrix:
    """Every cell stored (explicit zeros for unrated ones): the unmasked objective."""
    n_users, n_items = X.shape
    if n_users * n_items > _MAX_UNMASKED_CELLS:
        raise ValueError(f"masked=False treats all {n_users} x {n_items} cells as observed; "
                         f"that is over {_MAX_UNMASKED_CELLS:,} cells")
    dense = X.toarray().ravel()
    indptr = np.arange(0, n_users * n_items + 1, n_items, dtype=np.int64)
    indices = np.tile(np.arange(n_items, dtype=np.int32), n_users)
    full = sp.csr_matrix((dense, indices, indptr), shape=X.shape)
    full.indptr = full.indptr.astype(np.int32)
    return full


def _w_block(indptr, indices, entries, rows, start, codes, method, max_iter, tol, threads):
    """A Dask task: the W step of one block of users."""
    W = np.array(rows["W"], order="C")
    used = np.zeros(len(W), dtype=np.int32)
    nnls_rows(indptr, indices, entries["data"], codes, W, rows["alpha"], method, max_iter, tol,
              used, threads)
    return W, used


def _h_block(indptr, indices, entries, rows, start, W, method, reads, sweeps, seed, threads):
    """A Dask task: the QUBOs of one block of items (annealed from (seed, global item))."""
    codes = np.array(rows["codes"])
    energies = np.array(rows["energies"])
    h_step(indptr, indices, entries["data"], W, codes, energies, method, reads, sweeps, seed,
           threads, start)
    return codes, energies


__all__ = ["NBMF", "qubo_dict", "unpack_codes"]
