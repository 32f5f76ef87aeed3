"""Fitting the critic V_φ to the GAE returns by minibatch Adam."""

from __future__ import annotations

import torch
from torch import Tensor

from natgrad.batching import minibatches
from natgrad.losses import value_loss
from natgrad.mlp_ad import layers, trace, vjp
from natgrad.optim import NumpyAdam
from natgrad.policy import Critic


def fit_critic(
    critic: Critic,
    optimizer: NumpyAdam,
    obs: Tensor,
    returns: Tensor,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator,
) -> float:
    """Minimize ½ E[(V_φ(s) − R)²] for ``epochs`` passes; returns the loss on the whole batch after.

    Each minibatch's gradient ∇_φ = Jᵀ (V − R) / B is the hand-written reverse pass of ``mlp_ad``,
    run in NumPy on views of the critic's parameters, and ``optimizer`` applies Adam in place:
    the same steps as ``loss.backward(); torch.optim.Adam.step()``, at a third of the cost.
    """
    net = layers(critic.net, numpy=True)
    x, r = obs.numpy(), returns.numpy()[:, None]
    for _ in range(epochs):
        for idx in minibatches(len(obs), minibatch_size, generator):
            idx = idx.numpy()
            tr = trace(net, x[idx])
            optimizer.step(vjp(tr, (tr.output - r[idx]) / len(idx)))
    with torch.no_grad():
        return float(value_loss(critic(obs), returns))
