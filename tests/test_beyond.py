"""Beyond-accuracy metrics against brute-force references, and ``compare`` against scipy."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.beyond import beyond_metrics, intra_list_distance, long_tail
from recsys.significance import compare, holm


def random_case(seed: int, n_users=30, n_items=25, width=6, vectors=False):
    rng = np.random.default_rng(seed)
    train = sp.random(n_users, n_items, density=rng.uniform(0.05, 0.4), format="csr",
                      random_state=seed, dtype=np.float32)
    train.data[:] = 1.0
    recs = np.full((n_users, width), -1, dtype=np.int32)
    for u in range(n_users):
        listed = rng.integers(0, width + 1)  # some lists run short, some are empty
        recs[u, :listed] = rng.choice(n_items, size=listed, replace=False)
    V = rng.normal(size=(n_items, 4)) if vectors else None
    return train, recs, V


def brute_force(train, recs, k, V=None):
    """Every metric by its definition, with Python loops over users, pairs and items."""
    dense = train.toarray() != 0
    n_users, n_items = dense.shape
    counts = dense.sum(axis=0).astype(float)
    # the short head: fewest most popular items holding 20% of the interactions
    order = sorted(range(n_items), key=lambda i: (-counts[i], i))
    head, held = set(), 0.0
    for i in order:
        if held >= 0.2 * counts.sum() and counts.sum() > 0:
            break
        head.add(i)
        held += counts[i]
    cols = dense.T.astype(float) if V is None else np.asarray(V, float)

    def cosine(a, b):
        na, nb = np.linalg.norm(cols[a]), np.linalg.norm(cols[b])
        return 0.0 if na == 0 or nb == 0 else float(cols[a] @ cols[b] / (na * nb))

    per = {name: [] for name in ("epc", "miuf", "arp", "aplt", "ild")}
    exposure = np.zeros(n_items)
    for row in recs:
        items = [int(i) for i in row[:k] if i >= 0]
        for i in items:
            exposure[i] += 1
        if items:
            per["epc"].append(np.mean([1 - counts[i] / n_users for i in items]))
            per["miuf"].append(np.mean([-math.log2((counts[i] + 1) / (n_users + 1))
                                        for i in items]))
            per["arp"].append(np.mean([counts[i] for i in items]))
            per["aplt"].append(np.mean([i not in head for i in items]))
        else:
            for name in ("epc", "miuf", "arp", "aplt"):
                per[name].append(np.nan)
        pairs = [(a, b) for x, a in enumerate(items) for b in items[x + 1:]]
        per["ild"].append(np.mean([1 - cosine(a, b) for a, b in pairs]) if pairs else 0.0)
    mean = exposure.mean()
    gini = (np.abs(exposure[:, None] - exposure[None, :]).sum() / (2 * n_items ** 2 * mean)
            if mean > 0 else 0.0)
    share = exposure[exposure > 0] / exposure.sum() if exposure.sum() else np.zeros(0)
    out = {f"{name}_at_{k}": np.array(v) for name, v in per.items()}
    out[f"gini_at_{k}"] = gini
    out[f"entropy_at_{k}"] = float(-(share * np.log2(share)).sum())
    return out


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 6), vectors=st.booleans())
def test_every_metric_equals_its_brute_force_reference(seed, k, vectors):
    train, recs, V = random_case(seed, vectors=vectors)
    got = beyond_metrics(recs, train, k, item_vectors=V)
    want = brute_force(train, recs, k, V)
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-9, atol=1e-12, err_msg=key)


def test_ild_blocks_agree_whatever_their_size():
    train, recs, _ = random_case(3, n_users=200, n_items=60, width=10)
    whole = intra_list_distance(recs, train, max_block_items=10_000)
    for items in (10, 37, 100):
        np.testing.assert_allclose(intra_list_distance(recs, train, max_block_items=items),
                                   whole, rtol=1e-12)


def test_long_tail_rule():
    counts = np.array([50, 30, 10, 5, 5, 0], dtype=float)  # 100 interactions: head = item 0
    assert long_tail(counts).tolist() == [False, True, True, True, True, True]
    assert long_tail(counts, head_share=0.6).tolist() == [False, False, True, True, True, True]


def test_evaluate_returns_beyond_metrics_per_user(ml100k_u1):
    from recsys.evaluation import ALL_METRICS, evaluate
    from recsys.models import MostPopular

    train, test = ml100k_u1
    model = MostPopular().fit(train)
    means, per_user = evaluate(model, train, test, k=10, metrics=ALL_METRICS, per_user=True)
    # MostPopular lists the most popular unseen items: the head of the catalogue
    assert means["aplt_at_10"] < 0.05 and means["gini_at_10"] > 0.9
    assert per_user["epc_at_10"].shape == per_user["users"].shape
    recs = model.recommend(per_user["users"], train.matrix, k=10)[0]
    want = brute_force(train.matrix, recs, 10)
    for key in ("epc_at_10", "miuf_at_10", "arp_at_10", "aplt_at_10", "ild_at_10"):
        np.testing.assert_allclose(per_user[key], want[key], rtol=1e-9, err_msg=key)
    assert means["gini_at_10"] == pytest.approx(want["gini_at_10"])


def test_ild_on_gowalla_in_bounded_memory(data_home):
    """ILD of 29,858 lists of 20 over Gowalla's 40,981 items, by blocks: the similarities held
    at once stay below 2,048^2 floats (an n x n matrix would take 6.7 GB)."""
    import resource

    from recsys.datasets import load

    train = load("gowalla-lightgcn", data_home=data_home).train.matrix
    rng = np.random.default_rng(0)
    popular = np.argsort(-np.bincount(train.indices, minlength=train.shape[1]))[:5000]
    recs = np.stack([rng.choice(popular, 20, replace=False) for _ in range(train.shape[0])])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ild = intra_list_distance(recs.astype(np.int32), train)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert ild.shape == (train.shape[0],) and 0 < ild.mean() <= 1
    assert grown_mib < 512, grown_mib


# -- compare ----------------------------------------------------------------------------------
def test_compare_p_values_are_scipy_s_and_holm_adjusts_them():
    from scipy import stats

    rng = np.random.default_rng(0)
    base = rng.uniform(size=400)
    results = {"A": base, "B": base + rng.normal(0.02, 0.1, 400),
               "C": base + rng.normal(0.0, 0.1, 400)}
    table = compare(results, metric="m", baseline="A").set_index("model")
    for name in ("B", "C"):
        assert table.loc[name, "t_p"] == pytest.approx(
            stats.ttest_rel(results[name], results["A"]).pvalue, rel=1e-12)
        assert table.loc[name, "wilcoxon_p"] == pytest.approx(
            stats.wilcoxon(results[name] - results["A"]).pvalue, rel=1e-12)
    raw = table.loc[["B", "C"], "t_p"].to_numpy()
    assert table.loc[["B", "C"], "t_p_holm"].tolist() == pytest.approx(holm(raw).tolist())
    assert np.isnan(table.loc["A", "t_p"]) and not table.loc["A", "significant"]
    d = results["B"] - results["A"]
    assert table.loc["B", "effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert table.loc["B", "ci_low"] < table.loc["B", "mean"] < table.loc["B", "ci_high"]


def test_holm_by_hand():
    # p = (0.01, 0.04, 0.03): sorted 0.01*3, 0.03*2, 0.04*1 -> 0.03, 0.06, max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.9, 0.8]).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("shift", [0.0, 0.004, 0.03])
def test_the_difference_interval_covers_zero_exactly_when_a_permutation_test_says_so(shift):
    """Sign-flip permutation test of the paired mean difference (20,000 seeded flips) against
    the bootstrap interval: 0 inside the 95% interval <=> permutation p >= 0.05."""
    rng = np.random.default_rng(7)
    a = rng.uniform(size=500)
    b = a + shift + rng.normal(0, 0.05, 500)
    table = compare({"a": a, "b": b}, metric="m", baseline="a", seed=1).set_index("model")
    d = b - a
    flips = rng.choice([-1.0, 1.0], size=(20_000, d.size))
    p = float(np.mean(np.abs((flips * d).mean(axis=1)) >= abs(d.mean())))
    covers = table.loc["b", "diff_low"] <= 0 <= table.loc["b", "diff_high"]
    assert covers == (p >= 0.05), (p, table.loc["b", ["diff_low", "diff_high"]].tolist())


def test_compare_matches_models_on_their_shared_users():
    a = {"users": np.array([0, 1, 2, 3]), "m": np.array([0.1, 0.2, 0.3, 0.4])}
    b = {"users": np.array([3, 1, 2]), "m": np.array([0.5, 0.3, 0.4])}
    table = compare({"a": a, "b": b}, metric="m", baseline="a").set_index("model")
    assert table.attrs["n_users"] == 3
    assert table.loc["b", "diff"] == pytest.approx(0.1)  # users 1..3: each +0.1
    with pytest.raises(KeyError, match="no per-user"):
        compare({"a": a}, metric="ndcg_at_10")


def test_cli_compare_writes_the_table_the_plot_and_an_mlflow_run(tmp_path, data_home, capsys):
    import json

    import mlflow
    import pandas as pd
    from scipy import stats

    from recsys.cli import main
    from recsys.evaluation import evaluate
    from recsys.experiment import load_experiment
    from recsys.models import EASE, MostPopular

    exp = load_experiment("ml-100k", data_home=data_home).full()
    paths = [exp.fit(model).save(tmp_path / f"{name}.npz")
             for name, model in (("ease", EASE(l2=300.0)), ("pop", MostPopular()))]
    uri = f"sqlite:///{tmp_path}/m.db"
    assert main(["compare", "--model-path", *map(str, paths), "--data-home", str(data_home),
                 "--out", str(tmp_path / "cmp.csv"), "--tracking-uri", uri, "--quiet"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "* = paired t-test significant after Holm" in captured.err
    assert result["baseline"] == "ease" and result["models"]["pop"]["significant"]
    table = pd.read_csv(tmp_path / "cmp.csv").set_index("model")
    assert {"ci_low", "diff_high", "epc_at_10", "ild_at_10", "gini_at_10"} <= set(table.columns)
    a = evaluate(EASE.load(paths[0]), exp.history, exp.test, k=10, per_user=True)[1]
    b = evaluate(MostPopular.load(paths[1]), exp.history, exp.test, k=10, per_user=True)[1]
    assert table.loc["pop", "t_p"] == pytest.approx(
        stats.ttest_rel(b["ndcg_at_10"], a["ndcg_at_10"]).pvalue, rel=1e-9)
    assert (tmp_path / "cmp.png").stat().st_size > 0
    run = mlflow.MlflowClient(uri).get_run(result["run_id"])
    assert run.data.metrics["ease.ndcg_at_10"] == pytest.approx(table.loc["ease", "mean"])
