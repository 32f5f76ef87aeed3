"""A user's own envs: hand-written wrappers train, broken envs are refused with the env checker's message, spaces
natgrad does not support are named before the checker runs, natgrad's ids exist once natgrad is imported, and an
env that cannot render gets advice that fits it."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import natgrad
from natgrad import NatgradError
from natgrad.tools.video import record_video

# Hand-written wrappers, none built on gymnasium.utils.RecordConstructorArgs, as a user's module holds them
USER_MODULE = textwrap.dedent('''
    import gymnasium as gym
    import numpy as np

    class NoVelocity(gym.ObservationWrapper):  # drops CartPole's two velocities
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = gym.spaces.Box(env.observation_space.low[[0, 2]],
                                                    env.observation_space.high[[0, 2]], dtype=np.float32)

        def observation(self, obs):
            return obs[[0, 2]].astype(np.float32)

    class SwapActions(gym.ActionWrapper):
        def action(self, action):
            return 1 - action

    class ScaleReward(gym.RewardWrapper):
        def reward(self, reward):
            return 0.1 * reward

    class CountSteps(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.steps = 0

        def step(self, action):
            self.steps += 1
            return self.env.step(action)

    class Float64Obs(gym.ObservationWrapper):  # broken: float64 observations in a float32 Box
        def observation(self, obs):
            return obs.astype(np.float64)

    class WrongShapeObs(gym.ObservationWrapper):  # broken: observations of 5 entries in a Box of 4
        def observation(self, obs):
            return np.append(obs, np.float32(0))

    class NoSeedReset(gym.Wrapper):  # broken: reset takes no seed
        def reset(self):
            return self.env.reset()

    def observation():
        return NoVelocity(gym.make("CartPole-v1"))

    def action():
        return SwapActions(gym.make("CartPole-v1"))

    def reward():
        return ScaleReward(gym.make("CartPole-v1"))

    def plain():
        return CountSteps(gym.make("CartPole-v1"))

    def float64_obs():
        return Float64Obs(gym.make("CartPole-v1"))

    def wrong_shape_obs():
        return WrongShapeObs(gym.make("CartPole-v1"))

    def no_seed_reset():
        return NoSeedReset(gym.make("CartPole-v1"))
''')
WRAPPERS = ["observation", "action", "reward", "plain"]
FORMS = ["instance", "factory", "module:factory"]


@pytest.fixture
def user_envs(tmp_path, monkeypatch):
    """The user's module, written into tmp_path and importable as ``user_envs``."""
    (tmp_path / "user_envs.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_envs", raising=False)
    return importlib.import_module("user_envs")


def env_as(user_envs, name: str, form: str):
    """The env ``user_envs.<name>()`` makes, given the way ``form`` says."""
    factory = getattr(user_envs, name)
    return {"instance": factory, "factory": lambda: factory, "module:factory": lambda: f"user_envs:{name}"}[form]()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_a_hand_written_wrapper_trains(user_envs, wrapper, form):
    model = natgrad.TRPO(env_as(user_envs, wrapper, form), n_envs=1, n_steps=64)
    model.learn(64)
    model.close()


def test_the_recurrent_policy_of_a_wrapped_factory_trains(user_envs):
    model = natgrad.TRPO(lambda: user_envs.NoVelocity(gym.make("CartPole-v1")), recurrent="lstm", n_envs=1,
                         n_steps=64)
    assert model.observation_space.shape == (2,)
    model.learn(64)
    model.close()


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("broken, message", [
    ("float64_obs", "The first element returned by `env.reset()` is not within the observation space."),
    ("wrong_shape_obs", "The first element returned by `env.reset()` is not within the observation space."),
    ("no_seed_reset", "The `reset` method does not provide a `seed` or `**kwargs` keyword argument."),
])
def test_a_broken_env_is_refused_with_the_checkers_message(user_envs, broken, message, form):
    with pytest.raises(NatgradError) as error:
        natgrad.TRPO(env_as(user_envs, broken, form), n_envs=1, n_steps=64)
    assert str(error.value) == f"the env fails Gymnasium's env checker: {message}"


class UnseededSampleEnv(gym.Env):
    """A Dict observation with an entry natgrad does not support, drawn by the space's own unseeded sampler, which
    makes the env checker's determinism check fail."""

    action_space = spaces.Discrete(2)

    def __init__(self, extra: spaces.Space) -> None:
        self.observation_space = spaces.Dict({"x": spaces.Box(-1.0, 1.0, (2,), np.float32), "extra": extra})

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.mark.parametrize("form", ["instance", "factory"])
@pytest.mark.parametrize("extra, kind", [
    (spaces.Text(10), "Text"),
    (spaces.Sequence(spaces.Discrete(3)), "Sequence"),
    (spaces.Graph(spaces.Box(0.0, 1.0, (2,)), spaces.Discrete(2)), "Graph"),
])
def test_an_unsupported_space_is_named_before_the_env_checker_runs(extra, kind, form):
    env = UnseededSampleEnv(extra) if form == "instance" else (lambda: UnseededSampleEnv(extra))
    with pytest.raises(NatgradError, match=f"^unsupported observation space {kind} at extra.*natgrad supports"):
        natgrad.TRPO(env, n_envs=1, n_steps=64)


def test_natgrads_env_ids_are_registered_on_import():
    code = "import gymnasium, natgrad; print(gymnasium.make('natgrad/CartPoleNoVel-v1').observation_space.shape)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2,)"


def test_an_env_that_cannot_render_gets_no_mujoco_advice(tmp_path):
    model = natgrad.TRPO("natgrad-test/Dict-v0", n_envs=1, n_steps=8)
    with pytest.raises(NatgradError) as error:
        record_video(model, tmp_path)
    assert str(error.value) == ("natgrad-test/Dict-v0 cannot render a frame (NotImplementedError: no message); "
                                "record an env that supports render_mode='rgb_array'")
    model.close()


def test_a_mujoco_env_that_cannot_render_gets_the_mujoco_gl_advice(tmp_path, monkeypatch):
    model = natgrad.PPO("InvertedPendulum-v5", n_envs=1, n_steps=64)
    env = gym.make("InvertedPendulum-v5", render_mode="rgb_array")

    def no_opengl():
        raise RuntimeError("no OpenGL context")

    monkeypatch.setattr(env.unwrapped, "render", no_opengl)
    with pytest.raises(NatgradError, match=r"^InvertedPendulum-v5 cannot render a frame \(RuntimeError: no OpenGL "
                                           r"context\); MuJoCo renders offscreen with MUJOCO_GL=egl"):
        record_video(model, tmp_path, env=env)
    model.close()
