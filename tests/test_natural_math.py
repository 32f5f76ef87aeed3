"""The natural-gradient core against explicit linear algebra: FVP, CG, step size, line search."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from fisher_reference import float64_actor
from torch.func import functional_call

from natgrad.natural.cg import conjugate_gradient
from natgrad.natural.fisher import fisher_vector_product
from natgrad.natural.flat import flat_params
from natgrad.natural.line_search import backtracking_line_search
from natgrad.natural.step import max_step_size

OBS = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACTION_SPACES = {
    "categorical": gym.spaces.Discrete(3),
    "gaussian": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
}


def tiny_policy(kind: str):
    """A float64 actor with one hidden layer of 4, a batch of 6 states, and its distribution
    and mean KL as functions of the flat parameter vector θ."""
    actor = float64_actor(OBS, ACTION_SPACES[kind])
    obs = torch.randn(6, 3, dtype=torch.float64)
    names = [n for n, _ in actor.named_parameters()]
    shapes = [p.shape for p in actor.parameters()]
    theta0 = flat_params(list(actor.parameters()))
    old = actor(obs).detach()

    def dist_at(theta, states=obs):
        chunks = torch.split(theta, [math.prod(s) for s in shapes])
        return functional_call(actor, {n: c.view(s) for n, c, s in zip(names, chunks, shapes)}, (states,))

    def mean_kl(theta):
        return old.kl(dist_at(theta)).mean()

    return actor, obs, theta0, dist_at, mean_kl


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_fvp_equals_kl_hessian_times_v(kind, damping):
    actor, obs, theta0, _, mean_kl = tiny_policy(kind)
    hessian = torch.autograd.functional.hessian(mean_kl, theta0)
    old = actor(obs).detach()
    fvp = fisher_vector_product(old.kl(actor(obs)).mean(), list(actor.parameters()), damping)
    for _ in range(3):
        v = torch.randn_like(theta0)
        torch.testing.assert_close(fvp(v), hessian @ v + damping * v, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_fvp_equals_expected_score_outer_product(kind):
    """F v = E_s E_{a~π}[∇log π (∇log π · v)], estimated on sampled actions within sampling error."""
    actor, obs, theta0, dist_at, _ = tiny_policy(kind)
    k = 4000
    g = torch.Generator().manual_seed(0)
    actions = torch.stack([dist_at(theta0).sample(g) for _ in range(k)])  # (k, 6, ...)
    states = obs.expand(k, *obs.shape).reshape(k * len(obs), 1, -1)
    flat_actions = actions.reshape(k * len(obs), 1, *actions.shape[2:])

    def log_prob(theta, s, a):
        return dist_at(theta, s).log_prob(a).sum()

    # per-sample scores ∇_θ log π(a|s), one row per (state, sampled action)
    scores = torch.func.vmap(torch.func.grad(log_prob), in_dims=(None, 0, 0))(theta0, states, flat_actions)
    old = actor(obs).detach()
    fvp = fisher_vector_product(old.kl(actor(obs)).mean(), list(actor.parameters()))
    v = torch.randn_like(theta0)
    terms = scores * (scores @ v).unsqueeze(1)  # one sample of the score outer product times v
    estimate = terms.mean(0)
    stderr = terms.std(0) / math.sqrt(len(terms))
    exact = fvp(v)
    assert (estimate - exact).abs().max() > 0  # a real estimate, not the same computation
    assert ((estimate - exact).abs() <= 5 * stderr + 1e-9).all()


@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_half_quadratic_form_approximates_kl(kind):
    """KL(π_θ ‖ π_θ+Δ) ≈ ½ΔᵀFΔ with a relative error that shrinks with ‖Δ‖."""
    actor, obs, theta0, _, mean_kl = tiny_policy(kind)
    old = actor(obs).detach()
    fvp = fisher_vector_product(old.kl(actor(obs)).mean(), list(actor.parameters()))
    direction = torch.randn_like(theta0)
    direction /= direction.norm()
    errors = []
    for eps in (0.3, 0.1, 0.03, 0.01):
        delta = eps * direction
        quadratic = 0.5 * float(delta @ fvp(delta))
        errors.append(abs(float(mean_kl(theta0 + delta)) - quadratic) / quadratic)
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 0.02


def test_cg_matches_direct_solve_on_random_spd():
    g = torch.Generator().manual_seed(0)
    for n in (5, 20, 50):
        m = torch.randn(n, n, generator=g, dtype=torch.float64)
        a = m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)
        b = torch.randn(n, generator=g, dtype=torch.float64)
        result = conjugate_gradient(lambda v: a @ v, b, max_iters=10 * n, tol=1e-24)
        torch.testing.assert_close(result.x, torch.linalg.solve(a, b), rtol=1e-7, atol=1e-9)
        assert result.residual_norm == pytest.approx(float((b - a @ result.x).norm()), abs=1e-8)


def test_cg_stops_at_iteration_cap_and_reports_true_residual():
    a = torch.diag(torch.arange(1.0, 31.0, dtype=torch.float64))
    b = torch.ones(30, dtype=torch.float64)
    result = conjugate_gradient(lambda v: a @ v, b, max_iters=3, tol=0.0)
    assert result.iterations == 3
    assert result.residual_norm == pytest.approx(float((b - a @ result.x).norm()), rel=1e-6)
    assert 0 < result.residual_norm < float(b.norm())


def test_cg_with_zero_rhs_returns_zero_without_iterating():
    result = conjugate_gradient(lambda v: 2 * v, torch.zeros(4))
    assert result.iterations == 0 and torch.equal(result.x, torch.zeros(4))


@pytest.mark.parametrize("xfx", [0.0, -1.0, math.nan, math.inf])
def test_step_size_refuses_non_positive_or_non_finite_curvature(xfx):
    assert math.isnan(max_step_size(0.01, xfx))


def test_step_size_puts_quadratic_kl_on_the_boundary():
    beta = max_step_size(0.01, 4.0)
    assert 0.5 * beta**2 * 4.0 == pytest.approx(0.01)


def test_line_search_accepts_first_improving_step_inside_trust_region():
    theta_old, full = torch.zeros(2), torch.ones(2)
    # KL grows as the squared step; L improves for any positive step
    evaluate = lambda th: (float(th.sum()), float(th.pow(2).sum()))
    result = backtracking_line_search(evaluate, theta_old, full, 0.0, max_kl=0.1, backtrack_coef=0.5)
    # j=0: KL 2, j=1: 0.5, j=2: 0.125, j=3: 0.03125 <= 0.1
    assert result.accepted and result.backtracks == 3
    torch.testing.assert_close(result.theta, full * 0.125)
    assert result.kl <= 0.1


def test_line_search_rejects_when_nothing_passes_and_returns_theta_old():
    theta_old = torch.tensor([1.0, 2.0])
    calls = []

    def evaluate(th):
        calls.append(th)
        return (-1.0, 0.0) if len(calls) % 2 else (math.nan, 0.0)

    result = backtracking_line_search(evaluate, theta_old, torch.ones(2), 0.0, 0.01, max_backtracks=4)
    assert not result.accepted and len(calls) == 4
    assert result.theta is theta_old
