"""``natgrad train --resume`` and ``natgrad.load`` say what they do: a flag that conflicts with the checkpoint is
refused, ``--env`` is honoured, and another env or network is named in one line, not as a state_dict dump."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
from test_cli import natgrad_cli, one_line_error

import natgrad
from natgrad import NatgradError
from natgrad.runs.training import train_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A CartPole TRPO run (seed 0) of 64 steps."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train_run("trpo", "CartPole-v1", 64, out=out, overrides={"n_steps": 64}, checkpoint_every=0, eval_episodes=0,
              progress=False, echo=lambda _: None)
    return out


@pytest.mark.parametrize("flags, refused", [
    (["--algo", "ppo"], "--algo ppo cannot change on resume: {model} holds a trpo model of seed 0; leave --algo out"),
    (["--seed", "3"], "--seed 3 cannot change on resume: {model} holds a trpo model of seed 0; leave --seed out"),
    (["--algo", "npg", "--seed", "1"], "--algo npg and --seed 1 cannot change on resume: {model} holds a trpo model "
                                       "of seed 0; leave --algo and --seed out"),
    (["--set", "hidden=8"], "hidden cannot change on resume: the networks in {model} were built with "
                            "hidden=(64, 64); leave it out, or train a new model"),
    (["--set", "activation=relu", "--set", "recurrent=gru"], "activation and recurrent cannot change on resume"),
    (["--set", "normalize_obs=false"], "normalize_obs cannot change on resume"),
])
def test_resume_refuses_a_flag_that_conflicts_with_the_checkpoint(run_dir, tmp_path, monkeypatch, capsys, flags,
                                                                  refused):
    out = tmp_path / "resumed"
    err = one_line_error(monkeypatch, capsys, ["train", "--resume", str(run_dir), "--steps", "64", "--out", str(out),
                                               *flags])
    assert err.startswith(f"error: {refused.format(model=run_dir / 'model.pt')}"), err
    assert not out.exists()


def test_resume_takes_flags_that_agree_with_the_checkpoint(run_dir, tmp_path):
    natgrad_cli("train", "--resume", str(run_dir), "--steps", "64", "--out", str(tmp_path / "resumed"),
                "--algo", "TRPO", "--seed", "0", "--env", "CartPole-v1", "--set", "hidden=64,64", "--set", "n_steps=32",
                "--eval-episodes", "0", "--no-progress")
    config = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert (config["algo"], config["env_id"], config["seed"], config["config"]["n_steps"]) == \
        ("trpo", "CartPole-v1", 0, 32)


def test_a_model_trained_on_an_env_object_resumes_on_the_env_given(tmp_path, monkeypatch, capsys):
    (tmp_path / "mymod.py").write_text("import gymnasium\n\ndef make_env():\n"
                                       "    return gymnasium.make('CartPole-v1')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    natgrad.TRPO(gym.make("CartPole-v1"), n_steps=64).save(tmp_path / "m.pt")  # an env object: saved without a name
    err = one_line_error(monkeypatch, capsys, ["train", "--resume", str(tmp_path / "m.pt"), "--steps", "64"])
    assert err == f"error: {tmp_path / 'm.pt'} was trained on an env object, which natgrad cannot make again: pass " \
                  "env=... (--env) with the env, a factory or its id\n"
    natgrad_cli("train", "--resume", str(tmp_path / "m.pt"), "--env", "mymod:make_env", "--steps", "64", "--out",
                str(tmp_path / "resumed"), "--eval-episodes", "1", "--no-progress")
    assert json.loads((tmp_path / "resumed" / "config.json").read_text())["env_id"] == "mymod:make_env"


def test_another_env_is_named_with_both_spaces(run_dir, tmp_path, monkeypatch, capsys):
    model = run_dir / "model.pt"
    expected = f"this model ({model}) acts on Box(4,) → Discrete(2); Pendulum-v1 is Box(3,) → Box(1,): pass an env " \
               "with the model's spaces"
    assert one_line_error(monkeypatch, capsys, ["eval", str(run_dir), "--env", "Pendulum-v1"]) == f"error: {expected}\n"
    err = one_line_error(monkeypatch, capsys, ["train", "--resume", str(run_dir), "--env", "Pendulum-v1", "--steps",
                                               "64", "--out", str(tmp_path / "resumed")])
    assert err == f"error: {expected}\n" and not (tmp_path / "resumed").exists()
    with pytest.raises(NatgradError) as error:
        natgrad.load(model, env="MountainCarContinuous-v0")
    assert str(error.value) == f"this model ({model}) acts on Box(4,) → Discrete(2); MountainCarContinuous-v0 is " \
                               "Box(2,) → Box(1,): pass an env with the model's spaces"
    with pytest.raises(NatgradError, match=r"^hidden cannot change on resume"):
        natgrad.load(model, hidden=(8,))


def test_the_resume_command_of_a_stopped_module_factory_run_names_its_env(tmp_path, monkeypatch, capsys):
    (tmp_path / "mymod2.py").write_text("import gymnasium\n\ndef make_env():\n"
                                        "    return gymnasium.make('CartPole-v1')\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def ctrl_c(model, results):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt) as stopped:
        train_run("trpo", "mymod2:make_env", 10_000, out=out, overrides={"n_steps": 64}, checkpoint_every=0,
                  eval_every=64, eval_episodes=1, progress=False, echo=lambda _: None, after_eval=ctrl_c)
    command = str(stopped.value).split("resume with: ")[1]
    assert command.endswith("--env mymod2:make_env")  # the checkpoint's name alone is not made unasked
    natgrad_cli(*command.split()[1:], "--steps", "64", "--out", str(tmp_path / "resumed"), "--eval-episodes", "0",
                "--no-progress")
