"""Small tasks on every kind of space, each with a known optimum, for the learning and round-trip tests.

Each episode is a few steps; the best return and a random policy's return are stated per task.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class _Task(gym.Env):
    """``horizon`` steps per episode; subclasses draw a state (``_draw``), observe it and score the action."""

    horizon = 4

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self._draw()
        return self._observe(), {}

    def step(self, action):
        reward, ok = self._score(action)
        self.t += 1
        self._draw()
        return self._observe(), float(reward), not ok, self.t >= self.horizon, {}


class MultiDiscreteTask(_Task):
    """Two context bits c; action (a₀, a₁) ∈ {0,1,2}²; reward [a₀ = 2c₀] + [a₁ = c₁ + 1].
    Best return 8 (4 steps × 2), random 8/3."""

    observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
    action_space = spaces.MultiDiscrete([3, 3])

    def _draw(self):
        self.c = self.np_random.integers(0, 2, 2)

    def _observe(self):
        return self.c.astype(np.float32)

    def _score(self, action):
        return float(action[0] == 2 * self.c[0]) + float(action[1] == self.c[1] + 1), True


class MultiBinaryTask(_Task):
    """Three context bits c; action a ∈ {0,1}³; reward Σ_k [a_k ≠ c_k]. Best return 12, random 6."""

    observation_space = spaces.Box(0.0, 1.0, (3,), np.float32)
    action_space = spaces.MultiBinary(3)

    def _draw(self):
        self.c = self.np_random.integers(0, 2, 3)

    def _observe(self):
        return self.c.astype(np.float32)

    def _score(self, action):
        return float(np.sum(np.asarray(action) != self.c)), True


class HiddenMaskTask(_Task):
    """Six actions, three of them legal at each step, drawn at random and not shown; the legal action of lowest
    index pays 1, the other legal ones 0, an illegal one −1 and ends the episode. Without the mask the best fixed
    choice, action 0, is legal half the time."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(6)

    def _draw(self):
        self.legal = np.zeros(6, bool)
        self.legal[self.np_random.choice(6, 3, replace=False)] = True

    def _observe(self):
        return np.array([self.t / self.horizon], np.float32)

    def _score(self, action):
        if not self.legal[action]:
            return -1.0, False
        return float(action == np.flatnonzero(self.legal)[0]), True


class MaskedTask(HiddenMaskTask):
    """``HiddenMaskTask`` with the legal actions offered by ``action_masks()``: best return 4 (only reachable
    knowing the mask), a random masked policy's 4/3."""

    def action_masks(self) -> np.ndarray:
        return self.legal.copy()


class MaskedDictTask(MaskedTask):
    """``MaskedTask`` with the mask carried in a Dict observation's ``action_mask`` entry."""

    observation_space = spaces.Dict({"t": spaces.Box(0.0, 1.0, (1,), np.float32),
                                     "action_mask": spaces.MultiBinary(6)})

    def _observe(self):
        return {"t": super()._observe(), "action_mask": self.legal.astype(np.int8)}


class DictTask(_Task):
    """A Dict observation: a position (Box) and two flags (MultiBinary) as distractors, and a goal (Discrete(4),
    starting at 1); reward 1 when the action names the goal. Best return 4, random 1."""

    observation_space = spaces.Dict({
        "pos": spaces.Box(-1.0, 1.0, (2,), np.float32),
        "goal": spaces.Discrete(4, start=1),
        "flags": spaces.MultiBinary(2),
    })
    action_space = spaces.Discrete(4)

    def _draw(self):
        self.goal = int(self.np_random.integers(4))
        self.pos = self.np_random.uniform(-1, 1, 2).astype(np.float32)
        self.flags = self.np_random.integers(0, 2, 2).astype(np.int8)

    def _observe(self):
        return {"pos": self.pos, "goal": self.goal + 1, "flags": self.flags}

    def _score(self, action):
        return float(action == self.goal), True


class ImageTask(_Task):
    """A 6×6 grayscale uint8 image (H, W, 1) with one bright 2×2 square in one of four quadrants, the rest
    noise; reward 1 for naming the quadrant. Best return 4, random 1."""

    observation_space = spaces.Box(0, 255, (6, 6, 1), np.uint8)
    action_space = spaces.Discrete(4)

    def _draw(self):
        self.quadrant = int(self.np_random.integers(4))

    def _observe(self):
        img = self.np_random.integers(0, 60, (6, 6, 1)).astype(np.uint8)
        r, c = divmod(self.quadrant, 2)
        img[3 * r:3 * r + 2, 3 * c:3 * c + 2] = 255
        return img

    def _score(self, action):
        return float(action == self.quadrant), True


TASKS = {  # id: (class, best return, random return)
    "natgrad-test/MultiDiscrete-v0": (MultiDiscreteTask, 8.0, 8 / 3),
    "natgrad-test/MultiBinary-v0": (MultiBinaryTask, 12.0, 6.0),
    "natgrad-test/Masked-v0": (MaskedTask, 4.0, 4 / 3),
    "natgrad-test/MaskedDict-v0": (MaskedDictTask, 4.0, 4 / 3),
    "natgrad-test/Dict-v0": (DictTask, 4.0, 1.0),
    "natgrad-test/Image-v0": (ImageTask, 4.0, 1.0),
}


def make_image_task() -> gym.Env:
    """A zero-argument factory, for ``module:factory`` from the CLI."""
    return ImageTask()


def register() -> None:
    for env_id, (cls, _, _) in TASKS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=cls)
