"""`recsys data describe`: the numbers a person checks first on a new log (issue 20, part)."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.data import Interactions, describe, describe_frame
from recsys.data.describe import gini


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=40))
def test_gini_matches_the_mean_absolute_difference(counts):
    x = np.asarray(counts, dtype=np.float64)
    expected = 0.0 if x.sum() == 0 else \
        np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size ** 2 * x.mean())
    assert gini(x) == pytest.approx(expected, abs=1e-12)


def test_gini_extremes():
    assert gini(np.full(10, 3)) == 0
    assert gini(np.r_[np.zeros(99), 5.0]) == pytest.approx(0.99)


def test_describe_counts_what_it_says():
    df = pd.DataFrame({"u": ["a", "a", "b", "b", "c", "a"], "i": ["x", "y", "x", "x", "z", "x"],
                       "r": [5, 3, 4, 2, 1, 1],
                       "ts": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03",
                                             "2024-01-04", "2024-01-05", "2024-01-11"],
                                            utc=True)})
    out = describe_frame(df, "u", "i", "r", "ts")
    assert (out["users"], out["items"], out["interactions"]) == (3, 3, 4)
    assert out["duplicates"] == 2  # (b, x) twice and (a, x) twice: merged by summing
    assert out["density"] == pytest.approx(4 / 9)
    assert out["per_user"]["min"] == 1 and out["per_user"]["max"] == 2
    assert out["per_item"]["max"] == 2  # x: a and b
    assert out["popularity_gini"] == pytest.approx(gini(np.array([2, 1, 1])))
    # a merged pair keeps its latest time: (a, x) at 01-01 and 01-11 becomes 01-11
    assert out["time_range"]["first"].startswith("2024-01-02")
    assert out["time_range"]["last"].startswith("2024-01-11")
    assert out["time_range"]["days"] == pytest.approx(9)
    assert out["values"]["scale"] == [1.0, 3.0, 6.0]  # (a, x) 5 + 1 and (b, x) 4 + 2 summed


def test_describe_an_interactions_with_empty_rows_and_columns():
    import scipy.sparse as sp

    data = Interactions.from_csr(sp.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], np.float32)))
    out = describe(data)
    assert out["users_without_interactions"] == 1 and out["items_without_interactions"] == 2
    assert "time_range" not in out and "duplicates" not in out


def test_cli_describes_a_csv_log_and_a_named_data_set(tmp_path, data_home):
    from test_tuning import cli

    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\n007,1\n7,1\n7,2\n7,2\n")
    out = cli(["data", "describe", "--path", str(log), "--user", "user_id", "--item",
               "item_id", "--quiet"], tmp_path, data_home, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert (got["users"], got["items"], got["interactions"], got["duplicates"]) == (2, 2, 3, 1)
    named = cli(["data", "describe", "--dataset", "ml-100k", "--quiet"], tmp_path, data_home,
                timeout=120)
    got = json.loads(named.stdout)["data"]
    assert (got["users"], got["items"], got["interactions"]) == (943, 1682, 100000)
    assert got["per_user"]["min"] == 20  # every ML-100K user rated at least 20 movies
    bad = cli(["data", "describe", "--path", str(log), "--user", "nope", "--quiet"], tmp_path,
              data_home, timeout=120)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
