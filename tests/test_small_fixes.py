"""Small things a user meets: the set-up script, the progress bar, tune's step count, the presets listing, plot's
final evaluation, export's and PPO's warnings, the --threads message, what the docs say."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
case "$*" in
    -c*) exit "$READY" ;;
    *--index-url*) exit "$CPU_INDEX_FAILS" ;;
esac
"""


def run_setup(tmp_path: Path, ready: bool, cpu_index_fails: bool = False) -> tuple[str, list[str]]:
    """scripts/setup.sh in a copy of the repository root whose .venv/bin/python records its arguments: the
    script's output and the pip commands it ran, in order."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    calls = tmp_path / "calls.txt"
    env = {**os.environ, "CALLS": str(calls), "READY": "0" if ready else "1",
           "CPU_INDEX_FAILS": "1" if cpu_index_fails else "0"}
    done = subprocess.run(["bash", str(tmp_path / "scripts" / "setup.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout, [line for line in calls.read_text().splitlines() if line.startswith("-m pip install")]


def test_setup_installs_the_cpu_build_of_torch_from_pytorchs_index_before_natgrad(tmp_path: Path) -> None:
    out, pips = run_setup(tmp_path, ready=False)
    assert pips == ["-m pip install -q --upgrade pip",
                    f"-m pip install -q --timeout 5 --retries 0 --index-url {CPU_INDEX} torch==2.13.0",
                    "-m pip install -q -e .[dev]"]
    assert out == f"setup.sh: torch==2.13.0, the CPU build, from {CPU_INDEX}\n"


def test_setup_falls_back_to_pips_default_torch_and_says_so_when_the_cpu_index_fails(tmp_path: Path) -> None:
    out, pips = run_setup(tmp_path, ready=False, cpu_index_fails=True)
    assert pips == ["-m pip install -q --upgrade pip",
                    f"-m pip install -q --timeout 5 --retries 0 --index-url {CPU_INDEX} torch==2.13.0",
                    "-m pip install -q torch==2.13.0",
                    "-m pip install -q -e .[dev]"]
    assert out == (f"setup.sh: torch==2.13.0 could not be installed from {CPU_INDEX}: installing pip's default "
                   "wheel instead (on Linux x86_64, the CUDA build)\n")


def test_setup_does_nothing_when_already_set_up(tmp_path: Path) -> None:
    assert run_setup(tmp_path, ready=True) == ("", [])


def test_the_readme_says_what_setup_installs() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"the CPU build from PyTorch's own index, {CPU_INDEX}, where that index can be reached, else pip's " \
           "default wheel" in readme


def test_the_progress_bar_ends_at_its_total_rounded_up_to_whole_updates(tmp_path: Path) -> None:
    import natgrad
    from natgrad.runs.logger import RunLogger

    model = natgrad.TRPO("CartPole-v1", n_envs=1, n_steps=64)
    logger = RunLogger(tmp_path, 100, progress=True, batch_size=model.config.batch_size)
    model.learn(100, callback=logger)
    assert (logger.bar.n, logger.bar.total) == (128, 128)
    logger.close()
    model.close()


def test_train_draws_no_progress_bar_where_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "natgrad", "train", "--steps", "128", "--set", "n_steps=64",
                           "--set", "n_envs=1", "--eval-episodes", "0", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "step/s" not in done.stderr and "128/128" not in done.stderr


def test_tune_warns_when_steps_are_below_one_update_and_reports_the_steps_trained(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    from typer.testing import CliRunner

    from natgrad.cli import app

    (tmp_path / "space.toml").write_text("replace = true\nn_envs = 1\nn_steps = { choices = [64, 128] }\n")
    result = CliRunner().invoke(app, ["tune", "--steps", "100", "--trials", "1", "--eval-episodes", "1", "--space",
                                      str(tmp_path / "space.toml"), "--out", str(tmp_path / "study")])
    assert result.exit_code == 0, result.output
    assert ("warning: --steps 100 is less than one update (n_envs × n_steps = 64 to 128 env steps in this study): a "
            "trial trains whole updates, so up to 128 steps; each trial's line says how many") in result.output
    assert "trial 0: final evaluation" in result.output and " after 128 steps " in result.output
    header = (tmp_path / "study" / "best.toml").read_text().splitlines()[0]
    assert header.startswith("# natgrad tune: the best of 1 finished trials of trpo on CartPole-v1 (--steps 100, "
                             "seed 0): trial 0, final evaluation ") and header.endswith(" after 128 steps")


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    """``natgrad ARGS`` as the console script runs it: exit status, stdout and stderr."""
    from natgrad.cli import main

    monkeypatch.setattr("sys.argv", ["natgrad", *args])
    with pytest.raises(SystemExit) as exit_:
        main()
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


def test_presets_for_an_env_without_one_says_so_and_lists_the_envs_that_have_one(monkeypatch, capsys) -> None:
    status, out, err = cli(monkeypatch, capsys, "presets", "--env", "NoSuch-v0", "--algo", "trpo")
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert err.startswith("error: no trpo preset for NoSuch-v0: the envs with one are Acrobot-v1, Ant-v5, CartPole-v1,")
    assert err.endswith(", Walker2d-v5, natgrad/CartPoleNoVel-v1, natgrad/PendulumNoVel-v1; any other env trains "
                        "from the defaults\n")


@pytest.mark.parametrize("command", [["train"], ["lab", "cg"]])
def test_threads_zero_is_refused_without_mentioning_none(monkeypatch, capsys, tmp_path: Path,
                                                         command: list[str]) -> None:
    status, _, err = cli(monkeypatch, capsys, *command, "--threads", "0", "--out", str(tmp_path / "out"))
    assert (status, err) == (2, "error: invalid --threads 0: must be an integer >= 1 (1 is fastest for small "
                                "networks)\n")
    assert not (tmp_path / "out").exists()


LEARN_EVERY_ALGORITHM = """
import warnings

