import os
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow real-data check: run with --runslow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def data_home() -> Path:
    """Folder with the real data sets: $RECSYS_DATA_HOME, else ../shared/datasets."""
    home = os.environ.get("RECSYS_DATA_HOME")
    path = Path(home) if home else SHARED
    if not (path / "ml-100k" / "u.data").is_file():
        pytest.skip(f"real data sets not available at {path} (set RECSYS_DATA_HOME)")
    return path


@pytest.fixture(scope="session")
def ml100k_u1(data_home):
    from recsys.datasets import load

    split = load("ml-100k", split="u1", data_home=data_home)
    return split.train.binarize(4), split.test.binarize(4)


def random_csr(n_rows, n_cols, density, seed, dtype=np.float32) -> sp.csr_matrix:
    X = sp.random(n_rows, n_cols, density=density, format="csr", random_state=seed, dtype=dtype)
    X.data[:] = np.random.default_rng(seed).integers(1, 6, X.nnz)
    X.sort_indices()
    return X


def reference_topk(scores: np.ndarray, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """Plain NumPy top-k: stable sort by descending score (ties: lower index first)."""
    S = np.array(scores, dtype=np.float64)
    if exclude is not None:
        S[exclude.toarray() != 0] = -np.inf
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(S, order, axis=1)
    ids = np.where(np.isneginf(values), -1, order)
    return ids, values


def check_rating_model(model, X: sp.csr_matrix, tmp_path: Path):
    """Shared checks of a fitted rating model: ranking excludes seen items and agrees with
    ``predict`` and ``score``; save/load round-trips. Returns the loaded model."""
    users = np.arange(0, X.shape[0], 50)
    ids, scores = model.recommend(users, X, k=10)
    for r, u in enumerate(users):
        assert not set(ids[r]) & set(X.indices[X.indptr[u]:X.indptr[u + 1]])
        np.testing.assert_allclose(scores[r], model.predict(np.full(10, u), ids[r], X),
                                   rtol=1e-6)
        np.testing.assert_allclose(scores[r], model.score(u, X)[ids[r]], rtol=1e-6)
    loaded = type(model).load(model.save(tmp_path / type(model).__name__))
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.recommend(users, X, k=10)[0], ids)
    return loaded
