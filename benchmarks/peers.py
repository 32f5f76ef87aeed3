"""The peer libraries' side of the comparisons: their names, and their runs scored as ``natgrad bench`` scores
natgrad's.

The functions here run in the peers' virtual environment (Stable-Baselines3, sb3-contrib; no natgrad): this
module imports only the standard library at the top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

EVAL_SEED = 10_000  # natgrad.runs.evaluation.EVAL_SEED: the same evaluation episodes as natgrad's
# the peer of each of natgrad's algorithms, by the name its results go under
PEERS = {"trpo": "sb3-contrib", "ppo": "sb3"}


def final_train(returns: Sequence[float]) -> float:
    """The mean raw return of the last 10% of the training episodes (at least one), as natgrad's reports take it."""
    tail = returns[-max(1, math.ceil(0.1 * len(returns))):]
    return float(sum(tail) / len(tail)) if len(tail) else math.nan


def training_returns(vec_env: Any) -> list[float]:
    """The raw return of every training episode of an SB3 vector env, in the order the episodes ended (from the
    ``Monitor`` inside each of its envs)."""
    from stable_baselines3.common.env_util import unwrap_wrapper
    from stable_baselines3.common.monitor import Monitor

    monitors = [unwrap_wrapper(e, Monitor) for e in vec_env.envs]
    ended = sorted((t, r) for m in monitors for t, r in zip(m.get_episode_times(), m.get_episode_rewards()))
    return [r for _, r in ended]


def evaluate(model: Any, env: Any, episodes: int, seen: Callable[[Any], Any] = lambda obs: obs) -> list[float]:
    """Raw returns of an SB3 model's deterministic policy (recurrent or not) on ``episodes`` fresh episodes of
    ``env``, seeds EVAL_SEED, EVAL_SEED + 1, ...; ``seen`` maps a batch of one observation to what the model takes
    (a ``VecNormalize``'s ``normalize_obs``: the training statistics, frozen)."""
    import numpy as np

    returns = []
    for i in range(episodes):
        obs, _ = env.reset(seed=EVAL_SEED + i)
        state, start, total, done = None, np.ones(1, bool), 0.0, False
        while not done:
            action, state = model.predict(seen(obs[None]), state=state, episode_start=start, deterministic=True)
            action = action[0]
            obs, reward, terminated, truncated, _ = env.step(action.item() if action.ndim == 0 else action)
            total, done, start = total + float(reward), terminated or truncated, np.zeros(1, bool)
        returns.append(total)
    env.close()
    return returns
