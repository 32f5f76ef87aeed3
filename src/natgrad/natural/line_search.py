"""Backtracking line search in the KL trust region (TRPO's acceptance rule).

``backtracking_line_search`` stops at the first acceptable try by reading each try's figures back to the host
(the fastest on a CPU); ``masked_line_search`` makes every try and selects on the device, for accelerators."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]
"""θ ↦ (L(θ), mean KL(π_old ‖ π_θ)) as 0-d tensors; it may write θ into the parameters."""


@dataclass(frozen=True)
class LineSearchResult:
    """What the line search returns: the accepted parameters, or θ_old itself."""

    theta: Tensor
    """accepted parameters, or θ_old itself when rejected"""
    accepted: bool
    backtracks: int
    """j of the accepted step θ_old + coef^j·full_step; the tries made if rejected"""
    surrogate: float
    """L at the returned θ"""
    kl: float
    """mean KL(π_old ‖ π_θ) at the returned θ"""


def backtracking_line_search(
    evaluate: Evaluate,
    theta_old: Tensor,
    full_step: Tensor,
    surrogate_old: float,
    max_kl: float,
    backtrack_coef: float = 0.5,
    max_backtracks: int = 10,
) -> LineSearchResult:
    """Try θ_j = θ_old + coef^j·full_step for j = 0, 1, …; accept the first with
    L(θ_j) > L(θ_old) and KL(θ_j) ≤ δ. If none passes, return θ_old unchanged.

    ``evaluate(θ)`` returns (L(θ), mean KL(π_old ‖ π_θ)).
    """
    for j in range(max_backtracks):
        theta = theta_old + backtrack_coef**j * full_step
        surrogate, kl = map(float, evaluate(theta))
        if math.isfinite(surrogate) and math.isfinite(kl) and surrogate > surrogate_old and kl <= max_kl:
            return LineSearchResult(theta, True, j, surrogate, kl)
    return LineSearchResult(theta_old, False, max_backtracks, surrogate_old, 0.0)


@dataclass(frozen=True)
class MaskedLineSearchResult:
    """What the masked line search returns: ``LineSearchResult``'s fields as 0-d tensors on θ's device."""

    theta: Tensor
    """the first acceptable try, or θ_old bit for bit"""
    accepted: Tensor
    """bool"""
    backtracks: Tensor
    """int64: j of the accepted try; the tries made if none"""
    surrogate: Tensor
    """L at the returned θ"""
    kl: Tensor
    """mean KL(π_old ‖ π_θ) at the returned θ, 0 if none accepted"""


def masked_line_search(
    evaluate: Evaluate,
    theta_old: Tensor,
    full_step: Tensor,
    surrogate_old: Tensor,
    max_kl: float,
    backtrack_coef: float = 0.5,
    max_backtracks: int = 10,
) -> MaskedLineSearchResult:
    """``backtracking_line_search``'s outcome with no host synchronisation: every try θ_j = θ_old + coef^j·full_step
    is evaluated, and the first with L(θ_j) > L(θ_old) and KL(θ_j) ≤ δ (both finite) is kept by ``torch.where`` on
    device flags; if none passes, θ_old bit for bit."""
    found = torch.zeros((), dtype=torch.bool, device=theta_old.device)
    theta, surrogate, kl = theta_old, surrogate_old, torch.zeros_like(surrogate_old)
    backtracks = torch.full((), max_backtracks, dtype=torch.int64, device=theta_old.device)
    for j in range(max_backtracks):
        theta_j = theta_old + backtrack_coef**j * full_step
        surrogate_j, kl_j = evaluate(theta_j)
        ok = torch.isfinite(surrogate_j) & torch.isfinite(kl_j) & (surrogate_j > surrogate_old)
        ok = ok & (kl_j <= _largest_at_most(max_kl, kl_j.dtype))
        take = ok & ~found
        theta = torch.where(take, theta_j, theta)
        surrogate, kl = torch.where(take, surrogate_j, surrogate), torch.where(take, kl_j, kl)
        backtracks = torch.where(take, j, backtracks)
        found = found | ok
    return MaskedLineSearchResult(theta, found, backtracks, surrogate, kl)


def _largest_at_most(bound: float, dtype: torch.dtype) -> float:
    """The largest value of ``dtype`` ≤ ``bound``: for x of that dtype, ``x <= it`` on the device (where a Python
    bound is rounded to the nearest value of x's dtype) is exactly the host's float64 test x ≤ ``bound``."""
    nearest = torch.tensor(bound, dtype=torch.float64).to(dtype)
    if float(nearest) > bound:
        nearest = torch.nextafter(nearest, torch.tensor(-math.inf, dtype=dtype))
    return float(nearest)
