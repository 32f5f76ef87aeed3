"""A file natgrad reads back (a checkpoint, a run's config.json, a preset, a tune study, a grid) runs no code it
names: an env named by ``module:...`` is imported only when the user trusts the file, or gives the env."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from test_cli import assert_complete_run, natgrad_cli, one_line_error

import natgrad
import natgrad.wrappers
from natgrad import NatgradError
from natgrad.rollouts.envs import NATGRAD_FACTORIES, _factory_by_name, untrusted_env
from natgrad.runs.evaluation import evaluate
from natgrad.runs.training import train_run
from natgrad.tools.bench import GridSettings, RunSpec, train_command

OPT_IN = "pass env=... (--env) or, if you trust the file, trust_env=True (--trust-env)"
ATTACKS = ["subprocess:run", "os:system", "sideeffect_mod:make"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A CartPole TRPO run of 128 steps: a checkpoint at 64, model.pt at 128."""
    out = tmp_path_factory.mktemp("runs") / "run"
    train_run("trpo", "CartPole-v1", 128, out=out, overrides={"n_steps": 64}, checkpoint_every=64, eval_episodes=0,
              progress=False, echo=lambda _: None)
    return out


@pytest.fixture
def attack(request, tmp_path, monkeypatch) -> tuple[str, dict, Path]:
    """An env name that runs code when natgrad imports or calls it, the env_kwargs that make it create a marker
    file, and the marker: ``subprocess:run``, ``os:system``, or a module whose import creates it."""
    marker = tmp_path / "PWNED"
    (tmp_path / "sideeffect_mod.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n\ndef make(**kwargs):\n    import gymnasium\n"
        "    return gymnasium.make('CartPole-v1')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sideeffect_mod", raising=False)
    kwargs = {"subprocess:run": {"args": ["touch", str(marker)]}, "os:system": {"command": f"touch {marker}"},
              "sideeffect_mod:make": {}}[request.param]
    return request.param, kwargs, marker


def nothing_ran(marker: Path) -> bool:
    return not marker.exists() and "sideeffect_mod" not in sys.modules


def craft(source: Path, target: Path, env_id: str, env_kwargs: dict) -> Path:
    """``source``'s checkpoint naming ``env_id`` made with ``env_kwargs``, written to ``target``."""
    payload = torch.load(source, weights_only=True)
    payload["env_id"], payload["config"]["env_kwargs"] = env_id, env_kwargs
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, target)
    return target


@pytest.mark.parametrize("attack", ATTACKS, indirect=True)
def test_loading_a_crafted_checkpoint_runs_nothing_and_predicts(attack, run_dir, tmp_path):
    name, kwargs, marker = attack
    evil = craft(run_dir / "model.pt", tmp_path / "evil" / "model.pt", name, kwargs)
    model = natgrad.load(evil)
    assert nothing_ran(marker)
    assert model.env is None and model.env_id == name  # predict-only, the file's env name kept
    obs = gym.make("CartPole-v1").reset(seed=0)[0]
    assert model.predict(obs, deterministic=True) in (0, 1)
    expected = f"{evil} names its env {name!r}, which natgrad would import to make; natgrad does not run code a " \
               f"file names: {OPT_IN}"
    for use in (lambda: model.learn(64), lambda: evaluate(model, 1)):
        with pytest.raises(NatgradError) as error:
            use()
        assert str(error.value) == expected
    model.save(tmp_path / "again.pt")  # a re-save keeps the name
    assert torch.load(tmp_path / "again.pt", weights_only=True)["env_id"] == name
    assert len(evaluate(natgrad.load(evil, env="CartPole-v1", env_kwargs={}), 1)) == 1  # the user's env
    assert nothing_ran(marker)