import natgrad

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        for cls in (natgrad.TRPO, natgrad.NPG, natgrad.VPG, natgrad.PPO, natgrad.PPOKL):
            cls(env_id, n_envs=1, n_steps=64).learn(128).close()
for w in caught:
    print(f"{w.category.__name__} at {w.filename}:{w.lineno}: {w.message}")
"""


def test_a_short_learn_of_every_algorithm_emits_no_warning() -> None:
    """In a new process: torch gives some warnings once per process, so an earlier test may have used them up."""
    done = subprocess.run([sys.executable, "-c", LEARN_EVERY_ALGORITHM], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")


def test_export_prints_the_file_it_wrote_and_no_exporter_noise(monkeypatch, capfd, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript")
    from natgrad.runs.training import train_run

    train_run("ppo", "Pendulum-v1", 64, out=tmp_path / "run", overrides={"n_steps": 64, "n_envs": 1, "minibatches": 1},
              eval_episodes=0, progress=False, echo=lambda _: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, out, err = cli(monkeypatch, capfd, "export", str(tmp_path / "run"), "--onnx", str(tmp_path / "a.onnx"))
    assert (status, err, [str(w.message) for w in caught]) == (0, "", [])
    assert out == f"wrote {tmp_path / 'a.onnx'}: obs float32 (batch, 3) -> action float32 (batch, 1)\n"


def test_plot_marks_the_final_evaluation_of_a_run_without_periodic_ones(tmp_path: Path) -> None:
    import json

    from natgrad.runs.training import train_run
    from natgrad.tools.plot import figure

    run, _ = train_run("trpo", "CartPole-v1", 128, out=tmp_path / "run", overrides={"n_steps": 64, "n_envs": 1},
                       eval_every=0, eval_episodes=2, progress=False, echo=lambda _: None)
    final = json.loads((run / "eval.json").read_text())
    marker = figure([run]).axes[0].lines[1]  # errorbar's data line, after the training curve
    assert (list(marker.get_xdata()), list(marker.get_ydata())) == ([128], [final["mean"]])


def test_the_config_classes_show_users_only_options_methods_and_properties() -> None:
    """The API page renders every public class attribute of a config as if it were an option."""
    import dataclasses
    import inspect

    import natgrad.config

    classes = [c for c in vars(natgrad.config).values() if inspect.isclass(c) and dataclasses.is_dataclass(c)]
    odd = [f"{c.__name__}.{name}" for c in classes for name, value in vars(c).items()
           if not name.startswith("_") and name not in c.__dataclass_fields__
           and not (inspect.isfunction(value) or isinstance(value, (property, classmethod, staticmethod)))]
    assert odd == []


def test_a_checkpoint_with_the_critic_fit_options_ppo_never_used_still_loads() -> None:
    from natgrad.config import PPOConfig

    assert PPOConfig.from_dict({"vf_lr": 1e-3, "vf_epochs": 5, "vf_minibatch_size": 64, "lr": 1e-4}).lr == 1e-4


def test_the_docs_speak_to_users_not_about_how_the_project_is_worked_on() -> None:
    import re

    words = re.compile(r"\blent\b|the issue|the project's|by the lead|other developers|this task", re.I)
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [f"{page.relative_to(ROOT)}:{n}: {line.strip()[:100]}" for page in pages
             for n, line in enumerate(page.read_text().splitlines(), 1) if words.search(line)]
    assert found == []
