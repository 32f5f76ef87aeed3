"""Advantages of a rollout: the critic's values, bootstrapped where an episode was truncated (and not where it
terminated), assembled with GAE(γ, λ) into the batch an update consumes."""

from __future__ import annotations

import torch
from torch import Tensor

from natgrad.objectives.gae import gae
from natgrad.policy.actor_critic import Critic, PolicyInputs
from natgrad.policy.spaces import tree_map
from natgrad.rollouts.batch import RolloutBatch, UpdateBatch


@torch.no_grad()
def critic_values(critic: Critic, batch: RolloutBatch, state: Tensor | None = None
                  ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """V(s_t) and V(s_{t+1}) for every step (both (T, N)), the critic's state entering every step and after
    the last one (None without a recurrent core); ``state``: its state entering step 0.

    V(s_{t+1}) is V of the next observation in the same env, of ``last_obs`` after the last step, and of
    the real final observation where an episode was truncated, under the state that episode had reached;
    where it terminated it is 0.
    """
    values, after = critic.values_and_states(PolicyInputs(batch.obs, None, batch.first, state))
    last = PolicyInputs(tree_map(lambda x: x[None], batch.last_obs), None, batch.ended[-1:],
                        None if after is None else after[-1])
    next_values = torch.cat([values[1:], critic(last)])
    if len(batch.truncated_at):
        t, n = batch.truncated_at.T
        final = PolicyInputs(tree_map(lambda x: x[None], batch.final_obs), None, None,
                             None if after is None else after[t, n])
        next_values[t, n] = critic(final)[0]
    next_values[batch.terminated] = 0.0
    entering = None if after is None else torch.cat([(state if state is not None else torch.zeros_like(after[0]))[None],
                                                     after[:-1]])
    return values, next_values, entering, None if after is None else after[-1]


def update_batch(batch: RolloutBatch, critic: Critic, gamma: float, lam: float,
                 critic_state: Tensor | None = None) -> UpdateBatch:
    """GAE(γ, λ) over ``batch`` with ``critic``'s values (bootstrapped as ``critic_values`` says)."""
    values, next_values, entering, end = critic_values(critic, batch, critic_state)
    advantages, returns = gae(batch.rewards, values, next_values, batch.terminated, batch.ended, gamma, lam)
    return UpdateBatch(batch.obs, batch.actions, batch.log_probs, advantages, returns, values, batch.first,
                       batch.masks, batch.actor_states, entering, end)
