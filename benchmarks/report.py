"""The results page: markdown tables and PNG plots rendered from ``benchmarks/results/*.csv``.

``write_page(quick)`` fills ``README.template.md`` (the prose; ``{{name}}`` marks where a table
goes) and writes ``benchmarks/README.md`` (``quick``: ``results/quick/README.md`` from the
``*_quick.csv`` files, plots beside it). A table whose CSV is missing says how to produce it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

from benchmarks import SECTIONS
from benchmarks._common import DATASETS

HERE = Path(__file__).parent
RESULTS = HERE / "results"
TEMPLATE = HERE / "README.template.md"
MODEL_ORDER = ["EASE", "SimpleX", "MaskedNMF", "NBMF", "AltMin", "ALS", "BPR", "ItemKNN",
               "MostPopular"]


class Missing(Exception):
    """A CSV the table needs is absent."""


def _num(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _read(name: str, quick: bool) -> list[dict]:
    path = RESULTS / f"{name}{'_quick' if quick else ''}.csv"
    if not path.exists():
        raise Missing(path.name)
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def sec(x: float) -> str:
    if math.isnan(x):
        return "-"
    if x >= 100:
        return f"{x:.0f} s"
    if x >= 1:
        return f"{x:.3g} s"
    return f"{x:.3f} s" if x >= 0.001 else f"{x * 1e3:.3f} ms"


def num(x: float, digits: int = 4) -> str:
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def ratio(x: float) -> str:
    return "-" if math.isnan(x) else f"**{x:.3g}x**"


def gib(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:.2f} GiB" if x >= 1 else f"{x * 1024:.0f} MiB"


def count(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- the four summary tables
def _with_ci(row: dict, metric: str) -> str:
    low, high = _num(row.get(f"{metric}_low")), _num(row.get(f"{metric}_high"))
    mean = num(_num(row[metric]))
    return mean if math.isnan(low) else f"{mean} [{low:.4f}, {high:.4f}]"


def _significance(quick: bool) -> dict[tuple[str, str], str]:
    """(data, model) -> mark against the best NDCG@20 of its data set: ``best``, ``*``
    (significantly below, Holm-corrected paired t-test), ``=`` (not distinguishable)."""
    try:
        rows = _read("accuracy_compare", quick)
    except Missing:
        return {}
    marks = {}
    for r in rows:
        if r["model"] == r["baseline"]:
            marks[r["data"], r["model"]] = "best"
        else:
            marks[r["data"], r["model"]] = "*" if r["significant"] == "True" else "="
    return marks


BEYOND_COLUMNS = [("coverage_at_20", "coverage"), ("epc_at_20", "EPC"), ("miuf_at_20", "MIUF"),
                  ("ild_at_20", "ILD"), ("arp_at_20", "ARP"), ("aplt_at_20", "APLT"),
                  ("gini_at_20", "Gini"), ("entropy_at_20", "entropy")]


def accuracy_defaults(quick: bool, out: Path) -> str:
    """Every model with its defaults beside its tuned row (same split, same protocol)."""
    defaults = _read("accuracy_defaults", quick)
    try:
        tuned = {(r["data"], r["model"]): r for r in _read("accuracy", quick)}
    except Missing:
        tuned = {}
    body = []
    for r in defaults:
        best = tuned.get((r["data"], r["model"]), {})
        mine, theirs = _num(r["ndcg_at_20"]), _num(best.get("ndcg_at_20"))
        body.append([r["data"], r["model"],
                     f"{num(mine)} [{num(_num(r['ndcg_at_20_low']))}, "
                     f"{num(_num(r['ndcg_at_20_high']))}]", num(theirs),
                     "-" if math.isnan(theirs) or not theirs else f"{mine / theirs:.0%}",
                     sec(_num(r["fit_s"])), best.get("params", "-")])
    return table(["data", "model", "NDCG@20, defaults [CI]", "NDCG@20, tuned", "defaults / tuned",
                  "fit, defaults", "tuned configuration"], body)


def accuracy(quick: bool, out: Path) -> str:
    rows = _read("accuracy", quick)
    rows.sort(key=lambda r: (DATASETS.index(r["data"]) if r["data"] in DATASETS else 9,
                             r["data"], MODEL_ORDER.index(r["model"])
                             if r["model"] in MODEL_ORDER else 99))
    marks = _significance(quick)
    body = [[r["data"], r["model"], _with_ci(r, "recall_at_20"), _with_ci(r, "ndcg_at_20"),
             marks.get((r["data"], r["model"]), "-"),
             num(_num(r["published_recall_at_20"])), num(_num(r["published_ndcg_at_20"])),
             sec(_num(r["fit_s"])), gib(_num(r["peak_mem_gib"])),
             count(_num(r["eval_users_per_s"])), r["grid_size"],
             "`" + r["params"].replace("|", "/") + "`"] for r in rows]
    text = table(["data", "model", "Recall@20 [95% CI]", "NDCG@20 [95% CI]", "vs best",
                  "published R@20", "published N@20", "fit", "peak memory", "eval users/s",
                  "grid", "chosen"], body)
    text += ("\n\nBeyond accuracy at 20 on the same test lists (`recsys.beyond`: coverage of the "
             "catalogue, novelty EPC / MIUF, intra-list diversity over training co-occurrence, "
             "average recommendation popularity, long-tail share, Gini and entropy of exposure):"
             "\n\n")
    text += table(["data", "model"] + [label for _, label in BEYOND_COLUMNS],
                  [[r["data"], r["model"]] + [f"{_num(r.get(c)):.4g}"
                                              if not math.isnan(_num(r.get(c))) else "-"
                                              for c, _ in BEYOND_COLUMNS] for r in rows])
    if _plot_accuracy(rows, out / "accuracy.png"):
        text += _image("Recall@20 per model", out / "accuracy.png", quick)
    return text


def rating(quick: bool, out: Path) -> str:
    rows = _read("nmf_folds", quick)
    body = [[r["model"], r["folds"], num(_num(r["rmse"])), num(_num(r["mae"])),
             num(_num(r["ndcg_at_10"])), sec(_num(r.get("fit_s"))), r.get("threads", "-"),
             "-" if math.isnan(_num(r["published_rmse"])) else
             f"{_num(r['published_rmse']):.3f} / {_num(r['published_mae']):.3f}"]
            for r in rows]
    return table(["model", "folds", "RMSE", "MAE", "NDCG@10", "fit per fold", "threads",
                  "published RMSE / MAE"], body)


def _speed_rows(quick: bool) -> list[list]:
    """(comparison, setting, threads, recsys, peer, peer / recsys) from every speed CSV."""
    out = []

    def add(source: str, fn: Callable[[list[dict]], None]) -> None:
        try:
            fn(_read(source, quick))
        except Missing as err:
            out.append([source, f"not run ({err})", "-", math.nan, math.nan, math.nan])

    def ease(rows):
        for r in rows:
            out.append(["EASE fit vs Steck's NumPy code", f"{r['data']}, {r['items']} items",
                        "2", _num(r["recsys_fit_s"]), _num(r["reference_fit_s"]),
                        1 / _num(r["fit_ratio"]) if _num(r["fit_ratio"]) else math.nan])
            out.append(["EASE top-20 vs matmul + argpartition", r["data"], "2",
                        _num(r["recsys_recommend_s"]), _num(r["reference_recommend_s"]),
                        _num(r["recommend_speedup"])])

    def topk(rows):
        for r in rows:
            seen = "filtered" if r["filter_seen"] == "True" else "kept"
            out.append(["top-k vs implicit", f"{int(r['users']):,} x {int(r['items']):,}, "
                        f"d {r['factors']}, seen {seen}",
                        r["threads"], _num(r["recsys_s"]), _num(r["implicit_s"]),
                        _num(r["speedup"])])

    def evaluation(rows):
        for r in rows:
            out.append(["evaluation vs implicit", r["data"], r["threads"], _num(r["recsys_s"]),
                        _num(r["implicit_s"]), _num(r["speedup"])])

    def simplex(rows):
        ours = {r["threads"]: _num(r["epoch_s"]) for r in rows if r["trainer"] == MEAN_TRAINER}
        peers = [r for r in rows if not r["trainer"].startswith("recsys")]
        for r in peers:
            out.append([f"SimpleX epoch vs {r['trainer']}", "Gowalla, 1000 negatives, d 64",
                        r["threads"],
                        ours[r["threads"]], _num(r["epoch_s"]), _num(r["ratio"])])
        if not peers:
            out.append(["SimpleX epoch vs RecBole", "RecBole not run", "-", ours.get("2", math.nan),
                        math.nan, math.nan])

    def anneal(rows):
        for peer in (r for r in rows if r["solver"].startswith("dwave")):
            for threads in ("1", "2"):
                ours = [r for r in rows if r["solver"] == "recsys anneal" and
                        r["threads"] == threads and
                        _num(r["mean_energy"]) <= _num(peer["mean_energy"])]
                if ours:
                    best = min(ours, key=lambda r: _num(r["seconds"]))
                    out.append([f"annealer vs {peer['solver']}", "time to the peer's mean energy "
                                f"(recsys {best['reads']} x {best['sweeps']})", threads,
                                _num(best["seconds"]), _num(peer["seconds"]),
                                _num(peer["seconds"]) / _num(best["seconds"])])

    def altmin(rows):
        for r in rows:
            out.append(["AltMin CG sweep vs implicit ALS (CG)", f"d {r['factors']}",
                        r["threads"], _num(r["altmin_cg_s"]), _num(r["implicit_cg_s"]),
                        _num(r["cg_speedup_vs_implicit"])])

    def nmf(rows):
        surprise = next((r for r in rows if r["model"] == "Surprise NMF"), None)
        for r in rows:
            if r["model"] == "recsys MaskedNMF" and surprise:
                out.append(["MaskedNMF fit vs Surprise NMF", "ML-100K u1", r["threads"],
                            _num(r["fit_s"]), _num(surprise["fit_s"]),
                            _num(surprise["fit_s"]) / _num(r["fit_s"])])

    for source, fn in [("ease", ease), ("topk", topk), ("evaluation", evaluation),
                       ("simplex_speed", simplex), ("nmf_anneal", anneal), ("altmin", altmin),
                       ("nmf_rmse", nmf)]:
        add(source, fn)
    return out


def speed(quick: bool, out: Path) -> str:
    rows = _speed_rows(quick)
    text = table(["comparison", "setting", "threads", "recsys", "peer", "peer / recsys"],
                 [[c, s, t, sec(a), sec(b), ratio(r)] for c, s, t, a, b, r in rows])
    if _plot_speed(rows, out / "speed_ratios.png"):
        text += _image("speed ratios", out / "speed_ratios.png", quick)
    return text


def _times_csr(row: dict) -> str:
    value = _num(row.get("mem_over_csr"))
    return "-" if math.isnan(value) else f"{value:.2g}x"


def scaling(quick: bool, out: Path) -> str:
    rows = _read("scaling", quick)
    sizes = sorted({int(r["nnz"]) for r in rows})
    models = list(dict.fromkeys(r["model"] for r in rows))
    cell = {(r["model"], int(r["nnz"])): r for r in rows}
    body = []
    for m in models:
        first = next(r for r in rows if r["model"] == m)
        body.append([m, first["work"]] + [sec(_num(cell[(m, n)]["fit_s"])) if (m, n) in cell
                                          else "-" for n in sizes]
                    + [num(_num(first["exponent"]), 2),
                       gib(max(_num(cell[(m, n)]["peak_mem_gib"]) for n in sizes
                               if (m, n) in cell)),
                       _times_csr(cell.get((m, sizes[-1]), {}))])
    text = table(["model", "work per fit"] + [f"nnz {n:,}" for n in sizes] +
                 ["exponent", "peak memory (largest)", "peak / CSR (largest)"], body)
    users = {int(r["nnz"]): r["users"] for r in rows}
    text += ("\n\nUsers per size: " + ", ".join(f"{int(users[n]):,}" for n in sizes) +
             f"; items: {int(rows[0]['items']):,}; threads: {rows[0]['threads']}.")
    if _plot_scaling(rows, out / "scaling.png"):
        text += _image("fit time vs nnz", out / "scaling.png", quick)
    return text


# ---------------------------------------------------------------- per-benchmark detail tables
def topk(quick: bool, out: Path) -> str:
    rows = _read("topk", quick)
    return table(["users", "items", "factors", "seen filtered", "recsys", "implicit", "ratio",
                  "users/s (recsys)", "same ids"],
                 [[count(_num(r["users"])), count(_num(r["items"])), r["factors"],
                   "yes" if r["filter_seen"] == "True" else "no", sec(_num(r["recsys_s"])),
                   sec(_num(r["implicit_s"])), ratio(_num(r["speedup"])),
                   count(_num(r["users_per_s"])), f"{100 * _num(r['same_ids']):.3f}%"]
                  for r in rows])


def evaluation(quick: bool, out: Path) -> str:
    rows = _read("evaluation", quick)
    return table(["data", "users", "items", "recsys", "implicit", "ratio", "NDCG@10 recsys",
                  "NDCG@10 implicit"],
                 [[r["data"], count(_num(r["users"])), count(_num(r["items"])),
                   sec(_num(r["recsys_s"])), sec(_num(r["implicit_s"])),
                   ratio(_num(r["speedup"])), num(_num(r["ndcg_recsys"]), 5),
                   num(_num(r["ndcg_implicit"]), 5)] for r in rows])


def ease(quick: bool, out: Path) -> str:
    rows = _read("ease", quick)
    return table(["data", "items", "l2", "fit recsys", "fit reference", "fit ratio",
                  "peak recsys", "peak reference", "memory ratio", "recommend recsys",
                  "recommend reference", "speed-up", "note"],
                 [[r["data"], count(_num(r["items"])), r["l2"], sec(_num(r["recsys_fit_s"])),
                   sec(_num(r["reference_fit_s"])), num(_num(r["fit_ratio"]), 2),
                   gib(_num(r["recsys_peak_gib"])), gib(_num(r["reference_peak_gib"])),
                   num(_num(r["memory_ratio"]), 2), sec(_num(r["recsys_recommend_s"])),
                   sec(_num(r["reference_recommend_s"])), ratio(_num(r["recommend_speedup"])),
                   r["note"] or ""] for r in rows])


def altmin_epoch(quick: bool, out: Path) -> str:
    rows = _read("altmin", quick)
    return table(["factors", "implicit CG", "AltMin CG (3 steps)", "AltMin Cholesky",
                  "AltMin sketch", "CG vs implicit", "CG vs Cholesky"],
                 [[r["factors"], sec(_num(r["implicit_cg_s"])), sec(_num(r["altmin_cg_s"])),
                   sec(_num(r["altmin_cholesky_s"])), sec(_num(r["altmin_sketch_s"])),
                   ratio(_num(r["cg_speedup_vs_implicit"])),
                   f"{_num(r['cg_speedup_vs_cholesky']):.1f}x"] for r in rows])


def _recovery(rows: list[dict]) -> str:
    return table(["n", "rank", "solver", "sweeps", "seconds", "per sweep", "final error"],
                 [[r["n"], r["rank"], r["solver"], r["sweeps"], sec(_num(r["seconds"])),
                   sec(_num(r.get("per_sweep_s"))), f"{_num(r['error']):.1e}"] for r in rows])


def altmin_recovery(quick: bool, out: Path) -> str:
    return _recovery(_read("altmin_recovery", quick))


def altmin_recovery_large(quick: bool, out: Path) -> str:
    if quick:
        return "(full run only)"
    return _recovery(_read("altmin_recovery_n4000_d50", False))


def nmf_rmse(quick: bool, out: Path) -> str:
    rows = _read("nmf_rmse", quick)
    return table(["model", "threads", "fit", "min-max", "test RMSE", "test MAE",
                  "Surprise NMF time / this"],
                 [[r["model"], r["threads"], sec(_num(r["fit_s"])),
                   f"{sec(_num(r['fit_min_s']))} - {sec(_num(r['fit_max_s']))}",
                   num(_num(r["rmse"])), num(_num(r["mae"])),
                   f"{_num(r.get('surprise_nmf_over_this')):.2f}x"] for r in rows])


def nmf_anneal(quick: bool, out: Path) -> str:
    rows = _read("nmf_anneal", quick)
    return table(["solver", "threads", "reads x sweeps", "seconds", "mean gap", "at optimum"],
                 [[r["solver"], r["threads"], f"{r['reads']} x {r['sweeps']}",
                   sec(_num(r["seconds"])), f"{_num(r['mean_gap']):.4f}",
                   f"{100 * _num(r['at_optimum']):.1f}%"] for r in rows])


def updates_foldin(quick: bool, out: Path) -> str:
    rows = _read("updates_foldin", quick)
    return table(["data", "model", "held-out users", "fold-in Recall@20", "fold-in NDCG@20",
                  "refit Recall@20", "refit NDCG@20", "fold-in / refit (NDCG)", "scoring"],
                 [[r["data"], r["model"], r["held_users"],
                   num(_num(r["fold_in_recall_at_20"])), num(_num(r["fold_in_ndcg_at_20"])),
                   num(_num(r["refit_recall_at_20"])), num(_num(r["refit_ndcg_at_20"])),
                   num(_num(r["fold_in_over_refit"]), 3), sec(_num(r["score_s"]))]
                  for r in rows])


def updates_partial(quick: bool, out: Path) -> str:
    rows = _read("updates_partial", quick)
    return table(["data", "model", "users", "partial_fit", "refit", "refit / update",
                  "B vs refit (max abs diff / max abs)", "their Recall@20 (update)",
                  "(refit)"],
                 [[r["data"], r["model"], f"{r['new_users']} ({100 * _num(r['fraction']):.0f}%)",
                   sec(_num(r["update_s"])), sec(_num(r["refit_s"])),
                   ratio(_num(r["refit_over_update"])),
                   f"{_num(r['max_rel_diff_B']):.1e}" if r["max_rel_diff_B"] else "-",
                   num(_num(r["update_recall_at_20"])), num(_num(r["refit_recall_at_20"]))]
                  for r in rows])


def sweep_quality(quick: bool, out: Path) -> str:
    rows = _read("sweep_quality", quick)
    return table(["data", "model", "grid (configurations)", "grid best NDCG@20",
                  "sweep trials", "sweep best NDCG@20", "sweep / grid", "grid time",
                  "sweep time", "best at an edge"],
                 [[r["data"], r["model"], r["grid_size"], num(_num(r["grid_best"])),
                   r["trials"], num(_num(r["sweep_best"])), num(_num(r["ratio"]), 3),
                   sec(_num(r["grid_s"])), sec(_num(r["sweep_s"])), r["edges"]]
                  for r in rows])


def sweep_simplex(quick: bool, out: Path) -> str:
    rows = _read("sweep_simplex", quick)
    return table(["data", "run", "trials", "validation NDCG@20", "vs best known", "time",
                  "chosen"],
                 [[r["data"], r["run"], r["trials"], num(_num(r["ndcg_at_20"])),
                   num(_num(r["vs_best_known"]), 3), sec(_num(r["seconds"])),
                   f"`{r['params']}`" if r["params"] != "-" else "-"] for r in rows])


def simplex_time_to_quality(quick: bool, out: Path) -> str:
    rows = _read("simplex_time_to_quality", quick)
    return table(["data", "preset", "seed", "epochs (best)", "fit", "test Recall@20",
                  "test NDCG@20", "bar (97% of the paper)", "met"],
                 [[r["data"], f"`{r['preset']}`", r["seed"],
                   f"{r['epochs_run']} ({r['best_epoch']})", sec(_num(r["fit_s"])),
                   num(_num(r["recall_at_20"])), num(_num(r["ndcg_at_20"])),
                   f"{r['bar_recall']} / {r['bar_ndcg']}", "yes" if r["met"] == "True" else "no"]
                  for r in rows])


def sweep_overhead(quick: bool, out: Path) -> str:
    rows = _read("sweep_overhead", quick)
    return table(["data", "model", "configuration", "plain fit", "trial fit (with reports)",
                  "trial / plain", "final evaluation"],
                 [[r["data"], r["model"], f"`{r['params']}`", sec(_num(r["plain_fit_s"])),
                   sec(_num(r["trial_fit_s"])), ratio(_num(r["overhead"])),
                   sec(_num(r["final_eval_s"]))] for r in rows])


def contention(quick: bool, out: Path) -> str:
    rows = _read("contention", quick)
    return table(["data", "competing process", "threads", "EASE fit", "vs 1 thread"],
                 [[r["data"], "yes" if r["competing_process"] == "True" else "no", r["threads"],
                   sec(_num(r["fit_s"])), ratio(_num(r["vs_1_thread"]))] for r in rows])


MEAN_TRAINER = "recsys SimpleX"  # bench_simplex.py's row names
ATTENTION_TRAINER = "recsys SimpleX, user attention"


def simplex(quick: bool, out: Path) -> str:
    rows = _read("simplex_speed", quick)
    ours = {r["threads"]: _num(r["epoch_s"]) for r in rows if r["trainer"] == MEAN_TRAINER}
    attention = [_num(r["epoch_s"]) for r in rows if r["trainer"] == ATTENTION_TRAINER]
    text = table(["trainer", "threads", "epoch", "min", "max", "positives/s",
                  "RecBole / recsys"],
                 [[r["trainer"], r["threads"], sec(_num(r["epoch_s"])), sec(_num(r["min_s"])),
                   sec(_num(r["max_s"])), count(_num(r["positives_per_s"])),
                   ratio(_num(r["ratio"]))] for r in rows])
    if "1" in ours and "2" in ours:
        text += f"\n\nrecsys scales {ours['1'] / ours['2']:.2f}x from 1 to 2 threads."
    if attention and "2" in ours:
        text += (f" User attention takes {attention[0] / ours['2']:.2f}x the mean's epoch "
                 "(2 threads).")
    return text


def simplex_reference(quick: bool, out: Path) -> str:
    rows = _read("simplex_reference", quick)
    text = table(["kernel", "negative_sharing", "threads", "epoch", "min", "reference / this"],
                 [[r["kernel"], r["negative_sharing"], r["threads"], sec(_num(r["epoch_s"])),
                   sec(_num(r["min_s"])), ratio(_num(r["ratio"]))] for r in rows])
    try:
        quality = _read("simplex_quality", False)
    except Missing:
        return text
    text += "\n\n" + table(
        ["epoch", "reference NDCG@20", "this tree NDCG@20", "reference Recall@20",
         "this tree Recall@20", "reference epoch", "this tree epoch"],
        [[str(int(r["epoch"]) + 1), f"{_num(r['reference_ndcg_at_20']):.4f}",
          f"{_num(r['this_tree_ndcg_at_20']):.4f}", f"{_num(r['reference_recall_at_20']):.4f}",
          f"{_num(r['this_tree_recall_at_20']):.4f}", sec(_num(r["reference_epoch_s"])),
          sec(_num(r["this_tree_epoch_s"]))] for r in quality])
    return text


# ---------------------------------------------------------------- run record, peers
def _record(quick: bool) -> dict:
    """The run record ``python -m benchmarks run`` writes (sections, machine, peers)."""
    path = RESULTS / f"run{'_quick' if quick else ''}.json"
    if not path.exists():
        raise Missing(path.name)
    return json.loads(path.read_text())


def run_info(quick: bool, out: Path) -> str:
    record = _record(quick)
    text = f"Machine: {record.get('machine', '?')}. Last run started {record.get('last_run')}.\n\n"
    text += table(["section", "commands", "seconds", "status", "finished", "commit"],
                  [[name, "<br>".join(f"`python benchmarks/{c}`" for c in r["commands"]),
                    f"{r['seconds']:.0f}", r["status"], r.get("finished", "-"),
                    r.get("commit", "-")] for name, r in sorted(
                        record["sections"].items(), key=lambda item: _section_order(item[0]))])
    return text


def _section_order(name: str) -> int:
    order = list(SECTIONS)
    return order.index(name) if name in order else len(order)


def peers(quick: bool, out: Path) -> str:
    record = _record(quick)
    return table(["package", "virtualenv", "version / error"],
                 [[name, p["venv"], p.get("version") or f"not run: {p['error']}"]
                  for name, p in record.get("peers", {}).items()])


# ---------------------------------------------------------------- plots
def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def scaling_large(quick: bool, out: Path) -> str:
    """The 10^7-10^8 series: one epoch per model, fit / evaluation / recommend-all with their
    peak memory over the CSR's bytes."""
    rows = _read("scaling_large", quick)
    try:  # streaming the same log from Parquet (bench_scaling --parquet), measured apart
        rows += [r for r in _read("scaling_parquet", quick) if r["model"] == "from_parquet"]
    except Missing:
        pass
    sizes = sorted({int(r["nnz"]) for r in rows if r["model"] != "from_parquet"})
    largest = sizes[-1]
    body = []
    for m in dict.fromkeys(r["model"] for r in rows):
        mine = {int(r["nnz"]): r for r in rows if r["model"] == m}
        if m == "from_parquet":  # the full log (before the held-out split): its own size
            mine = {largest: next(iter(mine.values()))}
        last = mine.get(largest, {})
        note = last.get("note", "")
        fits = [sec(_num(mine[n]["fit_s"])) if n in mine else "-" for n in sizes]
        if note.startswith("refused"):
            fits = ["refused"] * len(sizes)
        body.append([m, last.get("work", "")] + fits + [
            num(_num(last.get("exponent")), 2), _times_csr(last),
            sec(_num(last.get("eval_s"))), _times_csr({"mem_over_csr": last.get("eval_over_csr")}),
            sec(_num(last.get("recommend_s"))),
            _times_csr({"mem_over_csr": last.get("recommend_over_csr")})])
    text = table(["model", "work"] + [f"fit, nnz {n:,}" for n in sizes] +
                 ["exponent", "fit peak / CSR", "evaluate all users", "eval peak / CSR",
                  "top-20 of all to Parquet", "recommend peak / CSR"], body)
    first = next(r for r in rows if int(r["nnz"]) == largest and r["model"] != "from_parquet")
    refused = next((r["note"] for r in rows if r.get("note", "").startswith("refused")), "")
    text += (f"\n\nLargest size: {largest:,} interactions, {int(first['users']):,} users x "
             f"{int(first['items']):,} items, CSR {_num(first['csr_gib']):.2f} GiB; "
             f"threads: {first['threads']}.")
    if refused:
        text += f" Dense EASE: {refused.removeprefix('refused: ')}"
    return text


