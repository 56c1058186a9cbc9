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
    path = Path(home).resolve() if home else SHARED
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


def product_tolerance(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Entrywise bound on the rounding error of ``A @ B.T`` computed in A's precision.

    Higham (Accuracy and Stability of Numerical Algorithms, 2002, eq. 3.5): a dot product of
    length n in floating point is within ``gamma_n sum_i |a_i b_i|`` of the exact value,
    ``gamma_n = n u / (1 - n u)`` with ``u = eps / 2``, whatever the summation order (so for
    any GEMM kernel and thread count). Two results rounded independently differ by at most
    twice that: ``n eps sum_i |a_i b_i|``, plus ``eps |result|`` for the final rounding.
    """
    A64, B64 = np.asarray(A, np.float64), np.asarray(B, np.float64)
    eps = np.finfo(np.result_type(A.dtype, B.dtype)).eps
    return A.shape[1] * eps * (np.abs(A64) @ np.abs(B64).T) + eps * np.abs(A64 @ B64.T)


def reference_scores(model, users: np.ndarray, X: sp.csr_matrix):
    """Exact (float64) scores of ``users`` and the rounding tolerance of the model's own
    float32/float64 scores: factor models score ``U @ V.T``, item-item models ``X[users] @ W``
    (see :func:`product_tolerance`)."""
    if model._is_factor_model():
        U, V = model._factors(users, X)
        return np.asarray(U, np.float64) @ np.asarray(V, np.float64).T, product_tolerance(U, V)
    W = model._item_weights()
    W = W.toarray() if sp.issparse(W) else np.asarray(W)
    rows = X[users].toarray()
    n = max(int(X[users].getnnz(axis=1).max(initial=0)), 1)
    exact = rows.astype(np.float64) @ W.astype(np.float64)
    eps = np.finfo(np.result_type(W.dtype, np.float32)).eps
    return exact, n * eps * (np.abs(rows) @ np.abs(W)) + eps * np.abs(exact)


def assert_topk_close(ids, values, exact, tol, exclude=None):
    """``(ids, values)`` is a correct top-k of scores known exactly up to ``tol``.

    Per row: the listed ids are distinct candidates (not excluded), as many as ``k`` or the
    number of candidates; each value is within ``tol`` of its exact score; values are sorted;
    no unlisted candidate beats a listed one by more than the two tolerances (a near-tie may
    go either way under another summation order); padding is ``-1`` / ``-inf``.
    """
    ids, values = np.atleast_2d(ids), np.atleast_2d(values)
    exact, tol = np.atleast_2d(exact), np.atleast_2d(tol)
    banned = np.zeros(exact.shape, dtype=bool) if exclude is None else \
        np.atleast_2d(exclude.toarray() != 0)
    k = ids.shape[1]
    for r in range(ids.shape[0]):
        listed = ids[r] >= 0
        got = ids[r][listed]
        candidates = np.flatnonzero(~banned[r])
        assert got.size == min(k, candidates.size), (r, got.size, candidates.size)
        assert np.unique(got).size == got.size and not banned[r, got].any()
        assert (np.abs(values[r][listed] - exact[r, got]) <= tol[r, got]).all(), r
        assert (np.diff(values[r][listed]) <= 0).all()
        assert np.isneginf(values[r][~listed]).all()
        rest = np.setdiff1d(candidates, got)
        if rest.size and got.size:
            slack = tol[r, got].max() + tol[r, rest].max()
            assert exact[r, got].min() >= exact[r, rest].max() - slack, r


def check_rating_model(model, X: sp.csr_matrix, tmp_path: Path):
    """Shared checks of a fitted rating model: ranking excludes seen items and agrees with
    ``predict`` and ``score``; save/load round-trips. Returns the loaded model."""
    users = np.arange(0, X.shape[0], 50)
    ids, scores = model.recommend(users, X, k=10)
    exact, tol = reference_scores(model, users, X)
    assert_topk_close(ids, scores, exact, tol, X[users])
    for r, u in enumerate(users):
        assert (np.abs(model.predict(np.full(10, u), ids[r], X) - exact[r, ids[r]])
                <= tol[r, ids[r]]).all()
        assert (np.abs(model.score(u, X)[ids[r]] - exact[r, ids[r]]) <= tol[r, ids[r]]).all()
    loaded = type(model).load(model.save(tmp_path / type(model).__name__))
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.recommend(users, X, k=10)[0], ids)
    return loaded


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on loopback (initdb + pg_ctl), as an SQLAlchemy URL.

    Skips, naming the reason, when the server binaries are missing or it cannot start.
    """
    import glob
    import shutil
    import socket
    import subprocess
    import tempfile

    found = [shutil.which("initdb")] + sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = next((p for p in found if p), None)
    if initdb is None:
        pytest.skip("PostgreSQL server binaries (initdb) not installed; `.ci/run` installs "
                    "the Debian postgresql package")
    bindir = Path(initdb).resolve().parent
    pg_ctl = shutil.which("pg_ctl", path=str(bindir)) or shutil.which("pg_ctl")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="recsys-pg-"))
    prefix = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        shutil.chown(data, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    try:
        subprocess.run(prefix + [initdb, "-D", str(data / "db"), "-U", "postgres",
                                 "--auth=trust", "-E", "UTF8"], check=True,
                       capture_output=True, timeout=120)
        subprocess.run(prefix + [pg_ctl, "-D", str(data / "db"), "-l", str(data / "log"),
                                 "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {data}",
                                 "-w", "start"], check=True, capture_output=True, timeout=120)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, KeyError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"could not start PostgreSQL: {exc} {detail.decode(errors='replace')[-300:]}")
    yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    subprocess.run(prefix + [pg_ctl, "-D", str(data / "db"), "-m", "fast", "stop"],
                   capture_output=True, timeout=120)
    shutil.rmtree(data, ignore_errors=True)
