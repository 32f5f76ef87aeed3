"""GRPO and GRPO-KL: ``num_iterations`` Adam steps on each batch, on TRL's per-token loss.

GRPO (TRL's definition): ℓ_t = −min(r_t Â, clip(r_t, 1 − ε, 1 + ε) Â) + β k3_t, aggregated by ``loss_type``.
GRPO-KL: ℓ_t = −r_t Â + β_t KL_t(π_old ‖ π_θ) + β k3_t, and β_t ← adapt(β_t, mean token KL) after each update, as
PPO-KL adapts its β (``natgrad.objectives.adaptive_kl``). r_t = π_θ/π_old at token t, Â the completion's
group-relative advantage, k3_t the estimate of KL(π_θ ‖ π_ref) at token t.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from natgrad.lm.config import GradientConfig, GRPOConfig, GRPOKLConfig
from natgrad.lm.engine import Batch, LMAlgorithm
from natgrad.lm.losses import aggregate, clip_fraction, clipped_objective, k3, token_kl, token_log_probs
from natgrad.lm.sampling import completion_logits
from natgrad.objectives.adaptive_kl import adapt_beta
from natgrad.objectives.losses import ratio
from natgrad.objectives.optim import adam


def grpo_loss(log_probs: Tensor, batch: Batch, cfg: GradientConfig, objective: Tensor) -> Tensor:
    """aggregate(−objective_t + β k3_t): the loss of one pass, given the per-token objective to maximize."""
    per_token = -objective
    if cfg.beta:
        per_token = per_token + cfg.beta * k3(log_probs, batch.ref_log_probs)
    return aggregate(per_token, batch.mask, cfg.loss_type, cfg.max_completion_length)


class GRPO(LMAlgorithm):
    """Group relative policy optimization, as TRL's GRPOTrainer computes it."""

    name = "grpo"
    config_cls = GRPOConfig
    config: GradientConfig

    def _setup(self) -> None:
        self.optimizer = adam(self.params, self.config.learning_rate)

    def _objective(self, log_probs: Tensor, logits: Tensor, batch: Batch) -> Tensor:
        """The per-token objective to maximize: the clipped ratio times the advantage."""
        return clipped_objective(log_probs, batch.log_probs_old, batch.advantages, self.config.epsilon)

    def _update(self, batch: Batch) -> dict[str, float]:
        cfg, tokens = self.config, batch.rollout.completion_ids
        losses = []
        for _ in range(cfg.num_iterations):
            logits = completion_logits(self.model, batch.rollout, cfg.temperature)
            log_probs = token_log_probs(logits, tokens)
            loss = grpo_loss(log_probs, batch, cfg, self._objective(log_probs, logits, batch))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
            self.optimizer.step()
            losses.append(float(loss.detach()))
        return {"policy/loss": sum(losses) / len(losses), **self._after_update(batch, log_probs.detach())}

    def _after_update(self, batch: Batch, log_probs: Tensor) -> dict[str, float]:
        """Metrics of the last pass: the fraction of tokens whose clip bound."""
        return {"policy/clip_fraction": float(clip_fraction(log_probs, batch.log_probs_old, batch.advantages,
                                                            self.config.epsilon, batch.mask))}

    def _extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict()}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])


class GRPOKL(GRPO):
    """GRPO with an adaptive penalty on the exact token KL(π_old ‖ π_θ) in place of the clip (PPO-KL's rule)."""

    name = "grpo-kl"
    config_cls = GRPOKLConfig
    config: GRPOKLConfig

    def _setup(self) -> None:
        super()._setup()
        self.kl_coef = self.config.kl_coef_init

    def _objective(self, log_probs: Tensor, logits: Tensor, batch: Batch) -> Tensor:
        """r_t Â − β_t KL_t(π_old ‖ π_θ)."""
        surrogate = ratio(log_probs, batch.log_probs_old) * batch.advantages.unsqueeze(-1)
        return surrogate - self.kl_coef * token_kl(batch.logits_old, logits)

    def _after_update(self, batch: Batch, log_probs: Tensor) -> dict[str, float]:
        """The β_t this update used, and d_targ."""
        return {"policy/beta": self.kl_coef, "policy/kl_target": self.config.kl_target}

    def _adapt(self, kl: float) -> None:
        """β_t for the next update, from the mean token KL this one reached."""
        cfg = self.config
        self.kl_coef = adapt_beta(self.kl_coef, kl, cfg.kl_target, cfg.kl_coef_min, cfg.kl_coef_max)

    def _extra_state(self) -> dict[str, Any]:
        return {**super()._extra_state(), "kl_coef": self.kl_coef}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        super()._load_extra_state(state)
        self.kl_coef = state["kl_coef"]
