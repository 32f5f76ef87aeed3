"""Conjugate gradient for A x = b with A symmetric positive definite, given only x ↦ A x.

``conjugate_gradient`` stops early by reading ‖r‖² back to the host at every iteration (the fastest on a CPU);
``masked_conjugate_gradient`` takes the same iterates with no read-back, for accelerators."""

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


@dataclass(frozen=True)
class MaskedCGResult:
    """What masked conjugate gradient returns: 0-d tensors where ``CGResult`` has numbers, on ``b``'s device."""

    x: Tensor
    """the approximate solution"""
    iterations: Tensor
    """matrix-vector products that moved the iterate (int64)"""
    residual_norm: Tensor
    """‖b − A x‖ as CG tracks it"""


def masked_conjugate_gradient(
    matvec: Callable[[Tensor], Tensor], b: Tensor, max_iters: int = 10, tol: float = 1e-10
) -> MaskedCGResult:
    """``conjugate_gradient``'s iterates, bit for bit, with no host synchronisation: all ``max_iters`` products
    are spent, and x, r, p freeze (``torch.where`` on a device flag) from the iteration where ``conjugate_gradient``
    stops: ‖r‖² < ``tol``, or pᵀAp not a finite positive number."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    iterations = torch.zeros((), dtype=torch.int64, device=b.device)
    active = torch.ones((), dtype=torch.bool, device=b.device)
    for _ in range(max_iters):
        active = active & (rr >= tol)
        ap = matvec(p)
        pap = p @ ap
        active = active & torch.isfinite(pap) & (pap > 0)
        alpha = rr / pap
        r_new = r - alpha * ap
        rr_new = r_new @ r_new
        x = torch.where(active, x + alpha * p, x)
        p = torch.where(active, r_new + (rr_new / rr) * p, p)
        r = torch.where(active, r_new, r)
        rr = torch.where(active, rr_new, rr)
        iterations = iterations + active
    return MaskedCGResult(x, iterations, rr.sqrt())
