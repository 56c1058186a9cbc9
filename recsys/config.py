"""Job files: one TOML file describes a whole job (data, split, model, sweep, outputs).

Every ``recsys`` command takes ``--config job.toml``; its flags override the file. Relative
paths in the file are relative to the file's folder. Unknown sections or keys are errors, so
a typo never silently falls back to a default. The schema, with every key (all optional but
the data source)::

    [data]                         # where the interactions come from (recsys.data.DataSpec)
    path = "log.csv"               # or dataset = "ml-100k"; CSV, TSV, Parquet (file or folder)
    format = "csv"                 # csv | tsv | parquet | lists; default: from the extension
    sep = ","
    user = "user_id"               # column names
    item = "item_id"
    value = "rating"               # optional: every row counts 1 without it
    timestamp = "ts"               # optional: numbers (Unix seconds) or date strings
    threshold = 4.0                # values >= threshold are the positives
    duplicates = "last"            # sum | last | max | error
    data_home = "~/.cache/recsys"  # built-in data sets only

    [split]                        # how it is split for tuning and evaluation
    protocol = "leave-last-k"      # random | temporal | leave-last-k | users | files | predefined
    test_fraction = 0.2            # random, temporal, users (fold-out part)
    leave_k = 1                    # leave-last-k
    test_users = 0.2               # users
    cutoff = "2024-01-01"          # temporal: instead of test_fraction
    train = "train.csv"            # files (validation optional)
    test = "test.csv"
    fold = "u1"                    # predefined, ml-100k
    seed = 0

    [model]
    name = "ease"
    params = { l2 = 300.0 }        # fixed parameters (fit), or the default of a reused sweep
    seed = 0
    path = "models/ease.npz"       # where fit saves and evaluate/recommend read

    [sweep]
    trials = 3
    metric = "ndcg_at_10"
    storage = "runs/optuna.log"    # journal file or SQLAlchemy URL
    study_name = "nightly-ease"
    timeout = 600
    fixed = { num_threads = 1 }    # pinned for every trial, out of the search space
    log_model = "best"             # best | none: the refitted model as an MLflow artifact
    eval_every = 5                 # epochs between pruning reports (default: ~4 per fit)
    eval_users = 2000              # validation users sampled for those reports
    informed = true                # defaults and presets first, then multivariate TPE
    reuse = true                   # run: reuse the best parameters of the latest finished
                                   # study in MLflow instead of sweeping again

    [evaluate]
    k = [10, 20]

    [recommend]
    k = 100
    out = "recs/"                  # a .parquet file, or a folder of parts (shards)
    exclude = "training"           # training | positives | none
    shards = 0                     # > 0: Dask tasks, one Parquet part each
    dask_scheduler = "tcp://host:8786"

    [mlflow]
    tracking_uri = "sqlite:///runs/mlflow.db"
    experiment = "nightly"
    registered_model = "recsys-nightly"
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from recsys.data.spec import DataSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: The [split] keys (the rest of DataSpec's fields belong to [data]).
SPLIT_KEYS = ("protocol", "test_fraction", "leave_k", "test_users", "cutoff", "train",
              "validation", "test", "fold", "seed")
_DATA_KEYS = tuple(f.name for f in fields(DataSpec) if f.name not in SPLIT_KEYS and
                   f.name != "split")

SECTIONS: dict[str, tuple[str, ...]] = {
    "data": _DATA_KEYS,
    "split": SPLIT_KEYS,
    "model": ("name", "params", "seed", "path"),
    "sweep": ("trials", "metric", "storage", "study_name", "timeout", "reuse", "fixed",
              "log_model", "eval_every", "eval_users", "informed"),
    "evaluate": ("k",),
    "recommend": ("k", "out", "exclude", "shards", "dask_scheduler"),
    "mlflow": ("tracking_uri", "experiment", "registered_model"),
}

#: Keys holding file paths, resolved against the config file's folder.
_PATHS = {("data", "path"), ("data", "data_home"), ("split", "train"),
          ("split", "validation"), ("split", "test"), ("model", "path"),
          ("recommend", "out"), ("sweep", "storage"), ("mlflow", "tracking_uri")}


def load_config(path) -> dict[str, dict[str, Any]]:
    """Read and check a job file (see the module docstring); returns ``{section: {key:
    value}}`` with relative paths made absolute."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ValueError(f"{path}: unknown section [{'], ['.join(unknown)}]; valid: "
                         f"{', '.join(SECTIONS)}")
    config: dict[str, dict[str, Any]] = {}
    for section, values in raw.items():
        if not isinstance(values, dict):
            raise ValueError(f"{path}: {section} must be a table ([{section}])")
        bad = sorted(set(values) - set(SECTIONS[section]))
        if bad:
            raise ValueError(f"{path}: [{section}] has no key {', '.join(bad)}; valid: "
                             f"{', '.join(SECTIONS[section])}")
        config[section] = {key: _resolve(path.parent, section, key, value)
                           for key, value in values.items()}
    return config


def _resolve(base: Path, section: str, key: str, value):
    if (section, key) not in _PATHS or not isinstance(value, str):
        return value
    if value.startswith("sqlite:///"):
        target = Path(value[len("sqlite:///"):]).expanduser()
        return value if target.is_absolute() else f"sqlite:///{(base / target).resolve()}"
    if "://" in value:
        return value
    target = Path(value).expanduser()
    return str(target if target.is_absolute() else (base / target).resolve())


def data_spec(config: dict[str, dict[str, Any]] | None = None,
              overrides: dict[str, Any] | None = None,
              default_dataset: str | None = "ml-100k") -> DataSpec:
    """The :class:`DataSpec` of a job: the file's [data] and [split] tables, then the
    ``overrides`` (command-line flags, None = not given; a data source given there replaces
    the file's). Without any source, ``default_dataset``."""
    config = config or {}
    values = dict(config.get("data", {}))
    split = dict(config.get("split", {}))
    if "protocol" in split:
        split["split"] = split.pop("protocol")
    values.update(split)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    sources = ("dataset", "path", "train")
    if any(name in overrides for name in sources):
        for name in sources:
            values.pop(name, None)
        if "train" not in overrides and values.get("split") == "files":
            values.pop("split")
    values.update(overrides)
    if not any(values.get(name) for name in sources) and default_dataset:
        values["dataset"] = default_dataset
    return DataSpec.from_dict(values)


def setting(config: dict, section: str, key: str, override=None, default=None):
    """``override`` when given (not None), else the file's value, else ``default``."""
    if override is not None:
        return override
    return config.get(section, {}).get(key, default)


def sweep_options(config: dict, overrides: dict | None = None) -> dict:
    """The ``sweep()`` options of a job file's [sweep] table (``fixed`` merged with the
    overrides' ``fixed``; other overrides win when given)."""
    overrides = overrides or {}
    table = config.get("sweep", {})
    out = {key: setting(config, "sweep", key, overrides.get(key))
           for key in ("log_model", "eval_every", "eval_users", "informed")
           if key in table or overrides.get(key) is not None}
    fixed = {**table.get("fixed", {}), **(overrides.get("fixed") or {})}
    if fixed:
        out["fixed"] = fixed
    return out


__all__ = ["SECTIONS", "data_spec", "load_config", "setting", "sweep_options"]
