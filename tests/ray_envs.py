"""An env for the Ray tests that kills its own worker process, importable there as ``ray_envs:KillOnceCartPole-v0``.

The Ray tests put this folder on the workers' PYTHONPATH. The env SIGKILLs the process it runs in
at its ``KILL_AT``-th step, once: only the process that manages to delete the marker file named by
``$NATGRAD_TEST_KILL_MARKER`` dies, so the restarted worker (and every other) carries on.
"""

from __future__ import annotations

import os
import signal

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

KILL_MARKER = "NATGRAD_TEST_KILL_MARKER"
KILL_AT = 50


class KillOnceCartPole(CartPoleEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == KILL_AT and _claim(os.environ.get(KILL_MARKER)):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(action)


def _claim(marker: str | None) -> bool:
    try:
        os.remove(marker)
        return True
    except (TypeError, FileNotFoundError):
        return False


gym.register("KillOnceCartPole-v0", entry_point=KillOnceCartPole, max_episode_steps=500)
