"""gymnax envs (JAX: classic control, MinAtar, bsuite) as Gymnasium envs, by the ids ``gymnax/<gymnax id>``.

``GymnaxVectorEnv`` steps N envs as one jitted, vmapped JAX call with same-step autoreset: the ended envs' real
last observations in ``info["final_obs"]`` (rows of a batch array, ``info["_final_obs"]`` the ended envs).
gymnax ends an episode with one ``done``; here it is split as Gymnasium does: ``terminated`` when the env's own
end condition holds (the same transition with no time limit ends too), ``truncated`` when only the time limit
(``max_steps_in_episode``) ended it. ``GymnaxEnv`` is one such env, without autoreset (evaluation episodes).
``env_kwargs`` that name a field of the env's params (``max_steps_in_episode``, ...) set it; the others go to the
env's constructor. The MinAtar games' 0/1 grids are ``bool`` images, as in the ``minatar`` package.

``env_kwargs={"tensors": True}`` makes the vector env hand out torch tensors instead of NumPy arrays: JAX's
outputs through DLPack (zero-copy where JAX and torch share the device: the CPU, or a GPU with a CUDA build of
JAX), so the collector steps it in torch; actions come in as tensors the same way. ``final_obs`` is then given at
every step (``_final_obs`` flags the envs that ended), so no step waits for the device to say whether one did.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnax.environments.spaces import gymnax_space_to_gym_space

from natgrad.errors import NatgradError

NAMESPACE = "gymnax"
_NO_LIMIT = np.iinfo(np.int32).max


def register() -> None:
    """Register ``gymnax/<id>`` for every gymnax env (single env and vector entry points)."""
    for name in gymnax.registered_envs:
        env_id = f"{NAMESPACE}/{name}"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=GymnaxEnv, vector_entry_point=GymnaxVectorEnv, kwargs={"name": name})


class _Transitions:
    """One gymnax env's reset and step, as the jitted functions of one env (``step``, ``reset``) and of a batch of
    them (``batch_step`` with autoreset, ``batch_reset``); keys are split inside, so one key drives a whole step."""

    def __init__(self, name: str, env_kwargs: dict[str, Any]) -> None:
        fields = {f.name for f in dataclasses.fields(_make(name, {})[1])}
        self.env, params = _make(name, {k: v for k, v in env_kwargs.items() if k not in fields})
        self.params = params.replace(**{k: v for k, v in env_kwargs.items() if k in fields})
        self.unlimited = self.params.replace(max_steps_in_episode=_NO_LIMIT)
        self.observation_space = gymnax_space_to_gym_space(self.env.observation_space(self.params))
        if name.endswith("-MinAtar"):
            self.observation_space = gym.spaces.Box(0, 1, self.observation_space.shape, bool)
        self.action_space = gymnax_space_to_gym_space(self.env.action_space(self.params))
        self.step = jax.jit(self._transition)
        self.reset = jax.jit(self._reset)
        self.batch_step = jax.jit(self._batch_step)
        self.batch_reset = jax.jit(self._batch_reset, static_argnums=1)

    def _reset(self, key: jax.Array) -> tuple[jax.Array, Any]:
        obs, state = self.env.reset_env(key, self.params)
        return obs.astype(self.observation_space.dtype), state

    def _transition(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[jax.Array, ...]:
        """(obs, state, reward, terminated, truncated): terminated if the step ends the episode without the time
        limit too (XLA computes the shared part once), truncated if it ends only with it."""
        obs, state_next, reward, done, _ = self.env.step_env(key, state, action, self.params)
        natural = self.env.step_env(key, state, action, self.unlimited)[3]
        done = done | (state_next.time >= self.params.max_steps_in_episode)
        obs = obs.astype(self.observation_space.dtype)
        return obs, state_next, reward.astype(jnp.float32), natural, done & ~natural

    def _autoreset_step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[jax.Array, ...]:
        """One env's step, reset in the same step when it ends; the observation before the reset comes last."""
        key_step, key_reset = jax.random.split(key)
        obs, state_next, reward, terminated, truncated = self._transition(key_step, state, action)
        obs_reset, state_reset = self._reset(key_reset)
        done = terminated | truncated
        state_next = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), state_reset, state_next)
        return jax.lax.select(done, obs_reset, obs), state_next, reward, terminated, truncated, obs

    def _batch_step(self, key: jax.Array, state: Any, action: jax.Array) -> tuple[jax.Array, ...]:
        key, sub = jax.random.split(key)
        keys = jax.random.split(sub, action.shape[0])
        return key, *jax.vmap(self._autoreset_step)(keys, state, action)

    def _batch_reset(self, key: jax.Array, n: int) -> tuple[jax.Array, ...]:
        key, sub = jax.random.split(key)
        return key, *jax.vmap(self._reset)(jax.random.split(sub, n))


