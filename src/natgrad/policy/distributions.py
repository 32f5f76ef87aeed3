"""Action distributions as immutable objects built from their parameters.

Each is a ``Distribution``: it gives ``sample``, ``mode``, ``log_prob``, ``entropy``, the closed-form
``kl(other) = KL(self ‖ other)`` and ``fisher``, its own Fisher matrix M in its parameters applied to a change of
them: the block the Gauss–Newton Fisher-vector product F v = E[Jᵀ M J v] uses (``natgrad.natural.linearized``).
All are computed per state, over any batch shape (the leading dimensions).

Masks: a Categorical or MultiCategorical with ``mask`` (True = legal) gives every illegal action a logit
of the dtype's lowest value, so its probability is exactly 0 (it is never sampled), it adds exactly 0 to
the entropy and the KL, its rows and columns of M are 0, and no gradient reaches its logit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor


@runtime_checkable
class Distribution(Protocol):
    """What every action distribution gives, per state over a batch of any leading shape.

    Its parameters are the network output (the logits, or a Gaussian's mean) and maybe *heads*, parameters it
    holds apart from the network, the same for every state (a Gaussian's log σ); ``fisher`` takes a change of each,
    in that order.
    """

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One action per state, a ~ π(·|s)."""

    def mode(self) -> Tensor:
        """The most probable action per state."""

    def log_prob(self, actions: Tensor) -> Tensor:
        """log π(a|s) of one action per state."""

    def entropy(self) -> Tensor:
        """H = −E_a[log π(a|s)] per state."""

    def kl(self, other: Distribution) -> Tensor:
        """KL(self ‖ other) per state, in closed form; ``other`` is of the same class."""

    def fisher(self, d_out: Tensor, *d_heads: Tensor) -> tuple[Tensor, ...]:
        """M u per state for a change u = (Δ network output, Δ each head): M = ∂²KL(self ‖ π_{params + u})/∂u² at
        u = 0, one tensor per parameter."""

    def __getitem__(self, index: Any) -> Distribution:
        """The distributions of the states selected by ``index`` (over the leading dimensions)."""

    def detach(self) -> Distribution:
        """A frozen copy, unaffected by later changes to θ."""


def _masked(logits: Tensor, mask: Tensor | None) -> Tensor:
    """The logits with the illegal ones (``mask`` False) at the dtype's lowest finite value: exp gives exactly 0,
    and every difference of two of them, and every product with their probability, stays finite."""
    return logits if mask is None else logits.masked_fill(~mask, torch.finfo(logits.dtype).min)


def _drawing_device(x: Tensor, generator: torch.Generator | None) -> torch.device:
    """Where the random numbers of a sample of ``x`` are drawn: on the generator's device (a CPU generator draws the
    same numbers for a model on any device; the sample then moves to ``x``'s), else on ``x``'s."""
    return x.device if generator is None else generator.device


def _index(x: Tensor | None, index) -> Tensor | None:
    return None if x is None else x[index]


@dataclass(frozen=True)
class Categorical:
    """π(a|s) = softmax(logits)_a over a Discrete action space, over the legal actions when ``mask`` is given."""

    logits: Tensor
    """(..., n_actions)"""
    mask: Tensor | None = None
    """(..., n_actions) bool, True = legal"""

    @property
    def log_probs(self) -> Tensor:
        """log π(a|s) of every action, (..., n_actions); −inf-like for masked ones."""
        return torch.log_softmax(_masked(self.logits, self.mask), dim=-1)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One action per state, drawn from π (never a masked one)."""
        probs = torch.softmax(_masked(self.logits, self.mask), dim=-1).reshape(-1, self.logits.shape[-1])
        actions = torch.multinomial(probs.to(_drawing_device(probs, generator)), 1, generator=generator).squeeze(-1)
        return actions.to(probs.device).reshape(self.logits.shape[:-1])

    def mode(self) -> Tensor:
        """The most probable legal action per state."""
        return _masked(self.logits, self.mask).argmax(dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        """log π(a|s), read off the normalized log-probabilities (broadcasting over batch shapes)."""
        logp = self.log_probs
        shape = torch.broadcast_shapes(logp.shape[:-1], actions.shape)
        index = actions.long().expand(shape).unsqueeze(-1)
        return logp.expand(*shape, logp.shape[-1]).gather(-1, index).squeeze(-1)

    def entropy(self) -> Tensor:
        """H = −Σ_a π_a log π_a (an illegal action: 0 · finite = 0)."""
        logp = self.log_probs
        return -(logp.exp() * logp).sum(-1)

    def kl(self, other: Categorical) -> Tensor:
        """KL(self ‖ other) = Σ_a p_a (log p_a − log q_a)."""
        logp, logq = self.log_probs, other.log_probs
        return (logp.exp() * (logp - logq)).sum(-1)

    def fisher(self, d_logits: Tensor) -> tuple[Tensor]:
        """M u for a change u of the logits, per state: M = ∂²KL(self ‖ softmax(logits + u))/∂u² at u = 0
        = diag(p) − p pᵀ, so M u = p ⊙ u − p (pᵀu)."""
        p = torch.softmax(_masked(self.logits, self.mask), dim=-1)
        pu = p * d_logits
        return (pu - p * pu.sum(-1, keepdim=True),)

    def __getitem__(self, index) -> Categorical:
        """The distributions of the states selected by ``index`` (over the leading dimensions)."""
        return Categorical(self.logits[index], _index(self.mask, index))

    def detach(self) -> Categorical:
        """A frozen copy, unaffected by later changes to θ."""
        return Categorical(self.logits.detach().clone(), self.mask)


@dataclass(frozen=True)
class MultiCategorical:
    """Independent Categoricals, one per entry of a MultiDiscrete space: π(a|s) = Π_k softmax(logits_k)_{a_k}.

    ``logits`` holds the heads' logits end to end (Σ_k n_k); log-probabilities, entropies and KLs add up
    over the heads, and M is block-diagonal with one Categorical block per head.
    """

    logits: Tensor
    """(..., Σ n_k)"""
    nvec: tuple[int, ...]
    """n_k of each head, flattened in C order"""
    mask: Tensor | None = None
    """(..., Σ n_k) bool, True = legal, head by head"""

    @property
    def heads(self) -> list[Categorical]:
        """One Categorical per entry, with its slice of the logits and of the mask."""
        masks = [None] * len(self.nvec) if self.mask is None else self.mask.split(self.nvec, -1)
        return [Categorical(x, m) for x, m in zip(self.logits.split(self.nvec, -1), masks)]

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One action (..., K) per state, each entry drawn from its head."""
        return torch.stack([h.sample(generator) for h in self.heads], -1)

    def mode(self) -> Tensor:
        """Each head's most probable legal value."""
        return torch.stack([h.mode() for h in self.heads], -1)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Σ_k log π_k(a_k|s) for actions (..., K)."""
        return sum(h.log_prob(a) for h, a in zip(self.heads, actions.unbind(-1)))

    def entropy(self) -> Tensor:
        """Σ_k H_k: the heads are independent."""
        return sum(h.entropy() for h in self.heads)

    def kl(self, other: MultiCategorical) -> Tensor:
        """KL(self ‖ other) = Σ_k KL_k over the heads."""
        return sum(p.kl(q) for p, q in zip(self.heads, other.heads))

    def fisher(self, d_logits: Tensor) -> tuple[Tensor]:
        """M u head by head: (diag(p_k) − p_k p_kᵀ) u_k for each head's slice u_k."""
        return (torch.cat([h.fisher(u)[0] for h, u in zip(self.heads, d_logits.split(self.nvec, -1))], -1),)

    def __getitem__(self, index) -> MultiCategorical:
        return MultiCategorical(self.logits[index], self.nvec, _index(self.mask, index))

    def detach(self) -> MultiCategorical:
        """A frozen copy, unaffected by later changes to θ."""
        return MultiCategorical(self.logits.detach().clone(), self.nvec, self.mask)


@dataclass(frozen=True)
class Bernoulli:
    """Independent bits of a MultiBinary space: π(a|s) = Π_k p_k^{a_k} (1 − p_k)^{1 − a_k}, p = σ(logits)."""

    logits: Tensor
    """(..., K)"""

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """One bit vector per state, each bit 1 with probability p_k."""
        u = torch.rand(self.logits.shape, generator=generator, dtype=self.logits.dtype,
                       device=_drawing_device(self.logits, generator))
        return (u.to(self.logits.device) < torch.sigmoid(self.logits)).to(self.logits.dtype)

    def mode(self) -> Tensor:
        """Each bit's more probable value (1 where p_k > ½)."""
        return (self.logits > 0).to(self.logits.dtype)

    def log_prob(self, actions: Tensor) -> Tensor:
        """Σ_k a_k log p_k + (1 − a_k) log(1 − p_k) = Σ_k a_k l_k − softplus(l_k)."""
        return (actions * self.logits - F.softplus(self.logits)).sum(-1)

    def entropy(self) -> Tensor:
        """H = Σ_k softplus(l_k) − p_k l_k."""
        return (F.softplus(self.logits) - torch.sigmoid(self.logits) * self.logits).sum(-1)

    def kl(self, other: Bernoulli) -> Tensor:
        """KL(p ‖ q) = Σ_k p_k (log p_k − log q_k) + (1 − p_k)(log(1 − p_k) − log(1 − q_k))
        = Σ_k p_k (l_k − m_k) + softplus(m_k) − softplus(l_k), with m the logits of q."""
        p = torch.sigmoid(self.logits)
        return (p * (self.logits - other.logits) + F.softplus(other.logits) - F.softplus(self.logits)).sum(-1)

    def fisher(self, d_logits: Tensor) -> tuple[Tensor]:
        """M u per state: M = diag(p (1 − p)) in the logits."""
        p = torch.sigmoid(self.logits)
        return (p * (1 - p) * d_logits,)

    def __getitem__(self, index) -> Bernoulli:
        return Bernoulli(self.logits[index])

    def detach(self) -> Bernoulli:
        """A frozen copy, unaffected by later changes to θ."""
        return Bernoulli(self.logits.detach().clone())


@dataclass(frozen=True)
class DiagGaussian:
    """π(a|s) = N(mean(s), diag(exp(log_std))²) over a Box action space.

    Log-probabilities are those of the unclipped sample; clipping to the action
    bounds happens only when the action is sent to the environment.
    """

    mean: Tensor
    """(..., act_dim)"""
    log_std: Tensor
    """(act_dim,) or broadcastable to mean"""

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """μ + σ·ε, ε ~ N(0, I): unclipped (the env's bounds are applied when acting)."""
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype,
                            device=_drawing_device(self.mean, generator))
        return self.mean + noise.to(self.mean.device) * self.log_std.exp()

    def mode(self) -> Tensor:
        """The mean action μ(s)."""
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

    def __getitem__(self, index) -> DiagGaussian:
        """The distributions of the states selected by ``index``."""
        return DiagGaussian(self.mean[index], self.log_std)

    def detach(self) -> DiagGaussian:
        """A frozen copy: cloned, since log σ is the parameter itself and would move with θ."""
        return DiagGaussian(self.mean.detach().clone(), self.log_std.detach().clone())

