"""Shared fixtures: small custom environments registered for the tests."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import space_envs
import torch
from gymnasium import spaces


class NaNObsEnv(gym.Env):
    """A Box env whose third observation is NaN."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.full(2, np.nan if self.t == 3 else 0.0, np.float32)
        return obs, 1.0, False, False, {}


class BadRewardEnv(NaNObsEnv):
    """Finite observations; the reward of the third step is ``bad`` (NaN or inf)."""

    def __init__(self, bad: float = float("nan")):
        self.bad = bad

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), self.bad if self.t == 3 else 1.0, False, self.t >= 10, {}


class TextObsEnv(NaNObsEnv):
    observation_space = spaces.Dict({"x": spaces.Box(-1.0, 1.0, (2,), np.float32), "mission": spaces.Text(10)})


class MatrixActionEnv(NaNObsEnv):
    action_space = spaces.Box(-1.0, 1.0, (2, 2), np.float32)


class CounterEnv(gym.Env):
    """Observation = [time step]; reward 1 per step; terminates at step ``terminate_at``.

    Registered with a TimeLimit shorter or longer than ``terminate_at`` so that the same
    env ends by truncation or by termination.
    """

    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, terminate_at: int = 1000):
        self.terminate_at = terminate_at

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([float(self.t)], np.float32), 1.0, self.t >= self.terminate_at, False, {}


space_envs.register()
torch.set_num_threads(1)  # small networks: one thread is fastest and immune to oversubscription

gym.register("natgrad-test/NaNObs-v0", entry_point=NaNObsEnv)
gym.register("natgrad-test/NaNReward-v0", entry_point=BadRewardEnv)
gym.register("natgrad-test/InfReward-v0", entry_point=BadRewardEnv, kwargs={"bad": float("inf")})
gym.register("natgrad-test/TextObs-v0", entry_point=TextObsEnv)
gym.register("natgrad-test/MatrixAction-v0", entry_point=MatrixActionEnv)
gym.register("natgrad-test/Truncated-v0", entry_point=CounterEnv, max_episode_steps=5,
             kwargs={"terminate_at": 1000})
gym.register("natgrad-test/Terminated-v0", entry_point=CounterEnv, max_episode_steps=1000,
             kwargs={"terminate_at": 5})


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)
