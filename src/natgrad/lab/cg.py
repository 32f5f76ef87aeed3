"""Experiment 6: how well CG solves F x = g on a real TRPO batch, and what that does to the accepted step."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor

from natgrad.algos import TRPO
from natgrad.config import NaturalConfig
from natgrad.lab.curves import SHARED
from natgrad.lab.report import Section, Table, figure, sci
from natgrad.natural.cg import conjugate_gradient
from natgrad.natural.fisher import fisher_vector_product
from natgrad.natural.flat import flat_grad, flat_params
from natgrad.natural.step import NaturalStep, natural_step
from natgrad.objectives.gae import normalize
from natgrad.objectives.losses import surrogate
from natgrad.policy.actor_critic import Actor
from natgrad.rollouts.advantages import update_batch
from natgrad.rollouts.collector import Collector

ITERS = (1, 3, 10, 25)
DAMPINGS = (0.0, 0.01, 0.1, 1.0)
ROUND_OFF = 1e-6  # relative changes of φ below this are float32 noise


@dataclass(frozen=True)
class Batch:
    """One TRPO batch, flattened, with GAE advantages normalized (TRPO's default): what ``natural_step`` is given."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    advantages: Tensor


def trpo_batch(env_id: str, seed: int, pretrain_steps: int, overrides: dict[str, Any]) -> tuple[TRPO, Batch]:
    """A TRPO model trained for ``pretrain_steps``, and a fresh batch of its policy prepared as ``learn`` does.

    Its config is TRPO's defaults with ``overrides``, passed explicitly as in the curves experiment.
    """
    model = TRPO(env_id, seed=seed, config=NaturalConfig().replace(**overrides)).learn(pretrain_steps)
    cfg = model.config
    collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler, seed=seed + 1)
    data = update_batch(collector.collect(cfg.n_steps), model.critic, cfg.gamma, cfg.gae_lambda)
    return model, Batch(data.obs, data.actions, data.log_probs, normalize(data.advantages))


@dataclass(frozen=True)
class CGTrace:
    """The k-th CG iterate x_k for k = 1 … K, from x₀ = 0, for (F + λI) x = g."""

    residual: np.ndarray
    """‖(F + λI) x_k − g‖ / ‖g‖"""
    model: np.ndarray
    """φ(x_k) = ½ x_kᵀ(F + λI)x_k − gᵀx_k, which CG lowers at every iteration"""

    @property
    def model_gap(self) -> np.ndarray:
        """(φ(x_k) − φ(x_K)) / |φ(x_K)| for k < K: the share of the last iterate's decrease of φ still missing."""
        return (self.model[:-1] - self.model[-1]) / abs(self.model[-1])


def cg_trace(actor: Actor, batch: Batch, damping: float, max_iters: int) -> CGTrace:
    """CG on TRPO's system for the batch, iterate by iterate.

    CG is deterministic from x₀ = 0, so the run capped at k iterations ends at the k-th iterate; residual and
    φ are recomputed with a fresh product, not taken from CG's own running estimate.
    """
    params = list(actor.parameters())
    dist = actor(batch.obs)
    g = flat_grad(surrogate(dist.log_prob(batch.actions), batch.log_probs, batch.advantages), params,
                  retain_graph=True)
    fvp = fisher_vector_product(dist.detach().kl(dist).mean(), params, damping)
    residual, model = [], []
    for k in range(1, max_iters + 1):
        x = conjugate_gradient(fvp, g, k, tol=0.0).x
        ax = fvp(x)
        residual.append(float((ax - g).norm() / g.norm()))
        model.append(float(0.5 * x @ ax - g @ x))
    return CGTrace(np.array(residual), np.array(model))


@dataclass(frozen=True)
class Accepted:
    """One accepted natural-gradient step at a given damping and CG budget."""

    damping: float
    cg_iters: int
    step: NaturalStep
    """what natural_step reported"""
    delta: Tensor
    """θ − θ_old actually taken"""


def accepted_steps(model: TRPO, batch: Batch, iters: Sequence[int], dampings: Sequence[float]) -> list[Accepted]:
    """TRPO's update of the same batch, from the same θ_old, for every (damping, CG iterations)."""
    theta_old = flat_params(list(model.actor.parameters()))
    out = []
    for damping in dampings:
        for k in iters:
            actor = copy.deepcopy(model.actor)
            cfg = model.config.replace(cg_iters=k, damping=damping)
            step = natural_step(actor, batch.obs, batch.actions, batch.log_probs, batch.advantages, cfg,
                                line_search=True)
            out.append(Accepted(damping, k, step, flat_params(list(actor.parameters())) - theta_old))
    return out


def cosine(a: Tensor, b: Tensor) -> float:
    """cos ∠(a, b); nan when either is zero."""
    norms = float(a.norm() * b.norm())
    return float(a @ b) / norms if norms > 0 else float("nan")


