"""Is a difference between two models real? Paired tests and bootstrap intervals on the
per-user metric arrays of ``evaluate(..., per_user=True)``.

For models ``A`` (each compared one) and ``B`` (the baseline) evaluated on the same users,
``d_u = m_A(u) - m_B(u)``:

- paired t-test on ``d`` (``scipy.stats.ttest_rel``) and Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``, zero differences dropped, two-sided);
- Holm-Bonferroni correction of each test's p-values across the compared pairs (Holm, Scand.
  J. Statistics 1979): the i-th smallest of m p-values becomes ``max_{j<=i} min(1, (m - j + 1)
  p_(j))``;
- percentile bootstrap intervals (Efron & Tibshirani 1993) of every model's mean and of every
  paired mean difference, from the same seeded resamples of users for all models (so the
  intervals of differences are paired);
- effect size: Cohen's ``d_z = mean(d) / sd(d)`` (sd with ``ddof=1``).

This is the protocol Sakai (SIGIR 2016) and Elliot (Anelli et al., SIGIR 2021) recommend for
comparing rankers on one test collection.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


def holm(p_values) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def bootstrap_means(columns: np.ndarray, n_boot: int = 2000, seed: int = 0,
                    chunk: int = 200) -> np.ndarray:
    """Means of ``n_boot`` seeded resamples of the rows of ``columns`` (n_users x n_models):
    an ``n_boot x n_models`` array; every model sees the same resampled users."""
    rng = np.random.default_rng(seed)
    n = columns.shape[0]
    out = np.empty((n_boot, columns.shape[1]))
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        draws = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = columns[draws].mean(axis=1)
    return out


def _per_user(result, metric: str):
    if isinstance(result, Mapping):
        if metric not in result:
            raise KeyError(f"no per-user {metric!r} in the results (keys: {sorted(result)}); "
                           "evaluate with per_user=True and that metric")
        values = np.asarray(result[metric], dtype=np.float64)
        users = np.asarray(result["users"]) if "users" in result else None
    else:
        values, users = np.asarray(result, dtype=np.float64), None
    if values.ndim != 1:
        raise ValueError(f"{metric} is not a per-user metric (an array of one value per user)")
    return values, users


def compare(results: Mapping[str, object], metric: str = "ndcg_at_10",
            baseline: str | None = None, n_boot: int = 2000, confidence: float = 0.95,
            alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """Compare models on one per-user metric (see the module docstring).

    Parameters
    ----------
    results : mapping of model name -> per-user results
        ``evaluate(..., per_user=True)[1]`` (a dict of arrays with ``"users"``) or a 1-D
        array, per model. With ``"users"``, models are matched on the users they share.
    metric : str
        e.g. ``"ndcg_at_10"``.
    baseline : str, optional
        The model every other one is compared with; default the best mean.
    n_boot, confidence, seed :
        Bootstrap resamples, interval level, seed.
    alpha : float
        Level of the ``significant`` column (Holm-adjusted paired t-test).

    Returns
    -------
    DataFrame, one row per model (best mean first): ``mean``, ``ci_low``, ``ci_high``, and
    against the baseline ``diff``, ``diff_low``, ``diff_high``, ``t_p``, ``wilcoxon_p``,
    ``t_p_holm``, ``wilcoxon_p_holm``, ``effect_size``, ``significant`` (NaN / False for the
    baseline itself); ``attrs["n_users"]``, ``attrs["baseline"]``.
    """
    from scipy import stats

    if len(results) < 1:
        raise ValueError("compare needs at least one model")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    names = list(results)
    arrays = {name: _per_user(results[name], metric) for name in names}
    users = [u for _, u in arrays.values() if u is not None]
    if len(users) == len(names):
        common = users[0]
        for u in users[1:]:
            common = np.intersect1d(common, u)
        if any(u.size != common.size for u in users):
            logger.warning("compare: the models were evaluated on different users; comparing "
                           "on the %d they share", common.size)
        columns = np.column_stack([pd.Series(values, index=u).reindex(common).to_numpy()
                                   for values, u in arrays.values()])
    else:
        sizes = {v.size for v, _ in arrays.values()}
        if len(sizes) != 1:
            raise ValueError(f"per-user arrays of different lengths {sorted(sizes)} and no "
                             "'users' to match them by")
        columns = np.column_stack([v for v, _ in arrays.values()])
    if not np.isfinite(columns).all():
        raise ValueError(f"per-user {metric} holds NaN or infinite values")
    n_users = columns.shape[0]
    if n_users < 2:
        raise ValueError("compare needs at least two users")
    means = columns.mean(axis=0)
    if baseline is None:
        baseline = names[int(np.argmax(means))]
    if baseline not in names:
        raise KeyError(f"baseline {baseline!r} is not one of the models {names}")
    b = names.index(baseline)
    boot = bootstrap_means(columns, n_boot, seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    diff_boot = boot - boot[:, [b]]
    diff_low, diff_high = np.percentile(diff_boot, [tail, 100 - tail], axis=0)
    rows = []
    for j, name in enumerate(names):
        d = columns[:, j] - columns[:, b]
        row = {"model": name, "mean": means[j], "ci_low": low[j], "ci_high": high[j],
               "diff": float(d.mean()), "diff_low": diff_low[j], "diff_high": diff_high[j],
               "t_p": np.nan, "wilcoxon_p": np.nan, "effect_size": np.nan}
        if j != b:
            sd = d.std(ddof=1)
            row["t_p"] = float(stats.ttest_rel(columns[:, j], columns[:, b]).pvalue) \
                if sd > 0 else (1.0 if d.mean() == 0 else 0.0)
            row["wilcoxon_p"] = float(stats.wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
            row["effect_size"] = float(d.mean() / sd) if sd > 0 else 0.0
        rows.append(row)
    out = pd.DataFrame(rows)
    others = out.index[out["model"] != baseline]
    for col in ("t_p", "wilcoxon_p"):
        out[f"{col}_holm"] = np.nan
        if len(others):
            out.loc[others, f"{col}_holm"] = holm(out.loc[others, col].to_numpy())
    out["significant"] = out["t_p_holm"] < alpha
    out = out.sort_values("mean", ascending=False, kind="stable").reset_index(drop=True)
    out.attrs.update(n_users=int(n_users), baseline=baseline, metric=metric,
                     confidence=confidence)
    return out


def evaluate_and_compare(models: Mapping[str, object], exp, metric: str = "ndcg_at_10",
                         k=(10, 20), baseline: str | None = None, n_boot: int = 2000,
                         seed: int = 0, show_progress: bool = False):
    """Evaluate fitted ``models`` on an experiment's test part (every metric, per user) and
    :func:`compare` them on ``metric``. Returns ``(table, means)``: the comparison, with the
    mean of every other metric of each model joined on, and ``{model: means}``."""
    from recsys.evaluation import ALL_METRICS, evaluate, parse_metric

    _, at = parse_metric(metric)
    ks = tuple(sorted({*np.atleast_1d(k).tolist(), at}))
    per_user, means = {}, {}
    for name, model in models.items():
        means[name], per_user[name] = evaluate(model, exp.history, exp.test, k=ks,
                                               metrics=ALL_METRICS, per_user=True,
                                               show_progress=show_progress)
    table = compare(per_user, metric, baseline, n_boot=n_boot, seed=seed)
    extra = pd.DataFrame.from_dict(means, orient="index").drop(columns=[metric],
                                                                errors="ignore")
    attrs = dict(table.attrs)
    table = table.merge(extra, left_on="model", right_index=True, how="left")
    table.attrs.update(attrs)
    return table, means


def comparison_plot(table: pd.DataFrame, path, bias: str = "arp_at_10"):
    """Two panels: the metric's mean and interval per model; the metric against popularity
    bias (``bias``, e.g. average recommendation popularity). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = table.attrs.get("metric", "metric")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    x = np.arange(len(table))
    err = np.vstack([table["mean"] - table["ci_low"], table["ci_high"] - table["mean"]])
    colours = ["tab:red" if s else "tab:blue" for s in table["significant"]]
    left.bar(x, table["mean"], yerr=err, capsize=3, color=colours)
    left.set_xticks(x, table["model"], rotation=20)
    left.set_ylabel(f"{metric} (mean, {100 * table.attrs.get('confidence', 0.95):.0f}% CI)")
    left.set_title(f"red: differs from {table.attrs.get('baseline')} (Holm, paired t)",
                   fontsize=8)
    if bias in table.columns:
        right.scatter(table[bias], table["mean"])
        for _, row in table.iterrows():
            right.annotate(row["model"], (row[bias], row["mean"]), fontsize=7)
        right.set_xlabel(f"{bias} (popularity bias)")
        right.set_ylabel(metric)
    fig.tight_layout()
    from recsys.batch import atomic_write

    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)


