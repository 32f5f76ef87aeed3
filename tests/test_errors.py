"""Bad input gets one clear line naming the fix."""

import math

import numpy as np
import pytest
import torch

import natgrad
from natgrad import NatgradError
from natgrad.cli import main
from natgrad.runs.evaluation import evaluate

DISCRETE = sorted(set(natgrad.ALGORITHMS) - {"trpl"})  # those that take Discrete actions: TRPL projects Gaussians


def test_unknown_env_id():
    with pytest.raises(NatgradError, match="unknown environment id 'CartPol-v1'.*Did you mean.*pprint_registry"):
        natgrad.TRPO("CartPol-v1")


@pytest.mark.parametrize("env_id, what, fix", [
    ("natgrad-test/TextObs-v0", "unsupported observation space Text at mission", r"FilterObservation\)$"),
    ("natgrad-test/MatrixAction-v0", r"unsupported action space Box\(-1.0, 1.0, \(2, 2\), float32\)",
     r"\(a Box action must be 1-D: flatten it with a wrapper\)$"),
])
def test_unsupported_space_names_what_is_supported_and_the_fix(env_id, what, fix):
    supported = "supports observations: Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple of them; " \
                "actions: Box \\(1-D\\), Discrete, MultiDiscrete, MultiBinary"
    with pytest.raises(NatgradError, match=f"{what}.*{supported}.*{fix}"):
        natgrad.TRPO(env_id)


@pytest.mark.parametrize("kl", [0, -0.01, float("nan"), float("inf")])
def test_trust_region_must_be_positive(kl):
    with pytest.raises(NatgradError, match="invalid max_kl"):
        natgrad.TRPO("CartPole-v1", max_kl=kl)


@pytest.mark.parametrize("overrides, match", [
    ({"gamma": 1.5}, "invalid gamma"),
    ({"n_steps": 0}, "invalid n_steps"),
    ({"backtrack_coef": 1.0}, "invalid backtrack_coef"),
    ({"hidden": "64,x"}, "invalid hidden"),
    ({"max_kll": 0.1}, "unknown NaturalConfig option.*max_kl"),
])
def test_bad_hyperparameters(overrides, match):
    with pytest.raises(NatgradError, match=match):
        natgrad.TRPO("CartPole-v1", **overrides)


@pytest.mark.parametrize("name", ["vf_lr", "vf_epochs", "vf_minibatch_size"])
def test_ppo_refuses_the_critic_fit_options_it_would_ignore(name):
    # PPO's critic trains inside the PPO loss: a separate critic-fit setting would silently do nothing
    with pytest.raises(NatgradError, match=f"unknown PPOConfig option.*{name}.*vf_coef"):
        natgrad.PPO("CartPole-v1", **{name: 10})
    assert getattr(natgrad.TRPO("CartPole-v1", **{name: 10}).config, name) == 10


def test_non_finite_observation_from_env():
    model = natgrad.TRPO("natgrad-test/NaNObs-v0", n_steps=8)
    with pytest.raises(NatgradError, match="non-finite observation"):
        model.learn(8)
    model.close()


def test_env_id_with_a_module_imports_it_or_says_why_not():
    model = natgrad.TRPO("gymnasium.envs.classic_control:CartPole-v1", n_steps=8)
    assert model.env.single_action_space.n == 2
    model.close()
    with pytest.raises(NatgradError, match="cannot import 'no_such_module' for environment.*PYTHONPATH"):
        natgrad.TRPO("no_such_module:Env-v0")


def test_env_kwargs_reach_the_env_or_are_refused_in_one_line():
    model = natgrad.TRPO("Pendulum-v1", n_steps=8, env_kwargs='{"g": 2.5}')  # the CLI's --set form: JSON
    assert model.config.env_kwargs == {"g": 2.5} and model.env.envs[0].unwrapped.g == 2.5
    model.close()
    with pytest.raises(NatgradError, match=r"Pendulum-v1 does not take env_kwargs=\{'gravity': 2.5\}"):
        natgrad.TRPO("Pendulum-v1", env_kwargs={"gravity": 2.5})
    with pytest.raises(NatgradError, match="invalid env_kwargs"):
        natgrad.TRPO("Pendulum-v1", env_kwargs="g=2.5")


