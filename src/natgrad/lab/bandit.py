"""A one-state softmax policy (a bandit) under any parameterization logits = f(θ): J, ∇J and F."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from natgrad.lab.steps import Matvec
from natgrad.natural.fisher import fisher_vector_product
from natgrad.natural.flat import flat_grad
from natgrad.policy.distributions import Categorical


def expected_reward(logits: Tensor, rewards: Tensor) -> Tensor:
    """J = Σ_a π_a r_a with π = softmax(logits)."""
    return (torch.softmax(logits, -1) * rewards).sum(-1)


def gradient_and_fvp(theta: Tensor, to_logits: Callable[[Tensor], Tensor], rewards: Tensor) -> tuple[Tensor, Matvec]:
    """g = ∇_θ J and v ↦ F v at θ, F the Hessian of KL(π_θ ‖ π_θ') at θ' = θ, for π = softmax(f(θ))."""
    theta = theta.detach().requires_grad_(True)
    dist = Categorical(to_logits(theta).unsqueeze(0))
    g = flat_grad(expected_reward(dist.logits, rewards).sum(), [theta], retain_graph=True)
    return g, fisher_vector_product(dist.detach().kl(dist).mean(), [theta])