def format_table(table: pd.DataFrame, extra=("coverage_at_10", "arp_at_10", "aplt_at_10",
                                             "gini_at_10")) -> str:
    """The comparison as text: mean [CI], difference from the baseline [CI], Holm p-values,
    a ``*`` where the difference is significant, and a few beyond-accuracy means."""
    metric = table.attrs.get("metric", "metric")
    cols = [c for c in extra if c in table.columns]
    head = f"{'model':<12}{metric:>10}{'95% CI':>18}{'diff':>9}{'diff 95% CI':>20}" \
           f"{'p t (Holm)':>12}{'p W (Holm)':>12}  " + "".join(f"{c:>16}" for c in cols)
    lines = [head]
    for _, r in table.iterrows():
        mark = "*" if r["significant"] else " "
        ptext = "" if np.isnan(r["t_p_holm"]) else f"{r['t_p_holm']:.2g}"
        wtext = "" if np.isnan(r["wilcoxon_p_holm"]) else f"{r['wilcoxon_p_holm']:.2g}"
        lines.append(
            f"{r['model']:<12}{r['mean']:>10.4f}  [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
            f"{r['diff']:>+9.4f}  [{r['diff_low']:+.4f}, {r['diff_high']:+.4f}]"
            f"{ptext:>11}{mark}{wtext:>12}  " + "".join(f"{r[c]:>16.4g}" for c in cols))
    lines.append(f"({table.attrs.get('n_users')} test users; baseline "
                 f"{table.attrs.get('baseline')}; * = paired t-test significant after Holm)")
    return "\n".join(lines)

__all__ = ["bootstrap_means", "compare", "comparison_plot", "evaluate_and_compare",
           "format_table", "holm"]