@pytest.mark.parametrize("algo", DISCRETE)
@pytest.mark.parametrize("env_id, value", [("natgrad-test/NaNReward-v0", "nan"), ("natgrad-test/InfReward-v0", "inf")])
def test_non_finite_reward_is_refused_and_no_model_is_written(tmp_path, capsys, monkeypatch, algo, env_id, value):
    out = tmp_path / "run"
    monkeypatch.setattr("sys.argv", ["natgrad", "train", "--algo", algo, "--env", env_id, "--steps", "64",
                                     "--set", "n_steps=32", "--out", str(out), "--no-progress"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"non-finite reward ({value}) at step 2 of env index 0" in err and err.count("\n") == 1, err
    assert not (out / "model.pt").exists() and not list(out.glob("checkpoints/*.pt"))


@pytest.mark.parametrize("cls", [natgrad.TRPO, natgrad.PPO])
def test_a_model_with_non_finite_weights_is_never_saved(tmp_path, cls):
    model = cls("CartPole-v1", n_steps=8)
    with torch.no_grad():
        next(model.critic.parameters())[0, 0] = math.nan
    with pytest.raises(NatgradError, match=r"critic\.net\.0\.weight is not finite at step 0, so it is not saved"):
        model.save(tmp_path / "m.pt")
    assert not list(tmp_path.iterdir())  # not even a temporary file is left
    model.close()


@pytest.mark.parametrize("algo", DISCRETE)
def test_training_stops_at_the_update_that_makes_weights_non_finite(algo, monkeypatch):
    cls = natgrad.ALGORITHMS[algo]
    model = cls("CartPole-v1", n_envs=1, n_steps=16, **({"minibatches": 4} if algo.startswith("ppo") else {}))
    real = cls._update

    def poisoning(self, *args):
        metrics = real(self, *args)
        if self.num_updates == 1:
            with torch.no_grad():
                next(self.actor.parameters()).fill_(math.inf)
        return metrics

    monkeypatch.setattr(cls, "_update", poisoning)
    with pytest.raises(NatgradError, match=r"^actor\..* is not finite after update 2, so it is not saved"):
        model.learn(64)
    assert model.num_timesteps == 16  # the poisoned update is not counted
@pytest.mark.parametrize("seed", [-1, 2**32, 99999999999999999999, 1.5, "0"])
def test_seed_outside_what_torch_numpy_and_gymnasium_accept_is_refused(seed):
    with pytest.raises(NatgradError, match=r"invalid seed .*: use an integer from 0 to 4294967295"):
        natgrad.TRPO("CartPole-v1", seed=seed)


def test_the_largest_seed_trains_and_evaluates():
    # its derived seeds (seed + env steps for rollouts, + env index per env) pass numpy, gymnasium and torch
    model = natgrad.TRPO("CartPole-v1", seed=2**32 - 1, n_envs=2, n_steps=16).learn(64)
    assert model.seed == 2**32 - 1 and model.num_timesteps == 64 and len(evaluate(model, 1)) == 1
    model.close()


def test_predict_refuses_an_observation_of_the_wrong_shape_naming_the_right_one():
    model = natgrad.TRPO("CartPole-v1", n_steps=8)
    assert np.shape(model.predict(np.zeros(4))) == () and model.predict(np.zeros((3, 4))).shape == (3,)
    assert model.predict(np.zeros((1, 4))).shape == (1,)  # a batch of one stays a batch
    for obs in [np.zeros(5), np.zeros((2, 3)), np.zeros((2, 2, 4)), "obs"]:
        with pytest.raises(NatgradError, match=r"expected shape \(4,\) \(one observation\) or \(n, 4\)"):
            model.predict(obs)
    model.close()


def test_every_algorithm_lookup_is_one_line_naming_the_known_ones(tmp_path, capsys, monkeypatch):
    """``natgrad.algos.algorithm`` serves building, loading, tuning, benchmark grids and ``natgrad presets``."""
    from natgrad.algos import algorithm
    from natgrad.algos.checkpoint import write
    from natgrad.runs.training import build_model
    from natgrad.tools.bench import GridSettings, RunSpec, check_configs
    from natgrad.tools.tune import TuneSettings

    model = build_model("TRPO", "CartPole-v1", 0, {"n_steps": 8})  # the CLI's --algo is not case-sensitive
    assert algorithm("ppo-kl") is natgrad.PPOKL and type(model) is algorithm("trpo") is natgrad.TRPO
    write({**model.state(), "algo": "sac"}, tmp_path / "sac.pt")
    model.close()
    message = "unknown algorithm 'sac': use one of npg, ppo, ppo-kl, trpl, trpo, vpg"
    for call in (lambda: algorithm("sac"), lambda: build_model("SAC", "CartPole-v1", 0, {}),
                 lambda: natgrad.load(tmp_path / "sac.pt"),
                 lambda: TuneSettings("sac", "CartPole-v1", 1024, 2, 256, 2, 0, {}, {}),
                 lambda: check_configs([RunSpec("sac", "CartPole-v1", 0)], GridSettings(10))):
        with pytest.raises(NatgradError) as error:
            call()
        assert str(error.value).endswith(message) and "\n" not in str(error.value)
    monkeypatch.setattr("sys.argv", ["natgrad", "presets", "--algo", "sac"])
    with pytest.raises(SystemExit):
        main()
    assert capsys.readouterr().err == f"error: {message}\n"
