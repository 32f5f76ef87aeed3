"""The token-level objectives of the language-model updates, pure functions of tensors.

Shapes: a batch of B completions padded to T tokens; ``mask`` (B, T) is 1 on generated tokens (up to and with EOS)
and 0 on padding, which no loss or KL sees.
"""

from __future__ import annotations

import torch
from torch import Tensor

from natgrad.lm.config import LossType
from natgrad.objectives.losses import ratio
from natgrad.policy.distributions import Categorical


def group_advantages(rewards: Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> Tensor:
    """Â_i = r_i − mean_g r, divided by std_g r + ``eps`` when ``scale``; g = the ``group_size`` consecutive
    completions of one prompt, std with Bessel's correction (as TRL's ``torch.std``)."""
    grouped = rewards.view(-1, group_size)
    advantages = grouped - grouped.mean(dim=1, keepdim=True)
    if scale:
        advantages = advantages / (grouped.std(dim=1, keepdim=True) + eps)
    return advantages.reshape(-1)


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Σ x·m / Σ m: the mean over the generated tokens of the batch."""
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def aggregate(per_token: Tensor, mask: Tensor, loss_type: LossType, max_completion_length: int) -> Tensor:
    """One number from a (B, T) per-token loss, as TRL's ``loss_type``: ``"grpo"``: mean_i (Σ_t x·m / Σ_t m);
    ``"bnpo"``, ``"dapo"``: Σ x·m / Σ m; ``"dr_grpo"``: Σ x·m / (B · max_completion_length)."""
    if loss_type == "grpo":
        return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    if loss_type == "dr_grpo":
        return (per_token * mask).sum() / (per_token.shape[0] * max_completion_length)
    return masked_mean(per_token, mask)


def clipped_objective(log_probs: Tensor, log_probs_old: Tensor, advantages: Tensor, epsilon: float) -> Tensor:
    """Per token: min(r Â, clip(r, 1 − ε, 1 + ε) Â), r = π_θ/π_old, Â the completion's advantage (B,)."""
    r, adv = ratio(log_probs, log_probs_old), advantages.unsqueeze(-1)
    return torch.min(r * adv, r.clamp(1 - epsilon, 1 + epsilon) * adv)


def clip_fraction(log_probs: Tensor, log_probs_old: Tensor, advantages: Tensor, epsilon: float, mask: Tensor) -> Tensor:
    """The fraction of generated tokens where the clip binds: r < 1 − ε with Â < 0, or r > 1 + ε with Â > 0."""
    r, adv = ratio(log_probs, log_probs_old), advantages.unsqueeze(-1)
    binds = ((r < 1 - epsilon) & (adv < 0)) | ((r > 1 + epsilon) & (adv > 0))
    return masked_mean(binds.to(mask.dtype), mask)


def k3(log_probs: Tensor, ref_log_probs: Tensor) -> Tensor:
    """k3 = exp(ref − logp) − (ref − logp) − 1 per token: an unbiased, non-negative estimate of KL(π_θ ‖ π_ref)
    from tokens drawn from π_θ."""
    d = ref_log_probs - log_probs
    return torch.exp(d) - d - 1


def token_kl(logits_old: Tensor, logits: Tensor) -> Tensor:
    """KL(π_old ‖ π_θ) at every token, exactly, over the vocabulary: (B, T, V) logits → (B, T)."""
    return Categorical(logits_old).kl(Categorical(logits))


def token_log_probs(logits: Tensor, tokens: Tensor) -> Tensor:
    """log π(token) at every position: (B, T, V) logits and (B, T) tokens → (B, T)."""
    return Categorical(logits).log_prob(tokens)
