"""Evaluating a trained model on fresh episodes, with raw (unnormalized) returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm


def evaluate(model: Algorithm, episodes: int = 10, seed: int = 10_000, deterministic: bool = True) -> list[float]:
    """Returns of ``episodes`` full episodes of ``model.env_id`` (one env, seeds seed, seed+1, …)."""
    env = gym.make(model.env_id)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def summary(returns: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "episodes": len(returns)}