def _make(name: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    try:
        return gymnax.make(name, **kwargs)
    except ValueError as e:
        raise NatgradError(f"gymnax has no env {name!r} ({e}): the ids are gymnax/<one of "
                           f"gymnax.registered_envs>") from None


class GymnaxVectorEnv(VectorEnv):
    """``num_envs`` copies of a gymnax env stepped as one batch, with same-step autoreset; NumPy in and out, or
    torch tensors with ``tensors=True``."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, name: str, num_envs: int = 1, tensors: bool = False, **env_kwargs: Any) -> None:
        if not isinstance(tensors, bool):
            raise NatgradError(f"the gymnax env option tensors must be True or False, got {tensors!r}")
        self.fns = _Transitions(name, env_kwargs)
        self.tensors = tensors
        self._out = _to_torch if tensors else np.asarray
        self.num_envs = num_envs
        self.single_observation_space = self.fns.observation_space
        self.single_action_space = self.fns.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self._key = jax.random.PRNGKey(np.random.default_rng().integers(2**31))
        self._state = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """All envs reset; ``seed`` seeds the whole batch's JAX key."""
        if seed is not None:
            self._key = jax.random.PRNGKey(seed)
        self._key, obs, self._state = self.fns.batch_reset(self._key, self.num_envs)
        return self._out(obs), {}

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """All envs step once; the ended ones reset in the same step (``info["final_obs"]``)."""
        if self._state is None:
            raise NatgradError("reset the gymnax vector env before stepping it")
        actions = jax.dlpack.from_dlpack(actions.contiguous()) if isinstance(actions, torch.Tensor) else actions
        self._key, obs, self._state, reward, terminated, truncated, final = self.fns.batch_step(
            self._key, self._state, jnp.asarray(actions))
        terminated, truncated = self._out(terminated), self._out(truncated)
        ended = terminated | truncated
        info = {"final_obs": self._out(final), "_final_obs": ended} if self.tensors or ended.any() else {}
        return self._out(obs), self._out(reward), terminated, truncated, info


def _to_torch(x: jax.Array) -> torch.Tensor:
    """A JAX array as a torch tensor through DLPack, on the same device (zero-copy where the backends share it)."""
    return torch.from_dlpack(x)


class GymnaxEnv(gym.Env):
    """One gymnax env, without autoreset: ``gymnasium.make("gymnax/CartPole-v1")``. NumPy in and out: ``tensors``
    is the vector env's option, taken here too so the same ``env_kwargs`` make both (evaluation steps this one)."""

    metadata = {"render_modes": []}

    def __init__(self, name: str, tensors: bool = False, **env_kwargs: Any) -> None:
        self.fns = _Transitions(name, env_kwargs)
        self.observation_space, self.action_space = self.fns.observation_space, self.fns.action_space
        self._key = self._state = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """A new episode; the JAX key comes from the env's ``np_random`` (seeded by ``seed``)."""
        super().reset(seed=seed)
        self._key = jax.random.PRNGKey(self.np_random.integers(2**31))
        obs, self._state = self.fns.reset(self._key)
        return np.asarray(obs), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One step; after the episode ends, reset before stepping again."""
        self._key, key = jax.random.split(self._key)
        obs, self._state, reward, terminated, truncated = self.fns.step(key, self._state, jnp.asarray(action))
        return np.asarray(obs), float(reward), bool(terminated), bool(truncated), {}
