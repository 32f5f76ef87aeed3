"""NPG and TRPO: the same natural-gradient update, accepted differently (see natgrad.natural.step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from natgrad.algos.base import Algorithm
from natgrad.algos.compiled import CapturedStep
from natgrad.algos.critic_fit import critic_loss, fit_critic
from natgrad.config import NaturalConfig
from natgrad.natural.shared_critic import critic_fit_parameters, natural_critic_step
from natgrad.natural.step import NaturalStep, surrogate_and_state_kl
from natgrad.objectives.losses import kl_spread
from natgrad.objectives.optim import adam
from natgrad.policy.distributions import Distribution
from natgrad.rollouts.batch import UpdateBatch


class StateKL:
    """The natural step's forward (a ``Forward``) that keeps each try's KL(π_old ‖ π_θ) per state, so that the one at
    the θ the step leaves is at hand after it, with no forward pass of its own."""

    def __init__(self, forward: Callable[..., tuple[Tensor, Tensor]]) -> None:
        self.forward = forward
        """``surrogate_and_state_kl``, or a compiled copy of it"""
        self.tries: list[Tensor] = []
        """each try's per-state KL, in the order tried"""

    def __call__(self, *args: object) -> tuple[Tensor, Tensor]:
        """(L(θ), mean KL(π_old ‖ π_θ)) as ``Forward`` gives them, the try's per-state KL kept."""
        value, kl = self.forward(*args)
        self.tries.append(kl)
        return value, kl.mean()

    def at(self, step: NaturalStep, like: Tensor) -> Tensor | None:
        """The per-state KL at the θ ``step`` left: zero (shaped as ``like``, one value per state) where it was refused
        (θ = θ_old, also when it was refused before any try), else its accepted try's, the ``backtracks``-th (the
        host's line search stops there, the sync-free one makes every try); None when no try ran through here (a
        replayed CUDA graph)."""
        if not step.accepted:
            return torch.zeros_like(like)
        return self.tries[step.backtracks] if self.tries else None


class NaturalGradient(Algorithm):
    """Policy: one natural-gradient step per batch. Critic: minibatch Adam on the GAE returns (on a shared trunk:
    see ``natgrad.natural.shared_critic``)."""

    config_cls = NaturalConfig
    line_search: ClassVar[bool]
    config: NaturalConfig

    def _setup(self) -> None:
        self.critic_optimizer = adam(critic_fit_parameters(self.critic, self.config), self.config.vf_lr)
        self.optimizers = {"critic": self.critic_optimizer}
        self._forward, self._critic_loss = self.compiler(surrogate_and_state_kl), self.compiler(critic_loss)
        self._natural_step = CapturedStep(self.compiler)

    def _update(self, data: UpdateBatch, progress: float, gae: Callable[[], UpdateBatch]) -> dict[str, float]:
        cfg = self.config
        if cfg.anneal_kl:  # progress < 1 at every update, so δ_t > 0
            cfg = cfg.replace(max_kl=cfg.max_kl * (1.0 - progress))
        # whole sequences for a recurrent actor, else single states (so the FVP subsample draws states)
        seq = data.sequences(cfg.n_steps if self.actor.recurrent else 1)
        adv = self._advantages(seq)
        old = None
        if cfg.share_trunk or self._natural_step.usable(self.actor, cfg):  # a replayed graph keeps no per-state KL
            with torch.no_grad():
                old = self.actor(seq.actor_inputs).detach()
        forward = StateKL(self._forward)
        step = self._natural_step(self.actor, seq.actor_inputs, seq.actions, seq.log_probs, adv, cfg, self.line_search,
                                  self.generator, forward)
        state_kl = forward.at(step, seq.log_probs)
        if state_kl is None:
            with torch.no_grad():
                state_kl = old.kl(self.actor(seq.actor_inputs))
        loss = fit_critic(self.critic, self.critic_optimizer, data.sequences(cfg.piece_length), cfg.vf_epochs,
                          cfg.vf_minibatch_size, self.generator, self._critic_loss)
        metrics = {**step.metrics(), **kl_spread(state_kl), "policy/max_kl": cfg.max_kl, "critic/loss": loss}
        if cfg.share_trunk:
            metrics.update(self._shared_trunk_step(seq, old, cfg))
        return metrics

    def _shared_trunk_step(self, seq: UpdateBatch, old: Distribution, cfg: NaturalConfig) -> dict[str, float]:
        """The critic's step on the shared trunk ("natural" only), and the KL the whole update reached."""
        metrics = {}
        if cfg.critic_step == "natural":
            step = natural_critic_step(self.actor, self.critic, seq.actor_inputs, seq.critic_inputs, seq.returns,
                                       old, cfg)
            metrics = {"critic/trunk_step_accepted": float(step.accepted),
                       "critic/trunk_loss_decrease": step.improvement}
        with torch.no_grad():
            metrics["policy/kl_update"] = float(old.kl(self.actor(seq.actor_inputs)).mean())
        metrics["policy/kl_bound"] = cfg.max_kl + (cfg.critic_kl if cfg.critic_step == "natural" else 0.0)
        return metrics


class NPG(NaturalGradient):
    """Natural policy gradient: θ ← θ + β F⁻¹g with β = √(2δ / gᵀF⁻¹g), no line search."""

    name = "npg"
    line_search = False


class TRPO(NaturalGradient):
    """Trust region policy optimization: the NPG step, backtracked until L improves and KL ≤ δ."""

    name = "trpo"
    line_search = True
