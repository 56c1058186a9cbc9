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