def _plot_scaling(rows: list[dict], path: Path) -> bool:
    plt = _pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 5))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((int(r["nnz"]), _num(r["fit_s"])) for r in rows if r["model"] == model)
        mine = [(n, s) for n, s in mine if s > 0]
        if mine:
            slope = _num(next(r for r in rows if r["model"] == model)["exponent"])
            ax.plot(*zip(*mine), marker="o", label=f"{model} (slope {slope:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="interactions (nnz)", ylabel="fit seconds",
           title="Fit time vs nnz (synthetic power-law data)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return True


def _plot_accuracy(rows: list[dict], path: Path) -> bool:
    plt = _pyplot()
    if plt is None:
        return False
    datas = list(dict.fromkeys(r["data"] for r in rows))
    fig, axes = plt.subplots(1, len(datas), figsize=(6 * len(datas), 4), squeeze=False)
    for ax, data in zip(axes[0], datas):
        mine = [r for r in rows if r["data"] == data]
        names = [r["model"] for r in mine]
        ax.barh(names, [_num(r["recall_at_20"]) for r in mine], color="tab:blue", label="recsys")
        pub = [(i, _num(r["published_recall_at_20"])) for i, r in enumerate(mine)
               if not math.isnan(_num(r["published_recall_at_20"]))]
        if pub:
            ax.scatter([p for _, p in pub], [i for i, _ in pub], color="tab:red", marker="|",
                       s=300, label="published", zorder=3)
        ax.set(title=data, xlabel="Recall@20 (test)")
        ax.invert_yaxis()
        ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)
    plt.close(fig)
    return True


