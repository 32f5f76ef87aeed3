"""Experiment 3: F built three ways (score outer products, KL Hessian, natgrad's FVP) is one PSD matrix."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from natgrad.lab.report import Section, Table, figure, sci
from natgrad.lab.tiny import TinyPolicy, tiny_policy

KINDS = ("categorical", "gaussian")


@dataclass(frozen=True)
class FisherThreeWays:
    """The Fisher matrix of one tiny policy, computed three ways."""

    kind: str
    score: Tensor
    """E_s E_{a~π}[∇logπ ∇logπᵀ], a sample mean"""
    score_stderr: Tensor
    """standard error of each entry of ``score``"""
    hessian: Tensor
    """∇²_θ mean KL(π_θ₀ ‖ π_θ) at θ₀, by autograd"""
    fvp: Tensor
    """columns F e_i from natgrad.natural.fisher.fisher_vector_product"""

    @property
    def eigenvalues(self) -> Tensor:
        """Eigenvalues of the (symmetrized) KL Hessian, ascending."""
        return torch.linalg.eigvalsh(0.5 * (self.hessian + self.hessian.T))

    @property
    def max_sigma(self) -> float:
        """max_ij |F_score − F_hessian| / standard error (over entries with a non-zero standard error):
        the score estimate's worst deviation, counted in sampling errors."""
        sampled = self.score_stderr > 0
        return float(((self.score - self.hessian).abs()[sampled] / self.score_stderr[sampled]).max())


def score_outer_products(policy: TinyPolicy, samples: int, seed: int) -> tuple[Tensor, Tensor]:
    """F ≈ mean over states s and ``samples`` actions a ~ π(·|s) of s(a)s(a)ᵀ, s(a) = ∇_θ log π_θ(a|s),
    and the standard error of each entry, √((E[(s_i s_j)²] − E[s_i s_j]²) / (N − 1)).

    The scores of all N = samples × states pairs come from one forward-mode Jacobian."""
    states = policy.obs.repeat(samples, 1)
    with torch.no_grad():
        actions = policy.dist_at(policy.theta0, states).sample(torch.Generator().manual_seed(seed))
    scores = torch.func.jacfwd(lambda theta: policy.dist_at(theta, states).log_prob(actions))(policy.theta0)
    n = len(scores)
    mean = scores.T @ scores / n  # F_ij ≈ E[s_i s_j]
    second = scores.pow(2).T @ scores.pow(2) / n  # E[(s_i s_j)²]
    return mean, ((second - mean.pow(2)).clamp_min(0) / (n - 1)).sqrt()


def fisher_three_ways(kind: str, samples: int = 4000, seed: int = 0) -> FisherThreeWays:
    """F of a tiny ``kind`` policy (3 inputs, 4 tanh units, 3 actions or a 2-D Gaussian) three ways."""
    policy = tiny_policy(kind, seed=seed)
    score, stderr = score_outer_products(policy, samples, seed)
    hessian = torch.autograd.functional.hessian(policy.mean_kl, policy.theta0)
    fvp = policy.fvp()
    by_fvp = torch.stack([fvp(e) for e in torch.eye(len(policy.theta0), dtype=torch.float64)], dim=1)
    return FisherThreeWays(kind, score.detach(), stderr.detach(), hessian, by_fvp.detach())


def section(samples: int = 4000) -> Section:
    """Fisher = KL Hessian = E[∇logπ∇logπᵀ]: three constructions of F and its eigenvalues."""
    results = [fisher_three_ways(kind, samples) for kind in KINDS]
    rows = []
    for r in results:
        eig = r.eigenvalues
        rows.append([r.kind, str(len(eig)), sci(float(r.hessian.abs().max())),
                     sci(float((r.fvp - r.hessian).abs().max()), 2),
                     sci(float((r.score - r.hessian).abs().max()), 2), f"{r.max_sigma:.2f}",
                     sci(float(eig[0]), 2), sci(float(eig[-1]), 3), str(rank(eig))])
    columns = ["policy", "dim θ", "largest entry", "FVP vs Hessian: max abs. diff.",
               "score vs Hessian: max abs. diff.", "score vs Hessian: max diff. / std. error",
               "λ_min", "λ_max", "rank"]
    fig, axes = figure(ncols=2, nrows=2, width=5.0, height=4.4)
    first = results[0]
    limit = float(first.hessian.abs().max())
    for ax, (name, matrix) in zip(axes[:3], [("mean of score outer products", first.score),
                                               ("autograd Hessian of the mean KL", first.hessian),
                                               ("natgrad FVP on unit vectors", first.fvp)]):
        image = ax.imshow(matrix.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set(title=f"{name} ({first.kind})", xlabel="parameter j", ylabel="parameter i")
        fig.colorbar(image, ax=ax, shrink=0.85, label="F_ij")
    ax = axes[3]
    for i, r in enumerate(results):
        eig = r.eigenvalues.numpy()[::-1]
        ax.plot(np.arange(1, len(eig) + 1), np.abs(eig), "o", ms=4, color=f"C{i}",
                label=f"{r.kind} (rank {rank(r.eigenvalues)} of {len(eig)})")
        ax.plot(np.flatnonzero(eig < 0) + 1, -eig[eig < 0], "x", ms=7, color="k")
    ax.plot([], [], "x", color="k", label="|λ| of a λ < 0 (round-off)")
    ax.set(yscale="log", xlabel="index (largest first)", ylabel="|eigenvalue| of F", title="Spectrum of F")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    claim = (
        f"A tiny float64 network (3 inputs, 4 tanh units) on 6 states. F three ways: the mean of score outer products "
        f"over {samples} sampled actions per state, the autograd Hessian of the mean KL(π_θ₀ ‖ π_θ) at θ₀, and "
        "natgrad's Fisher-vector product applied to every unit vector. The Hessian and the FVP agree to round-off; "
        "the score estimate agrees within its sampling error (no entry is off by more than a few of its standard "
        "errors). No eigenvalue is below zero beyond round-off: F is "
        "positive semi-definite. It is also singular: its rank (eigenvalues above 1e-10 λ_max) is "
        "6 states × 2 for the categorical policy (shifting all 3 logits of a state together changes nothing) and "
        "6 states × 2 means + 2 log σ for the Gaussian one."
    )
    return Section("3. Fisher = KL Hessian = E[∇logπ∇logπᵀ]", claim, [Table(columns, rows)], {"fisher.png": fig})


def rank(eigenvalues: Tensor, rtol: float = 1e-10) -> int:
    """The number of eigenvalues above ``rtol`` × the largest."""
    return int((eigenvalues > rtol * float(eigenvalues[-1])).sum())
