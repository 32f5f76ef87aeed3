"""Shuffled minibatch indices, shared by the critic fit and PPO's epochs."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


def minibatches(n: int, size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Indices 0..n−1 in a random order, cut into chunks of ``size`` (the last may be shorter)."""
    order = torch.randperm(n, generator=generator)
    yield from order.split(min(size, n))
