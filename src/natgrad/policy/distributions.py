"""Action distributions as immutable objects built from their parameters.

Each is a ``Distribution``: it gives ``sample``, ``mode``, ``log_prob``, ``entropy``, the closed-form
``kl(other) = KL(self ‖ other)`` and ``fisher``, its own Fisher matrix M in its parameters applied to a change of
them: the block the Gauss–Newton Fisher-vector product F v = E[Jᵀ M J v] uses (``natgrad.natural.linearized``).
All are computed per state, over any batch shape (the leading dimensions).

Masks: a Categorical or MultiCategorical with ``mask`` (True = legal) gives every illegal action a logit
of the dtype's lowest value, so its probability is exactly 0 (it is never sampled), it adds exactly 0 to
the entropy and the KL, its rows and columns of M are 0, and no gradient reaches its logit.

Box actions (``natgrad.config.ActionDist``): a ``DiagGaussian`` (clipped to the bounds by the env), a
``SquashedGaussian`` (tanh into the bounds) or a ``Beta`` on the bounds; ``StateDependentStd`` makes either Gaussian's
log σ a network output too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
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
        """H = Σ_i (log σ_i + ½ log 2πe): the same for every state, unless log σ is per state."""
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
        """The distributions of the states selected by ``index`` (log σ too where it is per state)."""
        return DiagGaussian(self.mean[index], self.log_std[index] if self.log_std.dim() == self.mean.dim()
                            else self.log_std)

    def detach(self) -> DiagGaussian:
        """A frozen copy: cloned, since log σ is the parameter itself and would move with θ."""
        return DiagGaussian(self.mean.detach().clone(), self.log_std.detach().clone())


ENTROPY_NODES = 64
"""Gauss–Hermite nodes per dimension of ``SquashedGaussian.entropy``."""


def squash(u: Tensor | np.ndarray, low: Any, high: Any) -> Tensor | np.ndarray:
    """a = low + (high − low)·(1 + tanh u)/2 = shift + scale·tanh u, scale = (high − low)/2, shift = (high + low)/2:
    u ∈ ℝ into (low, high), elementwise, for tensors and NumPy arrays alike (a ``SquashedGaussian``'s latent action,
    and a state-dependent log σ)."""
    tanh = u.tanh() if isinstance(u, Tensor) else np.tanh(u)
    return low + (high - low) * (1 + tanh) / 2


def log_tanh_slope(u: Tensor) -> Tensor:
    """log(d tanh u / du) = log(1 − tanh² u) = 2 (log 2 − u − softplus(−2u)), finite for every finite u (1 − tanh² u
    itself rounds to 0 beyond |u| ≈ 19 in float64)."""
    return 2 * (math.log(2) - u - F.softplus(-2 * u))


@functools.cache
def _hermite(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z_j and weights w_j with E[f(z)] ≈ Σ_j w_j f(z_j) for z ~ N(0, 1) (Gauss–Hermite, ``k`` nodes)."""
    x, w = np.polynomial.hermite.hermgauss(k)
    return x * math.sqrt(2), w / math.sqrt(math.pi)


