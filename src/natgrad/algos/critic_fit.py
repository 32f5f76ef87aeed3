"""Fitting the critic V_φ to the GAE returns by minibatch Adam."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from natgrad.objectives.losses import value_loss
from natgrad.policy.actor_critic import Critic, PolicyInputs
from natgrad.rollouts.batch import UpdateBatch


def critic_loss(critic: Critic, inputs: PolicyInputs, returns: Tensor) -> Tensor:
    """½ E[(V_φ(s) − R)²] over the states of ``inputs``."""
    return value_loss(critic(inputs), returns)


def fit_critic(
    critic: Critic,
    optimizer: torch.optim.Optimizer,
    pieces: UpdateBatch,
    epochs: int,
    minibatch_size: int,
    generator: torch.Generator,
    loss_fn: Callable[[Critic, PolicyInputs, Tensor], Tensor] = critic_loss,
) -> float:
    """Minimize ½ E[(V_φ(s) − R)²] for ``epochs`` passes over ``pieces`` (a batch cut by ``UpdateBatch.sequences``:
    single states, or sequence pieces re-run from their stored states), ``minibatch_size`` states per minibatch;
    returns the loss on the whole batch after. Each epoch shuffles the pieces once and takes its minibatches
    as slices of that one gather. ``loss_fn``: ``critic_loss`` or a compiled copy of it."""
    length, count = pieces.returns.shape[:2]
    size = max(1, minibatch_size // length)
    for _ in range(epochs):
        shuffled = pieces.columns(torch.randperm(count, generator=generator))
        for start in range(0, count, size):
            mb = shuffled.columns(slice(start, start + size))
            loss = loss_fn(critic, mb.critic_inputs, mb.returns)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return float(loss_fn(critic, pieces.critic_inputs, pieces.returns))
