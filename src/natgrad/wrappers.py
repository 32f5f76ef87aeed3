"""Env wrappers and factories natgrad ships, and the envs it registers under the ``natgrad/`` namespace.

- ``MaskVelocity``: classic control without its velocities, a partially observed task that needs memory
  (``natgrad/CartPoleNoVel-v1``, ``natgrad/PendulumNoVel-v1``).
- ``atari(env_id)``: an ALE game with Gymnasium's AtariPreprocessing (84×84 grayscale, 4 skipped frames,
  no-op starts) and the last 4 frames stacked, (4, 84, 84) uint8.
- ``minigrid(env_id)``: a MiniGrid env without its text ``mission`` entry: Dict(image, direction).

From the command line a factory takes its arguments through ``env_kwargs``:
``natgrad train --env natgrad.wrappers:atari --set 'env_kwargs={"env_id": "ALE/Pong-v5"}'``. Their ``env_id`` is a
registered id, never ``module:EnvId`` (they import nothing it names), so ``natgrad.load`` makes them again for a
model file that names them, whatever its ``env_kwargs``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from natgrad.errors import NatgradError

# observation entries that are positions, not velocities, per env
POSITIONS: dict[str, tuple[int, ...]] = {
    "CartPole-v1": (0, 2),  # cart position, pole angle (not the cart's velocity, the pole's angular velocity)
    "Pendulum-v1": (0, 1),  # cos θ, sin θ (not θ')
}


class MaskVelocity(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """The env with only the observation entries ``keep`` (by default its positions, ``POSITIONS``)."""

    def __init__(self, env: gym.Env, keep: Sequence[int] | None = None) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, keep=keep)
        gym.ObservationWrapper.__init__(self, env)
        if keep is None:
            env_id = env.spec.id if env.spec is not None else None
            if env_id not in POSITIONS:
                raise NatgradError(f"MaskVelocity knows the positions of {sorted(POSITIONS)}, not {env_id}: "
                                   "pass keep=[indices of the entries to keep]")
            keep = POSITIONS[env_id]
        self.keep = np.asarray(keep, np.int64)
        box = env.observation_space
        self.observation_space = spaces.Box(box.low[self.keep], box.high[self.keep], dtype=box.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        """The kept entries."""
        return observation[self.keep]


def no_velocity(env_id: str, **kwargs: Any) -> gym.Env:
    """``env_id`` (one of ``POSITIONS``) made with ``kwargs``, its velocities masked."""
    from natgrad.rollouts.envs import check_env_id

    spec = check_env_id(env_id, imports=False)
    if env_id not in POSITIONS:  # refused before anything is made (a natgrad/ id would make itself again)
        raise NatgradError(f"no_velocity masks the velocities of {sorted(POSITIONS)}, not {env_id!r}: pass one of them")
    return MaskVelocity(gym.make(spec, **kwargs))


def atari(env_id: str = "ALE/Pong-v5", frame_stack: int = 4, **kwargs: Any) -> gym.Env:
    """An ALE game as the Atari benchmarks play it: frames skipped by AtariPreprocessing (so the env's own
    frameskip is 1), 84×84 grayscale, no-op starts, the last ``frame_stack`` frames stacked."""
    from natgrad.rollouts.envs import check_env_id

    spec = check_env_id(env_id, imports=False)  # registers the ALE envs on first use
    env = gym.make(spec, frameskip=1, **kwargs)
    env = gym.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, grayscale_obs=True, noop_max=30)
    return gym.wrappers.FrameStackObservation(env, frame_stack)


def minigrid(env_id: str = "MiniGrid-DoorKey-5x5-v0", **kwargs: Any) -> gym.Env:
    """A MiniGrid env (a registered id) observing its image and direction, without the text mission."""
    from natgrad.rollouts.envs import check_env_id

    try:
        import minigrid as _  # noqa: F401  (registers the MiniGrid envs)
    except ImportError:
        raise NatgradError(f"{env_id} needs the minigrid package: pip install 'natgrad[minigrid]'") from None
    return gym.wrappers.FilterObservation(gym.make(check_env_id(env_id, imports=False), **kwargs),
                                          ["image", "direction"])


def register() -> None:
    """The ``natgrad/`` envs: classic control without velocities."""
    for name, env_id in [("CartPoleNoVel-v1", "CartPole-v1"), ("PendulumNoVel-v1", "Pendulum-v1")]:
        if f"natgrad/{name}" not in gym.registry:
            spec = gym.spec(env_id)
            gym.register(f"natgrad/{name}", entry_point=no_velocity, kwargs={"env_id": env_id},
                         max_episode_steps=None, reward_threshold=spec.reward_threshold)
