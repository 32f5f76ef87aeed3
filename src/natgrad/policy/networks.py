"""Multi-layer perceptrons, and the orthogonal initialization every layer of natgrad's networks gets."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from natgrad.config import Activation, check_choice

ACTIVATIONS: dict[Activation, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
"""The module of each ``Activation``."""


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    activation: Activation = "tanh",
    out_gain: float = 1.0,
) -> nn.Sequential:
    """in → hidden… → out, hidden layers orthogonal with gain √2, the output layer with ``out_gain``."""
    check_choice("activation", activation, Activation)
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [orthogonal(nn.Linear(a, b), math.sqrt(2)), ACTIVATIONS[activation]()]
    layers.append(orthogonal(nn.Linear(sizes[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def orthogonal(layer: nn.Linear | nn.Conv2d, gain: float = math.sqrt(2)) -> nn.Linear | nn.Conv2d:
    """``layer`` with orthogonal weights of ``gain`` and zero biases."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer
