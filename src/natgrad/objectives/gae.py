"""Generalized advantage estimation, GAE(γ, λ), as a pure function over time-major tensors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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
    deltas = rewards + gamma * not_terminal * next_values - values
    carry = gamma * lam * (~ended).to(values.dtype)
    if values.device.type == "cpu":  # NumPy: cheaper per step than torch for small rows
        adv = torch.from_numpy(_backward_sums(deltas.numpy(), carry.numpy(), np.empty_like, np.zeros_like))
    else:  # on an accelerator, where the tensors are
        adv = _backward_sums(deltas, carry, torch.empty_like, torch.zeros_like)
    return adv, adv + values


def _backward_sums(deltas: Any, carry: Any, empty_like: Callable, zeros_like: Callable) -> Any:
    """Â_t = δ_t + c_t Â_{t+1} from the last step back, Â_T = 0, over NumPy arrays or tensors alike."""
    advantages = empty_like(deltas)
    running = zeros_like(deltas[0])
    for t in range(len(deltas) - 1, -1, -1):
        running = deltas[t] + carry[t] * running
        advantages[t] = running
    return advantages


def normalize(x: Tensor, min_std: float = 1e-6) -> Tensor:
    """(x − mean) / std; only centred when std < ``min_std`` (a batch of one or of equal values),
    so a near-zero std never blows the advantages up."""
    if x.numel() < 2:
        return torch.zeros_like(x)
    centred = x - x.mean()
    std = x.std()
    return centred / std if std >= min_std else centred
