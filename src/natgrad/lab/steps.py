"""Steps of a chosen quadratic KL, built from the library's CG and step-size rule."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from natgrad.natural.cg import conjugate_gradient
from natgrad.natural.step import max_step_size

Matvec = Callable[[Tensor], Tensor]


def scaled_to_kl(direction: Tensor, fvp: Matvec, kl: float) -> Tensor:
    """β u with β = √(2 kl / uᵀFu), so that ½ (βu)ᵀ F (βu) = kl."""
    return max_step_size(kl, float(direction @ fvp(direction))) * direction


def natural_step_vector(fvp: Matvec, g: Tensor, max_kl: float, cg_iters: int, cg_tol: float = 0.0) -> Tensor:
    """Δ = β x with F x = g solved by CG from x₀ = 0 and β = √(2δ / xᵀFx): the natural-gradient step of budget δ."""
    return scaled_to_kl(conjugate_gradient(fvp, g, cg_iters, cg_tol).x, fvp, max_kl)
