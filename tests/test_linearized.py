"""The Gauss–Newton Fisher-vector product against the double-backprop one (the Hessian of the mean KL),
and the policy gradient from the saved forward against a fresh one."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from natgrad.fisher import fisher_vector_product, flat_grad
from natgrad.linearized import LinearizedActor
from natgrad.losses import surrogate
from natgrad.policy import Actor

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTION_SPACES = {"categorical": gym.spaces.Discrete(3), "gaussian": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)}


def actor_and_batch(kind: str, activation: str = "tanh"):
    """A float64 actor moved off its near-zero output init, a batch of 6 states and sampled actions."""
    torch.manual_seed(1)
    actor = Actor(OBS, ACTION_SPACES[kind], hidden=(4,), activation=activation, log_std_init=-0.3).double()
    for p in actor.parameters():
        p.data.add_(0.3 * torch.randn_like(p))
    obs = torch.randn(6, 3, dtype=torch.float64)
    actions = actor(obs).sample(torch.Generator().manual_seed(2)).detach()
    return actor, obs, actions


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_gauss_newton_fvp_equals_double_backprop_fvp(kind, activation, damping):
    actor, obs, _ = actor_and_batch(kind, activation)
    params = list(actor.parameters())
    old = actor(obs).detach()
    reference = fisher_vector_product(old.kl(actor(obs)).mean(), params, damping)
    fvp = LinearizedActor(actor, obs).fisher_vector_product(damping)
    for _ in range(3):
        v = torch.randn(sum(p.numel() for p in params), dtype=torch.float64)
        torch.testing.assert_close(fvp(v), reference(v), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_value_and_grad_equals_autograd(kind):
    actor, obs, actions = actor_and_batch(kind)
    log_probs_old = actor(obs).log_prob(actions).detach() - 0.1
    adv = torch.randn(6, dtype=torch.float64)
    loss = surrogate(actor(obs).log_prob(actions), log_probs_old, adv)
    value, grad = LinearizedActor(actor, obs).value_and_grad(
        lambda dist: surrogate(dist.log_prob(actions), log_probs_old, adv))
    torch.testing.assert_close(value, loss.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, flat_grad(loss, list(actor.parameters())), rtol=1e-10, atol=1e-12)
