"""Multi-layer perceptrons with orthogonal initialization."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from natgrad.errors import NatgradError

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: str = "tanh",
    out_gain: float = 1.0,
) -> nn.Sequential:
    """in → hidden… → out, hidden layers orthogonal with gain √2, the output layer with ``out_gain``."""
    if activation not in ACTIVATIONS:
        raise NatgradError(f"unknown activation {activation!r}: use one of {sorted(ACTIVATIONS)}")
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [_orthogonal(nn.Linear(a, b), math.sqrt(2)), ACTIVATIONS[activation]()]
    layers.append(_orthogonal(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def _orthogonal(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer
