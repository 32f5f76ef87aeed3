"""Policy objectives (to maximize) and the critic loss (to minimize), pure functions of tensors."""

from __future__ import annotations

import torch
from torch import Tensor


def ratio(log_probs: Tensor, log_probs_old: Tensor) -> Tensor:
    """r = π_θ(a|s) / π_old(a|s) = exp(log π_θ − log π_old)."""
    return torch.exp(log_probs - log_probs_old)


def surrogate(log_probs: Tensor, log_probs_old: Tensor, advantages: Tensor) -> Tensor:
    """L(θ) = E[r Â], the importance-sampled surrogate of TRPO, NPG and VPG."""
    return (ratio(log_probs, log_probs_old) * advantages).mean()


def clipped_surrogate(
    log_probs: Tensor, log_probs_old: Tensor, advantages: Tensor, clip: float
) -> Tensor:
    """L^CLIP(θ) = E[min(r Â, clip(r, 1 − ε, 1 + ε) Â)] (PPO-Clip)."""
    r = ratio(log_probs, log_probs_old)
    return torch.min(r * advantages, r.clamp(1 - clip, 1 + clip) * advantages).mean()


def kl_penalized_surrogate(
    log_probs: Tensor, log_probs_old: Tensor, advantages: Tensor, kl: Tensor, beta: float | Tensor
) -> Tensor:
    """L^KLPEN(θ) = E[r Â] − β E[KL(π_old ‖ π_θ)] (PPO with adaptive KL penalty)."""
    return surrogate(log_probs, log_probs_old, advantages) - beta * kl.mean()


def value_loss(
    values: Tensor, returns: Tensor, values_old: Tensor | None = None, clip: float | None = None
) -> Tensor:
    """½ E[(V − R)²]; with ``clip``, ½ E[max((V − R)², (V_old + clip(V − V_old, ±c) − R)²)]."""
    loss = (values - returns).pow(2)
    if clip is not None and values_old is not None:
        clipped = values_old + (values - values_old).clamp(-clip, clip)
        loss = torch.max(loss, (clipped - returns).pow(2))
    return 0.5 * loss.mean()


def approx_kl(log_probs: Tensor, log_probs_old: Tensor) -> Tensor:
    """Low-variance estimator of KL(π_old ‖ π_θ): E[(r − 1) − log r]."""
    log_r = log_probs - log_probs_old
    return (torch.exp(log_r) - 1 - log_r).mean()


def kl_spread(kl: Tensor) -> dict[str, float]:
    """The spread over the batch's states of KL(π_old ‖ π_new), given per state (any shape): its largest value
    ``policy/kl_max`` and its 95th percentile ``policy/kl_p95`` (``torch.quantile``'s linear interpolation between
    order statistics), in float64; a mean KL within a bound can hide a few states that moved far."""
    kl = kl.detach().flatten().double()
    largest, p95 = torch.stack([kl.max(), torch.quantile(kl, 0.95)]).tolist()
    return {"policy/kl_max": largest, "policy/kl_p95": p95}