@dataclass(frozen=True)
class SquashedGaussian:
    """a = low + (high − low)·(1 + tanh u)/2 per dimension, u ~ N(mean(s), diag(σ²)) (``gaussian``): a Box action
    strictly inside its bounds.

    The actions it samples and ``log_prob`` reads are the latent u (what a rollout stores): ``squash`` gives the
    env's action (``ActionSpec.to_env``), ``mode`` is μ (the env gets squash(μ)). ``log_prob`` is the density of the
    bounded action at a = squash(u), log N(u) − Σ_i log|da_i/du_i|; the Jacobian term does not depend on θ, so
    π_θ(a)/π_old(a) is the Gaussians' ratio at u exactly. a ↔ u is a bijection, so the KL, and with it M, are the
    Gaussians'.
    """

    gaussian: DiagGaussian
    """the distribution of u"""
    low: Tensor
    """(act_dim,) the Box's lower bounds"""
    high: Tensor
    """(act_dim,) the Box's upper bounds"""

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """u ~ N(μ, σ²): the latent action (``squash`` gives the env's)."""
        return self.gaussian.sample(generator)

    def mode(self) -> Tensor:
        """μ: the latent of the deterministic action squash(μ)."""
        return self.gaussian.mode()

    def _log_slope(self, u: Tensor) -> Tensor:
        """log|da_i/du_i| = log((high_i − low_i)/2) + log(1 − tanh² u_i), per dimension."""
        return torch.log((self.high - self.low) / 2) + log_tanh_slope(u)

    def log_prob(self, actions: Tensor) -> Tensor:
        """log π(a|s) at a = squash(u) for the latent ``actions`` u: log N(u; μ, σ²) − Σ_i log|da_i/du_i|."""
        return self.gaussian.log_prob(actions) - self._log_slope(actions).sum(-1)

    def entropy(self) -> Tensor:
        """H(a) = H(u) + E_u[Σ_i log|da_i/du_i|] (change of variables), the expectation per dimension by
        Gauss–Hermite quadrature with ``ENTROPY_NODES`` nodes: deterministic and differentiable; its error grows with
        σ (1 − tanh² u is far from a polynomial over N(μ, σ²) when σ is large): below 1e-10 for σ ≤ 1, 1e-5 for
        σ ≤ 2, about 2e-4 at σ = 3 and 0.2% of the term at σ = e²."""
        z, w = (torch.as_tensor(x, dtype=self.gaussian.mean.dtype, device=self.gaussian.mean.device)
                for x in _hermite(ENTROPY_NODES))
        u = self.gaussian.mean.unsqueeze(-1) + self.gaussian.log_std.exp().unsqueeze(-1) * z
        slope = self._log_slope(u.movedim(-1, 0))  # (nodes, ..., act_dim)
        return self.gaussian.entropy() + (slope.movedim(0, -1) * w).sum(-1).sum(-1)

    def kl(self, other: SquashedGaussian) -> Tensor:
        """KL(self ‖ other) = KL of the Gaussians of u: a bijection of the actions leaves the KL unchanged."""
        return self.gaussian.kl(other.gaussian)

    def fisher(self, d_mean: Tensor, d_log_std: Tensor) -> tuple[Tensor, Tensor]:
        """M u = the Gaussian's (the KL is the Gaussians'): (Δμ/σ², 2 Δlog σ)."""
        return self.gaussian.fisher(d_mean, d_log_std)

    def __getitem__(self, index) -> SquashedGaussian:
        """The distributions of the states selected by ``index``."""
        return SquashedGaussian(self.gaussian[index], self.low, self.high)

    def detach(self) -> SquashedGaussian:
        """A frozen copy, unaffected by later changes to θ."""
        return SquashedGaussian(self.gaussian.detach(), self.low, self.high)


@dataclass(frozen=True)
class StateDependentStd:
    """A Gaussian or squashed Gaussian (``inner``) whose log σ is a network output too: the output is (m, r),
    μ = m and log σ = squash(r, log_std_min, log_std_max) ∈ (log_std_min, log_std_max).

    Everything but ``fisher`` is ``inner``'s. M in (m, r) is the Gaussian's pulled back through the bound: with
    b' = ∂log σ/∂r = (log_std_max − log_std_min)(1 − tanh² r)/2, M (Δm, Δr) = (Δm/σ², 2 b'² Δr).
    """

    inner: DiagGaussian | SquashedGaussian
    """the distribution, its log σ per state"""
    pre: Tensor
    """(..., act_dim) r: the network's log σ outputs before the bound"""
    log_std_range: tuple[float, float]
    """(log_std_min, log_std_max)"""

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """``inner``'s sample."""
        return self.inner.sample(generator)

    def mode(self) -> Tensor:
        """``inner``'s mode."""
        return self.inner.mode()

    def log_prob(self, actions: Tensor) -> Tensor:
        """``inner``'s log π(a|s)."""
        return self.inner.log_prob(actions)

    def entropy(self) -> Tensor:
        """``inner``'s entropy."""
        return self.inner.entropy()

    def kl(self, other: StateDependentStd) -> Tensor:
        """KL of the inner distributions."""
        return self.inner.kl(other.inner)

    def fisher(self, d_out: Tensor) -> tuple[Tensor]:
        """M u for a change u = (Δm, Δr) of the network output: J_bᵀ M_inner J_b u, J_b = diag(1, ∂log σ/∂r)."""
        d_mean, d_pre = d_out.chunk(2, -1)
        low, high = self.log_std_range
        slope = (high - low) / 2 * log_tanh_slope(self.pre).exp()
        m_mean, m_log_std = self.inner.fisher(d_mean, slope * d_pre)
        return (torch.cat([m_mean, slope * m_log_std], -1),)

    def __getitem__(self, index) -> StateDependentStd:
        """The distributions of the states selected by ``index``."""
        return StateDependentStd(self.inner[index], self.pre[index], self.log_std_range)

    def detach(self) -> StateDependentStd:
        """A frozen copy, unaffected by later changes to θ."""
        return StateDependentStd(self.inner.detach(), self.pre.detach().clone(), self.log_std_range)


