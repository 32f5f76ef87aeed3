"""Evaluation acts as ``predict`` does: the fast NumPy path gives the returns of the torch policy."""

from __future__ import annotations

import gymnasium as gym
import pytest

import natgrad
from natgrad.runs.evaluation import evaluate


def returns_through_predict(model, episodes, seed):
    env = gym.make(model.env_id)
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True))
            total += float(reward)
            done = terminated or truncated
        out.append(total)
    env.close()
    return out


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_evaluate_matches_predict(env_id):
    model = natgrad.TRPO(env_id, seed=0, n_envs=2, n_steps=256)
    model.learn(1024)  # a policy that is not the initial one, with fitted normalizer statistics
    fast = evaluate(model, episodes=3, seed=5)
    slow = returns_through_predict(model, 3, seed=5)
    assert fast == pytest.approx(slow, rel=1e-4)
    model.close()
