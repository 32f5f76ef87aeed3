"""Fitting the critic V_φ to the GAE returns by minibatch Adam."""

from __future__ import annotations

import torch
from torch import Tensor

from natgrad.batching import shuffled_minibatches
from natgrad.losses import value_loss
from natgrad.policy import Critic


def fit_critic(
    critic: Critic,
    optimizer: torch.optim.Optimizer,
    obs: Tensor,
    returns: Tensor,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator,
) -> float:
    """Minimize ½ E[(V_φ(s) − R)²] for ``epochs`` passes; returns the loss on the whole batch after."""
    for _ in range(epochs):
        for x, r in shuffled_minibatches((obs, returns), minibatch_size, generator):
            loss = value_loss(critic(x), r)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float(value_loss(critic(obs), returns))
