"""Checkpoints: identical predictions after reload, resumed training counts right, nothing overwritten."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_cli import assert_complete_run

import natgrad
from natgrad import NatgradError
from natgrad.runs.directories import latest_model
from natgrad.runs.evaluation import evaluate
from natgrad.runs.training import train_run

ALGOS = [natgrad.TRPO, natgrad.NPG, natgrad.VPG, natgrad.PPO, natgrad.PPOKL]


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_save_load_predict_identical(tmp_path, cls, env_id):
    model = cls(env_id, seed=3, n_envs=2, n_steps=128).learn(512)
    path = model.save(tmp_path / "m.pt")
    loaded = natgrad.load(path)
    assert type(loaded) is cls and loaded.config == model.config and loaded.num_timesteps == 512
    obs = np.stack([model.env.single_observation_space.sample() for _ in range(32)])
    np.testing.assert_array_equal(model.predict(obs, deterministic=True), loaded.predict(obs, deterministic=True))
    model.generator.manual_seed(7)
    loaded.generator.manual_seed(7)
    np.testing.assert_array_equal(model.predict(obs), loaded.predict(obs))
    single = model.predict(obs[0], deterministic=True)
    assert np.shape(single) == model.env.single_action_space.shape
    model.close(), loaded.close()


def test_resumed_training_continues_with_counters_and_normalizer(tmp_path):
    model = natgrad.TRPO("Pendulum-v1", seed=0, n_envs=2, n_steps=256, normalize_reward=True).learn(1024)
    model.save(tmp_path / "m.pt")
    resumed = natgrad.load(tmp_path / "m.pt")
    assert resumed.num_timesteps == 1024 and resumed.num_updates == 2
    for a, b in [(model.obs_normalizer.rms, resumed.obs_normalizer.rms),
                 (model.reward_scaler.rms, resumed.reward_scaler.rms)]:
        np.testing.assert_array_equal(a.mean, b.mean)
        np.testing.assert_array_equal(a.var, b.var)
        assert a.count == b.count > 1000 - 1
    for k, v in model.critic_optimizer.state_dict()["state"].items():
        torch.testing.assert_close(resumed.critic_optimizer.state_dict()["state"][k]["exp_avg"], v["exp_avg"])
    steps = []
    resumed.learn(1024, callback=lambda m, metrics: steps.append(metrics["time/steps"]))
    assert steps == [1536.0, 2048.0] and resumed.num_updates == 4
    assert resumed.obs_normalizer.rms.count > model.obs_normalizer.rms.count
    model.close(), resumed.close()


@pytest.mark.parametrize("cls, anneal, key, base", [
    (natgrad.PPO, "anneal_lr", "policy/lr", 3e-4), (natgrad.TRPO, "anneal_kl", "policy/max_kl", 0.01)])
def test_resumed_run_continues_its_schedule(tmp_path, cls, anneal, key, base):
    """A run stopped at t and resumed with learn(T − t) anneals as one learn(T) does: x_t = x(1 − t/T)."""
    kwargs = {"n_envs": 2, "n_steps": 128, anneal: True, key.split("/")[1]: base}
    whole, first, rest = [], [], []
    uninterrupted = cls("CartPole-v1", seed=0, **kwargs)
    uninterrupted.learn(1024, callback=lambda m, metrics: whole.append(metrics[key]))
    stopped = cls("CartPole-v1", seed=0, **kwargs)
    stopped.learn(1024, callback=lambda m, metrics: first.append(metrics[key]) or len(first) < 2)
    stopped.save(tmp_path / "m.pt")
    resumed = natgrad.load(tmp_path / "m.pt")
    resumed.learn(512, callback=lambda m, metrics: rest.append(metrics[key]))
    assert whole == pytest.approx([base * (1 - t / 1024) for t in (0, 256, 512, 768)])
    assert first + rest == pytest.approx(whole)
    for model in (uninterrupted, stopped, resumed):
        model.close()


def test_cli_resume_writes_a_new_run_that_continues(tmp_path):
    first, _ = train_run("trpo", "CartPole-v1", 1024, out=tmp_path / "a",
                         overrides={"n_envs": 2, "n_steps": 256}, eval_episodes=0, progress=False)
    second, _ = train_run("trpo", "CartPole-v1", 512, out=tmp_path / "b", resume=first,
                          eval_episodes=0, progress=False)
    final = natgrad.load(latest_model(second))
    assert final.num_timesteps == 1536
    assert_complete_run(first, steps=[512, 1024], checkpoints=0, eval_episodes=0)  # the original run is untouched
    final.close()


def test_save_never_overwrites_unless_asked(tmp_path):
    model = natgrad.TRPO("CartPole-v1", n_envs=1, n_steps=64)
    path = model.save(tmp_path / "m.pt")
    before = path.read_bytes()
    with pytest.raises(NatgradError, match="already exists"):
        model.save(path)
    assert path.read_bytes() == before
    model.learn(64)
    model.save(path, overwrite=True)
    assert natgrad.load(path).num_timesteps == 64
    model.close()


def test_corrupt_or_foreign_checkpoint_gives_clear_error(tmp_path):
    model = natgrad.TRPO("CartPole-v1", n_steps=64)
    good = model.save(tmp_path / "m.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(good[: len(good) // 2])
    with pytest.raises(NatgradError, match="corrupt or truncated"):
        natgrad.load(tmp_path / "truncated.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(NatgradError, match="not a natgrad checkpoint"):
        natgrad.load(tmp_path / "foreign.pt")
    with pytest.raises(NatgradError, match="no checkpoint"):
        natgrad.load(tmp_path / "missing.pt")
    model.close()


def test_env_kwargs_are_saved_and_used_by_load_and_evaluate(tmp_path):
    # without its 78 contact forces Ant-v5 observes 27 numbers: a loaded model evaluated on the
    # default 105-number Ant would fail, so evaluate() passing shows the keywords came back
    kwargs = {"include_cfrc_ext_in_observation": False}
    model = natgrad.PPO("Ant-v5", preset=False, n_steps=64, env_kwargs=kwargs).learn(64)
    loaded = natgrad.load(model.save(tmp_path / "m.pt"))
    assert loaded.config.env_kwargs == kwargs and loaded.env.single_observation_space.shape == (27,)
    assert len(evaluate(loaded, episodes=1)) == 1
    model.close(), loaded.close()


def test_checkpoint_config_is_checked_on_load(tmp_path):
    model = natgrad.PPO("CartPole-v1", n_steps=64).learn(64)
    payload = torch.load(model.save(tmp_path / "m.pt"), weights_only=True)
    # written by natgrad before PPO refused the critic-fit options it never used: still loads
    payload["config"].update(vf_lr=1e-3, vf_epochs=5, vf_minibatch_size=64)
    torch.save(payload, tmp_path / "old.pt")
    assert natgrad.load(tmp_path / "old.pt").config == model.config
    payload["config"]["max_kll"] = 0.1
    torch.save(payload, tmp_path / "foreign.pt")
    with pytest.raises(NatgradError, match="foreign.pt holds a config.*max_kll.*damaged"):
        natgrad.load(tmp_path / "foreign.pt")
    payload["config"] = {**model.config.to_dict(), "gamma": 2.0}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(NatgradError, match="bad.pt holds a config.*invalid gamma"):
        natgrad.load(tmp_path / "bad.pt")
    payload["config"] = [0.99]
    torch.save(payload, tmp_path / "list.pt")
    with pytest.raises(NatgradError, match="list.pt holds a config.*damaged"):
        natgrad.load(tmp_path / "list.pt")
    model.close()
