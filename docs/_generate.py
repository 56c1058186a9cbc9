"""Pages that come from the code and the benchmark results, written at build time into
``docs/_generated/``: the data-set catalogue, the glossary, each model's benchmark rows and
the splitters' pictures (drawn by running the splitters on a toy log)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _table(header: list[str], rows: list[list[str]], widths: str | None = None) -> str:
    lines = [".. list-table::", "   :header-rows: 1"]
    if widths:
        lines.append(f"   :widths: {widths}")
    lines.append("")
    for row in [header, *rows]:
        lines.append("   * - " + (row[0] or " "))
        lines += [f"     - {cell or ' '}" for cell in row[1:]]
    return "\n".join(lines) + "\n"


def datasets_page() -> str:
    from recsys.datasets import datasets

    rows = []
    for r in datasets().itertuples():
        if r.name.startswith("amazon-20") and not r.name.endswith("-books"):
            continue  # one row per Amazon family below
        name = r.name.replace("-books", "-<category>") if r.name.startswith("amazon-20") \
            else r.name
        rows.append([f"``{name}``", r.title, r.size, r.licence, f"`{r.url} <{r.url}>`__",
                     "published" if r.pinned else "recorded at first download"])
    return _table(["name", "what", "size", "licence", "official URL", "checksum"], rows,
                  "14 24 18 20 16 8")


def glossary_page() -> str:
    from recsys.glossary import GLOSSARY

    rows = [[f"``{name}``", term.meaning, ", ".join(f"``{s}``" for s in term.synonyms)]
            for name, term in GLOSSARY.items()]
    return _table(["name", "meaning", "not called"], rows, "15 55 30")


def _read(name: str) -> list[dict]:
    path = RESULTS / f"{name}.csv"
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _num(value, digits: int = 4) -> str:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return "-"
    return "-" if math.isnan(x) else f"{x:.{digits}f}"


def model_rows(model: str) -> str:
    """The model's rows of the accuracy benchmark and the rating benchmark."""
    out = []
    accuracy = [r for r in _read("accuracy") if r["model"] == model]
    if accuracy:
        out.append(_table(
            ["data", "Recall@20", "NDCG@20", "published R / N", "fit (s)"],
            [[r["data"], _num(r["recall_at_20"]), _num(r["ndcg_at_20"]),
              f"{_num(r['published_recall_at_20'])} / {_num(r['published_ndcg_at_20'])}",
              _num(r["fit_s"], 1)] for r in accuracy]))
    rating = [r for r in _read("nmf_folds") if r["model"].startswith(model)]
    if rating:
        out.append(_table(["setting", "RMSE", "MAE"],
                          [[r["model"], _num(r["rmse"]), _num(r["mae"])] for r in rating]))
    if not out:
        return "No benchmark row for this model yet.\n"
    return ("From ``benchmarks/results`` (full ranking, chosen on validation; see the "
            "benchmark page for the protocol):\n\n" + "\n".join(out))


def splitter_pictures(folder: Path) -> None:
    """One picture per splitter: a toy log of 8 users x 14 items with timestamps, its
    train / validation / fold-in / test cells as the splitter assigns them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd
    from matplotlib.colors import ListedColormap

    from recsys.data import (
        Interactions,
        leave_k_out,
        random_holdout,
        strong_generalization,
        temporal_split,
    )

    rng = np.random.default_rng(3)
    rows = [(u, i, 1.0, int(rng.integers(0, 1000))) for u in range(8) for i in range(14)
            if rng.random() < 0.55]
    data = Interactions.from_pandas(pd.DataFrame(rows, columns=["u", "i", "v", "t"]),
                                    "u", "i", "v", "t")
    splits = {
        "random_holdout": random_holdout(data, test_fraction=0.3, random_state=0),
        "leave_k_out": leave_k_out(data, k=2, order="latest"),
        "temporal_split": temporal_split(data, test_fraction=0.3),
        "strong_generalization": strong_generalization(data, test_users=0.25, fold_out=0.4,
                                                       random_state=0),
    }
    colours = ListedColormap(["#f4f4f4", "#4c72b0", "#dd8452", "#55a868", "#c44e52"])
    for name, split in splits.items():
        grid = np.zeros(data.shape)
        for code, part in ((1, "train"), (2, "validation"), (3, "fold_in"), (4, "test")):
            sub = getattr(split, part)
            if sub is not None:
                grid[sub.matrix.toarray() != 0] = code
        fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=100)
        ax.imshow(grid, cmap=colours, vmin=0, vmax=4)
        ax.set_xlabel("items")
        ax.set_ylabel("users")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{name}: train (blue), fold-in (green), test (red)", fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / f"split_{name}.png")
        plt.close(fig)


MODELS = ["EASE", "SimpleX", "MaskedNMF", "NBMF", "AltMin", "ALS", "BPR", "ItemKNN",
          "MostPopular"]


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pages = {"datasets.rst": datasets_page(), "glossary.rst": glossary_page(),
             **{f"bench_{m.lower()}.rst": model_rows(m) for m in MODELS}}
    for name, text in pages.items():
        path = folder / name
        if not path.exists() or path.read_text() != text:  # unchanged: no rebuild
            path.write_text(text)
    splitter_pictures(folder)