def _plot_speed(rows: list[list], path: Path) -> bool:
    plt = _pyplot()
    rows = [r for r in rows if not math.isnan(r[5])]
    if plt is None or not rows:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.28 * len(rows) + 1.2))
    labels = [f"{c} ({s}, {t} thr)" for c, s, t, *_ in rows]
    ax.barh(labels, [r[5] for r in rows], color=["tab:green" if r[5] >= 1 else "tab:orange"
                                                  for r in rows])
    ax.axvline(1, color="black", lw=0.8)
    ax.set(xscale="log", xlabel="peer time / recsys time (> 1: recsys faster)")
    ax.tick_params(axis="y", labelsize=7)
    ax.invert_yaxis()
    _save(fig, path)
    plt.close(fig)
    return True


def _page(quick: bool) -> Path:
    return RESULTS / "quick" / "README.md" if quick else HERE / "README.md"


def _plots(quick: bool) -> Path:
    return RESULTS / "quick" if quick else RESULTS / "plots"


def _image(alt: str, path: Path, quick: bool) -> str:
    return f"\n\n![{alt}]({os.path.relpath(path, _page(quick).parent)})"


# ---------------------------------------------------------------- the page
RENDERERS: dict[str, Callable[[bool, Path], str]] = {
    "run": run_info, "peers": peers, "accuracy": accuracy, "rating": rating, "speed": speed,
    "scaling": scaling, "scaling_large": scaling_large, "topk": topk,
    "accuracy_defaults": accuracy_defaults,
    "evaluation": evaluation, "ease": ease,
    "altmin_epoch": altmin_epoch, "altmin_recovery": altmin_recovery,
    "altmin_recovery_large": altmin_recovery_large, "nmf_rmse": nmf_rmse,
    "nmf_anneal": nmf_anneal, "simplex": simplex, "simplex_reference": simplex_reference,
    "updates_foldin": updates_foldin,
    "updates_partial": updates_partial, "sweep_quality": sweep_quality,
    "sweep_overhead": sweep_overhead, "sweep_simplex": sweep_simplex,
    "simplex_time_to_quality": simplex_time_to_quality, "contention": contention,
}


def render(template: str, quick: bool, out: Path) -> str:
    def fill(match: re.Match) -> str:
        name = match.group(1)
        try:
            return RENDERERS[name](quick, out)
        except Missing as err:
            return f"*Not run yet: no `results/{err}` (`python -m benchmarks run" + \
                (" --quick" if quick else "") + "`).*"

    return re.sub(r"\{\{(\w+)\}\}", fill, template)


def write_page(quick: bool = False) -> Path:
    """Render the template into the page (atomically); return its path."""
    page = _page(quick)
    text = render(TEMPLATE.read_text(), quick, _plots(quick))
    if quick:
        text = "<!-- quick run (CI smoke sizes): not the measured page -->\n" + text
    write_text_atomic(page, text)
    return page


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
