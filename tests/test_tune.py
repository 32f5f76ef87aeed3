"""natgrad tune: a study killed part-way resumes to its trial count, prunes on evaluations, writes a usable preset."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing

import pytest
from test_cli import assert_complete_run
from typer.testing import CliRunner

from natgrad import NatgradError
from natgrad.cli import app
from natgrad.tools.tune import DEFAULT_SPACES, Study, TuneSettings, read_space, run_trial

optuna = pytest.importorskip("optuna")
runner = CliRunner()
SPACE = """
replace = true  # only these: a CI-sized study
n_envs = 1
max_kl = { low = 0.003, high = 0.05, log = true }
n_steps = { choices = [64, 128] }
"""
SPACE_PARAMS = {"max_kl", "n_steps"}  # the values SPACE searches


def states(study_dir):
    study = optuna.load_study(study_name="natgrad", storage=f"sqlite:///{study_dir / 'study.db'}")
    return study, [t.state.name for t in study.trials]


def states_so_far(study_dir):
    """The trial states of a study another process is still creating, read without writing (optuna's storage
    would create its tables, racing that process): [] until they exist."""
    path = study_dir / "study.db"
    if not path.exists():
        return []
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)) as db:
            return [state for (state,) in db.execute("SELECT state FROM trials")]
    except sqlite3.Error:
        return []


def test_a_killed_study_resumes_to_its_trials_and_its_preset_trains(tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "study"
    args = ["tune", "--algo", "trpo", "--env", "CartPole-v1", "--trials", "4", "--steps", "1024", "--eval-every",
            "256", "--eval-episodes", "2", "--space", str(tmp_path / "space.toml"), "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "natgrad", *args], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if "COMPLETE" in states_so_far(out):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = states(out)[1]
    assert 1 <= killed.count("COMPLETE") < 4, killed

    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    study, after = states(out)
    assert after.count("COMPLETE") + after.count("PRUNED") == 4
    for trial in study.trials:  # a trial cut off by the kill is failed, and its values (if all drawn) tried again
        if trial.state.name == "FAIL" and trial.params.keys() == SPACE_PARAMS:
            assert any(t.user_attrs.get("retry_of") == trial.number and t.params == trial.params
                       for t in study.trials)
    assert (out / "importance.png").read_bytes()[:4] == b"\x89PNG"
    best = study.best_trial
    n_steps = best.params["n_steps"]
    assert_complete_run(out / "trials" / f"{best.number:04d}", steps=range(n_steps, 1025, n_steps), checkpoints=0,
                        eval_episodes=2, evals=[256, 512, 768, 1024])
    assert json.loads((out / "trials" / f"{best.number:04d}" / "eval.json").read_text())["mean"] == best.value

    run = tmp_path / "best-run"
    result = runner.invoke(app, ["train", "--algo", "trpo", "--env", "CartPole-v1", "--steps", "128", "--out",
                                 str(run), "--preset-file", str(out / "best.toml"), "--eval-episodes", "0",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["max_kl"] == best.params["max_kl"] and config["n_steps"] == best.params["n_steps"]
    assert config["n_envs"] == 1 and config["gae_lambda"] == 0.98  # fixed in the space; CartPole's preset


def test_a_trial_cut_off_while_its_values_were_drawn_is_failed_not_retried(tmp_path):
    space = {"max_kl": {"low": 0.003, "high": 0.05, "log": True}, "n_steps": {"choices": [64, 128]}}
    settings = TuneSettings("trpo", "CartPole-v1", 1024, 2, 256, 2, 0, {"n_envs": 1}, space)
    first = Study(tmp_path, settings)
    started = first.study.ask(first.distributions)  # died training: all its values drawn
    drawing = first.study.ask()  # died between the trial's creation and its values
    drawing.suggest_float("max_kl", 0.003, 0.05, log=True)
    said = []
    Study(tmp_path, settings).retry_orphans(said.append)
    study = optuna.load_study(study_name="natgrad", storage=first.url)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "WAITING"]
    assert study.trials[2].params == {} and study.trials[2].user_attrs == {"retry_of": started.number}
    assert study.trials[2].system_attrs["fixed_params"] == started.params
    assert said[1] == f"trial {drawing.number} was cut off before it started (its process died): marked failed"


def test_a_trial_below_the_median_is_pruned_at_its_first_evaluation(tmp_path):
    settings = TuneSettings("trpo", "CartPole-v1", 1024, 2, 256, 2, 0, {"n_envs": 1, "n_steps": 64}, {})
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(value=500.0, intermediate_values={256: 500.0, 512: 500.0}))
    trial = study.ask()
    reported = []

    def report(value, step):
        reported.append((step, value))
        trial.report(value, step)
        return trial.should_prune()

    assert run_trial(settings, {}, tmp_path / "run", report) is None  # an untrained CartPole policy: far below 500
    assert [step for step, _ in reported] == [256]
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 256 // 64  # training stopped at the evaluation that pruned it


def test_search_spaces_narrow_or_replace_the_default(tmp_path):
    (tmp_path / "narrow.toml").write_text("max_kl = { low = 0.01, high = 0.02 }\nhidden = \"64,64\"\n")
    space = read_space(tmp_path / "narrow.toml", "trpo")
    assert set(space) == set(DEFAULT_SPACES["trpo"]) and space["max_kl"] == {"low": 0.01, "high": 0.02}
    assert space["hidden"] == "64,64"  # fixed, not searched
    (tmp_path / "only.json").write_text(json.dumps({"replace": True, "lr": {"choices": [1e-4, 3e-4]}}))
    assert read_space(tmp_path / "only.json", "ppo") == {"lr": {"choices": [1e-4, 3e-4]}}
    with pytest.raises(NatgradError, match=r"search space entry lr: unknown NaturalConfig option"):
        read_space(tmp_path / "only.json", "trpo")  # TRPO has no lr
    (tmp_path / "bad.toml").write_text("max_kl = { low = 0.1, high = 0.01 }\n")
    with pytest.raises(NatgradError, match=r"use \{low = A, high = B\}"):
        read_space(tmp_path / "bad.toml", "trpo")


def test_preset_file_refusals(tmp_path):
    (tmp_path / "p.toml").write_text('["Pendulum-v1"]\nmax_kl = 0.02\n')
    result = runner.invoke(app, ["train", "--env", "CartPole-v1", "--preset-file", str(tmp_path / "p.toml"),
                                 "--out", str(tmp_path / "r")])
    assert isinstance(result.exception, NatgradError) and "has no preset for CartPole-v1" in str(result.exception)
    result = runner.invoke(app, ["train", "--preset-file", str(tmp_path / "p.toml"), "--no-preset"])
    assert isinstance(result.exception, NatgradError) and "leave out --resume and --no-preset" in str(result.exception)
    assert not (tmp_path / "r").exists()


def test_tune_takes_a_module_factory_as_natgrad_train_does(tmp_path):
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "study"
    result = runner.invoke(app, ["tune", "--algo", "trpo", "--env", "natgrad.wrappers:no_velocity", "--set",
                                 'env_kwargs={"env_id": "CartPole-v1"}', "--trials", "1", "--steps", "128",
                                 "--eval-every", "128", "--eval-episodes", "1", "--space", str(tmp_path / "space.toml"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert states(out)[1] == ["COMPLETE"]
    result = runner.invoke(app, ["tune", "--algo", "trpo", "--env", "NoSuchEnv-v0", "--out", str(tmp_path / "no")])
    assert isinstance(result.exception, NatgradError) and "NoSuchEnv-v0" in str(result.exception)
    assert not (tmp_path / "no").exists()
