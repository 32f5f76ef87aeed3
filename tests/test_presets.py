"""Presets: every shipped preset is a valid config, applied under the user's overrides, and listed."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import natgrad
from natgrad import NatgradError
from natgrad.algos import ALGORITHMS
from natgrad.cli import app
from natgrad.presets import _resolve, preset, presets

MUJOCO = ["Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", "Ant-v5", "Swimmer-v5", "Humanoid-v5", "Reacher-v5",
          "InvertedPendulum-v5", "InvertedDoublePendulum-v5"]
CLASSIC = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1"]
PARTIAL = ["natgrad/CartPoleNoVel-v1", "natgrad/PendulumNoVel-v1"]  # classic control without velocities


@pytest.mark.parametrize("algo", sorted(ALGORITHMS))
def test_every_algorithm_has_a_valid_preset_for_every_listed_env(algo):
    cls = ALGORITHMS[algo]
    assert set(presets(algo)) == set(MUJOCO + CLASSIC + PARTIAL)
    for env_id, values in presets(algo).items():
        cfg = cls.config_cls().replace(**values)  # unknown keys or bad values raise here
        for key, value in values.items():
            assert getattr(cfg, key) == value, (env_id, key)


def test_npg_takes_trpo_presets_as_they_are():
    assert presets("npg") == presets("trpo")
    hopper = preset("npg", "Hopper-v5")
    assert hopper == preset("trpo", "Hopper-v5") and "max_kl" in hopper  # a value of TRPO's own, not a default


def test_preset_applies_and_overrides_win():
    model = natgrad.TRPO("Swimmer-v5", n_steps=64)
    assert model.config.gamma == 0.9999 and model.config.n_steps == 64
    assert model.preset == preset("trpo", "Swimmer-v5")
    model.close()
    plain = natgrad.TRPO("Swimmer-v5", preset=False, n_steps=64)
    assert plain.config.gamma == natgrad.NaturalConfig().gamma and plain.preset == {}
    plain.close()


def test_an_env_without_preset_gets_the_defaults():
    assert preset("trpo", "MountainCar-v0") == {}
    model = natgrad.TRPO("MountainCar-v0", n_steps=64)
    assert model.config == natgrad.NaturalConfig(n_steps=64)
    model.close()


def test_extends_is_resolved_and_cycles_refused(tmp_path):
    tables = {"_base": {"gamma": 0.9, "n_envs": 2}, "A": {"extends": "_base", "n_envs": 4},
              "B": {"extends": "C"}, "C": {"extends": "B"}, "D": {"extends": "missing"}}
    assert _resolve(tables, "A", tmp_path) == {"gamma": 0.9, "n_envs": 4}
    with pytest.raises(NatgradError, match="cycle"):
        _resolve(tables, "B", tmp_path)
    with pytest.raises(NatgradError, match="extends 'missing'"):
        _resolve(tables, "D", tmp_path)


def test_presets_command_lists_them():
    result = CliRunner().invoke(app, ["presets", "--env", "Swimmer-v5"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert len(lines) == len(ALGORITHMS) and all("gamma=0.9999" in line for line in lines)


def test_presets_command_prints_env_kwargs_as_the_json_set_takes():
    result = CliRunner().invoke(app, ["presets", "--env", "Ant-v5", "--algo", "trpo"])
    after = result.output.split("env_kwargs=", 1)[1]
    _, end = json.JSONDecoder().raw_decode(after)  # the JSON object, whatever follows it on the line
    text = after[:end]
    parsed = natgrad.NaturalConfig().replace(env_kwargs=text).env_kwargs
    assert parsed == preset("trpo", "Ant-v5")["env_kwargs"] == {"include_cfrc_ext_in_observation": False}
