"""The natural-gradient step shared by NPG and TRPO; they differ only in how the step is accepted.

g = ∇L(θ_old);  solve F x = g by CG;  β = √(2δ / xᵀFx);
NPG: θ = θ_old + β x.   TRPO: θ = θ_old + α^j β x for the first j with L improved and KL ≤ δ.

On a CPU, CG and the line search stop early by reading values back to the host; elsewhere the step runs with no
host synchronisation (masked CG, every line-search try made and the first acceptable one selected on the device)
and reads its figures back once, at the end. Both take the same step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from natgrad.config import NaturalConfig
from natgrad.natural.cg import conjugate_gradient, masked_conjugate_gradient
from natgrad.natural.flat import flat_params, set_flat_params
from natgrad.natural.line_search import Evaluate, MaskedLineSearchResult, backtracking_line_search, masked_line_search
from natgrad.natural.linearized import LinearizedActor
from natgrad.objectives.losses import surrogate
from natgrad.policy.actor_critic import Actor, PolicyInputs, as_inputs
from natgrad.policy.distributions import Distribution
from natgrad.policy.spaces import Obs, tree_map


@dataclass(frozen=True)
class NaturalStep:
    """What one natural-gradient update did, for logging."""

    accepted: bool
    """False: θ stayed exactly θ_old"""
    kl: float
    """mean KL(π_old ‖ π_θ) reached"""
    improvement: float
    """the rise of the objective the step raised: L(θ) − L(θ_old) for the policy, the value loss's fall for a
    shared trunk (``natgrad.natural.shared_critic``)"""
    backtracks: int
    """line-search j accepted (0 for NPG); backtrack_iters when rejected"""
    cg_iterations: int
    cg_residual: float
    step_size: float
    """β = √(2δ / xᵀFx); nan when the step was refused"""
    grad_norm: float
    """‖g‖"""

    def metrics(self) -> dict[str, float]:
        """The step as ``metrics.csv`` columns (``policy/kl``, ``policy/line_search_backtracks``, …)."""
        return {
            "policy/kl": self.kl,
            "policy/surrogate_improvement": self.improvement,
            "policy/accepted": float(self.accepted),
            "policy/line_search_backtracks": float(self.backtracks),
            "policy/cg_iterations": float(self.cg_iterations),
            "policy/cg_residual": self.cg_residual,
            "policy/step_size": self.step_size,
            "policy/grad_norm": self.grad_norm,
        }


def max_step_size(max_kl: float, xfx: float) -> float:
    """β = √(2δ / xᵀFx), so that ½ (βx)ᵀ F (βx) = δ; nan when xᵀFx is not a finite positive number."""
    if not math.isfinite(xfx) or xfx <= 0:
        return math.nan
    return math.sqrt(2 * max_kl / xfx)


def surrogate_and_kl(actor: Actor, inputs: PolicyInputs, actions: Tensor, log_probs_old: Tensor, advantages: Tensor,
                     old: Distribution) -> tuple[Tensor, Tensor]:
    """(L(θ), mean KL(π_old ‖ π_θ)) at the actor's θ: the forward pass of each try of a natural step."""
    value, kl = surrogate_and_state_kl(actor, inputs, actions, log_probs_old, advantages, old)
    return value, kl.mean()


def surrogate_and_state_kl(actor: Actor, inputs: PolicyInputs, actions: Tensor, log_probs_old: Tensor,
                           advantages: Tensor, old: Distribution) -> tuple[Tensor, Tensor]:
    """(L(θ), KL(π_old ‖ π_θ) at each state of the batch) at the actor's θ."""
    new = actor(inputs)
    return surrogate(new.log_prob(actions), log_probs_old, advantages), old.kl(new)


Forward = Callable[[Actor, PolicyInputs, Tensor, Tensor, Tensor, Distribution], tuple[Tensor, Tensor]]
"""The signature of ``surrogate_and_kl``."""


def natural_step(
    actor: Actor,
    inputs: PolicyInputs | Obs,
    actions: Tensor,
    log_probs_old: Tensor,
    advantages: Tensor,
    cfg: NaturalConfig,
    line_search: bool,
    generator: torch.Generator | None = None,
    sync_free: bool | None = None,
    forward: Forward = surrogate_and_kl,
) -> NaturalStep:
    """One NPG (``line_search=False``) or TRPO (``line_search=True``) update of ``actor``, in place.

    The states of the batch have the leading shape of ``log_probs_old``, (T, N) say; the means (L, KL, F)
    run over all of them. A recurrent actor re-runs each sequence (a column) from its stored state.
    ``sync_free``: see ``trust_region_step``. ``forward``: what evaluates each try, ``surrogate_and_kl`` or a
    compiled copy of it."""
    params, g, loss_old, fvp, evaluate = _problem(actor, inputs, actions, log_probs_old, advantages, cfg, generator,
                                                  forward)
    return trust_region_step(params, g, loss_old, fvp, evaluate=evaluate, line_search=line_search, cfg=cfg,
                             radius=cfg.max_kl, sync_free=sync_free)


