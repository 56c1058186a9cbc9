import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest
import scipy.sparse as sp

from recsys.evaluation import evaluate
from recsys.experiment import load_experiment
from recsys.tuning import SPACES, make_model, model_class, suggest, trial_seed


def cli_env(data_home) -> dict:
    return {**os.environ, "RECSYS_DATA_HOME": str(data_home), "OPENBLAS_NUM_THREADS": "1"}


def cli(args, cwd, data_home, **kwargs):
    return subprocess.run([sys.executable, "-m", "recsys.cli", *args], cwd=cwd,
                          env=cli_env(data_home), capture_output=True, text=True, **kwargs)


def runs(tracking_uri, experiment):
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs(experiment_names=[experiment])


def test_spaces_cover_every_model_and_suggest_inside_them():
    from recsys.models.base import _REGISTRY

    for name, cls in _REGISTRY.items():
        if not cls.__module__.startswith("recsys.models") or name.startswith("_"):
            continue  # classes defined by tests, private bases
        assert name in SPACES, f"{name} has no search space"
        assert set(SPACES[name]) <= set(cls._param_names())
    trial = optuna.trial.FixedTrial({"l2": 30.0})
    assert suggest(trial, SPACES["EASE"]) == {"l2": 30.0}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        params = suggest(study.ask(), SPACES["ALS"])
        assert 4 <= params["factors"] <= 512 and 1e-3 <= params["l2"] <= 100
    assert trial_seed(0, {"a": 1}) == trial_seed(0, {"a": 1}) != trial_seed(1, {"a": 1})
    assert model_class("ease").__name__ == "EASE"
    with pytest.raises(ValueError, match="unknown model"):
        model_class("svd++")


def test_sweep_logs_a_parent_and_nested_trial_runs(tmp_path, data_home):
    """The issue's bar: 5 nested runs with metrics.ndcg_at_10 under one parent run; any trial
    can be reproduced from its MLflow run (parameters + seed)."""
    uri = f"sqlite:///{tmp_path}/X.db"
    out = cli(["sweep", "--model", "ease", "--dataset", "ml-100k", "--trials", "5",
               "--tracking-uri", uri, "--storage", str(tmp_path / "journal.log"), "--quiet"],
              tmp_path, data_home, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    df = runs(uri, "ml-100k-ease")
    parent = df[df["tags.recsys.role"] == "parent"]
    trials = df[df["tags.mlflow.parentRunId"] == result["parent_run_id"]]
    assert len(parent) == 1 and len(trials) == 5
    assert trials["metrics.ndcg_at_10"].notna().all()
    assert {"metrics.recall_at_20", "metrics.fit_time_s", "params.l2", "params.seed"} <= set(df)
    assert parent["metrics.test_ndcg_at_10"].iloc[0] == pytest.approx(result["test"][
        "ndcg_at_10"])
    import mlflow

    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(result["parent_run_id"])}
    assert {"ease-best.npz", "best_params.json", "optimization_history.png"} <= artifacts
    # reproduce the best trial from its logged parameters and seed
    best = trials.sort_values("metrics.ndcg_at_10").iloc[-1]
    model = make_model(model_class("ease"), {"l2": float(best["params.l2"])},
                       int(best["params.seed"]))
    tune = load_experiment("ml-100k", data_home=data_home).tuning(random_state=0)
    again = evaluate(model.fit(tune.training(model)), tune.history, tune.test, k=10)
    assert again["ndcg_at_10"] == pytest.approx(best["metrics.ndcg_at_10"], rel=1e-6)