def _log_beta_function(a: Tensor, b: Tensor) -> Tensor:
    """log B(a, b) = log Γ(a) + log Γ(b) − log Γ(a + b)."""
    return torch.lgamma(a) + torch.lgamma(b) - torch.lgamma(a + b)


def _gamma(shape: Tensor, generator: torch.Generator | None) -> Tensor:
    """One draw of Gamma(k, 1) per entry of ``shape`` (every k ≥ 1), by Marsaglia and Tsang's method: with
    d = k − ⅓ and c = 1/√(9d), v = (1 + c x)³ for x ~ N(0, 1) is accepted, giving d v, when v > 0 and
    log U < x²/2 + d − d v + d log v (U uniform); entries not yet accepted draw again (each is, with probability
    above 0.95 per round). Drawn from ``generator`` as the other distributions draw."""
    d = shape - 1 / 3
    c = torch.rsqrt(9 * d)
    out, todo = torch.zeros_like(shape), torch.ones_like(shape, dtype=torch.bool)
    where = _drawing_device(shape, generator)
    while bool(todo.any()):
        x = torch.randn(shape.shape, generator=generator, dtype=shape.dtype, device=where).to(shape.device)
        u = torch.rand(shape.shape, generator=generator, dtype=shape.dtype, device=where).to(shape.device)
        v = (1 + c * x).pow(3)
        ok = todo & (v > 0) & (torch.log(u) < x * x / 2 + d - d * v + d * torch.log(v))
        out, todo = torch.where(ok, d * v, out), todo & ~ok
    return out


