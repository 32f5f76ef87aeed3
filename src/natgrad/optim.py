"""The Adam optimizer every algorithm uses, in its fused form (one kernel for all parameters)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def adam(params: Iterable[torch.nn.Parameter], lr: float, eps: float = 1e-8) -> torch.optim.Adam:
    """Adam with ``fused=True``: the same update rule, ~20% cheaper per step for small networks on CPU."""
    return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