def test_iterative_models_log_per_epoch_metrics(tmp_path, data_home):
    import mlflow

    from recsys.tuning import sweep

    uri = f"sqlite:///{tmp_path}/X.db"
    result = sweep("maskednmf", "ml-100k", n_trials=2, storage=str(tmp_path / "j.log"),
                   tracking_uri=uri, data_home=data_home, show_progress=False, eval_every=3)
    client = mlflow.MlflowClient()
    trial_runs = client.search_runs(
        [client.get_experiment_by_name("ml-100k-maskednmf").experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result.parent_run_id}'")
    assert len(trial_runs) == 2
    for run in trial_runs:
        history = client.get_metric_history(run.info.run_id, "epoch_ndcg_at_10")
        epochs = int(run.data.params["epochs"])
        # every 3 epochs, the last one left to the final evaluation on every validation user
        assert [m.step for m in history] == [e for e in range(2, epochs - 1, 3)]
        assert "ndcg_at_10" in run.data.metrics


def test_simplex_trials_early_stop_and_the_refit_replays_their_rates(tmp_path, data_home):
    """SimpleX's trials early-stop on the validation sample every epoch (each evaluation
    logged and reported to the pruner), keep their best epoch, record the learning rate of
    each kept epoch, and the refit on the whole training data trains exactly those."""
    import mlflow

    from recsys.models import SimpleX
    from recsys.tuning import sweep

    uri = f"sqlite:///{tmp_path}/X.db"
    result = sweep("simplex", "ml-100k", n_trials=2, storage=str(tmp_path / "j.log"),
                   tracking_uri=uri, data_home=data_home, show_progress=False,
                   fixed={"factors": 16, "negatives": 50, "epochs": 12},
                   model_dir=tmp_path / "models", log_model="none")
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("ml-100k-simplex").experiment_id
    trials = [t for t in result.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(trials) == 2
    for trial in trials:
        rates = trial.user_attrs["lr_schedule"]
        run = client.get_run(trial.user_attrs["mlflow_run_id"])
        steps = [m.step for m in client.get_metric_history(run.info.run_id,
                                                          "epoch_ndcg_at_10")]
        # every epoch evaluated up to the stop; the kept epochs end at the best one
        assert steps == list(range(len(steps))) and 1 <= len(rates) <= len(steps) <= 12
        assert len(steps) == 12 or len(steps) - len(rates) == 3  # ceiling or patience
        assert float(run.data.params["epochs"]) == 12
    assert experiment is not None
    best = result.study.best_trial
    model = SimpleX.load(result.model_path)
    assert model.schedule_ == pytest.approx(best.user_attrs["lr_schedule"])
    assert len(model.history_) == len(best.user_attrs["lr_schedule"])


class _AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study, trial) -> bool:
        return True


@pytest.mark.parametrize("model, fixed", [
    ("als", {"factors": 8}),  # stopped half-way by reports every few epochs
    ("simplex", {"factors": 16, "negatives": 50, "epochs": 6}),  # early-stopped trials
])
def test_the_pruner_never_stops_the_enqueued_defaults_and_presets(tmp_path, data_home,
                                                                 monkeypatch, model, fixed):
    """A pruner that stops every trial it may: the defaults and presets still complete (their
    reports recorded), every sampled trial after them is pruned."""
    from recsys.tuning import EARLY_STOPPING, PRESETS, sweep
    from recsys.tuning.sweep import KNOWN_GOOD

    monkeypatch.setattr(optuna.pruners, "MedianPruner", lambda **kwargs: _AlwaysPrune())
    # from the first report on (a sampled trial may early-stop before the usual epoch 5)
    monkeypatch.setitem(EARLY_STOPPING["SimpleX"], "prune_from", 1)
    args = dict(storage=str(tmp_path / "j.log"), tracking_uri=f"sqlite:///{tmp_path}/X.db",
                data_home=data_home, show_progress=False, fixed=fixed, log_model="none",
                eval_every=1)
    budget = 1 + len(PRESETS[model_class(model).__name__]) + 2  # the defaults, presets, 2 more
    trials = sweep(model, "ml-100k", n_trials=budget, **args).study.trials
    known = [t for t in trials if t.user_attrs.get(KNOWN_GOOD)]
    assert len(trials) == budget and len(known) >= 2 and trials[:len(known)] == known
    assert all(t.state == optuna.trial.TrialState.COMPLETE and t.intermediate_values
               for t in known)
    assert {t.state for t in trials[len(known):]} == {optuna.trial.TrialState.PRUNED}


def test_enqueued_official_configurations_train_with_their_own_trainers(tmp_path, data_home,
                                                                       monkeypatch):
    """Each enqueued SimpleX preset trains with its trainer's patience and decays
    (SimpleX.TRAINING), on the sweep's metric; the defaults and sampled trials with the
    sweep's rule (EARLY_STOPPING)."""
    from recsys.models import SimpleX
    from recsys.tuning import EARLY_STOPPING, sweep
    from recsys.tuning.sweep import TRAINER

    calls = []
    fit = SimpleX.fit

    def spy(self, X, **kwargs):
        calls.append(kwargs)
        return fit(self, X, **kwargs)

    monkeypatch.setattr(SimpleX, "fit", spy)
    # negatives fixed: ml-1m and ml-1m-fast are one point of the space, the first one kept
    fixed = {"factors": 16, "negatives": 50, "epochs": 3}
    trials = sweep("simplex", "ml-100k", n_trials=4, metric="recall_at_10", fixed=fixed,
                   storage=str(tmp_path / "j.log"), tracking_uri=f"sqlite:///{tmp_path}/X.db",
                   data_home=data_home, show_progress=False, log_model="none").study.trials
    assert [t.user_attrs.get(TRAINER) for t in trials] == [None, "ml-1m", "gowalla", None]
    rule = EARLY_STOPPING["SimpleX"]
    for trial, kwargs in zip(trials, calls):
        name = trial.user_attrs.get(TRAINER)
        stop = kwargs["early_stopping"]
        assert stop.metric == "recall_at_10" and kwargs["validation"] is not None
        if name is None:
            assert stop.patience == rule["patience"]
            assert kwargs["lr_schedule"] == rule["lr_schedule"]
        else:
            official = SimpleX.TRAINING[name]
            assert stop.patience == official["early_stopping"].patience
            assert kwargs["lr_schedule"] == official["lr_schedule"]
    # the Gowalla trainer's decays differ from the sweep's, so the checks above can fail
    assert SimpleX.TRAINING["gowalla"]["lr_schedule"] != rule["lr_schedule"]
    assert len(calls) == len(trials) + 1 and "early_stopping" not in calls[-1]  # the refit


def test_intermediate_reports_use_a_seeded_sample_of_validation_users(data_home):
    from recsys.experiment import load_experiment
    from recsys.tuning.sweep import validation_sample

    tune = load_experiment("ml-100k", data_home=data_home).tuning(random_state=0)
    with_test = np.flatnonzero(np.diff(tune.test.matrix.indptr) > 0)
    sample = validation_sample(tune, 100, seed=0)
    assert sample.size == 100 and set(sample) <= set(with_test)
    assert (sample == validation_sample(tune, 100, seed=0)).all()
    assert not (sample == validation_sample(tune, 100, seed=1)).all()
    assert validation_sample(tune, 10_000, seed=0) is None  # fewer users: all of them


def test_killed_sweep_resumes_and_marks_the_killed_trial_failed(tmp_path, data_home):
    """Kill a worker mid-trial; rerunning the same command continues the same study."""
    uri = f"sqlite:///{tmp_path}/X.db"
    journal = str(tmp_path / "journal.log")
    args = ["sweep", "--model", "nbmf", "--dataset", "ml-100k", "--trials", "3",
            "--tracking-uri", uri, "--storage", journal, "--quiet"]
    env = cli_env(data_home)
    proc = subprocess.Popen([sys.executable, "-m", "recsys.cli", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(journal))
    killed_at = None
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        try:
            trials = optuna.load_study(study_name="ml-100k-nbmf", storage=storage).trials
        except KeyError:
            trials = []
        states = [t.state for t in trials]
        running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING
                   and "mlflow_run_id" in t.user_attrs]
        if states.count(optuna.trial.TrialState.COMPLETE) >= 1 and running:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed_at = running[0].number
            break
        time.sleep(0.05)
    assert killed_at is not None, "the worker finished before it could be killed mid-trial"
    before = len(trials)
    out = cli(args, tmp_path, data_home, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    study = optuna.load_study(study_name="ml-100k-nbmf", storage=storage)
    assert len(study.trials) > before
    assert study.trials[killed_at].state == optuna.trial.TrialState.FAIL
    finished = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE,
                                                       optuna.trial.TrialState.PRUNED)]
    assert len(finished) == 3
    df = runs(uri, "ml-100k-nbmf")
    killed_run = df[df["tags.recsys.trial"] == str(killed_at)]
    assert list(killed_run["status"]) == ["FAILED"]
    assert (df[df["tags.recsys.role"] == "parent"].shape[0]) == 1  # the same parent run


