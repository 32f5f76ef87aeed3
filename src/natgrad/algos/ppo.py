"""PPO-Clip and PPO-KL: the same epochs of minibatch Adam, differing only in the policy objective."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from natgrad.algos.base import Algorithm
from natgrad.config import PPOConfig, PPOKLConfig, ProximalConfig
from natgrad.objectives.adaptive_kl import adapt_beta
from natgrad.objectives.batching import minibatches
from natgrad.objectives.losses import (
    approx_kl,
    clipped_surrogate,
    kl_penalized_surrogate,
    kl_spread,
    ratio,
    surrogate,
    value_loss,
)
from natgrad.objectives.optim import adam
from natgrad.policy.distributions import Distribution
from natgrad.rollouts.batch import UpdateBatch


class Proximal(Algorithm):
    """Several epochs over the batch of:  loss = −objective − c_ent·H + c_vf·½(V − R)², one Adam for both nets."""

    config: ProximalConfig

    def _setup(self) -> None:
        params = [*self.actor.parameters(), *self.critic.parameters()]
        self.optimizer = adam(params, self.config.lr, eps=1e-5)
        self.optimizers = {"ppo": self.optimizer}
        self._loss = self.compiler(self._minibatch_loss)
        cfg = self.config
        if cfg.minibatch_count < cfg.minibatches:
            what, more = (("states (n_envs*n_steps)", "n_envs or n_steps") if cfg.recurrent == "none" else
                          ("sequence pieces (n_envs*n_steps/seq_len)", "n_envs, or set a seq_len dividing n_steps"))
            warnings.warn(f"minibatches={cfg.minibatches} is more than the {cfg.pieces} {what} of a batch: each "
                          f"epoch takes {cfg.pieces} minibatch(es) of one; set minibatches <= {cfg.pieces}, or raise "
                          f"{more}", stacklevel=2)

    def _objective(self, log_probs: Tensor, log_probs_old: Tensor, adv: Tensor, old: Distribution,
                   new: Distribution, coefs: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        """The policy objective to maximize on one minibatch, and its diagnostics (0-d tensors): ``log_probs`` are
        those of ``_policy(new, old)``, ``new`` is π_θ."""
        raise NotImplementedError

    def _policy(self, new: Distribution, old: Distribution) -> Distribution:
        """The policy whose log-probabilities the objective scores: π_θ itself (TRPL: π_θ projected onto the trust
        region around π_old)."""
        return new

    def _coefs(self) -> tuple[Tensor, ...]:
        """The objective's coefficients that change between updates, as tensors on the device (so that a compiled
        loss takes them as inputs rather than compiling again for each value)."""
        return ()

    def _after_update(self, kl: float) -> dict[str, float]:
        """Algorithm state to adapt once per update, given the KL reached; returns metrics."""
        return {}

    def _kl_limit(self) -> float:
        """A mean KL(π_old ‖ π_θ) over the batch past which the update's epochs end (0: none)."""
        return 0.0

    def _update(self, data: UpdateBatch, progress: float, gae: Callable[[], UpdateBatch]) -> dict[str, float]:
        """Up to ``epochs`` passes of minibatch Adam over the batch; an epoch past a KL rule ends the update."""
        cfg = self.config
        lr = self._anneal_lr(progress)
        pieces = data.sequences(cfg.piece_length)  # single states, or sequence pieces from their stored states
        with torch.no_grad():
            old = self.actor(pieces.actor_inputs).detach()
        diagnostics: list[dict[str, float]] = []
        kl_stopped, coefs = False, self._coefs()
        for epochs_run in range(1, cfg.epochs + 1):
            if epochs_run > 1 and cfg.recompute_advantages:
                # Â and R again, with the critic the last epoch trained (V_old for clip_vf too)
                pieces = gae().sequences(cfg.piece_length)
            diagnostics += self._epoch(pieces, old, coefs)
            if self._past_target_kl(diagnostics[-1]):
                break
            if epochs_run < cfg.epochs and self._past_kl_limit(pieces, old):
                kl_stopped = True
                break
        metrics = self._update_metrics(diagnostics, pieces, old)
        metrics.update({"policy/epochs": float(epochs_run), "policy/lr": lr})
        if self._kl_limit():
            metrics["policy/kl_stopped"] = float(kl_stopped)
        metrics.update(self._after_update(metrics["policy/kl"]))
        return metrics

    def _anneal_lr(self, progress: float) -> float:
        """Set Adam's step size for this update, lr·(1 − t/T) with ``anneal_lr`` (else lr), and return it."""
        cfg = self.config
        lr = cfg.lr * (1.0 - progress) if cfg.anneal_lr else cfg.lr
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def _epoch(self, pieces: UpdateBatch, old: Distribution, coefs: tuple[Tensor, ...]) -> list[dict[str, float]]:
        """One pass over the batch in random minibatches of its states or pieces; each minibatch's diagnostics."""
        count = pieces.returns.shape[1]
        return [self._minibatch_step(pieces.columns(idx), old[:, idx], coefs)
                for idx in minibatches(count, count // self.config.minibatch_count, self.generator)]

    def _minibatch_step(self, mb: UpdateBatch, old: Distribution, coefs: tuple[Tensor, ...]) -> dict[str, float]:
        """One Adam step on the minibatch loss (gradient norm clipped to ``max_grad_norm``); the objective's
        diagnostics, the value loss and the approximate KL."""
        loss, diagnostics = self._loss(mb, old, coefs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.max_grad_norm > 0:
            params = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm)
        self.optimizer.step()
        return {k: float(v) for k, v in diagnostics.items()}

    def _minibatch_loss(self, mb: UpdateBatch, old: Distribution,
                        coefs: tuple[Tensor, ...]) -> tuple[Tensor, dict[str, Tensor]]:
        """−objective − c_ent·H + c_vf·½(V − R)² on one minibatch, and its diagnostics (the objective's, the value
        loss, the approximate KL): a pure function of tensors, what ``compile=True`` compiles."""
        cfg = self.config
        dist = self.actor(mb.actor_inputs)
        log_p = self._policy(dist, old).log_prob(mb.actions)
        adv = self._advantages(mb)
        objective, info = self._objective(log_p, mb.log_probs, adv, old, dist, coefs)
        v_loss = value_loss(self.critic(mb.critic_inputs), mb.returns, mb.values, cfg.clip_vf or None)
        loss = -objective - cfg.ent_coef * dist.entropy().mean() + cfg.vf_coef * v_loss
        return loss, {**info, "critic/loss": v_loss.detach(),
                      "policy/approx_kl": approx_kl(log_p.detach(), mb.log_probs)}

    def _past_target_kl(self, last: dict[str, float]) -> bool:
        """Early stop 1 (``target_kl``, any PPO): the last minibatch's approximate KL passed ``target_kl``."""
        target = self.config.target_kl
        return bool(target) and last["policy/approx_kl"] > target

    def _past_kl_limit(self, pieces: UpdateBatch, old: Distribution) -> bool:
        """Early stop 2 (``_kl_limit``, PPO-KL's ``kl_stop``): the batch's mean KL(π_old ‖ π_θ) passed the limit."""
        limit = self._kl_limit()
        if not limit:
            return False
        with torch.no_grad():
            return float(old.kl(self.actor(pieces.actor_inputs)).mean()) > limit

    def _update_metrics(self, diagnostics: list[dict[str, float]], pieces: UpdateBatch,
                        old: Distribution) -> dict[str, float]:
        """The minibatches' diagnostics averaged, then π_new on the whole batch: KL(π_old ‖ π_new) (its mean, and
        its spread over the states), the surrogate's rise L(θ_new) − L(θ_old) (L(θ_old) = mean Â) and the entropy."""
        with torch.no_grad():
            new = self.actor(pieces.actor_inputs)
            state_kl = old.kl(new)
            kl = float(state_kl.mean())
            adv = self._advantages(pieces)
            improvement = float(surrogate(new.log_prob(pieces.actions), pieces.log_probs, adv) - adv.mean())
            entropy = float(new.entropy().mean())
        metrics = {k: sum(d[k] for d in diagnostics) / len(diagnostics) for k in diagnostics[0]}
        metrics.update({"policy/kl": kl, **kl_spread(state_kl), "policy/surrogate_improvement": improvement,
                        "policy/entropy": entropy})
        return metrics


class PPO(Proximal):
    """PPO-Clip: L^CLIP = E[min(r Â, clip(r, 1 − ε, 1 + ε) Â)]."""

    name = "ppo"
    config_cls = PPOConfig
    config: PPOConfig

    def _objective(self, log_probs, log_probs_old, adv, old, new, coefs):
        eps = self.config.clip_range
        clipped = (ratio(log_probs, log_probs_old) - 1).abs() > eps
        return (clipped_surrogate(log_probs, log_probs_old, adv, eps),
                {"policy/clip_fraction": clipped.float().mean().detach()})


class PPOKL(Proximal):
    """PPO-KL: L^KLPEN = E[r Â] − β KL(π_old ‖ π_θ), β doubled or halved after each update; the epochs end
    early once the batch's mean KL passes ``kl_stop``·d_targ."""

    name = "ppo-kl"
    config_cls = PPOKLConfig
    config: PPOKLConfig

    def _setup(self) -> None:
        super()._setup()
        self.beta = self.config.beta_init

    def _objective(self, log_probs, log_probs_old, adv, old, new, coefs):
        (beta,) = coefs
        return kl_penalized_surrogate(log_probs, log_probs_old, adv, old.kl(new), beta), {}

    def _coefs(self) -> tuple[Tensor, ...]:
        """(β,)."""
        return (torch.tensor(self.beta, dtype=self.actor.net[-1].weight.dtype, device=self.device),)

    def _kl_limit(self) -> float:
        return self.config.kl_stop * self.config.kl_target

    def _after_update(self, kl: float) -> dict[str, float]:
        cfg = self.config
        used = self.beta
        self.beta = adapt_beta(self.beta, kl, cfg.kl_target, cfg.beta_min, cfg.beta_max)
        return {"policy/beta": used, "policy/beta_next": self.beta}

    def _extra_state(self) -> dict[str, Any]:
        return {"beta": self.beta}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])