@pytest.mark.parametrize("attack", ATTACKS, indirect=True)
def test_eval_export_and_resume_of_a_crafted_checkpoint_run_nothing(attack, run_dir, tmp_path, monkeypatch, capsys):
    name, kwargs, marker = attack
    evil = tmp_path / "evil"
    shutil.copytree(run_dir, evil)
    for path in [evil / "model.pt", *(evil / "checkpoints").glob("*.pt")]:
        craft(path, path, name, kwargs)
    err = one_line_error(monkeypatch, capsys, ["eval", str(evil)])
    assert err == f"error: {evil / 'model.pt'} names its env {name!r}, which natgrad would import to make; natgrad " \
                  f"does not run code a file names: {OPT_IN}\n"
    err = one_line_error(monkeypatch, capsys, ["train", "--resume", str(evil), "--steps", "64",
                                               "--out", str(tmp_path / "resumed")])
    assert err.endswith(f"{OPT_IN}\n") and not (tmp_path / "resumed").exists()
    natgrad_cli("export", str(evil), "--onnx", str(tmp_path / "actor.onnx"))  # the policy alone: no env is made
    assert (tmp_path / "actor.onnx").is_file() and nothing_ran(marker)


def test_export_makes_no_env_even_a_registered_one(run_dir, tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(gym, "make_vec", lambda *a, **k: made.append(a))
    monkeypatch.setattr(gym, "make", lambda *a, **k: made.append(a))
    natgrad_cli("export", str(run_dir), "--onnx", str(tmp_path / "actor.onnx"))
    assert (tmp_path / "actor.onnx").is_file() and made == []


@pytest.mark.parametrize("attack", ATTACKS, indirect=True)
def test_resume_reads_only_step_counts_from_a_crafted_config_json(attack, run_dir, tmp_path, monkeypatch, capsys):
    name, kwargs, marker = attack
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    config = json.loads((run / "config.json").read_text())
    config["env_id"], config["config"]["env_kwargs"] = name, kwargs
    (run / "config.json").write_text(json.dumps(config))
    checkpoint = next((run / "checkpoints").glob("*.pt"))
    natgrad_cli("train", "--resume", str(checkpoint), "--out", str(tmp_path / "resumed"), "--eval-episodes", "0",
                "--no-progress")  # on to the run's total, on the checkpoint's env
    resumed = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert resumed["env_id"] == "CartPole-v1" and resumed["config"]["env_kwargs"] == {} and nothing_ran(marker)
    (run / "config.json").write_text(json.dumps({**config, "steps": "128; touch PWNED"}))
    err = one_line_error(monkeypatch, capsys, ["train", "--resume", str(checkpoint), "--out", str(tmp_path / "r2")])
    assert "config.json holds no total of env steps" in err and "pass --steps N" in err


@pytest.mark.parametrize("attack", ATTACKS, indirect=True)
def test_a_crafted_preset_file_runs_nothing(attack, tmp_path, monkeypatch, capsys):
    name, kwargs, marker = attack
    preset = tmp_path / "evil.toml"
    preset.write_text(f'[{json.dumps(name)}]\nn_steps = 64\n\n'
                      f'["CartPole-v1"]\nn_steps = 64\nenv_kwargs = {json.dumps(kwargs).replace(":", " =")}\n\n'
                      f'["natgrad/CartPoleNoVel-v1"]\nn_steps = 64\nenv_kwargs = {{ env_id = {json.dumps(name)} }}\n')
    base = ["train", "--steps", "64", "--preset-file", str(preset), "--out", str(tmp_path / "run")]
    if kwargs:  # env_kwargs go to the env the user named, which does not take them
        assert "does not take env_kwargs" in one_line_error(monkeypatch, capsys, [*base, "--env", "CartPole-v1"])
    err = one_line_error(monkeypatch, capsys, [*base, "--env", "natgrad/CartPoleNoVel-v1"])
    assert f"{name!r} names a module to import; natgrad's env factories make registered ids only" in err
    assert nothing_ran(marker)


@pytest.mark.parametrize("attack", ATTACKS, indirect=True)
def test_natgrads_own_factories_import_nothing_their_env_id_names(attack, run_dir, tmp_path):
    name, _, marker = attack
    evil = craft(run_dir / "model.pt", tmp_path / "m.pt", "natgrad.wrappers:no_velocity", {"env_id": name})
    with pytest.raises(NatgradError, match="names a module to import"):
        natgrad.load(evil)
    for factory in ("no_velocity", "atari", "minigrid"):
        with pytest.raises(NatgradError, match="names a module to import"):
            getattr(natgrad.wrappers, factory)(name)
    assert nothing_ran(marker)


def test_a_study_directory_of_other_settings_is_refused_before_any_trial(tmp_path, monkeypatch, capsys):
    pytest.importorskip("optuna")
    out = tmp_path / "study"
    out.mkdir()
    settings = {"algo": "trpo", "env_id": "subprocess:run", "steps": 64, "trials": 1, "eval_every": 64,
                "eval_episodes": 1, "seed": 0, "overrides": {"env_kwargs": {"args": ["touch", "PWNED"]}}, "space": {}}
    (out / "tune.json").write_text(json.dumps(settings))
    err = one_line_error(monkeypatch, capsys, ["tune", "--env", "CartPole-v1", "--steps", "64", "--trials", "1",
                                               "--out", str(out)])
    assert "holds a study of other settings (env_id, " in err
    assert not (out / "study.db").exists()


def test_a_grid_resumes_a_run_on_its_own_env_not_the_checkpoints(run_dir, tmp_path, monkeypatch):
    spec = RunSpec("trpo", "CartPole-v1", 0)
    checkpoint = craft(run_dir / "model.pt", tmp_path / "old" / "checkpoints" / "step_0000000064.pt",
                       "sideeffect_mod:make", {})
    command = train_command(spec, tmp_path / "new", GridSettings(128, (), 0, 1), checkpoint)
    assert command[command.index("--env") + 1] == "CartPole-v1" and "--resume" in command
    natgrad_cli(*command[command.index("train"):], "--steps", "64")
    assert json.loads((tmp_path / "new" / "config.json").read_text())["env_id"] == "CartPole-v1"
    assert "sideeffect_mod" not in sys.modules


def test_which_env_names_natgrad_makes_unasked():
    for name in ["CartPole-v1", "natgrad/CartPoleNoVel-v1", "ALE/Pong-v5", "MinAtar/Breakout-v1",
                 *NATGRAD_FACTORIES]:
        assert untrusted_env(name) is None, name
    assert untrusted_env("subprocess:run") == untrusted_env("gymnasium.envs:CartPole-v1") == \
        "which natgrad would import to make"
    assert untrusted_env("Nope-v0") == "which is not a registered Gymnasium id here"
    assert all(callable(_factory_by_name(name)) for name in NATGRAD_FACTORIES)  # each is natgrad's own factory


def test_a_trusted_module_factory_checkpoint_loads_and_trains(tmp_path, monkeypatch, capsys):
    (tmp_path / "legit_envs.py").write_text("import gymnasium\n\ndef make_env(**kwargs):\n"
                                            "    return gymnasium.make('CartPole-v1', **kwargs)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = natgrad.TRPO("legit_envs:make_env", n_steps=64)
    model.save(tmp_path / "m.pt")
    monkeypatch.delitem(sys.modules, "legit_envs")
    untrusted = natgrad.load(tmp_path / "m.pt")
    assert untrusted.env is None and "legit_envs" not in sys.modules
    trusted = natgrad.load(tmp_path / "m.pt", trust_env=True)
    assert trusted.env is not None and trusted.learn(64).num_timesteps == 64
    assert trusted.env_id == "legit_envs:make_env"
    output = natgrad_cli("train", "--resume", str(tmp_path / "m.pt"), "--trust-env", "--steps", "64", "--out",
                         str(tmp_path / "run"), "--eval-episodes", "1", "--no-progress")
    config = assert_complete_run(tmp_path / "run", steps=[64], checkpoints=0, eval_episodes=1)
    assert config["env_id"] == "legit_envs:make_env" and "final evaluation" in output


def test_a_natgrad_env_made_from_itself_is_one_line(run_dir, tmp_path):
    evil = craft(run_dir / "model.pt", tmp_path / "m.pt", "natgrad/CartPoleNoVel-v1",
                 {"env_id": "natgrad/CartPoleNoVel-v1"})
    with pytest.raises(NatgradError, match=r"no_velocity masks the velocities of \['CartPole-v1', 'Pendulum-v1'\], "
                                           r"not 'natgrad/CartPoleNoVel-v1'"):
        natgrad.load(evil)
