"""Evaluating a trained model on fresh episodes, with raw (unnormalized) returns."""

from __future__ import annotations

from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from natgrad.errors import NatgradError
from natgrad.policy.inference import Acting
from natgrad.rollouts.collector import Observer
from natgrad.rollouts.envs import EnvLike, make_env
from natgrad.rollouts.threads import torch_threads

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm

EVAL_SEED = 10_000  # evaluation episodes use seeds EVAL_SEED, EVAL_SEED + 1, … unseen in training


def evaluate(model: Algorithm, episodes: int = 10, seed: int = EVAL_SEED, deterministic: bool = True,
             env: EnvLike | None = None) -> list[float]:
    """Returns of ``episodes`` full episodes (one env, seeds seed, seed+1, …) of ``env``, by default a new env
    like the model's (made again from its id or factory).

    The policy acts as in the rollouts (``natgrad.policy.inference.Acting``: the NumPy copy of a plain MLP actor,
    else torch, the recurrent state carried through each episode), on observations normalized with the
    model's statistics, with the env's legal-action masks when it has them. The env is reset once per episode,
    by evaluation itself (no autoreset), so a wrapper that records episodes (``natgrad.tools.video``) sees each once.
    """
    if env is None:
        if model.env_source is None:
            raise NatgradError(model.no_env_reason)
        if not model.env_source.repeatable:
            raise NatgradError("natgrad cannot make another env like the one this model trained on: pass env=... "
                               "(an env or a zero-argument factory) to evaluate on")
        env = model.env_source.make(model.config.env_kwargs)
    elif not isinstance(env, gym.Env):
        env = make_env(env)
    vec = SyncVectorEnv([lambda: env], autoreset_mode=AutoresetMode.DISABLED)
    observe = Observer(vec, model.actor, model.obs_normalizer, update=False)
    acting = Acting(model.actor, 1, np.random.default_rng(seed), masks=observe.masked)
    returns = []
    try:
        with torch_threads(model.threads):
            for i in range(episodes):
                returns.append(_episode(model, vec, observe, acting, seed + i, deterministic))
    finally:
        vec.close()
    return returns


def _episode(model: Algorithm, vec: SyncVectorEnv, observe: Observer, acting: Acting, seed: int,
             deterministic: bool) -> float:
    """The raw return of one episode of the one env in ``vec`` from ``reset(seed=seed)``."""
    raw, _ = vec.reset(seed=seed)
    obs, mask = observe(raw)
    first, total, done = np.ones(1, bool), 0.0, False
    while not done:
        action = acting(obs, mask, first, deterministic)
        raw, reward, terminated, truncated, _ = vec.step(model.actor.action.to_env(action))
        total += float(reward[0])
        done = bool(terminated[0] or truncated[0])
        if not done:
            obs, mask = observe(raw)
        first = np.zeros(1, bool)
    return total


def summary(returns: list[float]) -> dict[str, float]:
    """Mean, std and count of evaluation returns (``eval.json``)."""
    return {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "episodes": len(returns)}
