"""Experiment 1: a fixed Euclidean step moves a softmax policy by a KL that depends on where it is;
the natural step of budget δ moves it by KL ≈ δ everywhere."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from natgrad.lab.bandit import gradient_and_fvp
from natgrad.lab.report import Section, Table, figure, sci
from natgrad.lab.steps import natural_step_vector
from natgrad.policy.distributions import Categorical


@dataclass(frozen=True)
class Sensitivity:
    """How far the same step moves a softmax policy as its logits saturate."""

    gaps: np.ndarray
    """logit gap θ₀ − θ_b of the preferred action 0 over each other action b"""
    top_prob: np.ndarray
    """π(a₀)"""
    euclid_kl: np.ndarray
    """KL(π_θ ‖ π_θ+Δ) of the unit-norm gradient step Δ = g/‖g‖"""
    budgets: tuple[float, ...]
    """δ of the natural steps"""
    natural_kl: np.ndarray
    """(budget, gap): KL of the natural step Δ = β F⁺g with ½ΔᵀFΔ = δ"""
    natural_norm: np.ndarray
    """(budget, gap): ‖Δ‖ of that step"""
    reward_alignment: np.ndarray
    """(gap,): cos ∠(natural step of the first δ, r), both centred"""


def kl_of_step(logits: Tensor, step: Tensor) -> float:
    """KL(π_θ ‖ π_θ+Δ) for the softmax policy of ``logits``."""
    return float(Categorical(logits.unsqueeze(0)).kl(Categorical((logits + step).unsqueeze(0))))


def sensitivity(gaps: Sequence[float], budgets: Sequence[float] = (1e-3, 1e-5), n_actions: int = 3) -> Sensitivity:
    """Policies with logits (gap, 0, …, 0) that prefer action 0 while action 1 pays 1 and the rest 0;
    the standard and natural ascent steps on J = Σ π_a r_a from each."""
    rewards = torch.zeros(n_actions, dtype=torch.float64)
    rewards[1] = 1.0
    euclid, top, natural, norms, alignment = [], [], [], [], []
    for gap in gaps:
        logits = torch.zeros(n_actions, dtype=torch.float64)
        logits[0] = gap
        g, fvp = gradient_and_fvp(logits, lambda theta: theta, rewards)
        steps = [natural_step_vector(fvp, g, delta, cg_iters=n_actions) for delta in budgets]
        euclid.append(kl_of_step(logits, g / g.norm()))
        top.append(float(torch.softmax(logits, -1)[0]))
        natural.append([kl_of_step(logits, s) for s in steps])
        norms.append([float(s.norm()) for s in steps])
        alignment.append(centred_cosine(steps[0], rewards))
    return Sensitivity(np.asarray(gaps, float), np.array(top), np.array(euclid), tuple(budgets),
                       np.array(natural).T, np.array(norms).T, np.array(alignment))


def centred_cosine(a: Tensor, b: Tensor) -> float:
    """cos ∠(a − ā, b − b̄): the angle between two logit vectors, ignoring the shift that changes no softmax."""
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / (a.norm() * b.norm()))


def section(gaps: Sequence[float] = tuple(np.linspace(0, 8, 33)), budgets: Sequence[float] = (1e-3, 1e-5)) -> Section:
    """Softmax sensitivity: KL of a unit Euclidean step vs. the natural step, against the logit gap."""
    r = sensitivity(gaps, budgets)
    shown = np.unique(np.linspace(0, len(r.gaps) - 1, 5).round().astype(int))
    columns = ["logit gap", "π(a₀)", "KL, unit step"]
    for delta in r.budgets:
        columns += [f"‖Δ‖, natural δ={delta:g}", f"KL/δ, δ={delta:g}"]
    rows = []
    for i in shown:
        row = [sci(r.gaps[i]), f"{r.top_prob[i]:.4f}", sci(r.euclid_kl[i])]
        for b, delta in enumerate(r.budgets):
            row += [sci(r.natural_norm[b, i]), f"{r.natural_kl[b, i] / delta:.3f}"]
        rows.append(row)
    fig, (ax_kl, ax_norm) = figure(ncols=2)
    ax_kl.plot(r.gaps, r.euclid_kl, "o-", ms=3, color="C3", label="standard step, ‖Δ‖ = 1")
    ax_norm.plot(r.gaps, np.ones_like(r.gaps), "o-", ms=3, color="C3", label="standard step")
    for b, delta in enumerate(r.budgets):
        color = f"C{b}"
        ax_kl.plot(r.gaps, r.natural_kl[b], "s-", ms=3, color=color, label=f"natural step, δ = {delta:g}")
        ax_kl.axhline(delta, color=color, ls=":", lw=1)
        ax_norm.plot(r.gaps, r.natural_norm[b], "s-", ms=3, color=color, label=f"natural step, δ = {delta:g}")
    ax_kl.set(yscale="log", xlabel="logit gap θ₀ − θ₁ (π prefers action 0)",
              ylabel=r"KL$(\pi_\theta \,\|\, \pi_{\theta+\Delta})$", title="KL moved by one step")
    ax_norm.set(yscale="log", xlabel="logit gap θ₀ − θ₁ (π prefers action 0)",
                ylabel="Euclidean step length ‖Δ‖", title="Length of the step in θ")
    for ax in (ax_kl, ax_norm):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ratio = r.euclid_kl.max() / r.euclid_kl.min()
    claim = (
        "π = softmax(θ) over three actions with logits (gap, 0, 0); action 1 pays 1, the others 0. "
        f"The same unit-length gradient step moves the policy by a KL that falls {ratio:.0f}× as the gap grows "
        f"from {r.gaps[0]:g} to {r.gaps[-1]:g}: F = diag(π) − ππᵀ vanishes as π saturates. The natural step "
        "Δ = β F⁺g with ½ΔᵀFΔ = δ lengthens as F shrinks and moves the policy by KL ≈ δ at every gap, "
        "as long as δ keeps it where the quadratic model holds (the larger δ drifts off at large gaps). "
        "Its direction does not fade either: for softmax logits F⁺∇J is the reward vector r itself, up to a "
        f"shift of all logits (both centred, |1 − cos| ≤ {np.abs(1 - r.reward_alignment).max():.1e} at every gap)."
    )
    return Section("1. Softmax sensitivity", claim, [Table(columns, rows)], {"softmax.png": fig})
