"""Vector environments with same-step autoreset, and the checks natgrad makes on them."""

from __future__ import annotations

import importlib
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.vector import AutoresetMode, VectorEnv

from natgrad.errors import NatgradError, one_line
from natgrad.policy import Actor, obs_dim

VECTORIZATION = ("sync", "async")


def make_vec_env(env_id: str, n_envs: int = 1, vectorization: str = "sync",
                 env_kwargs: dict[str, Any] | None = None) -> VectorEnv:
    """``n_envs`` copies of ``env_id`` (made with ``env_kwargs``) that reset themselves in the step
    where an episode ends.

    Same-step autoreset puts the real last observation of an ended episode in
    ``info["final_obs"]``, which the collector needs to bootstrap truncated episodes; that (with its
    mask ``_final_obs`` and an empty ``final_info``) is all the info there is: each env is wrapped in
    ``EmptyInfo``.
    """
    if n_envs < 1:
        raise NatgradError(f"n_envs must be >= 1, got {n_envs}")
    if vectorization not in VECTORIZATION:
        raise NatgradError(f"unknown vectorization {vectorization!r}: use one of {VECTORIZATION}")
    spec = check_env_id(env_id)
    kwargs = {"autoreset_mode": AutoresetMode.SAME_STEP}
    if vectorization == "async":
        kwargs["shared_memory"] = True
    try:
        env = gym.make_vec(spec, num_envs=n_envs, vectorization_mode=vectorization, vector_kwargs=kwargs,
                           wrappers=[EmptyInfo], **(env_kwargs or {}))
    except gym.error.DependencyNotInstalled as e:
        raise NatgradError(f"{env_id} needs an extra package: {one_line(e)}") from None
    except TypeError as e:
        if not env_kwargs:
            raise
        raise NatgradError(f"{env_id} does not take env_kwargs={env_kwargs} ({one_line(e)}): "
                           "pass only keywords its constructor accepts") from None
    check_spaces(env.single_observation_space, env.single_action_space)
    return env


class EmptyInfo(gym.Wrapper):
    """The env with an empty ``info`` from ``step`` and ``reset``.

    The collector reads no per-env info, and a vector env merges every key of every sub-env's info
    into arrays at every step: on Hopper-v5 that merge costs ~6 µs a step (the step itself ~70 µs).
    """

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, _ = self.env.step(action)
        return obs, reward, terminated, truncated, {}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, _ = self.env.reset(**kwargs)
        return obs, {}


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """One ``env_id`` env made with ``env_kwargs``, as the evaluation episodes run on."""
    return gym.make(check_env_id(env_id), **(env_kwargs or {}))


def check_env_id(env_id: str) -> gym.envs.registration.EnvSpec:
    """The registered spec of ``env_id``; an unknown id is refused with how to list the known ones.

    ``"module:EnvId"`` imports ``module`` first (which registers ``EnvId``), in every process that
    makes the env: the way to bring a custom env to Ray workers.
    """
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise NatgradError(f"cannot import {module!r} for environment {env_id!r} ({one_line(e)}): "
                               "make the module importable (installed, or on PYTHONPATH) where the env runs") from None
    try:
        return gym.spec(name)
    except gym.error.Error as e:
        raise NatgradError(
            f"unknown environment id {env_id!r} ({one_line(e)}); list the registered ids with "
            "`python -c 'import gymnasium; gymnasium.pprint_registry()'`"
        ) from None


def check_spaces(observation_space: gym.Space, action_space: gym.Space) -> None:
    """Raise a one-line NatgradError unless natgrad supports these spaces."""
    obs_dim(observation_space)
    Actor(observation_space, action_space, hidden=(1,))
