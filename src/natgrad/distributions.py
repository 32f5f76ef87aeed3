"""Action distributions as immutable objects built from their parameters.

Each gives ``sample``, ``mode``, ``log_prob``, ``entropy`` and the closed-form
``kl(other) = KL(self ‖ other)``, computed per state (shape ``batch``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Categorical:
    """π(a|s) = softmax(logits)_a over a Discrete action space."""

    logits: Tensor  # (batch, n_actions)

    @property
    def log_probs(self) -> Tensor:
        return torch.log_softmax(self.logits, dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        probs = torch.softmax(self.logits, dim=-1).reshape(-1, self.logits.shape[-1])
        actions = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        return actions.reshape(self.logits.shape[:-1])

    def mode(self) -> Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        """log π(a|s), read off the normalized log-probabilities (broadcasting over batch shapes)."""
        logp = self.log_probs
        shape = torch.broadcast_shapes(logp.shape[:-1], actions.shape)
        index = actions.long().expand(shape).unsqueeze(-1)
        return logp.expand(*shape, logp.shape[-1]).gather(-1, index).squeeze(-1)

    def entropy(self) -> Tensor:
        """H = −Σ_a π_a log π_a."""
        logp = self.log_probs
        return -(logp.exp() * logp).sum(-1)

    def kl(self, other: Categorical) -> Tensor:
        """KL(self ‖ other) = Σ_a p_a (log p_a − log q_a)."""
        logp, logq = self.log_probs, other.log_probs
        return (logp.exp() * (logp - logq)).sum(-1)

    def fisher(self, d_logits: Tensor) -> tuple[Tensor]:
        """M u for a change u of the logits, per state: M = ∂²KL(self ‖ softmax(logits + u))/∂u² at u = 0
        = diag(p) − p pᵀ, so M u = p ⊙ u − p (pᵀu)."""
        p = torch.softmax(self.logits, dim=-1)
        pu = p * d_logits
        return (pu - p * pu.sum(-1, keepdim=True),)

    def __getitem__(self, index: Tensor) -> Categorical:
        """The distributions of the states selected by ``index``."""
        return Categorical(self.logits[index])

    def detach(self) -> Categorical:
        """A frozen copy, unaffected by later changes to θ."""
        return Categorical(self.logits.detach().clone())


@dataclass(frozen=True)
class DiagGaussian:
    """π(a|s) = N(mean(s), diag(exp(log_std))²) over a Box action space.

    Log-probabilities are those of the unclipped sample; clipping to the action
    bounds happens only when the action is sent to the environment.
    """

    mean: Tensor  # (batch, act_dim)
    log_std: Tensor  # (act_dim,) or broadcastable to mean

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype)
        return self.mean + noise.to(self.mean.device) * self.log_std.exp()

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, actions: Tensor) -> Tensor:
        """log π(a|s) = Σ_i −(a_i − μ_i)²/(2σ_i²) − log σ_i − ½ log 2π."""
        z = (actions - self.mean) * torch.exp(-self.log_std)
        per_dim = -0.5 * z.pow(2) - self.log_std - 0.5 * math.log(2 * math.pi)
        return per_dim.sum(-1)

    def entropy(self) -> Tensor:
        """H = Σ_i (log σ_i + ½ log 2πe), the same for every state."""
        per_dim = self.log_std + 0.5 * math.log(2 * math.pi * math.e)
        return per_dim.expand_as(self.mean).sum(-1)

    def kl(self, other: DiagGaussian) -> Tensor:
        """KL(p ‖ q) = Σ_i log(σq/σp) + (σp² + (μp − μq)²)/(2σq²) − ½."""
        var_p = torch.exp(2 * self.log_std)
        var_q = torch.exp(2 * other.log_std)
        per_dim = (
            other.log_std
            - self.log_std
            + (var_p + (self.mean - other.mean).pow(2)) / (2 * var_q)
            - 0.5
        )
        return per_dim.sum(-1)

    def fisher(self, d_mean: Tensor, d_log_std: Tensor) -> tuple[Tensor, Tensor]:
        """M u for a change u = (Δμ, Δlog σ), per state: the Hessian of KL(self ‖ N(μ + Δμ, (σ e^Δlog σ)²))
        at u = 0 is diag(1/σ²) for μ, 2·I for log σ, with no cross term; so M u = (Δμ/σ², 2 Δlog σ)."""
        return d_mean * torch.exp(-2 * self.log_std), 2 * d_log_std

    def __getitem__(self, index: Tensor) -> DiagGaussian:
        """The distributions of the states selected by ``index``."""
        return DiagGaussian(self.mean[index], self.log_std)

    def detach(self) -> DiagGaussian:
        """A frozen copy: cloned, since log σ is the parameter itself and would move with θ."""
        return DiagGaussian(self.mean.detach().clone(), self.log_std.detach().clone())


Distribution = Categorical | DiagGaussian
