"""θ as one vector: flat views of a module's parameters and of a gradient, and writing a vector back exactly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor


def flatten(tensors: Iterable[Tensor]) -> Tensor:
    """The tensors' entries end to end, as one vector."""
    return torch.cat([t.reshape(-1) for t in tensors])


def flat_params(params: Sequence[Tensor]) -> Tensor:
    """θ as one detached vector (a copy)."""
    return flatten(p.detach() for p in params).clone()


def set_flat_params(params: Sequence[Tensor], flat: Tensor) -> None:
    """Write the vector ``flat`` into the parameters, exactly (no arithmetic)."""
    offset = 0
    with torch.no_grad():
        for p in params:
            n = p.numel()
            p.copy_(flat[offset : offset + n].view_as(p))
            offset += n


def flat_grad(y: Tensor, params: Sequence[Tensor], **kwargs) -> Tensor:
    """∇_θ y as one vector (zeros for parameters y does not depend on)."""
    grads = torch.autograd.grad(y, list(params), allow_unused=True, **kwargs)
    return flatten(torch.zeros_like(p) if g is None else g for g, p in zip(grads, params))
