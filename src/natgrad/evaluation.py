"""Evaluating a trained model on fresh episodes, with raw (unnormalized) returns."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from natgrad.envs import make_env
from natgrad.inference import NumpyActor

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm

EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, … unseen in training


def evaluate(model: Algorithm, episodes: int = 10, seed: int = EVAL_SEED, deterministic: bool = True) -> list[float]:
    """Returns of ``episodes`` full episodes of ``model.env_id`` (one env, seeds seed, seed+1, …).

    The policy acts through a NumPy copy of the actor (θ is fixed while evaluating), the
    same fast path the rollouts use, on observations normalized with the model's statistics.
    """
    env = make_env(model.env_id, model.config.env_kwargs)
    policy = NumpyActor(model.actor)
    rng = np.random.default_rng(seed)
    returns = []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                normalized = model.obs_normalizer(np.asarray(obs, np.float64).reshape(1, -1))
                action = model.env_action(policy(normalized, rng, deterministic))[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def summary(returns: list[float]) -> dict[str, float]:
    return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "episodes": len(returns)}


class PeriodicEvaluation:
    """A ``learn`` callback: every ``every`` env steps, a deterministic evaluation appended to a CSV.

    Each row holds the env steps so far and the mean, std, min and max return of ``episodes``
    episodes (always the same seeds, so rows are comparable along training).
    """

    def __init__(self, path: Path, every: int, episodes: int = 10) -> None:
        self.every, self.episodes = every, episodes
        self.file = open(path, "x", newline="")
        self.csv = csv.writer(self.file)
        self.csv.writerow(["step", "mean", "std", "min", "max"])

    def __call__(self, model: Algorithm, metrics: dict[str, float]) -> None:
        steps = model.num_timesteps
        if steps // self.every > (steps - model.config.batch_size) // self.every:  # crossed a multiple
            returns = evaluate(model, self.episodes)
            self.csv.writerow([steps, np.mean(returns), np.std(returns), np.min(returns), np.max(returns)])
            self.file.flush()

    def close(self) -> None:
        self.file.close()
