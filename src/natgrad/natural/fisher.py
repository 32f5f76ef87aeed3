"""Fisher-vector products by double backprop.

F = E[∇log π ∇log π^T] equals the Hessian of the mean KL(π_old ‖ π_θ) at θ = θ_old,
so F v = ∇_θ ((∇_θ KL) · v). F is never formed. This product works for any differentiable
actor; natgrad's updates use the equal and cheaper Gauss–Newton form of ``natgrad.natural.linearized``,
and the tests hold the two to each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from natgrad.natural.flat import flat_grad


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
