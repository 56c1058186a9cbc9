import sys

import numpy as np
import pytest

import recsys
from recsys._threads import resolve_num_threads


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="OpenMP is required on Linux")
def test_openmp_enabled_on_linux():
    assert recsys.openmp_enabled() is True


def test_thread_resolution():
    assert resolve_num_threads(3) == 3
    assert resolve_num_threads(0) >= 1 and resolve_num_threads(None) >= 1
    with pytest.raises(ValueError, match=">= 0"):
        resolve_num_threads(-1)
    with pytest.raises(TypeError, match="int"):
        resolve_num_threads(1.5)


def test_public_api_imports():
    from recsys.datasets import load  # noqa: F401
    from recsys.evaluation import evaluate  # noqa: F401
    from recsys.models import ALS, BPR, ItemKNN, MostPopular  # noqa: F401
    from recsys.topk import topk_factors

    ids, _ = topk_factors(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), 1)
    assert ids.ravel().tolist() == [0, 1, 2]
