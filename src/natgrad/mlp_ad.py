"""Derivatives of natgrad's MLPs (``networks.mlp``) written out by hand, from one saved forward pass.

For y = MLP_θ(x) on a batch, with J = ∂y/∂θ, ``jvp`` gives J v (forward mode) and ``vjp`` gives
Jᵀ w (reverse mode). Layer k computes z_k = x_k W_kᵀ + b_k and x_{k+1} = σ(z_k); then

    J v:   ż_k = x_k Ẇ_kᵀ + ḃ_k + ẋ_k W_kᵀ,   ẋ_{k+1} = σ'(z_k) ⊙ ż_k
    Jᵀ w:  ∂W_k = g_kᵀ x_k,  ∂b_k = Σ_rows g_k,  g_{k−1} = (g_k W_k) ⊙ σ'(z_{k−1}),  g_last = w

These are the products autograd computes, without its per-operation overhead or a second-order
graph. ``layers(net, numpy=True)`` runs the same code on NumPy views of the parameters, cheaper
still for the many small minibatches of the critic fit (NumPy's calls cost ~1 µs, torch's ~4 µs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

Array = Any  # a torch.Tensor or a numpy.ndarray: the code below is written for both

# σ in NumPy (torch uses the module itself), and σ'(z) from x = σ(z) and z, for tensors and arrays
NUMPY_ACTIVATIONS: dict[type[nn.Module], Callable[[np.ndarray], np.ndarray]] = {
    nn.Tanh: np.tanh,
    nn.ReLU: lambda x: np.maximum(x, 0.0),
    nn.ELU: lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
}
_SLOPES: dict[type[nn.Module], Callable[[Array, Array], Array]] = {
    nn.Tanh: lambda x, z: 1 - x * x,
    nn.ReLU: lambda x, z: z > 0,
    nn.ELU: lambda x, z: (z > 0) + (z <= 0) * (x + 1),  # α = 1: σ(z) = e^z − 1 below 0
}


@dataclass(frozen=True)
class Linear:
    weight: Array  # (out, in)
    bias: Array  # (out,)


@dataclass(frozen=True)
class Activation:
    kind: type[nn.Module]
    apply: Callable[[Array], Array]


@dataclass(frozen=True)
class Trace:
    """One forward pass: each Linear's weight and input x_k, each activation's slope σ'(z_k), the output."""

    weights: list[Array]
    inputs: list[Array]
    slopes: list[Array]
    output: Array


def layers(net: nn.Sequential, numpy: bool = False) -> list[Linear | Activation]:
    """``net``'s layers over its detached parameters, or NumPy views of them (CPU, shared memory:
    writing into a view writes into the module)."""
    out: list[Linear | Activation] = []
    for module in net:
        if isinstance(module, nn.Linear):
            w, b = module.weight.detach(), module.bias.detach()
            out.append(Linear(w.numpy(), b.numpy()) if numpy else Linear(w, b))
        elif type(module) in _SLOPES:
            out.append(Activation(type(module), NUMPY_ACTIVATIONS[type(module)] if numpy else module))
        else:
            raise TypeError(f"mlp_ad differentiates Linear and {[t.__name__ for t in _SLOPES]} layers, not {module}")
    return out


def trace(net: list[Linear | Activation], x: Array) -> Trace:
    """Run the layers on ``x`` (a tensor or an array, as the layers are), keeping what ``jvp`` and ``vjp`` need.
    No autograd graph is built: ``layers`` holds detached parameters."""
    weights, inputs, slopes = [], [], []
    for layer in net:
        if isinstance(layer, Linear):
            weights.append(layer.weight)
            inputs.append(x)
            x = x @ layer.weight.T + layer.bias
        else:
            z, x = x, layer.apply(x)
            slopes.append(_SLOPES[layer.kind](x, z))
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


def vjp(tr: Trace, cotangent: Array) -> list[Array]:
    """Jᵀ w for w of the output's shape, per parameter in ``net.parameters()`` order."""
    grads: list[Array] = []
    g = cotangent
    for k in range(len(tr.weights) - 1, -1, -1):
        grads += [g.sum(0), g.T @ tr.inputs[k]]
        if k > 0:
            g = (g @ tr.weights[k]) * tr.slopes[k - 1]
    return grads[::-1]