def step_figures(actor: Actor, inputs: PolicyInputs, actions: Tensor, log_probs_old: Tensor, advantages: Tensor,
                 cfg: NaturalConfig, line_search: bool) -> Tensor:
    """``natural_step``'s sync-free path up to its one read-back: the step written into the actor, its figures
    (``figures_step`` reads them) left on the device. Fixed shapes and no host synchronisation: what a CUDA graph
    captures (``natgrad.algos.compiled.CapturedStep``); the full batch serves the FVPs (``fvp_fraction`` = 1)."""
    params, g, loss_old, fvp, evaluate = _problem(actor, inputs, actions, log_probs_old, advantages, cfg, None,
                                                  surrogate_and_kl)
    return _masked_step(params, g, loss_old, fvp, evaluate, line_search, cfg, cfg.max_kl, cfg.max_kl)


def _problem(actor: Actor, inputs: PolicyInputs | Obs, actions: Tensor, log_probs_old: Tensor, advantages: Tensor,
             cfg: NaturalConfig, generator: torch.Generator | None, forward: Forward
             ) -> tuple[list[torch.nn.Parameter], Tensor, Tensor, Callable[[Tensor], Tensor], Evaluate]:
    """What a natural step of ``actor`` solves: its parameters, g = ∇L(θ_old), L(θ_old), v ↦ (F + λI) v and the
    try θ ↦ (L(θ), KL)."""
    inputs = as_inputs(inputs)
    params = actor.policy_parameters()
    linear = LinearizedActor(actor, inputs)  # one forward serves L(θ_old), g and, on the full batch, the FVPs
    old = linear.dist

    def objective(dist: Distribution) -> Tensor:
        return surrogate(dist.log_prob(actions), log_probs_old, advantages)

    def evaluate(theta: Tensor) -> tuple[Tensor, Tensor]:
        """(L(θ), mean KL(π_old ‖ π_θ)) with θ written into the actor."""
        set_flat_params(params, theta)
        with torch.no_grad():
            return forward(actor, inputs, actions, log_probs_old, advantages, old)

    loss_old, g = linear.value_and_grad(objective)
    if cfg.fvp_fraction < 1.0:
        linear = LinearizedActor(actor, subsample(inputs, log_probs_old.dim(), cfg.fvp_fraction, generator,
                                                  actor.recurrent))
    return params, g, loss_old, linear.fisher_vector_product(cfg.damping), evaluate


def trust_region_step(
    params: list[torch.nn.Parameter],
    g: Tensor,
    value_old: Tensor,
    fvp: Callable[[Tensor], Tensor],
    *,
    evaluate: Evaluate,
    line_search: bool,
    cfg: NaturalConfig,
    radius: float,
    bound: float | None = None,
    sync_free: bool | None = None,
) -> NaturalStep:
    """Raise an objective of ``params`` (value ``value_old`` and gradient g at θ_old) in policy space, in place.

    Solve F x = g by CG with the Fisher-vector product ``fvp``; β = √(2·radius / xᵀFx), a step whose quadratic
    KL is ``radius``. NPG: θ_old + βx. TRPO: θ_old + α^j βx for the first j where ``evaluate`` (which writes θ
    into the parameters and returns (objective, mean KL(π_old ‖ π_θ))) shows the objective improved and the KL
    within ``bound`` (``radius`` when None); if none, θ_old bit for bit. A step that is not finite is never taken.
    ``cfg`` gives the solver's settings only: CG's iterations and tolerance, the line search's coefficient and
    tries. ``sync_free`` (None: when g is not on the CPU) takes the same step with no host synchronisation but
    the one read-back of its figures at the end, at the cost of every line-search try."""
    bound = radius if bound is None else bound
    if sync_free is None:
        sync_free = g.device.type != "cpu"
    if sync_free:
        return figures_step(_masked_step(params, g, value_old, fvp, evaluate, line_search, cfg, radius, bound), cfg)
    theta_old = flat_params(params)
    cg = conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_tol)
    beta = max_step_size(radius, float(cg.x @ fvp(cg.x)))

    def outcome(accepted: bool, kl: float = 0.0, improvement: float = 0.0, backtracks: int = 0) -> NaturalStep:
        """What the step did, with the CG solve's figures."""
        return _as_reported(NaturalStep(accepted=accepted, kl=kl, improvement=improvement, backtracks=backtracks,
                                        cg_iterations=cg.iterations, cg_residual=cg.residual_norm, step_size=beta,
                                        grad_norm=float(g.norm())), cfg)

    if math.isnan(beta) or not torch.isfinite(cg.x).all():
        return outcome(False)  # xᵀFx ≤ 0 or non-finite: a NaN step, never taken
    full_step = beta * cg.x
    if line_search:
        result = backtracking_line_search(evaluate, theta_old, full_step, float(value_old), bound, cfg.backtrack_coef,
                                          cfg.backtrack_iters)
        set_flat_params(params, result.theta)
        return outcome(result.accepted, result.kl, result.surrogate - float(value_old), result.backtracks)
    new_value, kl = map(float, evaluate(theta_old + full_step))
    if not (math.isfinite(new_value) and math.isfinite(kl)):
        set_flat_params(params, theta_old)
        return outcome(False)
    return outcome(True, kl, new_value - float(value_old))


