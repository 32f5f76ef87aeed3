"""The Gauss–Newton Fisher-vector product against the double-backprop one (the Hessian of the mean KL),
the policy gradient from the saved forward against a fresh one, and the critic fit's hand-written
MLP Jacobian products against autograd."""

import gymnasium as gym
import numpy as np
import pytest
import torch

from natgrad.fisher import fisher_vector_product, flat_grad
from natgrad.linearized import LinearizedActor
from natgrad.losses import surrogate
from natgrad.mlp_ad import jvp as mlp_jvp
from natgrad.mlp_ad import layers, trace, vjp
from natgrad.networks import mlp
from natgrad.policy import Actor

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTION_SPACES = {"categorical": gym.spaces.Discrete(3), "gaussian": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)}


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
def test_mlp_jvp_and_vjp_equal_autograd(activation):
    torch.manual_seed(0)
    net = mlp(3, (5, 4), 2, activation, out_gain=1.0).double()
    x = torch.randn(7, 3, dtype=torch.float64)
    params = tuple(net.parameters())
    tangents = [torch.randn_like(p) for p in params]
    # J v by autograd alone: the gradient in u of (Jᵀu)·v
    u = torch.zeros(7, 2, dtype=torch.float64, requires_grad=True)
    jtu = torch.autograd.grad((net(x) * u).sum(), params, create_graph=True)
    expected_jv = torch.autograd.grad(sum((a * t).sum() for a, t in zip(jtu, tangents)), u)[0]
    tr = trace(layers(net), x)
    torch.testing.assert_close(tr.output, net(x).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mlp_jvp(tr, tangents), expected_jv, rtol=1e-10, atol=1e-12)
    w = torch.randn(7, 2, dtype=torch.float64)
    expected = torch.autograd.grad((net(x) * w).sum(), params)
    in_numpy = trace(layers(net, numpy=True), x.numpy())  # the same code on NumPy views
    np.testing.assert_allclose(in_numpy.output, tr.output.numpy(), rtol=1e-12, atol=1e-12)
    for got, got_np, want in zip(vjp(tr, w), vjp(in_numpy, w.numpy()), expected):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_np, want.numpy(), rtol=1e-10, atol=1e-12)


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


def test_critic_fit_takes_torch_adam_steps_on_autograd_gradients():
    from natgrad.critic_fit import fit_critic
    from natgrad.losses import value_loss
    from natgrad.optim import NumpyAdam, adam
    from natgrad.policy import Critic

    torch.manual_seed(0)
    ours, ref = Critic(OBS, hidden=(5, 4)).double(), Critic(OBS, hidden=(5, 4)).double()
    ref.load_state_dict(ours.state_dict())
    obs, returns = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    opt_ours, opt_ref = NumpyAdam(ours.parameters(), 1e-2), adam(ref.parameters(), 1e-2)
    fit_critic(ours, opt_ours, obs, returns, epochs=3, minibatch_size=16, generator=torch.Generator())
    for _ in range(3):
        opt_ref.zero_grad()
        value_loss(ref(obs), returns).backward()
        opt_ref.step()
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for k, v in opt_ref.state_dict()["state"].items():  # the same state, in torch's layout
        for key in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt_ours.state_dict()["state"][k][key].double(), v[key].double())
    restored = NumpyAdam(ours.parameters(), 1e-2)
    restored.load_state_dict(opt_ref.state_dict())
    np.testing.assert_allclose(restored.exp_avg_sq, opt_ours.exp_avg_sq, rtol=1e-10)
    assert restored.t == opt_ours.t == 3
