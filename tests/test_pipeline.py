"""The nightly pipeline (``recsys run job.toml``) twice on a growing log, and its MLflow pyfunc
model against the Parquet it wrote."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import product_tolerance
from test_own_data import ML100K_TOML, ml100k_csv, run_cli, synthetic_log

from recsys.pipeline import run_job

JOB = ML100K_TOML.format(path="log.csv") + """
[model]
name = "ease"
path = "model.npz"

[sweep]
trials = 3
storage = "optuna.log"
reuse = true

[recommend]
k = 10
out = "recs"

[mlflow]
tracking_uri = "sqlite:///mlflow.db"
experiment = "nightly"
registered_model = "recsys-nightly"
"""


def pyfunc_output(tracking_uri: str, uri: str, users, **params) -> pd.DataFrame:
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model(uri)
    return model.predict(pd.DataFrame({"user": users}), params=params)


def same_rows(a: pd.DataFrame, b: pd.DataFrame, atol: float = 0.0) -> None:
    key = ["user", "rank"]
    a = a.sort_values(key).reset_index(drop=True)
    b = b.sort_values(key).reset_index(drop=True)
    assert a[["user", "rank", "item"]].equals(b[["user", "rank", "item"]])
    np.testing.assert_allclose(a["score"].to_numpy(np.float32),
                               b["score"].to_numpy(np.float32), rtol=0, atol=atol)
    assert (a["source"].astype(str) == b["source"].astype(str)).all()


def test_nightly_pipeline_twice_on_a_growing_log(tmp_path, data_home):
    full = pd.read_csv(ml100k_csv(data_home, tmp_path / "all.csv"),
                       dtype={"user_id": str, "movie": str})
    when = pd.to_datetime(full["when"])
    day1 = full[when < when.quantile(0.9)]
    day1.to_csv(tmp_path / "log.csv", index=False)
    (tmp_path / "job.toml").write_text(JOB)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"

    first = run_cli(["run", "job.toml", "--quiet"], tmp_path, data_home)
    assert first["params_from"].startswith("sweep:") and first["version"] == 1
    assert (tmp_path / "recs" / "_SUCCESS").exists()
    recs = pd.read_parquet(tmp_path / "recs")
    assert first["rows"] == len(recs) == 10 * day1["user_id"].nunique()
    seen = recs.merge(day1, left_on=["user", "item"], right_on=["user_id", "movie"])
    assert len(seen) == 0  # every logged interaction excluded, whatever its rating
    same_rows(pyfunc_output(tracking, "models:/recsys-nightly/1", recs["user"].unique(), k=10),
              recs)

    # the next day: a grown log (new users, new items); the job reuses the sweep's parameters
    full.to_csv(tmp_path / "log.csv", index=False)
    second = run_cli(["run", "job.toml", "--quiet"], tmp_path, data_home)
    assert second["params_from"] == f"run:{_parent_run(tracking)}"
    assert second["params"] == first["params"] and second["version"] == 2
    assert second["data_fingerprint"] != first["data_fingerprint"]
    recs2 = pd.read_parquet(tmp_path / "recs")
    assert sorted(p.name for p in (tmp_path / "recs").iterdir()) == ["_SUCCESS",
                                                                     "part-00000.parquet"]
    assert recs2["user"].nunique() == 943 > recs["user"].nunique()
    assert recs2.merge(full, left_on=["user", "item"], right_on=["user_id", "movie"]).empty
    served = pyfunc_output(tracking, "models:/recsys-nightly/latest", recs2["user"].unique(),
                           k=10)
    same_rows(served, recs2)
    # and what `recsys recommend` writes from the job's model file on the same log
    run_cli(["recommend", "--config", "job.toml", "--out", "cli.parquet", "--quiet"], tmp_path,
            data_home)
    same_rows(served, pd.read_parquet(tmp_path / "cli.parquet"))

    client = mlflow.MlflowClient(tracking)
    version = client.get_model_version("recsys-nightly", "2")
    assert float(version.tags["validation_ndcg_at_10"]) == pytest.approx(
        float(client.get_model_version("recsys-nightly", "1").tags["validation_ndcg_at_10"]))
    assert version.tags["data_fingerprint"] == second["data_fingerprint"]
    run = client.get_run(second["run_id"])
    assert run.data.metrics["rows"] == len(recs2) and run.data.metrics["users"] == 943
    artifacts = {a.path for a in client.list_artifacts(second["run_id"])}
    assert {"summary.json", "recommended_popularity.png", "data"} <= artifacts
    summary = json.loads(Path(client.download_artifacts(second["run_id"], "summary.json",
                                                        str(tmp_path))).read_text())
    assert summary["coverage"] == pytest.approx(recs2["item"].nunique() / 1682)


def _parent_run(tracking: str) -> str:
    client = mlflow.MlflowClient(tracking)
    experiment = client.get_experiment_by_name("nightly")
    runs = client.search_runs([experiment.experiment_id],
                              "tags.`recsys.role` = 'parent'")
    assert len(runs) == 1
    return runs[0].info.run_id


def test_pipeline_on_a_synthetic_log_sharded_and_serving_new_users(tmp_path):
    synthetic_log(n_users=80, n_items=50, seed=3).to_csv(tmp_path / "events.csv", index=False)
    config = {
        "data": {"path": str(tmp_path / "events.csv"), "user": "uid", "item": "sku",
                 "value": "stars", "timestamp": "ts", "threshold": 4},
        "split": {"protocol": "temporal"},
        "model": {"name": "als", "params": {"factors": 8, "epochs": 5}},
        "recommend": {"k": 5, "out": str(tmp_path / "out"), "shards": 2},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'm.db'}", "experiment": "synth",
                   "registered_model": "synth"},
    }
    summary = run_job(config, show_progress=False)
    assert summary["params_from"] == "config" and summary["users"] == 80
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "_SUCCESS", "part-00000.parquet", "part-00001.parquet"]
    recs = pd.read_parquet(tmp_path / "out")
    # a user unseen at fit, with a history in the request: folded in by the served model
    mlflow.set_tracking_uri(config["mlflow"]["tracking_uri"])
    served = mlflow.pyfunc.load_model("models:/synth/1")
    # batch job vs served scores: the same products summed in another order (batch shape,
    # thread count) differ within the rounding bound
    fitted = served.unwrap_python_model().model
    atol = float(product_tolerance(fitted.user_factors_, fitted.item_factors_).max())
    same_rows(pyfunc_output(config["mlflow"]["tracking_uri"], "models:/synth/1",
                            recs["user"].unique(), k=5), recs, atol)
    request = pd.DataFrame({"user": ["newcomer", "newcomer", "user-000"],
                            "item": ["sku-001", "sku-005", None]})
    got = served.predict(request, params={"k": 3})
    assert got[got["user"] == "newcomer"]["source"].tolist() == ["fold_in"] * 3
    assert not {"sku-001", "sku-005"} & set(got[got["user"] == "newcomer"]["item"])
    model = served.unwrap_python_model().model  # the recsys model inside the MLflow model
    assert model.training_data_["source"]["path"] == str(tmp_path / "events.csv")
    history = pd.concat([pd.read_csv(tmp_path / "events.csv", dtype={"uid": str, "sku": str})
                         .rename(columns={"uid": "user", "sku": "item", "stars": "value"}),
                         pd.DataFrame({"user": ["newcomer"] * 2,
                                       "item": ["sku-001", "sku-005"]})])
    expected = model.recommend_raw(["newcomer", "user-000"], history, k=3, value="value")
    same_rows(got, expected, atol)


def test_the_example_job_file_runs_on_an_exported_data_set(tmp_path, data_home):
    """pipelines/nightly.toml as shipped, on ML-100K written out by ``recsys data export``."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "pipelines").mkdir()
    shutil.copy(repo / "pipelines" / "nightly.toml", tmp_path / "pipelines")
    exported = run_cli(["data", "export", "--dataset", "ml-100k", "--out", "runs/log.csv",
                        "--quiet"], tmp_path, data_home)
    log = pd.read_csv(tmp_path / "runs" / "log.csv")
    raw = pd.read_csv(Path(data_home) / "ml-100k" / "u.data", sep="\t",
                      names=["user", "item", "value", "timestamp"])
    assert exported["rows"] == len(log) == len(raw)
    key = ["user", "item"]
    assert log.sort_values(key).reset_index(drop=True).equals(
        raw.sort_values(key).reset_index(drop=True).astype({"value": float}))
    summary = run_cli(["run", "pipelines/nightly.toml", "--quiet"], tmp_path, data_home)
    assert summary["users"] == 943 and summary["rows"] == 94_300
    assert (tmp_path / "runs" / "nightly-recs" / "_SUCCESS").exists()
