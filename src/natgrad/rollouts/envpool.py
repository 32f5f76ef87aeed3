"""EnvPool's envs (C++ threads stepping a batch: Atari, MuJoCo, classic control, ...) by the ids
``envpool/<EnvPool task id>``.

EnvPool resets an ended env in the step after its end (Gymnasium's next-step autoreset); ``EnvPoolVectorEnv``
resets the ended envs at once instead (EnvPool's reset of chosen envs), for natgrad's same-step autoreset: their
real last observations in ``info["final_obs"]`` (``info["_final_obs"]`` the ended envs). EnvPool fixes its seed
when the pool is made, so ``reset(seed=...)`` makes the pool again with the seed. ``env_kwargs`` go to
``envpool.make_gymnasium`` (``num_threads``, ``max_episode_steps``, ...). ``EnvPoolEnv`` is a pool of one env,
without autoreset (evaluation episodes).
"""

from __future__ import annotations

from typing import Any

import envpool
import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv

from natgrad.errors import NatgradError

NAMESPACE = "envpool"


def register() -> None:
    """Register ``envpool/<task id>`` for every EnvPool task outside a namespace of its own (single env and vector
    entry points); a task such as ``Jumanji/Maze-v0`` is reached as ``EnvPoolVectorEnv("Jumanji/Maze-v0", n)``."""
    for task in envpool.list_all_envs():
        env_id = f"{NAMESPACE}/{task}"
        if "/" in task:
            continue
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=EnvPoolEnv, vector_entry_point=EnvPoolVectorEnv, kwargs={"task": task})


class _Pool:
    """An EnvPool pool of ``num_envs`` envs, made (again) when a reset brings a seed."""

    def __init__(self, task: str, num_envs: int, env_kwargs: dict[str, Any]) -> None:
        if "seed" in env_kwargs:
            raise NatgradError("EnvPool's seed comes from natgrad's (reset(seed=...)): leave seed out of env_kwargs")
        self.task, self.num_envs, self.env_kwargs = task, num_envs, env_kwargs
        spec = envpool.make_spec(task, num_envs=num_envs, **env_kwargs)
        self.observation_space, self.action_space = spec.gymnasium_observation_space, spec.gymnasium_action_space
        self.env: Any = None

    def reset(self, seed: int | None) -> Any:
        """All envs' first observations, the pool made again with ``seed`` if given (a random one if none yet)."""
        if self.env is None or seed is not None:
            self.close()
            seed = int(np.random.default_rng().integers(2**31)) if seed is None else seed
            self.env = envpool.make_gymnasium(self.task, num_envs=self.num_envs, seed=seed, **self.env_kwargs)
        return self.env.reset()[0]

    def close(self) -> None:
        """The pool's threads stopped."""
        if self.env is not None:
            self.env.close()
            self.env = None


def _task(task: str) -> str:
    if task not in envpool.list_all_envs():
        raise NatgradError(f"EnvPool has no task {task!r}: the ids are envpool/<one of envpool.list_all_envs()>")
    return task


class EnvPoolVectorEnv(VectorEnv):
    """An EnvPool pool of ``num_envs`` envs with same-step autoreset; NumPy in and out."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(self, task: str, num_envs: int = 1, **env_kwargs: Any) -> None:
        self.pool = _Pool(_task(task), num_envs, env_kwargs)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = self.pool.observation_space, self.pool.action_space
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """All envs reset; ``seed`` seeds env i with ``seed + i`` (EnvPool's rule)."""
        return self.pool.reset(seed), {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """All envs step once; the ended ones reset in the same step (``info["final_obs"]``)."""
        if self.pool.env is None:
            raise NatgradError("reset the EnvPool vector env before stepping it")
        obs, reward, terminated, truncated, _ = self.pool.env.step(np.asarray(actions))
        ended = np.flatnonzero(terminated | truncated)
        if not len(ended):
            return obs, reward, terminated, truncated, {}
        final = np.full(self.num_envs, None, object)
        for i in ended:
            final[i] = _row(obs, i)
        first, info = self.pool.env.reset(ended.astype(np.int32))
        _put(obs, info["env_id"], first)
        return obs, reward, terminated, truncated, {"final_obs": final, "_final_obs": terminated | truncated}

    def close_extras(self, **kwargs: Any) -> None:
        """The pool's threads stopped."""
        self.pool.close()


class EnvPoolEnv(gym.Env):
    """One EnvPool env, without autoreset: ``gymnasium.make("envpool/CartPole-v1")``."""

    metadata = {"render_modes": []}

    def __init__(self, task: str, **env_kwargs: Any) -> None:
        self.pool = _Pool(_task(task), 1, env_kwargs)
        self.observation_space, self.action_space = self.pool.observation_space, self.pool.action_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """A new episode (the pool made again for a ``seed``)."""
        super().reset(seed=seed)
        return _row(self.pool.reset(seed), 0), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """One step; after the episode ends, reset before stepping again."""
        obs, reward, terminated, truncated, _ = self.pool.env.step(np.asarray(action)[None])
        return _row(obs, 0), float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def close(self) -> None:
        """The pool's threads stopped."""
        self.pool.close()


def _row(obs: Any, i: int) -> Any:
    """Env ``i``'s observation, copied out of a batch (an array, or a dict of them)."""
    if isinstance(obs, dict):
        return {k: _row(v, i) for k, v in obs.items()}
    return obs[i].copy()


def _put(obs: Any, ids: np.ndarray, rows: Any) -> None:
    """The batch ``obs`` with the envs ``ids``' observations replaced by ``rows`` (in that order)."""
    if isinstance(obs, dict):
        for k in obs:
            _put(obs[k], ids, rows[k])
    else:
        obs[ids] = rows
