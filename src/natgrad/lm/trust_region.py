"""TRPO and NPG on token policies: natgrad's natural step (``natgrad.natural.step.trust_region_step``) with the exact
token Fisher (``natgrad.lm.fisher``).

maximize L(θ) = mean_t [π_θ(y_t)/π_old(y_t) · Â] − β mean_t k3_t   subject to   mean_t KL(π_old ‖ π_θ)_t ≤ δ,

the means over the generated tokens t of the batch (padding excluded). g = ∇L, F x = g by CG with damping,
β = √(2δ / xᵀFx); NPG takes θ_old + βx, TRPO backtracks until L improves and the KL is within δ.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from natgrad.lm.config import TrustRegionConfig
from natgrad.lm.engine import Batch, LMAlgorithm
from natgrad.lm.fisher import LinearizedLM, differentiable_attention
from natgrad.lm.losses import k3, masked_mean, token_kl, token_log_probs
from natgrad.lm.sampling import completion_logits
from natgrad.natural.flat import set_flat_params
from natgrad.natural.step import trust_region_step
from natgrad.objectives.losses import ratio


def token_surrogate(logits: Tensor, batch: Batch, beta: float) -> Tensor:
    """L = mean_t r_t Â − β mean_t k3_t over the generated tokens, r_t = π_θ/π_old of the sampled token."""
    log_probs = token_log_probs(logits, batch.rollout.completion_ids)
    objective = ratio(log_probs, batch.log_probs_old) * batch.advantages.unsqueeze(-1)
    if beta:
        objective = objective - beta * k3(log_probs, batch.ref_log_probs)
    return masked_mean(objective, batch.mask)


class TrustRegion(LMAlgorithm):
    """One natural-gradient step per batch, in the trust region of the mean token KL."""

    config_cls = TrustRegionConfig
    config: TrustRegionConfig
    line_search: ClassVar[bool]

    def _update(self, batch: Batch) -> dict[str, float]:
        cfg = self.config
        with differentiable_attention():  # the kernel of the linearization, for every try as well
            linear = LinearizedLM(self.model, batch.rollout, cfg.temperature, self.params)
            value_old, g = linear.value_and_grad(lambda logits: token_surrogate(logits, batch, cfg.beta))

            def evaluate(theta: Tensor) -> tuple[Tensor, Tensor]:
                """(L(θ), mean token KL(π_old ‖ π_θ)) with θ written into the model."""
                set_flat_params(self.params, theta)
                with torch.no_grad():
                    logits = completion_logits(self.model, batch.rollout, cfg.temperature)
                    return token_surrogate(logits, batch, cfg.beta), masked_mean(token_kl(batch.logits_old, logits),
                                                                                 batch.mask)

            step = trust_region_step(self.params, g, value_old, linear.fisher_vector_product(cfg.damping),
                                     evaluate=evaluate, line_search=self.line_search, cfg=cfg.natural(),
                                     radius=cfg.max_kl)
        return {**step.metrics(), "policy/max_kl": cfg.max_kl}


class NPG(TrustRegion):
    """Natural policy gradient on tokens: θ ← θ + β F⁻¹g, β = √(2δ / gᵀF⁻¹g), no line search."""

    name = "npg"
    line_search = False


class TRPO(TrustRegion):
    """TRPO on tokens: the NPG step, backtracked until L improves and the mean token KL ≤ δ."""

    name = "trpo"
    line_search = True
