"""Generalized advantage estimation, GAE(γ, λ), as a pure function over time-major tensors."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    ended: Tensor,
    gamma: float = 0.99,
    lam: float = 0.97,
) -> tuple[Tensor, Tensor]:
    """Advantages Â_t and critic targets R_t = Â_t + V(s_t), all (T, N).

    δ_t = r_t + γ (1 − term_t) V(s_{t+1}) − V(s_t)
    Â_t = δ_t + γλ (1 − ended_t) Â_{t+1}

    ``next_values[t]`` is V of the real next state: after a truncation it is the
    bootstrapped value of the final observation, after a termination it is ignored.
    ``ended`` (terminated or truncated) stops the sum from crossing into the next episode.
    """
    not_terminal = (~terminated).to(values.dtype)
    deltas = (rewards + gamma * not_terminal * next_values - values).numpy()
    carry = (gamma * lam * (~ended).to(values.dtype)).numpy()
    advantages = np.empty_like(deltas)
    running = np.zeros_like(deltas[0])
    for t in range(len(deltas) - 1, -1, -1):  # NumPy: cheaper per step than torch for small rows
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    adv = torch.from_numpy(advantages)
    return adv, adv + values


def normalize(x: Tensor, min_std: float = 1e-6) -> Tensor:
    """(x − mean) / std; only centred when std < ``min_std`` (a batch of one or of equal values),
    so a near-zero std never blows the advantages up."""
    if x.numel() < 2:
        return torch.zeros_like(x)
    centred = x - x.mean()
    std = x.std()
    return centred / std if std >= min_std else centred