def test_two_workers_share_one_postgresql_study(tmp_path, data_home, postgres_url):
    """Many-machine sweeps: the study is created once, then two workers run concurrently."""
    uri = f"sqlite:///{tmp_path}/X.db"
    base = ["sweep", "--model", "ease", "--dataset", "ml-100k", "--storage", postgres_url,
            "--study-name", "shared", "--tracking-uri", uri, "--quiet"]
    created = cli(base + ["--trials", "0"], tmp_path, data_home, timeout=300)
    assert created.returncode == 0, created.stderr[-2000:]
    env = cli_env(data_home)
    workers = [subprocess.Popen([sys.executable, "-m", "recsys.cli", *base, "--trials", "6"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for w in workers:
        _, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 6
    assert len({t.user_attrs["worker"] for t in complete}) == 2  # both workers ran trials
    df = runs(uri, "shared")
    parents = df[df["tags.recsys.role"] == "parent"]
    assert len(parents) == 1
    assert (df["tags.mlflow.parentRunId"] == parents["run_id"].iloc[0]).sum() == len(
        study.trials)
    assert np.isfinite(parents["metrics.test_ndcg_at_10"].iloc[0])


def test_cli_reports_bad_input_without_a_traceback(tmp_path, data_home):
    out = cli(["fit", "--model", "nosuch", "--out", str(tmp_path / "m.npz"), "--quiet"],
              tmp_path, data_home, timeout=120)
    assert out.returncode == 2
    assert "unknown model 'nosuch'" in out.stderr and "Traceback" not in out.stderr
    out = cli(["evaluate", "--model-path", str(tmp_path / "missing.npz"), "--quiet"], tmp_path,
              data_home, timeout=120)
    assert out.returncode == 2 and "missing.npz" in out.stderr


def test_parent_tags_survive_a_concurrent_writer():
    """Two workers finishing together race on the parent's best.* tags: a failed insert is
    retried (the retry updates the row the other worker created); a store that keeps failing
    still raises."""
    from mlflow.exceptions import MlflowException

    from recsys.tuning.tracking import set_tags

    class RacyClient:
        def __init__(self, failures):
            self.failures, self.tags = failures, {}

        def set_tag(self, run_id, key, value):
            if self.failures.get(key, 0) > 0:
                self.failures[key] -= 1
                raise MlflowException("UNIQUE constraint failed: tags.key, tags.run_uuid")
            self.tags[key] = value

    client = RacyClient({"best.l2": 2})
    set_tags(client, "run", {"best.l2": "500.0", "best.trial": "3"})
    assert client.tags == {"best.l2": "500.0", "best.trial": "3"}
    with pytest.raises(MlflowException):
        set_tags(RacyClient({"best.l2": 9}), "run", {"best.l2": "1.0"}, attempts=3)


def test_a_trial_killed_before_it_recorded_its_worker_is_failed(tmp_path, data_home):
    """Optuna creates the trial, the worker dies before the objective's first line: the trial
    would stay RUNNING forever (no worker to check, no heartbeat). The next run fails it."""
    import datetime

    from recsys.tuning import sweep
    from recsys.tuning.sweep import ORPHAN_GRACE_S, open_storage

    journal = str(tmp_path / "journal.log")
    storage = open_storage(journal)
    study = optuna.create_study(study_name="orphan", storage=storage, direction="maximize")
    started = datetime.datetime.now() - datetime.timedelta(seconds=2 * ORPHAN_GRACE_S)
    template = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                         params={}, distributions={})
    template.datetime_start = started
    orphan = storage.create_new_trial(study._study_id, template_trial=template)
    fresh = storage.create_new_trial(study._study_id)  # another worker's, just created
    assert storage.get_trial(orphan).state == optuna.trial.TrialState.RUNNING
    sweep("mostpopular", "ml-100k", n_trials=1, storage=journal, study_name="orphan",
          tracking_uri=f"sqlite:///{tmp_path}/m.db", data_home=data_home, show_progress=False)
    assert storage.get_trial(orphan).state == optuna.trial.TrialState.FAIL
    assert storage.get_trial(fresh).state == optuna.trial.TrialState.RUNNING  # left alone


def test_a_bad_metric_is_rejected_before_any_fit_or_run(tmp_path, data_home, monkeypatch):
    from recsys.models import EASE
    from recsys.tuning import sweep

    fits = []
    monkeypatch.setattr(EASE, "fit", lambda self, X: fits.append(1) or self)
    uri = f"sqlite:///{tmp_path}/m.db"
    for bad in ("ndcg@10", "ndcg_at_0", "auc_at_10", "ndcg_at_ten"):
        with pytest.raises(ValueError, match="unknown metric"):
            sweep("ease", "ml-100k", n_trials=2, metric=bad, storage=str(tmp_path / "j.log"),
                  tracking_uri=uri, data_home=data_home, show_progress=False)
    assert fits == []
    import mlflow

    mlflow.set_tracking_uri(uri)
    assert mlflow.search_runs(search_all_experiments=True).empty  # no run at all, none RUNNING
    out = cli(["sweep", "--model", "ease", "--metric", "ndcg@10", "--trials", "1",
               "--tracking-uri", uri, "--storage", str(tmp_path / "j.log"), "--quiet"],
              tmp_path, data_home, timeout=120)
    assert out.returncode == 2 and "unknown metric" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_metric_at_another_k_is_evaluated(tmp_path, data_home):
    from recsys.tuning import sweep

    result = sweep("mostpopular", "ml-100k", n_trials=1, metric="recall_at_5",
                   storage=str(tmp_path / "j.log"), tracking_uri=f"sqlite:///{tmp_path}/m.db",
                   data_home=data_home, show_progress=False)
    assert np.isfinite(result.best_value) and "recall_at_5" in result.test_metrics


def test_cli_bad_model_files_and_params_are_one_line(tmp_path, data_home):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    for args, message in (
            (["evaluate", "--model-path", str(empty)], "empty"),
            (["recommend", "--model-path", str(tmp_path / "nope.npz"), "--out",
              str(tmp_path / "r.parquet")], "nope.npz"),
            (["fit", "--model", "als", "--param", "factors=0", "--out",
              str(tmp_path / "m.npz")], "factors=0"),
            (["fit", "--model", "als", "--param", "nosuch=1", "--out",
              str(tmp_path / "m.npz")], "no parameter 'nosuch'"),
            (["fit", "--model", "ease", "--param", "l2=NaN", "--out",
              str(tmp_path / "m.npz")], "l2"),
            (["fit", "--model", "simplex", "--param", "metric=auc", "--out",
              str(tmp_path / "m.npz")], "metric")):
        out = cli([*args, "--quiet"], tmp_path, data_home, timeout=300)
        assert out.returncode == 2, (args, out.stderr[-500:])
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr, lines
    assert not (tmp_path / "m.npz").exists()
    verbose = cli(["evaluate", "--model-path", str(empty), "--verbose"], tmp_path, data_home,
                  timeout=120)
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_presets_and_defaults_lie_inside_their_spaces():
    from recsys.models.auto import gram_ridge
    from recsys.tuning.spaces import PRESETS, in_space
    from recsys.tuning.sweep import first_trials

    for name, presets in PRESETS.items():
        for preset in presets:
            assert in_space(SPACES[name], preset) == preset, (name, preset)
    # EASE's default l2 is "auto": without the training matrix only the presets remain
    assert first_trials(model_class("ease"), SPACES["EASE"], 10) == [{"l2": 1000.0},
                                                                    {"l2": 80.0}]
    X = sp.random(50, 80, density=0.05, random_state=0, format="csr", dtype=np.float32)
    assert first_trials(model_class("ease"), SPACES["EASE"], 2, X) == [
        {"l2": gram_ridge("auto", X)}, {"l2": 1000.0}]  # n_trials caps the list


def test_the_defaults_trial_takes_the_auto_values_fit_would_use():
    # without the training matrix "auto" is no point of the space and is left to the
    # sampler; with it, the first trial is the default model as fit would build it there
    from recsys.models.auto import confidence_slope, ridge
    from recsys.models.nmf import L2_PER_UNIT
    from recsys.tuning.sweep import first_trials

    X = sp.random(50, 80, density=0.05, random_state=0, format="csr", dtype=np.float32)
    X.data[:] = 1.0
    als, nmf = model_class("als"), model_class("maskednmf")
    assert "alpha" not in first_trials(als, SPACES["ALS"], 10)[0]
    assert first_trials(als, SPACES["ALS"], 10, X)[0]["alpha"] == confidence_slope("auto", X)
    assert first_trials(nmf, SPACES["MaskedNMF"], 10, X, {"biases": False})[0]["l2"] == \
        pytest.approx(ridge("auto", X, L2_PER_UNIT, centred=False))


def test_on_edge_flags_values_at_either_end_of_a_range():
    from recsys.tuning.spaces import on_edge

    space = {"l2": ("float", 1.0, 1e4, "log"), "k": ("int", 10, 20), "b": ("categorical",
                                                                       [True, False])}
    assert on_edge(space, {"l2": 1.2, "k": 15, "b": True}) == {"l2": "low"}
    assert on_edge(space, {"l2": 100.0, "k": 20}) == {"k": "high"}
    assert on_edge(space, {"l2": 100.0, "k": 15}) == {}
    natural = {"shrink": ("float", 0.0, 100.0), "fraction": ("float", 0.0, 1.0)}
    assert on_edge(natural, {"shrink": 0.0, "fraction": 1.0}) == {}  # limits, not edges
    assert on_edge(natural, {"shrink": 99.0, "fraction": 0.01}) == {"shrink": "high"}


def test_informed_sweep_tries_defaults_and_presets_first_and_flags_an_edge(
        tmp_path, data_home, monkeypatch, caplog):
    import mlflow

    from recsys.tuning import spaces, sweep

    uri = f"sqlite:///{tmp_path}/X.db"
    result = sweep("ease", "ml-100k", n_trials=4, storage=str(tmp_path / "j.log"),
                   tracking_uri=uri, data_home=data_home, show_progress=False)
    # the defaults as fit builds them on the tuning part (l2 "auto" read off it), the presets
    from recsys.experiment import load_experiment
    from recsys.models import EASE
    from recsys.models.auto import gram_ridge

    tune = load_experiment("ml-100k", data_home=data_home).tuning(random_state=0)
    auto = gram_ridge("auto", tune.training(EASE()).matrix)
    assert [t.params for t in result.study.trials[:3]] == [
        {"l2": pytest.approx(auto)}, {"l2": 1000.0}, {"l2": 80.0}]
    assert result.edges == {}
    # a range whose lower end is best: the result, the log and the parent run say so
    monkeypatch.setitem(spaces.SPACES, "EASE", {"l2": ("float", 2e4, 3e4, "log")})
    monkeypatch.setitem(spaces.PRESETS, "EASE", [{"l2": 2e4}])
    with caplog.at_level("WARNING", logger="recsys.tuning.sweep"):
        edged = sweep("ease", "ml-100k", n_trials=3, storage=str(tmp_path / "j.log"),
                      study_name="edge", tracking_uri=uri, data_home=data_home,
                      show_progress=False)
    assert edged.best_params == {"l2": 2e4} and edged.edges == {"l2": "low"}
    assert "sits at the low end of its range" in caplog.text
    run = mlflow.MlflowClient(uri).get_run(edged.parent_run_id)
    assert run.data.tags["recsys.edge.l2"] == "low"


def test_cli_fixed_parameters_log_model_none_and_the_sweep_bar(tmp_path, data_home):
    import mlflow

    uri = f"sqlite:///{tmp_path}/X.db"
    out = cli(["sweep", "--model", "als", "--dataset", "ml-100k", "--trials", "3",
               "--fixed", "factors=8", "--fixed", "epochs=3", "--log-model", "none",
               "--tracking-uri", uri, "--storage", str(tmp_path / "journal.log")],
              tmp_path, data_home, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["best_params"]["factors"] == 8 and result["best_params"]["epochs"] == 3
    assert result["logged_model_bytes"] == 0
    assert "sweep: 100%" in out.stderr and "best ndcg_at_10=" in out.stderr  # one bar
    client = mlflow.MlflowClient(uri)
    parent = client.get_run(result["parent_run_id"])
    assert parent.data.params["fixed.factors"] == "8"
    assert parent.data.metrics["logged_model_bytes"] == 0
    assert not [a for a in client.list_artifacts(parent.info.run_id)
                if a.path.endswith(".npz")]
    trials = client.search_runs([parent.info.experiment_id],
                                f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(trials) == 3
    assert {(r.data.params["factors"], r.data.params["epochs"]) for r in trials} == {
        ("8", "3")}
    assert {r.data.params["l2"] for r in trials} != {"0.01"}  # still tuned
    bad = cli(["sweep", "--model", "als", "--fixed", "factorz=8", "--trials", "1",
               "--tracking-uri", uri, "--storage", str(tmp_path / "journal.log"), "--quiet"],
              tmp_path, data_home, timeout=120)
    assert bad.returncode == 2 and "factorz" in bad.stderr
