"""Shuffled minibatches, shared by the critic fit and PPO's epochs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor


def minibatches(n: int, size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Indices 0..n−1 in a random order, cut into chunks of ``size`` (the last may be shorter)."""
    order = torch.randperm(n, generator=generator)
    yield from order.split(min(size, n))


def shuffled_minibatches(
    tensors: Sequence[Tensor], size: int, generator: torch.Generator
) -> Iterator[tuple[Tensor, ...]]:
    """The rows of ``minibatches(n, size, generator)`` from each tensor (all of length n), as slices of
    one gather per tensor in the shuffled order rather than one gather per minibatch."""
    (order,) = minibatches(len(tensors[0]), len(tensors[0]), generator)  # the same draw, as one chunk
    yield from zip(*(t[order].split(min(size, len(order))) for t in tensors))
