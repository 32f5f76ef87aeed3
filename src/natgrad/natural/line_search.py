"""Backtracking line search in the KL trust region (TRPO's acceptance rule)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor


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
    evaluate: Callable[[Tensor], tuple[float, float]],
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
        surrogate, kl = evaluate(theta)
        if math.isfinite(surrogate) and math.isfinite(kl) and surrogate > surrogate_old and kl <= max_kl:
            return LineSearchResult(theta, True, j, surrogate, kl)
    return LineSearchResult(theta_old, False, max_backtracks, surrogate_old, 0.0)