def section(iters: Sequence[int] = ITERS, dampings: Sequence[float] = DAMPINGS, env_id: str = "CartPole-v1",
            pretrain_steps: int = 20_480, overrides: dict[str, Any] = SHARED) -> Section:
    """CG quality: residual per CG iteration on a real TRPO batch; the accepted step by iterations and damping."""
    model, batch = trpo_batch(env_id, 0, pretrain_steps, overrides)
    traces = {d: cg_trace(model.actor, batch, d, max(iters)) for d in dampings}
    steps = accepted_steps(model, batch, iters, dampings)
    model.close()
    reference = {s.damping: s.delta for s in steps if s.cg_iters == max(iters)}
    rows = [[f"{s.damping:g}", str(s.cg_iters), str(s.step.cg_iterations),
             sci(traces[s.damping].residual[s.step.cg_iterations - 1], 2), sci(float(s.delta.norm()), 3),
             f"{cosine(s.delta, reference[s.damping]):.3f}", sci(s.step.kl, 3), sci(s.step.improvement, 3),
             str(s.step.backtracks) if s.step.accepted else "rejected"] for s in steps]
    columns = ["damping λ", "CG cap", "iterations run", "relative residual", "‖Δθ‖",
               f"cos(Δθ, Δθ at cap {max(iters)})", "KL", "L(θ) − L(θ_old)", "backtracks"]
    fig, (ax_res, ax_model, ax_imp, ax_kl) = figure(ncols=2, nrows=2, width=5.4, height=4.0)
    k = np.arange(1, max(iters) + 1)
    for i, damping in enumerate(dampings):
        style = dict(color=f"C{i}", label=f"λ = {damping:g}")
        ax_res.plot(k, traces[damping].residual, "o-", ms=3, **style)
        gap = traces[damping].model_gap
        ax_model.plot(k[:-1], np.where(gap > ROUND_OFF, gap, np.nan), "o-", ms=3, **style)
        mine = [s for s in steps if s.damping == damping]
        ax_imp.plot([s.cg_iters for s in mine], [s.step.improvement for s in mine], "s-", **style)
        ax_kl.plot([s.cg_iters for s in mine], [s.step.kl for s in mine], "s-", **style)
    max_kl = model.config.max_kl
    ax_kl.axhline(max_kl, color="k", ls=":", label=f"δ = {max_kl:g}")
    last = max(iters)
    ax_res.set(yscale="log", xlabel="CG iteration k", ylabel=r"$\|(F + \lambda I)x_k - g\| \,/\, \|g\|$",
               title="Residual of the k-th CG iterate")
    ax_model.set(yscale="log", xlabel="CG iteration k",
                 ylabel=rf"$(\varphi(x_k) - \varphi(x_{{{last}}}))\,/\,|\varphi(x_{{{last}}})|$, above {ROUND_OFF:g}",
                 title="What CG lowers at every iteration:\n" + r"$\varphi(x) = \frac{1}{2}x^T(F + \lambda I)x - g^Tx$")
    ax_imp.set(xscale="log", xlabel="CG iterations (cap)", ylabel="L(θ) − L(θ_old)",
               title="Surrogate improvement of TRPO's accepted step")
    ax_kl.set(xscale="log", xlabel="CG iterations (cap)", ylabel=r"KL$(\pi_{old} \,\|\, \pi_\theta)$",
              title="KL of TRPO's accepted step")
    for ax in (ax_res, ax_model, ax_imp, ax_kl):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in (ax_imp, ax_kl):
        ax.set_xticks(list(iters), [str(n) for n in iters])
    claim = (
        f"TRPO on {env_id} after {pretrain_steps} steps (64-64 tanh actor in float32, a batch of "
        f"{len(batch.obs)} states); CG solves (F + λI) x = g from x₀ = 0 for several dampings λ. Top: with λ > 0 "
        "the residual of the k-th iterate falls by orders of magnitude in 10–25 iterations, the faster the larger λ "
        "(F + λI is better conditioned), down to float32 round-off. It need not fall at every iteration: CG "
        "lowers φ(x) = ½xᵀ(F + λI)x − gᵀx at every iteration (the error in the (F + λI)-norm), not the residual "
        "(top right, down to float32 round-off). "
        "Without damping F is singular (one free logit per state, 2 actions, fewer states than weights) and CG "
        "makes little progress. Table and bottom: TRPO's accepted step from the same θ_old with CG capped at "
        f"{', '.join(map(str, iters))} iterations (it stops earlier once ‖r‖² < 1e-10). One iteration gives the "
        "plain gradient direction, scaled to δ; by 10 iterations the step has converged (cosine ≈ 1 with the "
        "longest run) and improves the surrogate more. More damping gives a shorter, more gradient-like step."
    )
    return Section("6. Conjugate-gradient quality", claim, [Table(columns, rows)], {"cg.png": fig})
