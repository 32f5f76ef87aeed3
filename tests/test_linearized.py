"""The Gauss–Newton Fisher-vector product against the double-backprop one (the Hessian of the mean KL),
and the policy gradient from the saved forward against a fresh one."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from fisher_reference import assert_both_fvp_routes_exact, assert_fvp_matches, float64_actor, kl_hessian

from natgrad.natural.fisher import fisher_vector_product
from natgrad.natural.flat import flat_grad
from natgrad.natural.linearized import LinearizedActor
from natgrad.natural.step import subsample
from natgrad.objectives.losses import surrogate
from natgrad.policy.actor_critic import PolicyInputs

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTION_SPACES = {"categorical": gym.spaces.Discrete(3), "gaussian": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)}


def actor_and_batch(kind: str, activation: str = "tanh"):
    """A float64 actor moved off its near-zero output init, a batch of 6 states and sampled actions."""
    actor = float64_actor(OBS, ACTION_SPACES[kind], activation=activation)
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


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fvp_of_a_time_by_env_batch_equals_the_explicit_hessian_of_the_mean_kl(kind, damping):
    """A (T, N, D) batch: the mean is over all T·N states, in the network block and the log σ block alike."""
    actor, _, _ = actor_and_batch(kind)
    obs = torch.randn(4, 3, 3, dtype=torch.float64)  # T=4 steps of N=3 envs
    params = list(actor.parameters())
    old = actor(obs).detach()
    hessian = kl_hessian(actor, params, lambda forward: old.kl(forward(obs)).mean())
    assert_fvp_matches(LinearizedActor(actor, obs).fisher_vector_product(damping), hessian, damping)
    flat = LinearizedActor(actor, obs.reshape(12, 3)).fisher_vector_product(damping)
    v = torch.randn(hessian.shape[0], dtype=torch.float64)
    torch.testing.assert_close(LinearizedActor(actor, obs).fisher_vector_product(damping)(v), flat(v))


@pytest.mark.parametrize("space", [gym.spaces.Box(0, 1, (6, 6, 2), bool), gym.spaces.Box(0, 255, (2, 7, 7), np.uint8)])
def test_fvp_through_an_image_encoder_equals_the_explicit_hessian_of_the_mean_kl(space):
    """Through the CNN and the first convolution's own backward, by both routes, on its weights and the output
    layer's (the explicit Hessian of every weight is large)."""
    from natgrad.policy.encoders import ScaledConv2d
    from natgrad.policy.spaces import ObsLayout

    layout = ObsLayout(space)
    actor = float64_actor(layout, gym.spaces.Discrete(3), cnn="small", cnn_features=8)
    space.seed(0)
    obs = layout.pack(layout.encode(np.stack([space.sample() for _ in range(5)]), 5))
    first = next(m for m in actor.modules() if isinstance(m, ScaledConv2d))
    assert first.own_backward
    assert_both_fvp_routes_exact(actor, PolicyInputs(obs), 0.1, [*first.parameters(), *actor.net[-1].parameters()])


def test_fvp_subsample_draws_states_from_every_time_step_and_env():
    obs = torch.arange(5 * 4 * 2, dtype=torch.float64).reshape(5, 4, 2)  # (T, N, D), each row distinct
    rows = subsample(PolicyInputs(obs), 2, 0.5, torch.Generator().manual_seed(0), sequences=False).obs
    assert rows.shape == (10, 2)
    all_rows = {tuple(r) for r in obs.reshape(20, 2).tolist()}
    picked = [tuple(r) for r in rows.tolist()]
    assert len(set(picked)) == 10 and set(picked) <= all_rows
    assert len({int(r[0]) // 8 for r in picked}) > 1  # not only one time step
