"""A small float64 neural policy on a fixed batch of states, with π as a function of the flat θ."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call

from natgrad.lab.steps import Matvec
from natgrad.natural.fisher import fisher_vector_product
from natgrad.natural.flat import flat_params
from natgrad.policy.actor_critic import Actor
from natgrad.policy.distributions import Distribution

OBS_DIM = 3
ACTION_SPACES = {
    "categorical": gym.spaces.Discrete(3),
    "gaussian": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
}


@dataclass(frozen=True)
class TinyPolicy:
    """A small float64 actor and the states it is averaged over, for explicit matrices."""

    actor: Actor
    """float64, its parameters at θ₀"""
    obs: Tensor
    """the states every KL and Fisher is averaged over"""
    theta0: Tensor
    """flat θ₀"""

    def dist_at(self, theta: Tensor, obs: Tensor | None = None) -> Distribution:
        """π_θ(·|s) for the flat θ (differentiable in θ; the actor's own parameters stay θ₀)."""
        params = dict(self.actor.named_parameters())
        chunks = torch.split(theta, [p.numel() for p in params.values()])
        values = {name: c.view_as(p) for (name, p), c in zip(params.items(), chunks)}
        return functional_call(self.actor, values, (self.obs if obs is None else obs,))

    def mean_kl(self, theta: Tensor) -> Tensor:
        """E_s KL(π_θ₀(·|s) ‖ π_θ(·|s))."""
        return self.actor(self.obs).detach().kl(self.dist_at(theta)).mean()

    def fvp(self, damping: float = 0.0) -> Matvec:
        """v ↦ (F + damping·I) v at θ₀, by natgrad's Fisher-vector product."""
        dist = self.actor(self.obs)
        return fisher_vector_product(dist.detach().kl(dist).mean(), list(self.actor.parameters()), damping)


def tiny_policy(kind: str, hidden: tuple[int, ...] = (4,), n_states: int = 6, seed: int = 0) -> TinyPolicy:
    """A ``kind`` ("categorical" or "gaussian") actor on ``n_states`` random states.

    The weights are moved off the near-zero output initialization so that π differs across states.
    """
    obs_space = gym.spaces.Box(-1.0, 1.0, (OBS_DIM,), np.float32)
    with torch.random.fork_rng():  # seeded, and the caller's global RNG is left as it was
        torch.manual_seed(seed)
        actor = Actor(obs_space, ACTION_SPACES[kind], hidden=hidden, log_std_init=-0.3).double()
        for p in actor.parameters():
            p.data.add_(0.3 * torch.randn_like(p))
        obs = torch.randn(n_states, OBS_DIM, dtype=torch.float64)
    return TinyPolicy(actor, obs, flat_params(list(actor.parameters())))
