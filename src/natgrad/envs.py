"""Vector environments with same-step autoreset, and the checks natgrad makes on them."""

from __future__ import annotations

import importlib
from functools import partial

import gymnasium as gym
from gymnasium.vector import AutoresetMode, VectorEnv

from natgrad.errors import NatgradError, one_line
from natgrad.policy import Actor, obs_dim
from natgrad.serial_env import SerialVectorEnv

VECTORIZATION = ("sync", "async")


def make_vec_env(env_id: str, n_envs: int = 1, vectorization: str = "sync") -> VectorEnv:
    """``n_envs`` copies of ``env_id`` that reset themselves in the step where an episode ends.

    Same-step autoreset puts the real last observation of an ended episode in
    ``info["final_obs"]``, which the collector needs to bootstrap truncated episodes.
    "sync" steps the envs in this process (natgrad's lean ``SerialVectorEnv``), "async" in one
    process each (Gymnasium's ``AsyncVectorEnv`` with shared memory).
    """
    if n_envs < 1:
        raise NatgradError(f"n_envs must be >= 1, got {n_envs}")
    if vectorization not in VECTORIZATION:
        raise NatgradError(f"unknown vectorization {vectorization!r}: use one of {VECTORIZATION}")
    spec = check_env_id(env_id)
    try:
        if vectorization == "sync":
            env = SerialVectorEnv([partial(gym.make, spec)] * n_envs)
        else:
            env = gym.make_vec(spec, num_envs=n_envs, vectorization_mode="async",
                               vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP, "shared_memory": True})
    except gym.error.DependencyNotInstalled as e:
        raise NatgradError(f"{env_id} needs an extra package: {one_line(e)}") from None
    check_spaces(env.single_observation_space, env.single_action_space)
    return env


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
