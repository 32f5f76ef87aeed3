"""Experiment 4: the natural gradient does not depend on how the policy is parameterized; the standard one does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from natgrad.lab.bandit import expected_reward, gradient_and_fvp
from natgrad.lab.report import Section, Table, figure, sci
from natgrad.lab.steps import natural_step_vector

REWARDS = (1.0, 0.5, 0.0)
START = (0.1, 0.2, 0.7)  # π₀: the best arm is the least likely
MIX = ((1.0, 2.0, 0.0), (0.0, 1.0, 0.0), (0.5, 0.0, 1.0))  # A, invertible (det 1) and far from orthogonal
STEPS, LR, MAX_KL = 15, 2.0, 0.01  # ascent steps, standard step size η, natural step budget δ


@dataclass(frozen=True)
class Parameterization:
    """logits = f(θ), one-to-one, with its inverse."""

    name: str
    to_logits: Callable[[Tensor], Tensor]
    from_logits: Callable[[Tensor], Tensor]


def parameterizations() -> list[Parameterization]:
    """θ itself, a linear map Aθ, and the elementwise non-linear sinh θ: three coordinates on one policy class."""
    a = torch.tensor(MIX, dtype=torch.float64)
    return [
        Parameterization("logits = θ", lambda theta: theta, lambda logits: logits),
        Parameterization("logits = Aθ", lambda theta: a @ theta, lambda logits: torch.linalg.solve(a, logits)),
        Parameterization("logits = sinh θ", torch.sinh, torch.asinh),
    ]


def trajectory(param: Parameterization, steps: int, natural: bool, lr: float, max_kl: float) -> np.ndarray:
    """π after each of ``steps`` ascent steps on J from π₀, (steps + 1, arms).

    Standard: θ ← θ + η ∇_θJ.  Natural: θ ← θ + β F⁺∇_θJ with ½ΔᵀFΔ = δ (F in the same coordinates θ).
    Keep ``steps`` short of convergence: as π saturates F → 0, and a step of fixed δ grows without bound.
    """
    rewards = torch.tensor(REWARDS, dtype=torch.float64)
    theta = param.from_logits(torch.tensor(START, dtype=torch.float64).log())
    probs = [torch.softmax(param.to_logits(theta), -1)]
    for _ in range(steps):
        g, fvp = gradient_and_fvp(theta, param.to_logits, rewards)
        theta = theta + (natural_step_vector(fvp, g, max_kl, cg_iters=len(theta)) if natural else lr * g)
        probs.append(torch.softmax(param.to_logits(theta), -1))
    return torch.stack(probs).detach().numpy()


@dataclass(frozen=True)
class Invariance:
    """Policy trajectories of standard and natural steps under several parameterizations."""

    names: list[str]
    """the parameterizations"""
    standard: list[np.ndarray]
    """one trajectory of π per parameterization"""
    natural: list[np.ndarray]
    natural_small: list[np.ndarray]
    """natural steps of δ/100, 10× as many, every 10th policy"""

    def gaps(self, method: str) -> list[float]:
        """max over steps and actions of |π_k − π'_k| between the first parameterization and each other one."""
        paths = getattr(self, method)
        return [float(np.abs(p - paths[0]).max()) for p in paths[1:]]


def invariance(steps: int = STEPS, lr: float = LR, max_kl: float = MAX_KL) -> Invariance:
    """Standard and natural ascent from the same π₀ in each parameterization."""
    params = parameterizations()
    return Invariance(
        [p.name for p in params],
        [trajectory(p, steps, False, lr, max_kl) for p in params],
        [trajectory(p, steps, True, lr, max_kl) for p in params],
        [trajectory(p, 10 * steps, True, lr, max_kl / 100)[::10] for p in params],
    )


def simplex_xy(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points of the 3-action simplex in the plane: action 0 at the top, 1 bottom right, 2 bottom left."""
    return probs[:, 1] + probs[:, 0] / 2, probs[:, 0] * np.sqrt(3) / 2


def section(steps: int = STEPS, lr: float = LR, max_kl: float = MAX_KL) -> Section:
    """Parameterization invariance: standard vs natural ascent paths of one bandit policy in three coordinates."""
    r = invariance(steps, lr, max_kl)
    rewards = torch.tensor(REWARDS, dtype=torch.float64)
    methods = [("standard", f"standard, η = {lr:g}, {steps} steps"),
               ("natural", f"natural, δ = {max_kl:g}, {steps} steps"),
               ("natural_small", f"natural, δ = {max_kl / 100:g}, {10 * steps} steps")]
    columns = ["ascent", *(f"max gap: θ vs {n.split(' = ')[1]}" for n in r.names[1:]),
               *(f"final J, {n}" for n in r.names)]
    rows = []
    for method, label in methods:
        finals = [float(expected_reward(torch.from_numpy(np.log(p[-1])), rewards)) for p in getattr(r, method)]
        rows.append([label, *(sci(gap, 2) for gap in r.gaps(method)), *(f"{j:.4f}" for j in finals)])
    fig, axes = figure(ncols=2, width=5.0, height=4.6)
    corners = simplex_xy(np.eye(3))
    styles = [dict(lw=4, alpha=0.35), dict(lw=1.5, ls="--", marker="o", ms=3), dict(lw=1.5, ls=":", marker="x", ms=4)]
    for ax, (method, label) in zip(axes, methods[:2]):
        ax.fill(*corners, color="0.95", edgecolor="0.5")
        for i, (name, path) in enumerate(zip(r.names, getattr(r, method))):
            ax.plot(*simplex_xy(path), color=f"C{i}", label=name, **styles[i])
        ax.plot(*simplex_xy(np.array([START])), "k*", ms=10, label="π₀")
        for (x, y), text in zip(zip(*corners), [f"action {a}, r = {REWARDS[a]:g}" for a in range(3)]):
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(0, 6 if y > 0 else -14),
                        ha="center", fontsize=8)
        ax.set(title=label, xlim=(-0.15, 1.15), ylim=(-0.12, 1.0), aspect="equal",
               xlabel="π(1) + π(0)/2", ylabel="π(0) · √3/2")
        ax.legend(fontsize=8, loc="upper right")
    claim = (
        f"A 3-armed bandit (rewards {REWARDS}), π = softmax(logits) from π₀ = {START}, ascent on "
        "J = Σ π_a r_a with exact gradients, in three coordinates for the same policy class: θ, a linear "
        f"θ' with logits = Aθ' (A = {[list(row) for row in MIX]}), and an elementwise non-linear θ'' with "
        "logits = sinh θ''. The standard gradient walks a different path in policy space for each "
        "parameterization (∇_θ'J = Aᵀ∇_θJ moves the logits by AAᵀ∇_θJ). The natural step, F and ∇J taken in "
        "each parameterization's own coordinates, moves the policy the same way: exactly (to round-off) for the "
        "linear A, and to first order for sinh, where the gap shrinks like √δ as the steps shrink."
    )
    return Section("4. Parameterization invariance", claim, [Table(columns, rows)], {"invariance.png": fig})
