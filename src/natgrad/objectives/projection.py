"""Per-state trust-region projections of diagonal Gaussians (Otto et al., ICLR 2021), differentiable.

Each state's π = N(μ, diag σ²) is moved to the nearest π̃ inside a trust region around the old N(μ_old, diag σ_old²),
the mean and the covariance apart, each within its own bound; a state already inside is returned exactly as it is.
Every projection moves toward the old parameter along a line, x̃ = x_old + κ (x − x_old), κ ∈ (0, 1] per state
(κ = 1/(1 + η) for the Lagrange multiplier η of the bound):

- the mean (every kind): m = ½ (μ − μ_old)ᵀ Σ_old⁻¹ (μ − μ_old) ≤ ε_μ, κ = √(ε_μ / m) on μ. The ½ makes m the
  mean part of KL(π̃ ‖ π_old) for every kind, so that one ε_μ means the same for all three;
- ``"frobenius"``: ‖Σ − Σ_old‖²_F = Σ_i (σ_i² − σ_old,i²)² ≤ ε_Σ, κ = √(ε_Σ / ‖Σ − Σ_old‖²_F) on the variances
  (Σ̃ = (Σ + ηΣ_old)/(1 + η));
- ``"w2"``: the covariance part of the Wasserstein-2 distance in the metric of Σ_old (the scaled W2 of the paper,
  invariant to the scale of each action), for commuting (diagonal) covariances
  ‖Σ_old^-½ (Σ^½ − Σ_old^½)‖²_F = Σ_i (σ_i / σ_old,i − 1)² ≤ ε_Σ, κ = √(ε_Σ / that) on the standard deviations
  (S̃ = (S + ηS_old)/(1 + η), S = Σ^½);
- ``"kl"``: the covariance part of KL(π̃ ‖ π_old), ½ Σ_i (σ̃_i²/σ_old,i² − 1 − log σ̃_i²/σ_old,i²) ≤ ε_Σ, the paper's
  direction: minimizing KL(π̃ ‖ π) under it makes the precisions, π's natural parameters, the line:
  Σ̃⁻¹ = (ηΣ_old⁻¹ + Σ⁻¹)/(η + 1). κ is the root of a one-dimensional equation, found per state by bisection
  (a fixed number of steps on the device, no host sync) and differentiated by the implicit function theorem.

Each is the exact nearest point: the mean, Frobenius and W2 projections are Euclidean projections onto a ball in
their metric; the KL one is the KKT point of a convex problem. Shapes: means (..., d); log σ (..., d) or (d,).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

KINDS = ("kl", "w2", "frobenius")
"""The covariance projections, by name."""
_POWER = {"frobenius": 2.0, "w2": 1.0, "kl": -2.0}
"""The power p of σ that each projection moves along a line: σ² (Σ), σ (Σ^½) or σ⁻² (Σ⁻¹)."""


def mean_distance(mean: Tensor, mean_ref: Tensor, log_std_ref: Tensor) -> Tensor:
    """m = ½ (μ − μ_ref)ᵀ Σ_ref⁻¹ (μ − μ_ref) per state: the Mahalanobis distance under the reference covariance."""
    return 0.5 * ((mean - mean_ref) * torch.exp(-log_std_ref)).pow(2).sum(-1)


def cov_distance(kind: str, log_std: Tensor, log_std_ref: Tensor) -> Tensor:
    """The covariance part of ``kind``'s divergence from the reference, per state, with Δ = log σ − log σ_ref:
    ``frobenius`` Σ_i (σ_i² − σ_ref,i²)²; ``w2`` Σ_i (σ_i/σ_ref,i − 1)² = Σ_i (e^Δ − 1)²;
    ``kl`` ½ Σ_i (σ_i²/σ_ref,i² − 1 − log σ_i²/σ_ref,i²) = ½ Σ_i (e^{2Δ} − 1 − 2Δ)."""
    delta = log_std - log_std_ref
    if kind == "frobenius":
        return (torch.exp(2 * log_std_ref) * torch.expm1(2 * delta)).pow(2).sum(-1)
    if kind == "w2":
        return torch.expm1(delta).pow(2).sum(-1)
    if kind == "kl":
        return 0.5 * (torch.expm1(2 * delta) - 2 * delta).sum(-1)
    raise ValueError(f"unknown projection {kind!r}: use one of {', '.join(KINDS)}")


def divergence(kind: str, mean: Tensor, log_std: Tensor, mean_ref: Tensor, log_std_ref: Tensor) -> Tensor:
    """d(π, π_ref) = m + c per state: the mean part (``mean_distance``) plus ``kind``'s covariance part; for ``kl``
    exactly KL(π ‖ π_ref)."""
    return mean_distance(mean, mean_ref, log_std_ref) + cov_distance(kind, log_std, log_std_ref)


def _ball_kappa(distance: Tensor, bound: float) -> Tensor:
    """κ = √(ε / d): the step that puts a point at distance d > ε on a ball of radius² ε; 1 (with a zero, finite
    gradient) for d ≤ ε."""
    return torch.sqrt(bound / distance.clamp_min(bound))


def project_mean(mean: Tensor, mean_old: Tensor, log_std_old: Tensor, bound: float) -> Tensor:
    """μ̃ = μ_old + (μ − μ_old) √(ε_μ / m) where m = ½ (μ − μ_old)ᵀ Σ_old⁻¹ (μ − μ_old) > ε_μ, else μ itself."""
    m = mean_distance(mean, mean_old, log_std_old).unsqueeze(-1)
    projected = mean_old + (mean - mean_old) * _ball_kappa(m, bound)
    return torch.where(m > bound, projected, mean)


def project_cov(kind: str, log_std: Tensor, log_std_old: Tensor, bound: float) -> Tensor:
    """log σ̃ of ``kind``'s covariance projection: with x = σ^p (p = 2, 1, −2 for frobenius, w2, kl),
    x̃ = x_old + κ (x − x_old), i.e. log σ̃ = log σ_old + log(1 + κ (e^{pΔ} − 1))/p, Δ = log σ − log σ_old; κ in
    closed form (frobenius, w2) or by ``kl_kappa``. States inside the region keep their log σ exactly."""
    c = cov_distance(kind, log_std, log_std_old).unsqueeze(-1)
    p = _POWER[kind]
    change = torch.expm1(p * (log_std - log_std_old))  # x/x_old − 1
    kappa = kl_kappa(change, bound) if kind == "kl" else _ball_kappa(c, bound)
    projected = log_std_old + torch.log1p(kappa * change) / p
    return torch.where(c > bound, projected, log_std)


def project(kind: str, mean: Tensor, log_std: Tensor, mean_old: Tensor, log_std_old: Tensor, mean_bound: float,
            cov_bound: float) -> tuple[Tensor, Tensor]:
    """(μ̃, log σ̃): π projected onto {m(π̃, π_old) ≤ ε_μ, c(π̃, π_old) ≤ ε_Σ}, the mean and covariance apart."""
    return (project_mean(mean, mean_old, log_std_old, mean_bound),
            project_cov(kind, log_std, log_std_old, cov_bound))


def _kl_excess(kappa: Tensor, change: Tensor, bound: float) -> Tensor:
    """g(κ) = ½ Σ_i h(κ a_i) − ε_Σ, h(u) = log(1 + u) − u/(1 + u): the covariance part of KL(π̃ ‖ π_old) past the
    bound when the precision ratios are σ_old²/σ̃² = 1 + κ a (a = σ_old²/σ² − 1); decreasing as κ falls to 0."""
    u = kappa * change
    return 0.5 * (torch.log1p(u) - u / (1 + u)).sum(-1, keepdim=True) - bound


def kl_kappa(change: Tensor, bound: float) -> Tensor:
    """κ ∈ (0, 1] with g(κ) = 0 (``_kl_excess``) per state, (..., 1); 1 where g(1) ≤ 0 (inside the region).

    Bisection on s = −log κ ∈ [0, s_max], the feasible end kept (g ≤ 0: the bound holds to rounding), with
    s_max = log(max_i |a_i| / δ), δ = min(½, √(ε_Σ/d)): there every |κ a_i| ≤ δ, so h ≤ 2δ² and g ≤ 0. The value is
    the bisection's root, its derivative the implicit one, dκ = −∂_a g · da / ∂_κ g, by a Newton step at the detached
    root whose value change is exactly zero."""
    a = change.detach()
    with torch.no_grad():
        delta = min(0.5, (bound / a.shape[-1]) ** 0.5)
        high = torch.log(a.abs().amax(-1, keepdim=True) / delta).clamp_min(0)
        low = torch.zeros_like(high)
        for _ in range(round(-math.log2(torch.finfo(a.dtype).eps)) + 8):  # s to s_max·2^-steps, under the dtype's ε
            mid = (low + high) / 2
            inside = _kl_excess(torch.exp(-mid), a, bound) <= 0
            high, low = torch.where(inside, mid, high), torch.where(inside, low, mid)
        root = torch.exp(-high)
        slope = 0.5 * (root * a.pow(2) / (1 + root * a).pow(2)).sum(-1, keepdim=True)  # ∂_κ g > 0 outside
        slope = torch.where(slope > 0, slope, torch.ones_like(slope))
    excess = _kl_excess(root, change, bound)
    return root - (excess - excess.detach()) / slope
