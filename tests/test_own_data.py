"""A user's own log end to end: data descriptions and split protocols, models in raw ids
(``recommend_raw``: known, folded-in and fallback users), the CLI on a CSV and on a TOML job."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.config import data_spec, load_config
from recsys.data import Interactions
from recsys.data.spec import DataSpec
from recsys.experiment import load_experiment
from recsys.models import ALS, EASE, ItemKNN, Recommender

RECSYS = Path(sys.executable).with_name("recsys")  # the console script: no Python involved


def synthetic_log(n_users=60, n_items=40, seed=0) -> pd.DataFrame:
    """String ids, ratings 1-5 (5 for the items of the user's taste), date-string timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        taste = rng.integers(0, 4)
        items = rng.choice(n_items, size=rng.integers(6, 15), replace=False)
        for i in items:
            rating = 5 if i % 4 == taste else int(rng.integers(1, 5))
            rows.append((f"user-{u:03d}", f"sku-{i:03d}", rating,
                         int(1_700_000_000 + rng.integers(0, 10_000_000))))
    df = pd.DataFrame(rows, columns=["uid", "sku", "stars", "ts"])
    df["ts"] = pd.to_datetime(df["ts"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    return df


#: The [data] and [split] tables of a job on :func:`ml100k_csv`'s export.
ML100K_TOML = """
[data]
path = "{path}"
user = "user_id"
item = "movie"
value = "rating"
timestamp = "when"
threshold = 4

[split]
protocol = "leave-last-k"
"""


def ml100k_csv(data_home, path: Path) -> Path:
    """MovieLens 100K as a user would export it: string ids (zero-padded), ISO timestamps."""
    df = pd.read_csv(Path(data_home) / "ml-100k" / "u.data", sep="\t",
                     names=["u", "i", "r", "t"])
    out = pd.DataFrame({"user_id": "u" + df.u.astype(str).str.zfill(4),
                        "movie": "m" + df.i.astype(str), "rating": df.r,
                        "when": pd.to_datetime(df.t, unit="s").dt.strftime(
                            "%Y-%m-%dT%H:%M:%SZ")})
    out.to_csv(path, index=False)
    return path


# -- data descriptions and protocols ---------------------------------------------------------
@pytest.fixture
def log_csv(tmp_path):
    path = tmp_path / "log.csv"
    synthetic_log().to_csv(path, index=False)
    return path


def spec_of(path, **kw) -> DataSpec:
    return DataSpec(path=str(path), user="uid", item="sku", value="stars", timestamp="ts",
                    threshold=4, **kw)


def test_every_protocol_splits_one_id_space(log_csv, tmp_path):
    frame = pd.read_csv(log_csv, dtype={"uid": str, "sku": str})
    n_pairs = len(frame.drop_duplicates(["uid", "sku"]))
    ts = pd.to_datetime(frame["ts"], utc=True)
    for protocol in ("random", "temporal", "leave-last-k", "users"):
        split = spec_of(log_csv, split=protocol).split_data()
        parts = [p for p in (split.train, split.validation, split.fold_in, split.test)
                 if p is not None]
        assert sum(p.nnz for p in parts) == n_pairs, protocol
        assert all(p.users == split.train.users and p.items == split.train.items
                   for p in parts)
        if protocol == "temporal":  # every test interaction is at or after every train one
            assert split.train.timestamps.max() <= split.test.timestamps.min()
        if protocol == "leave-last-k":  # the test item of each user is their latest
            test = split.test.to_pandas()
            train = split.train.to_pandas()
            latest_train = train.groupby("user")["timestamp"].max()
            assert (test.set_index("user")["timestamp"] >=
                    latest_train.loc[test["user"]].to_numpy()).all()
            assert test.groupby("user").size().max() == 1
        if protocol == "users":  # held-out users come last and have no training row
            held = np.diff(split.fold_in.matrix.indptr) > 0
            first_held = np.flatnonzero(held)[0]
            assert not held[:first_held].any() and held[first_held:].all()
            assert np.diff(split.train.matrix.indptr)[first_held:].sum() == 0
    assert int(ts.dt.year.min()) >= 2023


def test_held_out_users_are_never_trained_on_and_folded_in_at_test(log_csv):
    from conftest import assert_topk_close, product_tolerance

    exp = load_experiment(spec_of(log_csv, split="users", test_users=0.25)).full()
    model = exp.fit(ALS(factors=8, random_state=0))
    held = np.diff(exp.split.fold_in.matrix.indptr) > 0
    assert model.n_users_ == (~held).sum() == np.flatnonzero(held)[0]
    assert not set(model.user_ids_) & set(exp.split.fold_in.to_pandas()["user"])
    # a held-out user's list = the top-k of fold_in(their fold-in history) . item factors
    users = np.flatnonzero(held)
    history = exp.history.matrix
    ids, values = model.recommend(users, history, k=5)
    U = model.fold_in(history[users])
    exact = U.astype(np.float64) @ model.item_factors_.T.astype(np.float64)
    assert_topk_close(ids, values, exact, product_tolerance(U, model.item_factors_),
                      exclude=history[users])
    from recsys.evaluation import evaluate

    metrics = evaluate(model, exp.history, exp.test, k=5)
    assert metrics["n_users"] == (np.diff(exp.test.matrix.indptr) > 0).sum() > 0


def test_cli_evaluates_held_out_users_folded_in(log_csv, tmp_path, data_home):
    data = ["--path", str(log_csv), "--user", "uid", "--item", "sku", "--value", "stars",
            "--timestamp", "ts", "--threshold", "4", "--split", "users", "--test-users",
            "0.25", "--quiet"]
    run_cli(["fit", "--model", "als", *data, "--param", "factors=8", "--out", "als.npz"],
            tmp_path, data_home)
    metrics = run_cli(["evaluate", "--model-path", "als.npz", *data, "--k", "5"], tmp_path,
                      data_home)
    exp = load_experiment(spec_of(log_csv, split="users", test_users=0.25)).full()
    model = Recommender.load(tmp_path / "als.npz")
    assert model.n_users_ == (np.diff(exp.split.train.matrix.indptr) > 0).sum()
    from recsys.evaluation import evaluate

    assert metrics == pytest.approx(evaluate(model, exp.history, exp.test, k=5))


def test_predefined_files_and_the_lists_format(tmp_path):
    frame = synthetic_log()
    train, test = frame.iloc[: len(frame) * 4 // 5], frame.iloc[len(frame) * 4 // 5:]
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    split = DataSpec(train=str(tmp_path / "train.csv"), test=str(tmp_path / "test.csv"),
                     user="uid", item="sku", value="stars").split_data()
    assert split.train.nnz + split.test.nnz == len(frame.drop_duplicates(["uid", "sku"]))
    assert set(split.test.to_pandas()["user"]) == set(test["uid"])
    # a TSV, and a folder of Parquet parts, read as the same interactions
    frame.to_csv(tmp_path / "log.tsv", sep="\t", index=False)
    (tmp_path / "parts").mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[rows].to_parquet(tmp_path / "parts" / f"part-{i}.parquet", index=False)
    reference = DataSpec(path=str(tmp_path / "log.tsv"), user="uid", item="sku",
                         value="stars").read()
    from_parts = DataSpec(path=str(tmp_path / "parts"), user="uid", item="sku",
                          value="stars").read()
    assert from_parts.users == reference.users and from_parts.items == reference.items
    assert (from_parts.matrix != reference.matrix).nnz == 0
    # uid item item ... lines (the LightGCN / SimpleX splits)
    (tmp_path / "lists.txt").write_text("0 3 1 2\n1 2\n\n4 0 7\n")
    data = DataSpec(path=str(tmp_path / "lists.txt")).read()
    assert data.to_pandas()[["user", "item"]].values.tolist() == [
        [0, 1], [0, 2], [0, 3], [1, 2], [4, 0], [4, 7]]
    (tmp_path / "bad.txt").write_text("0 3 x\n")
    with pytest.raises(ValueError, match="integer ids"):
        DataSpec(path=str(tmp_path / "bad.txt")).read()


def test_bad_descriptions_name_the_problem(log_csv, tmp_path):
    with pytest.raises(ValueError, match="exactly one"):
        DataSpec(dataset="ml-100k", path="x.csv")
    with pytest.raises(ValueError, match="split must be one of"):
        spec_of(log_csv, split="weekly")
    with pytest.raises(ValueError, match="test_fraction"):
        spec_of(log_csv, test_fraction=1.5)
    with pytest.raises(KeyError, match="'rating'"):
        DataSpec(path=str(log_csv), user="uid", item="sku", value="rating").read()
    with pytest.raises(ValueError, match="needs a timestamp"):
        DataSpec(path=str(log_csv), user="uid", item="sku", split="leave-last-k").split_data()
    with pytest.raises(FileNotFoundError, match="no such data file"):
        DataSpec(path=str(tmp_path / "missing.csv")).read()
    (tmp_path / "job.toml").write_text("[data]\npath = 'log.csv'\ncolumns = 3\n")
    with pytest.raises(ValueError, match=r"\[data\] has no key columns"):
        load_config(tmp_path / "job.toml")
    (tmp_path / "job.toml").write_text("[dataa]\npath = 'log.csv'\n")
    with pytest.raises(ValueError, match=r"unknown section \[dataa\]"):
        load_config(tmp_path / "job.toml")


def test_config_paths_are_relative_to_the_file_and_flags_override(tmp_path):
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.toml").write_text(
        "[data]\npath = '../log.csv'\nuser = 'uid'\n[split]\nprotocol = 'temporal'\n"
        "[mlflow]\ntracking_uri = 'sqlite:///runs/m.db'\n")
    config = load_config(tmp_path / "jobs" / "job.toml")
    assert config["data"]["path"] == str((tmp_path / "log.csv").resolve())
    assert config["mlflow"]["tracking_uri"] == f"sqlite:///{(tmp_path / 'jobs/runs/m.db')}"
    spec = data_spec(config, {"split": "random", "item": None})
    assert (spec.protocol, spec.user, spec.item) == ("random", "uid", "item")
    assert data_spec(config, {"dataset": "ml-100k"}).path is None  # a flag's source wins


# -- models in raw ids -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted_raw():
    frame = synthetic_log()
    data = Interactions.from_pandas(frame, "uid", "sku", "stars", duplicates="last")
    return frame, data


@pytest.mark.parametrize("cls", [ALS, EASE, ItemKNN])
def test_recommend_raw_agrees_with_the_index_space(cls, fitted_raw):
    frame, data = fitted_raw
    model = cls(**({"factors": 8, "random_state": 0} if cls is ALS else {})).fit(
        data.binarize(4))
    out = model.recommend_raw(history=frame, k=5, user="uid", item="sku", value="stars",
                              threshold=4)
    X, seen = data.binarize(4).matrix, data.binarize(None).matrix
    empty = np.diff(X.indptr) == 0
    by_model = ~empty | model.uses_user_state
    users = np.flatnonzero(by_model)
    ids, scores = model.recommend(users, X, k=5, filter_items=seen)
    got = out[out["user"].isin(data.users.to_raw(users))].sort_values(["user", "rank"])
    np.testing.assert_array_equal(data.items.to_index(got["item"].to_numpy()), ids.ravel())
    np.testing.assert_allclose(got["score"], scores.ravel(), rtol=1e-6)
    assert (got["source"] == "model").all()
    # users with no positive: the most popular unseen items (brute force over the counts)
    counts = np.bincount(X.indices, minlength=X.shape[1])
    for u in np.flatnonzero(~by_model):
        rows = out[out["user"] == data.users.to_raw([u])[0]]
        unseen = [i for i in np.argsort(-counts, kind="stable")
                  if i not in seen.indices[seen.indptr[u]:seen.indptr[u + 1]]]
        assert data.items.to_index(rows["item"].to_numpy()).tolist() == unseen[:5]
        assert (rows["source"] == "popularity").all()
    assert out.attrs["counts"]["users"] == data.shape[0]


def test_new_users_are_folded_in_and_unknown_items_ignored(fitted_raw, tmp_path):
    frame, data = fitted_raw
    model = ALS(factors=8, random_state=0).fit(data.binarize(4))
    model = Recommender.load(model.save(tmp_path / "als.npz"))  # the ids travel in the file
    newcomer = pd.DataFrame({"uid": ["zoe", "zoe", "zoe", "ghost"],
                             "sku": ["sku-001", "sku-005", "never-seen", "never-seen"],
                             "stars": [5, 4, 5, 5]})
    history = pd.concat([frame, newcomer], ignore_index=True)
    out = model.recommend_raw(["zoe", "ghost", "user-000"], history, k=4, user="uid",
                              item="sku", value="stars", threshold=4)
    assert out.attrs["counts"] == {"users": 3, "model": 1, "fold_in": 1, "popularity": 1,
                                   "unknown_items_ignored": 2}
    assert list(pd.unique(out["user"])) == ["zoe", "ghost", "user-000"]
    # zoe: exactly the index-space fold-in of her row appended after the fitted users
    row = sp.csr_matrix((np.ones(2, np.float32), data.items.to_index(["sku-001", "sku-005"]),
                         [0, 2]), shape=(1, data.shape[1]))
    X = sp.vstack([data.binarize(4).matrix, row]).tocsr()
    ids, _ = model.recommend(data.shape[0], X, k=4)
    zoe = out[out["user"] == "zoe"]
    assert data.items.to_index(zoe["item"].to_numpy()).tolist() == ids.tolist()
    assert set(zoe["source"]) == {"fold_in"}
    assert not {"sku-001", "sku-005"} & set(zoe["item"])
    with pytest.raises(ValueError, match="fallback is off"):
        model.recommend_raw(["ghost"], history, k=4, user="uid", item="sku", fallback=False)
    with pytest.raises(ValueError, match="bare matrix"):
        ALS(factors=4, random_state=0).fit(data.matrix).recommend_raw(["zoe"], history)


def test_rating_models_fold_new_users_in_from_their_ratings(fitted_raw):
    from recsys.models import AltMin

    frame, data = fitted_raw
    model = AltMin(factors=4, epochs=5, random_state=0).fit(data)  # raw ratings
    newcomer = pd.DataFrame({"uid": ["zoe"] * 3, "sku": ["sku-001", "sku-005", "sku-009"],
                             "stars": [5, 1, 2]})
    out = model.recommend_raw(["zoe"], pd.concat([frame, newcomer]), k=4, user="uid",
                              item="sku", value="stars", threshold=4)
    cols = data.items.to_index(newcomer["sku"].to_numpy())
    row = sp.csr_matrix((np.array([5, 1, 2], np.float32), cols, [0, 3]),
                        shape=(1, data.shape[1]))  # every rating, not only the >= 4 ones
    ids, scores = model.recommend(data.shape[0], sp.vstack([data.matrix, row]).tocsr(), k=4)
    assert data.items.to_index(out["item"].to_numpy()).tolist() == ids.tolist()
    np.testing.assert_allclose(out["score"], scores, rtol=1e-6)
    assert set(out["source"]) == {"fold_in"}


def test_model_files_carry_ids_description_and_fingerprint(tmp_path, log_csv):
    spec = spec_of(log_csv, split="leave-last-k")
    exp = load_experiment(spec).full()
    model = Recommender.load(exp.fit(EASE(l2=50.0)).save(tmp_path / "m.npz"))
    assert model.user_ids_.dtype.kind == "U" and model.user_ids_[0] == "user-000"
    info = model.training_data_
    assert info["source"]["path"] == str(log_csv) and info["threshold"] == 4.0
    assert info["source"]["split"] == "leave-last-k"
    # the fingerprint is the data's, not the file's: a shuffled copy has the same one
    shuffled = tmp_path / "shuffled.csv"
    pd.read_csv(log_csv).sample(frac=1.0, random_state=1).to_csv(shuffled, index=False)
    again = load_experiment(spec.replace(path=str(shuffled))).full().fit(EASE(l2=50.0))
    assert again.training_data_["fingerprint"] == info["fingerprint"]
    changed = pd.read_csv(log_csv)
    changed.loc[0, "stars"] = 5 if changed.loc[0, "stars"] < 4 else 1
    changed.to_csv(shuffled, index=False)
    other = load_experiment(spec.replace(path=str(shuffled))).full().fit(EASE(l2=50.0))
    assert other.training_data_["fingerprint"] != info["fingerprint"]
    # a crafted file whose ids disagree with the shapes is refused
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        arrays = dict(npz)
    arrays["user_ids_"] = arrays["user_ids_"][:-1]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match="user_ids_"):
        Recommender.load(tmp_path / "bad.npz")


def test_partial_fit_keeps_the_fitted_ids_first(fitted_raw):
    frame, data = fitted_raw
    model = ALS(factors=4, random_state=0).fit(data.binarize(4))
    grown = Interactions.from_pandas(
        pd.concat([frame, pd.DataFrame({"uid": ["zz-new"], "sku": ["sku-001"], "stars": [5]})]),
        "uid", "sku", "stars", duplicates="last")  # sorted ids: "zz-new" comes last
    model.partial_fit(grown.binarize(4), previous=data.binarize(4).matrix)
    assert model.user_ids_[-1] == "zz-new" and len(model.user_ids_) == data.shape[0] + 1
    reordered = Interactions.from_pandas(
        pd.concat([frame, pd.DataFrame({"uid": ["aa-new"], "sku": ["sku-001"], "stars": [5]})]),
        "uid", "sku", "stars", duplicates="last")  # "aa-new" sorts first: rows would move
    fresh = ALS(factors=4, random_state=0).fit(data.binarize(4))
    with pytest.raises(ValueError, match="do not start with the model's"):
        fresh.partial_fit(reordered.binarize(4), previous=data.binarize(4).matrix)


# -- the CLI on a CSV of one's own -----------------------------------------------------------
def run_cli(args, cwd, data_home, timeout=600):
    env = {**os.environ, "RECSYS_DATA_HOME": str(data_home), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([str(RECSYS), *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def check_recommendations(path: Path, log: pd.DataFrame, k: int) -> pd.DataFrame:
    """k rows per user of the log, in the log's own ids, no seen item of the user."""
    recs = pd.read_parquet(path)
    assert set(recs["user"]) == set(log["user_id"])
    assert (recs.groupby("user").size() == k).all()
    assert set(recs["item"]) <= set(log["movie"])
    seen = recs.merge(log, left_on=["user", "item"], right_on=["user_id", "movie"])
    assert len(seen) == 0
    return recs


def test_cli_describe_sweep_fit_evaluate_recommend_on_a_csv(tmp_path, data_home):
    log_path = ml100k_csv(data_home, tmp_path / "ratings.csv")
    log = pd.read_csv(log_path, dtype={"user_id": str, "movie": str})
    data = ["--path", str(log_path), "--user", "user_id", "--item", "movie", "--value",
            "rating", "--timestamp", "when", "--threshold", "4", "--split", "leave-last-k",
            "--quiet"]
    described = run_cli(["data", "describe", *data], tmp_path, data_home)
    assert (described["users"], described["items"], described["interactions"]) == \
        (943, 1682, 100_000)
    assert described["time_range"]["first"].startswith("1997-09-20")
    assert described["split"]["test"]["users"] > 400  # users with a positive left out
    swept = run_cli(["sweep", "--model", "ease", *data, "--trials", "3", "--storage",
                     "journal.log", "--tracking-uri", "sqlite:///mlflow.db"], tmp_path,
                    data_home)
    assert swept["trials"] == 3 and swept["test"]["ndcg_at_10"] > 0.05
    l2 = swept["best_params"]["l2"]
    fitted = run_cli(["fit", "--model", "ease", *data, "--param", f"l2={l2}", "--out",
                      "ease.npz"], tmp_path, data_home)
    assert fitted["training_data"]["user_ids"].startswith("<U")
    metrics = run_cli(["evaluate", "--model-path", "ease.npz", *data, "--k", "10"],
                      tmp_path, data_home)
    assert metrics["ndcg_at_10"] == pytest.approx(swept["test"]["ndcg_at_10"], rel=1e-5)
    served = run_cli(["recommend", "--model-path", "ease.npz", "--data", str(log_path),
                      "--user", "user_id", "--item", "movie", "--value", "rating",
                      "--threshold", "4", "--k", "10", "--out", "recs.parquet", "--quiet"],
                     tmp_path, data_home)
    assert served["users"] == 943 and served["rows"] == 9430
    recs = check_recommendations(tmp_path / "recs.parquet", log, 10)
    assert recs["user"].str.startswith("u0").all()  # "u0001", not 1: their ids

    # the same job from one TOML file (a flag overrides it)
    (tmp_path / "job.toml").write_text(ML100K_TOML.format(path="ratings.csv") + f"""
[model]
name = "ease"
params = {{ l2 = {l2} }}
path = "from-toml.npz"

[sweep]
trials = 3
storage = "journal-toml.log"

[mlflow]
tracking_uri = "sqlite:///mlflow-toml.db"

[evaluate]
k = [10]

[recommend]
k = 5
out = "toml-recs.parquet"
""")
    job = ["--config", "job.toml", "--quiet"]
    assert run_cli(["data", "describe", *job], tmp_path, data_home)["duplicates"] == 0
    assert run_cli(["sweep", *job], tmp_path, data_home)["best_params"]["l2"] == \
        pytest.approx(l2)  # same seed, same split, same first trials
    run_cli(["fit", *job], tmp_path, data_home)
    again = run_cli(["evaluate", *job], tmp_path, data_home)
    assert again["ndcg_at_10"] == pytest.approx(metrics["ndcg_at_10"], rel=1e-5)
    run_cli(["recommend", *job, "--k", "10"], tmp_path, data_home)
    toml_recs = check_recommendations(tmp_path / "toml-recs.parquet", log, 10)
    pd.testing.assert_frame_equal(toml_recs, recs)


def test_tuning_breaks_timestamp_ties_with_its_seed(tmp_path):
    # every user's interactions share one timestamp: "latest" leaves a tie, which the seed
    # breaks, so that a sweep in another process carves the same validation part
    rng = np.random.default_rng(0)
    users, items = np.repeat(np.arange(40), 6), rng.integers(0, 50, 240)
    frame = pd.DataFrame({"uid": [f"u{u}" for u in users], "sku": [f"i{i}" for i in items],
                          "stars": 5, "ts": pd.Timestamp("2024-01-01") +
                          pd.to_timedelta(users, unit="D")}).drop_duplicates(["uid", "sku"])
    frame.to_csv(tmp_path / "ties.csv", index=False)
    exp = load_experiment(spec_of(tmp_path / "ties.csv", split="leave-last-k"))
    parts = [exp.tuning(random_state=seed).test.matrix for seed in (0, 0, 1)]
    assert (parts[0] != parts[1]).nnz == 0
    assert (parts[0] != parts[2]).nnz > 0  # the tie is real: another seed breaks it otherwise
    assert np.all(np.diff(parts[0].indptr) == 1)  # one validation item per user