def _as_reported(step: NaturalStep, cfg: NaturalConfig) -> NaturalStep:
    """``step`` as logged: a refused one (θ stayed θ_old) with KL and improvement 0, every try spent and β nan."""
    if step.accepted:
        return step
    return replace(step, kl=0.0, improvement=0.0, backtracks=cfg.backtrack_iters, step_size=math.nan)


def _masked_step(params: list[torch.nn.Parameter], g: Tensor, value_old: Tensor, fvp: Callable[[Tensor], Tensor],
                 evaluate: Evaluate, line_search: bool, cfg: NaturalConfig, radius: float, bound: float) -> Tensor:
    """``trust_region_step`` with no host synchronisation: the step is written into ``params`` and its figures
    returned on the device in float64, (accepted, KL, L(θ), L(θ_old), backtracks, CG iterations, CG residual, β, ‖g‖).
    A refusal (xᵀFx ≤ 0 or not finite) is a device flag that zeroes the step and the acceptance."""
    theta_old = flat_params(params)
    cg = masked_conjugate_gradient(fvp, g, cfg.cg_iters, cfg.cg_tol)
    xfx = cg.x @ fvp(cg.x)
    valid = torch.isfinite(xfx) & (xfx > 0) & torch.isfinite(cg.x).all()
    beta = torch.sqrt(2 * radius / _wide(xfx))
    full_step = torch.where(valid, beta * cg.x, 0.0)
    if line_search:
        found = masked_line_search(evaluate, theta_old, full_step, value_old, bound, cfg.backtrack_coef,
                                   cfg.backtrack_iters)
    else:
        theta = theta_old + full_step
        surrogate, kl = evaluate(theta)
        found = MaskedLineSearchResult(theta, torch.isfinite(surrogate) & torch.isfinite(kl),
                                       torch.zeros_like(cg.iterations), surrogate, kl)
    accepted = valid & found.accepted
    set_flat_params(params, torch.where(accepted, found.theta, theta_old))
    figures = (accepted, found.kl, found.surrogate, value_old, found.backtracks, cg.iterations, cg.residual_norm,
               beta, g.norm())
    return torch.stack([f.to(beta.dtype) for f in figures])


def _wide(x: Tensor) -> Tensor:
    """x in float64, the host's precision for β and the figures, wherever the device has it (not on Apple's MPS)."""
    return x if x.device.type == "mps" else x.double()


def figures_step(figures: Tensor, cfg: NaturalConfig) -> NaturalStep:
    """The one host synchronisation of a sync-free step: its figures (``_masked_step``) as a ``NaturalStep``."""
    accepted, kl, surrogate, value_old, backtracks, iterations, residual, beta, grad_norm = figures.tolist()
    return _as_reported(NaturalStep(accepted=bool(accepted), kl=kl, improvement=surrogate - value_old,
                                    backtracks=int(backtracks), cg_iterations=int(iterations), cg_residual=residual,
                                    step_size=beta, grad_norm=grad_norm), cfg)


def subsample(inputs: PolicyInputs, lead: int, fraction: float, generator: torch.Generator | None,
              sequences: bool) -> PolicyInputs:
    """A random ``fraction`` (at least one) of a batch whose states have ``lead`` leading dimensions: whole
    sequences (columns of (T, N)) when ``sequences``, each from its stored state; else single states, (n, …)."""
    if sequences:
        count = inputs.first.shape[1]
        return inputs.columns(torch.randperm(count, generator=generator)[: max(1, int(count * fraction))])
    flat = lambda x: x.reshape(-1, *x.shape[lead:])
    obs = tree_map(flat, inputs.obs)
    count = len(next(iter(obs.values())) if isinstance(obs, dict) else obs)
    pick = torch.randperm(count, generator=generator)[: max(1, int(count * fraction))]
    return PolicyInputs(tree_map(lambda x: x[pick], obs), None if inputs.mask is None else flat(inputs.mask)[pick])
