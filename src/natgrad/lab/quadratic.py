"""Experiment 2: the mean KL of a step Δ from a neural policy is ½ΔᵀFΔ to second order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from natgrad.config import NaturalConfig
from natgrad.lab.report import Section, Table, figure, sci
from natgrad.lab.steps import scaled_to_kl
from natgrad.lab.tiny import TinyPolicy, tiny_policy
from natgrad.natural.cg import conjugate_gradient
from natgrad.natural.flat import flat_grad
from natgrad.objectives.losses import surrogate

KINDS = ("categorical", "gaussian")
DIRECTIONS = ("random", "natural")


@dataclass(frozen=True)
class Curve:
    """½ΔᵀFΔ against the true KL for steps of growing size along one direction."""

    kind: str
    """categorical | gaussian"""
    direction: str
    """random | natural"""
    quadratic: np.ndarray
    """½ΔᵀFΔ of each step, largest first"""
    kl: np.ndarray
    """the true mean KL(π_θ₀ ‖ π_θ₀+Δ) of the same steps"""

    @property
    def relative_error(self) -> np.ndarray:
        """|KL − ½ΔᵀFΔ| / ½ΔᵀFΔ."""
        return np.abs(self.kl - self.quadratic) / self.quadratic


def natural_direction(policy: TinyPolicy, seed: int, cfg: NaturalConfig = NaturalConfig()) -> torch.Tensor:
    """x ≈ (F + λI)⁻¹ g as TRPO computes it (CG iterations, tolerance and damping λ of ``cfg``),
    g = ∇ E[r Â] for actions sampled from π_θ₀ with random advantages Â."""
    generator = torch.Generator().manual_seed(seed)
    dist = policy.actor(policy.obs)
    actions = dist.sample(generator)
    log_probs = dist.log_prob(actions)
    advantages = torch.randn(len(policy.obs), generator=generator, dtype=torch.float64)
    g = flat_grad(surrogate(log_probs, log_probs.detach(), advantages), list(policy.actor.parameters()))
    return conjugate_gradient(policy.fvp(cfg.damping), g, cfg.cg_iters, cfg.cg_tol).x


def quadratic_curves(budgets: Sequence[float], hidden: tuple[int, ...] = (16,), n_states: int = 32,
                     seed: int = 0) -> list[Curve]:
    """For each policy kind and direction u: steps Δ = βu with ½ΔᵀFΔ = q for every q in ``budgets``."""
    curves = []
    for kind in KINDS:
        policy = tiny_policy(kind, hidden, n_states, seed)
        fvp = policy.fvp()
        generator = torch.Generator().manual_seed(seed)
        directions = {"random": torch.randn(policy.theta0.shape, generator=generator, dtype=torch.float64),
                      "natural": natural_direction(policy, seed)}
        for name in DIRECTIONS:
            steps = [scaled_to_kl(directions[name], fvp, q) for q in budgets]
            with torch.no_grad():
                kl = [float(policy.mean_kl(policy.theta0 + step)) for step in steps]
            quadratic = [0.5 * float(step @ fvp(step)) for step in steps]
            curves.append(Curve(kind, name, np.array(quadratic), np.array(kl)))
    return curves


def section(budgets: Sequence[float] = tuple(np.logspace(0, -6, 13))) -> Section:
    """KL ≈ ½ΔᵀFΔ: true mean KL against the quadratic form for shrinking steps."""
    curves = quadratic_curves(budgets)
    shown = np.unique(np.linspace(0, len(budgets) - 1, 4).round().astype(int))
    columns = ["policy", "direction", *(f"rel. error at ½ΔᵀFΔ={sci(curves[0].quadratic[i], 2)}" for i in shown)]
    rows = [[c.kind, c.direction, *(sci(c.relative_error[i], 2) for i in shown)] for c in curves]
    fig, (ax_kl, ax_err) = figure(ncols=2)
    q = curves[0].quadratic
    ax_kl.plot(q, q, color="0.6", lw=3, alpha=0.5, label="KL = ½ΔᵀFΔ")
    for c in curves:
        style = dict(color=f"C{KINDS.index(c.kind)}", ls="-" if c.direction == "random" else "--",
                     marker="o" if c.direction == "random" else "s", ms=4, label=f"{c.kind}, {c.direction} direction")
        ax_kl.plot(c.quadratic, c.kl, **style)
        ax_err.plot(c.quadratic, c.relative_error, **style)
    ax_err.plot(q, np.sqrt(q / q[0]) * max(c.relative_error[0] for c in curves), color="0.6", ls=":",
                label="∝ √(½ΔᵀFΔ) (error ∝ ‖Δ‖)")
    ax_kl.set(xscale="log", yscale="log", xlabel="½ΔᵀFΔ", title="True KL against the quadratic form",
              ylabel=r"mean KL$(\pi_{\theta_0} \,\|\, \pi_{\theta_0+\Delta})$")
    ax_err.set(xscale="log", yscale="log", xlabel="½ΔᵀFΔ", ylabel="|KL − ½ΔᵀFΔ| / ½ΔᵀFΔ",
               title="Relative error shrinks with the step")
    for ax in (ax_kl, ax_err):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    claim = (
        "A one-hidden-layer (16 tanh) float64 policy on 32 random states. Along a random direction and along "
        "the natural-gradient direction of a surrogate with random advantages (solved by CG as TRPO does: 10 "
        "iterations, damping 0.1), steps Δ are scaled so that "
        "½ΔᵀFΔ (F by natgrad's Fisher-vector product) takes each value from 1 down to 1e-6. The true mean KL "
        "meets the quadratic form, and the relative error falls like ‖Δ‖ ∝ √(½ΔᵀFΔ): the cubic term of the "
        "Taylor expansion over the quadratic one (a curve can dip where the cubic and quartic terms cancel)."
    )
    return Section("2. KL ≈ ½ΔᵀFΔ", claim, [Table(columns, rows)], {"quadratic.png": fig})