@dataclass(frozen=True)
class Beta:
    """a = low + (high − low)·z per dimension, z ~ Beta(α, β), α = softplus(x_α) + 1, β = softplus(x_β) + 1 (so
    α, β > 1: unimodal, zero density at the bounds, as in Chou et al., 2017); ``out`` = (x_α, x_β).

    ``log_prob`` reads a in [low, high] and clamps z into [ε, 1 − ε] (ε the dtype's machine epsilon), so an action
    at a bound, which a float32 draw can round to, has a finite log-probability. The affine map to the bounds leaves
    the KL, and so M, those of the Beta in z.
    """

    out: Tensor
    """(..., 2 act_dim): x_α of every dimension, then x_β"""
    low: Tensor
    """(act_dim,) the Box's lower bounds"""
    high: Tensor
    """(act_dim,) the Box's upper bounds"""

    @property
    def concentrations(self) -> tuple[Tensor, Tensor]:
        """(α, β), each (..., act_dim)."""
        x_alpha, x_beta = self.out.chunk(2, -1)
        return F.softplus(x_alpha) + 1, F.softplus(x_beta) + 1

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """a = low + (high − low)·X/(X + Y), X ~ Gamma(α), Y ~ Gamma(β)."""
        alpha, beta = self.concentrations
        x, y = _gamma(alpha, generator), _gamma(beta, generator)
        return self.low + (self.high - self.low) * (x / (x + y))

    def mode(self) -> Tensor:
        """a at z = (α − 1)/(α + β − 2), the density's peak (½ in the flat limit α = β = 1)."""
        alpha, beta = self.concentrations
        spread = alpha + beta - 2
        z = torch.where(spread > 0, (alpha - 1) / spread.clamp_min(torch.finfo(spread.dtype).tiny), 0.5)
        return self.low + (self.high - self.low) * z

    def log_prob(self, actions: Tensor) -> Tensor:
        """log π(a|s) = Σ_i (α_i − 1) log z_i + (β_i − 1) log(1 − z_i) − log B(α_i, β_i) − log(high_i − low_i),
        z = (a − low)/(high − low) clamped into [ε, 1 − ε]."""
        alpha, beta = self.concentrations
        eps = torch.finfo(alpha.dtype).eps
        z = ((actions - self.low) / (self.high - self.low)).clamp(eps, 1 - eps)
        per_dim = (alpha - 1) * torch.log(z) + (beta - 1) * torch.log1p(-z) - _log_beta_function(alpha, beta)
        return (per_dim - torch.log(self.high - self.low)).sum(-1)

    def entropy(self) -> Tensor:
        """H = Σ_i log B(α_i, β_i) − (α_i − 1) ψ(α_i) − (β_i − 1) ψ(β_i) + (α_i + β_i − 2) ψ(α_i + β_i)
        + log(high_i − low_i)."""
        alpha, beta = self.concentrations
        per_dim = (_log_beta_function(alpha, beta) - (alpha - 1) * torch.digamma(alpha)
                   - (beta - 1) * torch.digamma(beta) + (alpha + beta - 2) * torch.digamma(alpha + beta))
        return (per_dim + torch.log(self.high - self.low)).sum(-1)

    def kl(self, other: Beta) -> Tensor:
        """KL(p ‖ q) = Σ_i log B(α_q, β_q) − log B(α_p, β_p) + (α_p − α_q) ψ(α_p) + (β_p − β_q) ψ(β_p)
        + (α_q − α_p + β_q − β_p) ψ(α_p + β_p)."""
        (a, b), (a_q, b_q) = self.concentrations, other.concentrations
        per_dim = (_log_beta_function(a_q, b_q) - _log_beta_function(a, b) + (a - a_q) * torch.digamma(a)
                   + (b - b_q) * torch.digamma(b) + (a_q - a + b_q - b) * torch.digamma(a + b))
        return per_dim.sum(-1)

    def fisher(self, d_out: Tensor) -> tuple[Tensor]:
        """M u for a change u = (Δx_α, Δx_β) of the network output, per dimension: the Beta's Fisher in (α, β),
        [[ψ₁(α) − ψ₁(α+β), −ψ₁(α+β)], [−ψ₁(α+β), ψ₁(β) − ψ₁(α+β)]], pulled back through softplus
        (∂α/∂x_α = sigmoid(x_α), likewise β)."""
        x_alpha, x_beta = self.out.chunk(2, -1)
        alpha, beta = self.concentrations
        s_alpha, s_beta = torch.sigmoid(x_alpha), torch.sigmoid(x_beta)
        d_x_alpha, d_x_beta = d_out.chunk(2, -1)
        d_alpha, d_beta = s_alpha * d_x_alpha, s_beta * d_x_beta
        both = torch.polygamma(1, alpha + beta)
        m_alpha = (torch.polygamma(1, alpha) - both) * d_alpha - both * d_beta
        m_beta = (torch.polygamma(1, beta) - both) * d_beta - both * d_alpha
        return (torch.cat([s_alpha * m_alpha, s_beta * m_beta], -1),)

    def __getitem__(self, index) -> Beta:
        """The distributions of the states selected by ``index``."""
        return Beta(self.out[index], self.low, self.high)

    def detach(self) -> Beta:
        """A frozen copy, unaffected by later changes to θ."""
        return Beta(self.out.detach().clone(), self.low, self.high)
