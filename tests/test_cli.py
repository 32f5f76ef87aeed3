"""The command line as a user drives it: train writes a complete run, eval reads it, nothing is overwritten."""

import csv
import json

import torch
from typer.testing import CliRunner

from natgrad.cli import app, main

runner = CliRunner()
REQUIRED_COLUMNS = {
    "rollout/ep_return_mean", "policy/kl", "policy/surrogate_improvement", "policy/line_search_backtracks",
    "policy/accepted", "policy/cg_iterations", "policy/cg_residual", "policy/entropy", "critic/loss",
    "time/steps_per_second", "time/steps",
}


def test_train_writes_run_directory_and_eval_reads_it(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--algo", "trpo", "--env", "CartPole-v1", "--steps", "2e3",
                                 "--seed", "1", "--out", str(out), "--set", "n_steps=512", "--set", "n_envs=2",
                                 "--checkpoint-every", "1024", "--eval-episodes", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "final evaluation" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "trpo" and config["seed"] == 1 and config["config"]["n_steps"] == 512
    assert config["machine"]["torch"] == torch.__version__
    assert config["machine"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 2 and REQUIRED_COLUMNS <= set(rows[0])
    assert [int(float(r["time/steps"])) for r in rows] == [1024, 2048]
    episodes = list(csv.DictReader(open(out / "episodes.csv")))  # every training episode, raw return
    assert len(episodes) == sum(int(float(r["rollout/episodes"])) for r in rows) > 0
    assert all(float(e["return"]) == int(e["length"]) for e in episodes)  # CartPole: reward 1 per step
    assert (out / "model.pt").exists() and len(list((out / "checkpoints").glob("step_*.pt"))) == 2
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert json.loads((out / "eval.json").read_text())["episodes"] == 2
    result = runner.invoke(app, ["eval", str(out), "--episodes", "2"])
    assert result.exit_code == 0 and "± " in result.output and "over 2 episodes" in result.output


def test_train_refuses_existing_run_directory(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    monkeypatch.setattr("sys.argv", ["natgrad", "train", "--out", str(out), "--steps", "100"])
    try:
        main()
    except SystemExit as e:
        assert e.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "already exists" in err and err.count("\n") == 1
    assert (out / "notes.txt").read_text() == "mine" and len(list(out.iterdir())) == 1


def test_default_run_directories_are_new_each_time(tmp_path):
    args = ["train", "--steps", "64", "--set", "n_steps=64", "--runs-root", str(tmp_path),
            "--eval-episodes", "0", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0
    assert len(list(tmp_path.iterdir())) == 2


def test_bad_input_is_one_line_error(capsys, monkeypatch):
    for argv, message in [(["--env", "Nope-v0"], "unknown environment id"),
                          (["--algo", "sac"], "unknown algorithm"),
                          (["--set", "max_kl=0"], "invalid max_kl"),
                          (["--set", "oops"], "--set takes KEY=VALUE")]:
        monkeypatch.setattr("sys.argv", ["natgrad", "train", "--steps", "10", *argv])
        try:
            main()
            raise AssertionError("expected exit")
        except SystemExit as e:
            assert e.code == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
