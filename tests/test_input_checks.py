"""Numbers that must be finite, and inputs to learn and predict: each mistake is one NatgradError naming the fix
(or, where the input is legal but likely wrong, one warning)."""

import dataclasses
import math
import re
import typing
import warnings

import numpy as np
import pytest
import space_envs
import torch
from gymnasium import spaces

import natgrad
from natgrad import NatgradError
from natgrad.cli import main
from natgrad.config import Config, CriticFitConfig, NaturalConfig, PPOConfig, PPOKLConfig, ProximalConfig, VPGConfig
from natgrad.policy.networks import ACTIVATIONS, mlp

CONFIGS = [Config, CriticFitConfig, NaturalConfig, VPGConfig, ProximalConfig, PPOConfig, PPOKLConfig]
FLOAT_FIELDS = [(cls, f.name) for cls in CONFIGS for f in dataclasses.fields(cls) if f.type in ("float", float)]


def test_every_config_class_has_float_options():
    assert {cls for cls, _ in FLOAT_FIELDS} == set(CONFIGS)
    assert (NaturalConfig, "damping") in FLOAT_FIELDS and (PPOConfig, "log_std_init") in FLOAT_FIELDS


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", "-inf"])
@pytest.mark.parametrize("cls, name", FLOAT_FIELDS, ids=[f"{c.__name__}.{n}" for c, n in FLOAT_FIELDS])
def test_every_float_option_must_be_finite(cls, name, value):
    """Given as a number (Python) or as text (``--set``), NaN and ±inf are refused naming the option."""
    with pytest.raises(NatgradError, match=rf"^invalid {name}=-?(nan|inf): must be a finite number$"):
        cls().replace(**{name: value})


def test_log_std_init_is_checked_at_construction_not_blamed_on_the_env():
    with pytest.raises(NatgradError, match=r"^invalid log_std_init=nan: must be a finite number$"):
        natgrad.TRPO("Pendulum-v1", n_steps=64, log_std_init=math.nan)
    with pytest.raises(NatgradError, match=r"^invalid log_std_init=100.0: must be in \[-20, 20\]"):
        natgrad.TRPO("Pendulum-v1", n_steps=64, log_std_init=100)


def test_an_integer_option_given_inf_is_one_line():
    with pytest.raises(NatgradError, match=r"^invalid n_steps='inf': expected a value like 2048$"):
        NaturalConfig().replace(n_steps="inf")


CHOICES = [(cls, name, alias) for cls in CONFIGS for name, alias in typing.get_type_hints(cls).items()
           if typing.get_origin(alias) is typing.Literal]


def test_the_options_that_name_a_choice_are_annotated_with_their_alias():
    assert {name for cls, name, _ in CHOICES if cls is NaturalConfig} == {
        "vectorization", "activation", "image_channels", "cnn", "recurrent", "critic_step", "action_dist"}


@pytest.mark.parametrize("cls, name, alias", CHOICES, ids=[f"{c.__name__}.{n}" for c, n, _ in CHOICES])
def test_every_choice_is_checked_against_its_alias_listing_the_choices(cls, name, alias):
    choices = typing.get_args(alias)
    listed = ", ".join(map(repr, choices[:-1])) + f" or {choices[-1]!r}"
    for value in ("other", 1):
        with pytest.raises(NatgradError, match=rf"^invalid {name}={value!r}: must be {re.escape(listed)}$"):
            cls().replace(**{name: value})
    assert [getattr(cls().replace(**{name: c}), name) for c in choices] == list(choices)


def test_an_unknown_activation_is_one_line_from_the_config_and_from_the_network():
    message = r"^invalid activation='sigmoid': must be 'tanh', 'relu' or 'elu'$"
    with pytest.raises(NatgradError, match=message):
        natgrad.TRPO("CartPole-v1", activation="sigmoid")
    with pytest.raises(NatgradError, match=message):
        mlp(3, (4,), 2, activation="sigmoid")
    assert tuple(ACTIVATIONS) == typing.get_args(natgrad.config.Activation)  # a module for every choice


