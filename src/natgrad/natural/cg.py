"""Conjugate gradient for A x = b with A symmetric positive definite, given only x ↦ A x."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CGResult:
    """What conjugate gradient returns."""

    x: Tensor
    """the approximate solution"""
    iterations: int
    """matrix-vector products spent"""
    residual_norm: float
    """‖b − A x‖ as CG tracks it"""


def conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, max_iters: int = 10, tol: float = 1e-10
) -> CGResult:
    """Solve A x = b from x₀ = 0 (deterministic), stopping when ‖r‖² < ``tol`` or after ``max_iters``.

    r₀ = p₀ = b;  α = rᵀr / pᵀAp;  x += αp;  r −= αAp;  p = r + (r'ᵀr' / rᵀr) p.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    iterations = 0
    while iterations < max_iters and rr >= tol:
        ap = matvec(p)
        pap = p @ ap
        if not torch.isfinite(pap) or pap <= 0:
            break  # A is not positive definite along p: keep the iterate so far
        alpha = rr / pap
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
        iterations += 1
    return CGResult(x, iterations, float(rr.sqrt()))
