"""Memory of fits and of the helpers under them, against the size of the training CSR.

tracemalloc sees every NumPy/SciPy allocation (not the kernels' per-thread scratch, which is
O(threads x factors^2)). The ceilings are the documented multiples (docs: "Scale"), measured
at 100 interactions per user and 32 factors, where the CSR, not the factor tables, dominates;
a copy of the matrix more (a COO conversion, a second transpose, a float64 promotion) breaks
them.
"""

import re
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _common import power_law_matrix  # noqa: E402

from recsys._ext._csr import coo_order, transpose  # noqa: E402
from recsys._ext._nmf import gather, scatter  # noqa: E402
from recsys._sparse import column_counts, transpose_csr  # noqa: E402
from recsys._validation import as_csr  # noqa: E402
from recsys.models import ALS, BPR, NBMF, AltMin, ItemKNN, MaskedNMF, MostPopular, SimpleX  # noqa: E402


def power_law(n_users=30_000, n_items=2_000, per_user=100, seed=0) -> sp.csr_matrix:
    """The benchmarks' power-law matrix with random 1-5 values."""
    rng = np.random.default_rng(seed)
    X = power_law_matrix(n_users, n_items, per_user, rng)
    X.data = rng.integers(1, 6, X.nnz).astype(np.float32)
    return X


@pytest.fixture(scope="module")
def X():
    return power_law()


def csr_bytes(X) -> int:
    return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes


def traced_peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_validating_a_canonical_matrix_allocates_almost_nothing(X):
    assert as_csr(X) is X
    assert traced_peak(lambda: as_csr(X)) < 0.15 * csr_bytes(X)


def test_column_counts_equal_bincount_without_its_copies(X):
    for power in (0, 1, 2):
        weights = None if power == 0 else X.data.astype(np.float64) ** power
        expected = np.bincount(X.indices, weights, minlength=X.shape[1])
        np.testing.assert_allclose(column_counts(X, power, chunk=1000), expected, rtol=1e-12)
    assert column_counts(X, 0, chunk=1000).dtype == np.int64
    assert traced_peak(lambda: column_counts(X, chunk=1 << 16)) < 0.1 * csr_bytes(X)


CEILINGS = {  # peak traced bytes of a fit / training CSR bytes (docs: "Scale")
    "MostPopular": (lambda: MostPopular(), 0.3),
    "ItemKNN": (lambda: ItemKNN(neighbors=50, num_threads=1), 2.0),
    "ALS": (lambda: ALS(factors=32, epochs=1, random_state=0, num_threads=1), 2.0),
    "BPR": (lambda: BPR(factors=32, epochs=1, random_state=0, num_threads=1), 2.0),
    "MaskedNMF": (lambda: MaskedNMF(factors=32, epochs=1, random_state=0, num_threads=1), 4.5),
    "NBMF": (lambda: NBMF(factors=16, epochs=1, random_state=0, num_threads=1), 2.5),
    "AltMin": (lambda: AltMin(factors=32, epochs=1, random_state=0, num_threads=1), 4.5),
    "SimpleX": (lambda: SimpleX(factors=32, negatives=10, epochs=1, random_state=0,
                                num_threads=1), 3.0),
}


@pytest.mark.parametrize("name", list(CEILINGS))
def test_fit_memory_is_a_small_multiple_of_the_csr(X, name):
    make, ceiling = CEILINGS[name]
    ratio = traced_peak(lambda: make().fit(X)) / csr_bytes(X)
    assert ratio < ceiling, f"{name} peaked at {ratio:.2f}x the CSR (ceiling {ceiling}x)"


def test_itemknn_memory_follows_the_kept_similarities_not_the_neighbour_count():
    # a sparse catalogue, where "auto" keeps many neighbours: each item co-occurs with a few
    # dozen others, so a dense (items x k) buffer of 20,000 x 2,000 would be 320 MB
    rng = np.random.default_rng(0)
    X = power_law_matrix(2_000, 20_000, 5, rng)
    k = 2_000
    peak = traced_peak(lambda: ItemKNN(neighbors=k, block_size=128, num_threads=1).fit(X))
    dense = X.shape[1] * k * 8
    assert peak < 0.15 * dense, f"peaked at {peak / dense:.2f}x an items x k buffer"


def test_transpose_equals_scipy_and_allocates_only_its_result(X):
    T = transpose_csr(X)
    R = X.T.tocsr()
    R.sort_indices()
    for a, b in ((T.indptr, R.indptr), (T.indices, R.indices), (T.data, R.data)):
        np.testing.assert_array_equal(a, b)
    assert traced_peak(lambda: transpose_csr(X)) < 1.05 * csr_bytes(X)
    _, _, positions = transpose(X.indptr, X.indices, None, X.shape[1])
    np.testing.assert_array_equal(X.data[positions], R.data)  # where each entry came from
    with pytest.raises(ValueError, match="column index 5 out of range"):
        transpose(np.array([0, 1], np.int32), np.array([5], np.int32), None, 5)


def test_scatter_inverts_gather():
    rng = np.random.default_rng(0)
    source, positions = rng.random(1000), rng.permutation(1000).astype(np.int32)
    moved, back = np.empty(1000), np.empty(1000)
    gather(source, positions, moved, 2)
    scatter(moved, positions, back, 2)
    np.testing.assert_array_equal(back, source)
    with pytest.raises(ValueError, match="position 1000 out of range"):
        scatter(moved, np.full(1000, 1000, np.int32), back, 1)


def test_the_documented_multiples_are_the_tested_ceilings():
    text = (Path(__file__).resolve().parents[1] / "docs" / "guide" / "scale.rst").read_text()
    rows = dict(re.findall(r"\* - (\w+)\n\s+- ([\d.]+)x", text))
    assert {name: float(v) for name, v in rows.items()} == {
        name: ceiling for name, (_, ceiling) in CEILINGS.items()}


def test_coo_order_is_a_stable_sort_by_row_then_column():
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 40, 5000).astype(np.int32)
    cols = rng.integers(0, 25, 5000).astype(np.int32)  # many ties: stability matters
    indptr, order = coo_order(rows, cols, 41, 25)
    np.testing.assert_array_equal(order, np.lexsort((cols, rows)))
    np.testing.assert_array_equal(indptr, np.r_[0, np.cumsum(np.bincount(rows, minlength=41))])
    first = rng.permutation(5000)  # ties then keep this order
    _, order = coo_order(rows, cols, 41, 25, first)
    rank = np.empty(5000, np.int64)
    rank[first] = np.arange(5000)
    np.testing.assert_array_equal(order, np.lexsort((rank, cols, rows)))
    with pytest.raises(ValueError, match="first must be a permutation"):
        coo_order(rows, cols, 41, 25, np.zeros(5000, np.int32))  # in range, but repeated
    with pytest.raises(ValueError, match=r"entry 0 \(40, 0\) out of range"):
        coo_order(np.array([40], np.int32), np.array([0], np.int32), 40, 25)