def test_cli_refuses_a_non_finite_option_and_warns_of_a_huge_step_count(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["natgrad", "train", "--steps", "1e30", "--set", "damping=inf", "--no-progress"])
    with pytest.raises(SystemExit) as exit_:
        main()
    lines = capsys.readouterr().err.splitlines()
    assert exit_.value.code == 2 and lines == [
        "warning: --steps 1e+30 is over 1e12 env steps, far more than a run takes: check the value",
        "error: invalid damping=inf: must be a finite number",
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def cartpole():
    model = natgrad.TRPO("CartPole-v1", n_envs=1, n_steps=64)
    yield model
    model.close()


@pytest.mark.parametrize("steps", ["abc", math.nan, math.inf, None])
def test_learn_refuses_a_step_count_that_is_not_a_finite_number(cartpole, steps):
    with pytest.raises(NatgradError, match=rf"^total_timesteps must be a finite number of env steps, e.g. 1e6; "
                                           rf"got {steps!r}$"):
        cartpole.learn(steps)


@pytest.mark.parametrize("callback", [5, [print, "log"]])
def test_learn_refuses_a_callback_that_cannot_be_called(cartpole, callback):
    with pytest.raises(NatgradError, match=r"^learn got callback=(5|'log'): pass a function callback\(model, "
                                           r"metrics\), a list of them, or None$"):
        cartpole.learn(64, callback=callback)
    assert cartpole.num_timesteps == 0


def test_a_bool_is_not_a_seed():
    with pytest.raises(NatgradError, match=r"^invalid seed True: use an integer from 0 to 4294967295$"):
        natgrad.TRPO("CartPole-v1", n_steps=64, seed=True)


def spaces_only(observation_space, action_space=spaces.Discrete(4), **config):
    """A predict-only model of these spaces (no env)."""
    return natgrad.TRPO(None, spaces=(observation_space, action_space), n_steps=64, preset=False, **config)


DICT = space_envs.DictTask.observation_space
IMAGE = space_envs.ImageTask.observation_space
DICT_OBS = {"pos": np.zeros(2, np.float32), "goal": 1, "flags": np.zeros(2, np.int8)}


@pytest.mark.parametrize("space, obs, detail", [
    (spaces.Box(-1, 1, (4,)), np.array(list("abcd")), r"it holds <U1 values: pass numbers"),
    (spaces.Box(-1, 1, (4,)), np.ones(4) + 1j, r"it holds complex128 values: pass numbers"),
    (DICT, {"pos": np.zeros(2, np.float32), "goal": 1}, r"it has no entry 'flags': pass every entry of the space"),
    (DICT, {**DICT_OBS, "pos": np.array(["a", "b"])}, r"its entry 'pos' holds <U1 values: pass numbers"),
    (DICT, {"pos": np.zeros((2, 2)), "goal": [1, 2, 3], "flags": np.zeros((2, 2))},
     r"its entries have different batch sizes \(pos: 2, flags: 2, goal: 3\): give every entry the same first axis"),
    (DICT, {**DICT_OBS, "goal": 0}, r"its entry 'goal' holds values outside Discrete\(4, start=1\): pass values"),
    (DICT, {**DICT_OBS, "flags": np.zeros(3)}, r"its entry 'flags' has shape \(3,\): expected shape \(2,\) \(one "
                                               r"observation\) or \(n, 2\) \(a batch\)"),
    (IMAGE, np.zeros((6, 5, 1), np.uint8), r"it has shape \(6, 5, 1\): expected shape \(6, 6, 1\)"),
    (IMAGE, np.full((6, 6, 1), 0.5), r"it holds float64 pixels where the space's are uint8: pass the image as the "
                                     r"env returns it \(uint8\)"),
], ids=["strings", "complex", "dict-missing-key", "dict-strings", "batch-sizes", "discrete-range", "dict-shape",
        "image-shape", "float-image"])
def test_predict_refuses_an_observation_that_does_not_fit_in_one_line(space, obs, detail):
    model = spaces_only(space)
    with pytest.raises(NatgradError, match=rf"^predict got an observation that does not fit .*: {detail}"):
        model.predict(obs)


def test_predict_says_a_non_finite_observation_is_its_own_input():
    model = spaces_only(spaces.Box(-1, 1, (3,)))
    with pytest.raises(NatgradError, match=r"^predict got a non-finite observation \(nan in row 1\): pass finite"):
        model.predict(np.array([[0, 0, 0], [0, np.nan, 0]]))


def test_predict_checks_the_recurrent_state_and_refuses_one_for_a_model_without_a_core():
    with pytest.raises(NatgradError, match=r"^predict got a state=, but this model has no recurrent core "
                                           r"\(recurrent='none'\): leave state out$"):
        spaces_only(spaces.Box(-1, 1, (3,))).predict(np.zeros(3), state=np.zeros(3))
    model = spaces_only(spaces.Box(-1, 1, (3,)), recurrent="gru", rnn_hidden=8)
    action, state = model.predict(np.zeros((2, 3)))
    assert state.shape == (2, 8) and model.predict(np.zeros((2, 3)), state=state)[1].shape == (2, 8)
    with pytest.raises(NatgradError, match=r"^predict got a recurrent state of shape \(3,\) \(float64\) for 1 "
                                           r"observation\(s\): this model's is \(1, 8\); pass back the state"):
        model.predict(np.zeros(3), state=np.zeros(3))
    with pytest.raises(NatgradError, match=r"^predict got a non-finite recurrent state \(nan in row 0\)"):
        model.predict(np.zeros(3), state=np.full((1, 8), np.nan))
    with pytest.raises(NatgradError, match=r"^predict got episode_start of shape \(3,\) \(bool\) for 2 "):
        model.predict(np.zeros((2, 3)), state=state, episode_start=np.ones(3, bool))


def test_predict_refuses_masks_that_do_not_fit_the_batch():
    model = spaces_only(spaces.Box(-1, 1, (3,)))
    with pytest.raises(NatgradError, match=r"^predict got action_masks of shape \(5,\) for 2 observation\(s\): pass "
                                           r"one mask of 4 entries per observation$"):
        model.predict(np.zeros((2, 3)), action_masks=np.ones(5, bool))


@pytest.mark.parametrize("space", [spaces.Box(-1, 1, (0,)),
                                   spaces.Dict({"x": spaces.Box(-1, 1, (2,)), "empty": spaces.Box(-1, 1, (3, 0))})])
def test_an_observation_space_without_values_is_refused_at_construction(space):
    where = "" if isinstance(space, spaces.Box) else " at empty"
    with pytest.raises(NatgradError, match=rf"^observation space Box\(.*\){where} holds no values: drop that entry"):
        spaces_only(space)


def test_a_model_trained_with_env_masks_warns_when_predict_gets_none(tmp_path):
    model = natgrad.PPO("natgrad-test/Masked-v0", n_steps=64, minibatches=2).learn(64)
    obs, legal = np.zeros(1, np.float32), np.array([False, True, False, True, True, False])
    message = r"this model was trained with legal-action masks from its env's action_masks\(\), but predict got no "
    with pytest.warns(UserWarning, match=message):
        model.predict(obs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert legal[model.predict(obs, action_masks=legal)]
    model.save(tmp_path / "m.pt")
    # the checkpoint remembers it: loaded onto an env of the same spaces without action_masks(), it still warns
    loaded = natgrad.load(tmp_path / "m.pt", env=space_envs.HiddenMaskTask)
    assert loaded.env_masks
    with pytest.warns(UserWarning, match=message):
        loaded.predict(obs)
    # a checkpoint written before the model recorded it loads, and takes it from the env
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["env_masks"]
    torch.save(payload, tmp_path / "old.pt")
    assert natgrad.load(tmp_path / "old.pt", env="natgrad-test/Masked-v0").env_masks
    assert not natgrad.load(tmp_path / "old.pt", env=space_envs.HiddenMaskTask).env_masks
    model.close(), loaded.close()


@pytest.mark.parametrize("cls", [natgrad.PPO, natgrad.PPOKL])
def test_ppo_with_a_recurrent_core_and_default_minibatches_trains(cls):
    """One env's whole n_steps is one sequence piece: the 32 default minibatches are capped at 1, saying so."""
    with pytest.warns(UserWarning, match=r"^minibatches=32 is more than the 1 sequence pieces \(n_envs\*n_steps/"
                                         r"seq_len\) of a batch: each epoch takes 1 minibatch\(es\) of one; set "
                                         r"minibatches <= 1, or raise n_envs, or set a seq_len dividing n_steps$"):
        model = cls("Pendulum-v1", recurrent="lstm", preset=False, n_steps=64, epochs=2, rnn_hidden=8)
    assert model.config.minibatches == 32 and model.config.minibatch_count == 1
    model.learn(64)
    assert model.num_timesteps == 64
    model.close()


def test_ppo_caps_more_minibatches_than_states_too():
    with pytest.warns(UserWarning, match=r"^minibatches=32 is more than the 16 states \(n_envs\*n_steps\) of a batch"):
        model = natgrad.PPO("CartPole-v1", preset=False, n_steps=16, epochs=1)
    model.learn(16)
    assert model.num_updates == 1
    model.close()
