"""The benchmark suite's own logic: memory and growth measurements, the page.

(The benchmarks themselves run in CI as a smoke run, ``python -m benchmarks run --quick``.)
"""

import csv
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the scripts import their helpers as _common
sys.path.insert(0, str(ROOT))

from _common import peak_memory, power_law_matrix  # noqa: E402
from bench_scaling import exponent  # noqa: E402

from benchmarks import report  # noqa: E402


def test_power_law_matrix_has_a_long_tail():
    X = power_law_matrix(2000, 500, 30, np.random.default_rng(1))
    assert X.shape == (2000, 500)
    assert np.all(X.data == 1.0)
    assert np.diff(X.indptr).max() <= 30
    counts = np.bincount(X.indices, minlength=500)
    assert counts[:10].mean() > 5 * counts[-100:].mean()


def test_exponent_recovers_a_power_law():
    nnz = [1e5, 3e5, 1e6, 3e6]
    assert exponent(nnz, [2e-6 * n ** 1.5 for n in nnz]) == pytest.approx(1.5)
    assert np.isnan(exponent(nnz[:1], [1.0]))


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc only")
def test_peak_memory_sees_a_temporary_allocation():
    def allocate():
        a = np.ones(50_000_000)  # 400 MB, freed before returning
        return float(a[0])

    result, peak = peak_memory(allocate)
    assert result == 1.0
    assert 0.9 * 400e6 < peak < 1.5 * 400e6


def test_page_renders_tables_and_says_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    (tmp_path / "accuracy.csv").write_text(
        "data,model,params,grid_size,recall_at_20,ndcg_at_20,published_recall_at_20,"
        "published_ndcg_at_20,fit_s,peak_mem_gib,eval_users_per_s,threads,recall_at_20_low,"
        "recall_at_20_high,ndcg_at_20_low,ndcg_at_20_high,arp_at_20\n"
        'd,EASE,"{""l2"": 80.0}",1,0.17649,0.14666,0.1765,0.1467,218.5,6.99,5000,2,0.17,0.18,'
        "0.14,0.15,123.4\n"
        "d,MostPopular,{},1,0.04,0.03,nan,nan,0.001,0.0,40000,2,,,,,\n")
    (tmp_path / "accuracy_compare.csv").write_text(
        "data,model,baseline,significant\nd,EASE,EASE,False\nd,MostPopular,EASE,True\n")
    text = report.render("A\n{{accuracy}}\nB\n{{scaling}}\n", quick=False,
                         out=tmp_path / "plots")
    lines = text.splitlines()
    ease = next(line for line in lines if "| EASE |" in line)
    assert ("0.1765 [0.1700, 0.1800] | 0.1467 [0.1400, 0.1500] | best | 0.1765 | 0.1467 | "
            "218 s | 6.99 GiB | 5,000") in ease
    assert "| d | MostPopular | 0.0400 | 0.0300 | * | - | - |" in text
    beyond = [line for line in lines if line.startswith("| d | EASE |")][-1]
    assert "| 123.4 |" in beyond and beyond.count("| - ") == 7  # ARP given, the rest missing
    assert "Not run yet: no `results/scaling.csv`" in text


def test_scaling_serving_path_runs_and_records_the_dense_ease_refusal(tmp_path, monkeypatch):
    """bench_scaling's large-series path on a tiny matrix: leave-one-out split, every step's
    time and memory columns, dense EASE refused by its memory check (here: made tiny)."""
    import _common
    import bench_scaling

    import recsys._validation as validation

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    monkeypatch.setattr(validation, "available_memory", lambda: 2_000_000)
    monkeypatch.setattr(sys, "argv", [
        "bench_scaling.py", "--quick", "--models", "EASE", "EASE-sparse", "ALS", "--epochs",
        "1", "--evaluate", "ALS", "EASE-sparse", "--recommend", "ALS", "--out", "serving"])
    bench_scaling.main()
    rows = {r["model"]: r for r in csv.DictReader(open(tmp_path / "serving_quick.csv"))
            if int(r["nnz"]) > 20_000}
    assert rows["EASE"]["note"].startswith("refused: EASE's dense 1000 x 1000")
    assert float(rows["ALS"]["recommend_s"]) > 0 and float(rows["ALS"]["parquet_mib"]) > 0
    assert 0 < float(rows["EASE-sparse"]["ndcg_at_20"]) <= 1
    assert rows["ALS"]["work"] == "k 64, 1 iterations"
