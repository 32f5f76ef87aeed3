"""Derivatives of natgrad's MLPs (``networks.mlp``) written out by hand, from one saved forward pass.

For y = MLP_θ(x) on a batch, with J = ∂y/∂θ, ``jvp`` gives J v (forward mode) and ``vjp`` gives
Jᵀ w (reverse mode). Layer k computes z_k = x_k W_kᵀ + b_k and x_{k+1} = σ(z_k); then

    J v:   ż_k = x_k Ẇ_kᵀ + ḃ_k + ẋ_k W_kᵀ,   ẋ_{k+1} = σ'(z_k) ⊙ ż_k
    Jᵀ w:  ∂W_k = g_kᵀ x_k,  ∂b_k = Σ_rows g_k,  g_{k−1} = (g_k W_k) ⊙ σ'(z_{k−1}),  g_last = w

These are the same products autograd computes, at a fraction of its per-operation overhead and
without a second-order graph: what makes the Fisher-vector products and the critic's minibatch
steps cheap on small networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

# σ'(z) from x = σ(z) and z
_SLOPES: dict[type[nn.Module], Callable[[Tensor, Tensor], Tensor]] = {
    nn.Tanh: lambda x, z: 1 - x * x,
    nn.ReLU: lambda x, z: (z > 0).to(x.dtype),
    nn.ELU: lambda x, z: torch.where(z > 0, 1.0, x + 1),  # α = 1: σ(z) = e^z − 1 below 0
}


@dataclass(frozen=True)
class Trace:
    """One forward pass: each Linear's weight and input x_k, each activation's slope σ'(z_k), the output."""

    weights: list[Tensor]
    inputs: list[Tensor]
    slopes: list[Tensor]
    output: Tensor


@torch.no_grad()
def trace(net: nn.Sequential, x: Tensor) -> Trace:
    """Run ``net`` (Linear, activation, …, Linear) on ``x``, keeping what ``jvp`` and ``vjp`` need."""
    weights, inputs, slopes = [], [], []
    for module in net:
        if isinstance(module, nn.Linear):
            weights.append(module.weight.detach())
            inputs.append(x)
            x = torch.addmm(module.bias, x, module.weight.T)
        elif type(module) in _SLOPES:
            z, x = x, module(x)
            slopes.append(_SLOPES[type(module)](x, z))
        else:
            raise TypeError(f"mlp_ad differentiates Linear and {[t.__name__ for t in _SLOPES]} layers, not {module}")
    return Trace(weights, inputs, slopes, x)


def jvp(tr: Trace, tangents: list[Tensor]) -> Tensor:
    """J v, with v given per parameter in ``net.parameters()`` order (W₀, b₀, W₁, b₁, …)."""
    dx = None
    for k, (w, x) in enumerate(zip(tr.weights, tr.inputs)):
        dz = torch.addmm(tangents[2 * k + 1], x, tangents[2 * k].T)
        if dx is not None:
            dz = dz.addmm_(dx, w.T)
        if k < len(tr.slopes):
            dx = dz * tr.slopes[k]
    return dz


def vjp(tr: Trace, cotangent: Tensor) -> list[Tensor]:
    """Jᵀ w for w of the output's shape, per parameter in ``net.parameters()`` order."""
    grads: list[Tensor] = []
    g = cotangent
    for k in range(len(tr.weights) - 1, -1, -1):
        grads += [g.sum(0), g.T @ tr.inputs[k]]
        if k > 0:
            g = (g @ tr.weights[k]) * tr.slopes[k - 1]
    return grads[::-1]
