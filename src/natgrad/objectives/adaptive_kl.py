"""The adaptive KL coefficient of PPO-KL (Schulman et al. 2017, section 4)."""

from __future__ import annotations

import math


def adapt_beta(beta: float, kl: float, kl_target: float, beta_min: float = 1e-6, beta_max: float = 1e6) -> float:
    """β ← 2β if KL > 1.5·d_targ;  β ← β/2 if KL < d_targ/1.5;  else β; kept in [beta_min, beta_max].

    A non-finite KL counts as too large (β doubles), so a diverging policy is pulled back.
    """
    if not math.isfinite(kl) or kl > 1.5 * kl_target:
        beta *= 2.0
    elif kl < kl_target / 1.5:
        beta /= 2.0
    return min(max(beta, beta_min), beta_max)
