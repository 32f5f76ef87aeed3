"""The command line as a user drives it: train writes a complete run, eval reads it, nothing is overwritten."""

import csv
import json
import math
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from natgrad import load
from natgrad.cli import app, main
from natgrad.runs.directories import joined_rows, new_run_dir
from natgrad.runs.training import train_run

runner = CliRunner()
REQUIRED_COLUMNS = {  # of every algorithm
    "rollout/ep_return_mean", "policy/kl", "policy/surrogate_improvement", "policy/entropy", "critic/loss",
    "time/steps_per_second", "time/steps",
}
NATURAL_COLUMNS = {"policy/line_search_backtracks", "policy/accepted", "policy/cg_iterations", "policy/cg_residual"}


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the CSV file ``path``; none if it does not exist."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_complete_run(run_dir: Path, *, steps: Sequence[int], checkpoints: int, eval_episodes: int,
                        evals: Sequence[int] = ()) -> dict[str, Any]:
    """``run_dir`` as a finished ``natgrad train`` leaves it: config.json naming this machine's torch; one
    metrics.csv row per update, at the env steps ``steps``, with every ``REQUIRED_COLUMNS`` column (NPG and TRPO:
    and every ``NATURAL_COLUMNS`` one); episodes.csv with every training episode those rows count; TensorBoard
    events; ``checkpoints`` checkpoints; model.pt at ``steps[-1]``; periodic evaluations (evals.csv) at ``evals``;
    eval.json over ``eval_episodes`` episodes (none when 0); no failed.json. Returns config.json."""
    config = json.loads((run_dir / "config.json").read_text())
    assert config["machine"]["torch"] == torch.__version__
    assert config["machine"]["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    rows = csv_rows(run_dir / "metrics.csv")
    assert [int(float(r["time/steps"])) for r in rows] == list(steps)
    natural = NATURAL_COLUMNS if config["algo"] in ("npg", "trpo") else set()
    assert REQUIRED_COLUMNS | natural <= set(rows[0])
    assert len(csv_rows(run_dir / "episodes.csv")) == sum(int(float(r["rollout/episodes"])) for r in rows)
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    assert len(list((run_dir / "checkpoints").glob("step_*.pt"))) == checkpoints
    model = load(run_dir / "model.pt")
    assert model.num_timesteps == steps[-1]
    model.close()
    assert [int(r["step"]) for r in csv_rows(run_dir / "evals.csv")] == list(evals)
    if eval_episodes:
        final = json.loads((run_dir / "eval.json").read_text())
        assert final["episodes"] == eval_episodes and final["num_timesteps"] == steps[-1], final
        assert math.isfinite(final["mean"])
    else:
        assert not (run_dir / "eval.json").exists()
    assert not (run_dir / "failed.json").exists()
    return config


def test_train_writes_run_directory_and_eval_reads_it(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--algo", "trpo", "--env", "CartPole-v1", "--steps", "2e3",
                                 "--seed", "1", "--out", str(out), "--set", "n_steps=512", "--set", "n_envs=2",
                                 "--checkpoint-every", "1024", "--eval-episodes", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "final evaluation" in result.output
    config = assert_complete_run(out, steps=[1024, 2048], checkpoints=2, eval_episodes=2)
    assert config["algo"] == "trpo" and config["seed"] == 1 and config["config"]["n_steps"] == 512
    episodes = csv_rows(out / "episodes.csv")  # every training episode, raw return
    assert episodes and all(float(e["return"]) == int(e["length"]) for e in episodes)  # CartPole: 1 per step
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


def natgrad_cli(*argv: str) -> str:
    """``natgrad ARGV``, which must succeed; its output."""
    result = runner.invoke(app, list(argv))
    assert result.exit_code == 0, result.output
    return result.output


def one_line_error(monkeypatch, capsys, argv: list[str]) -> str:
    """Run ``natgrad ARGV`` as the console script does; it must exit with status 2 and one line on stderr."""
    monkeypatch.setattr("sys.argv", ["natgrad", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_bad_input_is_one_line_error(capsys, monkeypatch):
    for argv, message in [(["--env", "Nope-v0"], "unknown environment id"),
                          (["--algo", "sac"], "unknown algorithm"),
                          (["--set", "max_kl=0"], "invalid max_kl"),
                          (["--set", "oops"], "--set takes KEY=VALUE")]:
        assert message in one_line_error(monkeypatch, capsys, ["train", "--steps", "10", *argv])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished 512-step CartPole run with checkpoints at 128, 256, 384 and 512 (copy it before changing it)."""
    run_dir, _ = train_run("trpo", "CartPole-v1", 512, seed=0, out=tmp_path_factory.mktemp("runs") / "done",
                           overrides={"n_envs": 1, "n_steps": 128}, checkpoint_every=128, eval_episodes=2,
                           progress=False, echo=lambda s: None)
    return run_dir


def killed_copy(run_dir: Path, dest: Path, keep_until: int) -> Path:
    """A copy of ``run_dir`` as a run killed after its step-``keep_until`` checkpoint leaves it (metrics,
    episodes and evaluations go on past it: they are written every update)."""
    shutil.copytree(run_dir, dest)
    (dest / "model.pt").unlink()
    (dest / "eval.json").unlink()
    for path in (dest / "checkpoints").glob("step_*.pt"):
        if int(path.stem.split("_")[1]) > keep_until:
            path.unlink()
    return dest


@pytest.mark.parametrize("argv, message", [
    (["train", "--seed", "-1"], "invalid seed -1: use an integer from 0 to 4294967295"),
    (["train", "--seed", "99999999999999999999"], "invalid seed 99999999999999999999: use an integer from 0 to"),
    (["train", "--checkpoint-every", "-1"], "--checkpoint-every must be >= 0"),
    (["train", "--steps", "nan"], "--steps must be a finite number"),
    (["eval", "nowhere", "--seed", "-1"], "invalid seed -1"),
    (["eval", "nowhere", "--episodes", "0"], "--episodes must be >= 1, got 0"),
    (["eval", "nowhere", "--episodes", "-3"], "--episodes must be >= 1, got -3"),
    (["bench", "--eval-episodes", "0"], "--eval-episodes >= 1"),
])
def test_nonsense_numbers_are_one_line_errors_and_make_no_run_directory(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert message in one_line_error(monkeypatch, capsys, [*argv, "--no-progress"] if argv[0] == "train" else argv)
    assert list(tmp_path.iterdir()) == []


def test_two_runs_given_the_same_out_at_once(tmp_path, capsys, monkeypatch):
    """The second run finds the directory empty, then the first claims it (its config.json) before the second
    writes: the second stops with one line and writes nothing."""
    out = tmp_path / "run"

    def first_run_claims_it(root, name, out):
        path = new_run_dir(root, name, out)
        (path / "config.json").write_text("the first run's")
        return path

    monkeypatch.setattr("natgrad.runs.training.new_run_dir", first_run_claims_it)
    err = one_line_error(monkeypatch, capsys, ["train", "--steps", "64", "--out", str(out), "--no-progress"])
    assert "another run is writing into" in err and "choose a new --out" in err
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert (out / "config.json").read_text() == "the first run's"


def test_report_on_one_run_prints_its_row_and_writes_nothing(finished_run, tmp_path, capsys, monkeypatch):
    before = sorted(p.relative_to(finished_run) for p in finished_run.rglob("*"))
    result = runner.invoke(app, ["report", str(finished_run)])
    assert result.exit_code == 0, result.output
    assert "| CartPole-v1 | trpo | 1 | 512 |" in result.output and "nothing was written" in result.output
    assert sorted(p.relative_to(finished_run) for p in finished_run.rglob("*")) == before
    assert "holds no grid" in one_line_error(monkeypatch, capsys, ["report", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


def test_resume_without_steps_continues_to_the_runs_own_total(finished_run, tmp_path, capsys, monkeypatch):
    parent = killed_copy(finished_run, tmp_path / "killed", keep_until=256)
    child, _ = train_run("trpo", "CartPole-v1", resume=parent, out=tmp_path / "child", eval_episodes=0,
                         progress=False, echo=lambda s: None)
    config = json.loads((child / "config.json").read_text())
    assert config["start_timesteps"] == 256 and config["steps"] == 256  # up to the parent's 512
    assert config["resumed_from"] == {"run_dir": "../killed", "checkpoint": "../killed/checkpoints/step_0000000256.pt",
                                      "step": 256}
    # the joined curve: the parent's rows up to its checkpoint, then the child's; no step twice
    assert [float(r["time/steps"]) for r in joined_rows(child, "metrics.csv")] == [128, 256, 384, 512]
    parent_episodes = [r for r in csv.DictReader(open(parent / "episodes.csv")) if int(r["step"]) <= 256]
    child_episodes = list(csv.DictReader(open(child / "episodes.csv")))
    assert joined_rows(child, "episodes.csv") == parent_episodes + child_episodes
    # --steps keeps its meaning: that many more
    more, _ = train_run("trpo", "CartPole-v1", 128, resume=parent, out=tmp_path / "more", eval_episodes=0,
                        progress=False, echo=lambda s: None)
    assert json.loads((more / "config.json").read_text())["steps"] == 128
    assert [float(r["time/steps"]) for r in joined_rows(more, "metrics.csv")] == [128, 256, 384]
    err = one_line_error(monkeypatch, capsys, ["train", "--resume", str(finished_run), "--no-progress"])
    assert "finished its training: pass --steps N" in err
    help_text = runner.invoke(app, ["train", "--help"], terminal_width=200).output
    assert "that many MORE steps" in help_text and "up to the resumed run's own total" in help_text


def test_eval_and_resume_fall_back_from_a_corrupt_newest_checkpoint(finished_run, tmp_path, capsys, monkeypatch):
    run_dir = killed_copy(finished_run, tmp_path / "killed", keep_until=512)
    newest = run_dir / "checkpoints" / "step_0000000512.pt"
    newest.write_bytes(newest.read_bytes()[:1000])
    result = runner.invoke(app, ["eval", str(run_dir), "--episodes", "1"])
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"warning: {newest} cannot be read (corrupt or truncated); using "
                             f"{run_dir / 'checkpoints' / 'step_0000000384.pt'}, the newest valid checkpoint\n")
    assert "384 steps" in result.stdout
    warnings = []
    child, _ = train_run("trpo", "CartPole-v1", resume=run_dir, out=tmp_path / "child", eval_episodes=0,
                         progress=False, echo=lambda s: None, warn=warnings.append)
    assert len(warnings) == 1 and json.loads((child / "config.json").read_text())["resumed_from"]["step"] == 384
    assert newest.stat().st_size == 1000  # the user's file is kept as it was
    for path in (run_dir / "checkpoints").glob("*.pt"):
        path.write_bytes(b"garbage")
    assert "no model.pt and no readable checkpoint" in one_line_error(monkeypatch, capsys, ["eval", str(run_dir)])


def interrupted_train(out: Path, sig: signal.Signals, updates: int, *options: str) -> tuple[int, str]:
    """``natgrad train --steps 1e6 --set n_steps=64 --out OUT OPTIONS`` in a child process, sent ``sig`` once
    metrics.csv has ``updates`` rows: its exit status and stderr. It names the run directory as training starts,
    and prints nothing else on stdout."""
    child = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "natgrad", "train", "--steps", "1e6", "--set", "n_steps=64",
         "--out", str(out), *options, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # signals as at a terminal, also when the suite itself runs in the background (where SIGINT is ignored)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert child.stdout.readline() == f"run directory: {out}\n"
    deadline = time.monotonic() + 60
    while len(csv_rows(out / "metrics.csv")) < updates and time.monotonic() < deadline:
        time.sleep(0.1)
    child.send_signal(sig)
    try:
        stdout, stderr = child.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # say where the child was: SIGABRT makes faulthandler print every thread's stack
        child.send_signal(signal.SIGABRT)
        stdout, stderr = child.communicate()
        pytest.fail(f"natgrad train went on 120 s after {sig.name}; its rows: {len(csv_rows(out / 'metrics.csv'))}; "
                    f"its threads then:\n{stderr}")
    assert stdout == "", stderr
    return child.returncode, stderr


def assert_resumes(command: str, checkpoint: Path, out: Path, eval_episodes: int) -> None:
    """``command``, the ``natgrad train --resume ...`` an interrupted run printed (with ``--checkpoint-every`` 0
    or past the steps it adds, no periodic evaluations), trains 64 steps (whole updates) on from ``checkpoint`` into
    a complete run ``out``."""
    resumed = runner.invoke(app, [*shlex.split(command)[1:], "--steps", "64", "--out", str(out), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    model = load(checkpoint)
    start, batch = model.num_timesteps, model.config.batch_size
    model.close()
    steps = range(start + batch, start + 64 + batch, batch)
    config = assert_complete_run(out, steps=steps, checkpoints=0, eval_episodes=eval_episodes)
    assert config["resumed_from"]["step"] == start


def test_ctrl_c_prints_one_line_with_the_checkpoint_and_the_command_that_resumes_it(tmp_path):
    out = tmp_path / "run"
    options = ["--checkpoint-every", "0", "--eval-every", "0", "--eval-episodes", "3"]
    status, stderr = interrupted_train(out, signal.SIGINT, 2, *options)
    assert status == 130, stderr
    checkpoint = Path(stderr.split("saved ")[1].split(";")[0])
    command = f"natgrad train --resume {out} --checkpoint-every 0 --eval-every 0 --eval-episodes 3"
    assert stderr == f"interrupted: saved {checkpoint}; resume with: {command}\n"
    rows = csv_rows(out / "metrics.csv")  # (the signal may land between an update's step count and its row)
    assert 0 <= load(checkpoint).num_timesteps - float(rows[-1]["time/steps"]) <= 64, [r["time/steps"] for r in rows]
    assert_resumes(command, checkpoint, tmp_path / "resumed", 3)


def test_help_names_the_ray_extra():
    for command, option in [("train", "--workers"), ("bench", "--ray-address")]:
        text = runner.invoke(app, [command, "--help"], terminal_width=200).output
        assert "needs natgrad[ray]" in text and option in text, text


def test_default_run_directory_of_an_env_id_with_a_module_is_one_safe_name(tmp_path):
    args = ["train", "--env", "gymnasium.envs.classic_control:CartPole-v1", "--steps", "64", "--set", "n_steps=64",
            "--runs-root", str(tmp_path), "--eval-episodes", "0", "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    [run_dir] = tmp_path.iterdir()
    assert run_dir.name.startswith("gymnasium.envs.classic_control_CartPole-v1-trpo-s0-")
    assert_complete_run(run_dir, steps=[64], checkpoints=0, eval_episodes=0)
