"""Envs for the Ray tests, importable in Ray's workers as ``ray_envs:<id>`` (the tests put this folder on their path).

``KillOnceCartPole-v0`` SIGKILLs the process it runs in at its ``KILL_AT``-th step, once: only the
process that manages to delete the marker file named by ``$NATGRAD_TEST_KILL_MARKER`` dies, so the
restarted worker (and every other) carries on. ``SlowCartPole-v0`` waits ``SLOW_STEP`` seconds per
step without using the CPU and logs when each process stepped, so parallel collection shows even on a busy machine.
"""

from __future__ import annotations

import os
import signal
import time

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

KILL_MARKER = "NATGRAD_TEST_KILL_MARKER"
KILL_AT = 50
SLOW_STEP = 0.002
STEP_LOG = "NATGRAD_TEST_STEP_LOG"  # SlowCartPole appends "pid time" per step to this file, when set


class KillOnceCartPole(CartPoleEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == KILL_AT and _claim(os.environ.get(KILL_MARKER)):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().step(action)


class SlowCartPole(CartPoleEnv):
    def step(self, action):
        time.sleep(SLOW_STEP)
        log = os.environ.get(STEP_LOG)
        if log:
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {time.time()}\n")
        return super().step(action)


def _claim(marker: str | None) -> bool:
    try:
        os.remove(marker)
        return True
    except (TypeError, FileNotFoundError):
        return False


gym.register("KillOnceCartPole-v0", entry_point=KillOnceCartPole, max_episode_steps=500)
gym.register("SlowCartPole-v0", entry_point=SlowCartPole, max_episode_steps=500)
