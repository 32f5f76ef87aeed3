"""Fisher-vector products by double backprop, and flat views of a module's parameters.

F = E[∇log π ∇log π^T] equals the Hessian of the mean KL(π_old ‖ π_θ) at θ = θ_old,
so F v = ∇_θ ((∇_θ KL) · v). F is never formed. This product works for any differentiable
actor; natgrad's updates use the equal and cheaper Gauss–Newton form of ``natgrad.linearized``,
and the tests hold the two to each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

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


def fisher_vector_product(
    mean_kl: Tensor, params: Sequence[Tensor], damping: float = 0.0
) -> Callable[[Tensor], Tensor]:
    """v ↦ F v + damping·v, with F v = ∇_θ((∇_θ KL) · v).

    ``mean_kl`` must be the mean KL(π_old ‖ π_θ) evaluated at θ = θ_old with its graph.
    ∇KL is built once, with its own graph, and every product reuses it: each
    product then costs one backward pass.
    """
    grad_kl = flat_grad(mean_kl, params, create_graph=True)

    def fvp(v: Tensor) -> Tensor:
        return flat_grad(grad_kl @ v, params, retain_graph=True) + damping * v

    return fvp
