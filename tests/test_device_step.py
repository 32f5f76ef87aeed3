"""The sync-free natural step (masked CG, every line-search try selected on the device, one read-back) takes the
same steps as the early-exit one the CPU runs, bit for bit, and the explicit-Hessian reference's."""

from __future__ import annotations

import copy
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from fisher_reference import float64_actor, kl_hessian
from test_trust_region import real_batches

from natgrad import NPG, TRPO
from natgrad.config import NaturalConfig
from natgrad.natural import step as step_module
from natgrad.natural.cg import conjugate_gradient, masked_conjugate_gradient
from natgrad.natural.flat import flat_grad, flat_params
from natgrad.natural.line_search import backtracking_line_search, masked_line_search
from natgrad.natural.step import natural_step
from natgrad.objectives.losses import surrogate


def system(case: str, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A x = b: "spd" random; "early" SPD with 3 distinct eigenvalues (CG converges in 3 iterations); "zero" b = 0;
    "indefinite": pᵀAp < 0 after a few iterations."""
    gen = torch.Generator().manual_seed(0)
    n = 20
    m = torch.randn(n, n, generator=gen, dtype=torch.float64)
    if case == "early":
        q = torch.linalg.qr(m)[0]
        a = q @ torch.diag(torch.tensor([1.0, 2.0, 5.0]).repeat_interleave(torch.tensor([7, 7, 6]))).double() @ q.T
    elif case == "indefinite":
        a = torch.diag(torch.linspace(-1.0, 3.0, n, dtype=torch.float64))
    else:
        a = m @ m.T + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.zeros(n) if case == "zero" else torch.randn(n, generator=gen, dtype=torch.float64)
    return a.to(dtype), b.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case, iterations", [("spd", 10), ("early", 3), ("zero", 0), ("indefinite", None)])
def test_masked_cg_takes_the_same_iterates(case, iterations, dtype):
    a, b = system(case, dtype)
    tol = 1e-20 if case == "early" and dtype == torch.float64 else 1e-10
    want = conjugate_gradient(lambda v: a @ v, b, max_iters=10, tol=tol)
    got = masked_conjugate_gradient(lambda v: a @ v, b, max_iters=10, tol=tol)
    assert torch.equal(got.x, want.x)
    assert int(got.iterations) == want.iterations and float(got.residual_norm) == want.residual_norm
    if iterations is not None:
        assert want.iterations == iterations
    else:
        assert 0 < want.iterations < 10  # stopped at a direction of negative curvature


def line_searches(evaluate, theta_old, max_kl, surrogate_old=0.0):
    """(early-exit, masked) line searches of the same problem, full step ones."""
    full = torch.ones_like(theta_old)
    old = torch.tensor(surrogate_old, dtype=theta_old.dtype)
    return (backtracking_line_search(evaluate, theta_old, full, surrogate_old, max_kl, max_backtracks=6),
            masked_line_search(evaluate, theta_old, full, old, max_kl, max_backtracks=6))


@pytest.mark.parametrize("max_kl, backtracks", [(0.1, 3), (10.0, 0), (1e-9, 6)])
def test_masked_line_search_selects_the_first_acceptable_try(max_kl, backtracks):
    theta_old = torch.tensor([0.5, -1.0])
    # L = Σθ: improves for every step; KL = ‖θ − θ_old‖², 2·4^-j at try j
    evaluate = lambda th: (th.sum(), (th - theta_old).pow(2).sum())
    want, got = line_searches(evaluate, theta_old, max_kl, float(theta_old.sum()))
    assert want.backtracks == backtracks == int(got.backtracks) and want.accepted == bool(got.accepted)
    assert torch.equal(got.theta, want.theta)
    assert float(got.surrogate) == want.surrogate and float(got.kl) == want.kl


def test_masked_line_search_rejects_non_finite_and_compares_kl_as_the_host_does():
    """KL = float32(0.1) > 0.1 at every try: the host rejects it, so must the device (which rounds a Python 0.1 to
    float32(0.1) when it compares); a NaN surrogate never passes."""
    theta_old = torch.tensor([1.0, 2.0])
    for evaluate in (lambda th: (th.sum(), torch.tensor(0.1)), lambda th: (torch.tensor(math.nan), th.sum() * 0)):
        want, got = line_searches(evaluate, theta_old, 0.1)
        assert not want.accepted and not bool(got.accepted) and int(got.backtracks) == want.backtracks
        assert torch.equal(got.theta, theta_old) and float(got.kl) == 0.0


def both_paths(model, batch, line_search: bool, **settings):
    """The step of ``model``'s actor on ``batch`` by the early-exit and the sync-free path, each from the same θ:
    the same figures and θ, bit for bit; returns the early-exit one's step."""
    cfg = model.config.replace(**settings)
    steps, thetas = [], []
    for sync_free in (False, True):
        actor = copy.deepcopy(model.actor)
        steps.append(natural_step(actor, *batch, cfg, line_search, sync_free=sync_free))
        thetas.append(flat_params(actor.policy_parameters()))
    assert repr(steps[0]) == repr(steps[1])  # every field, exactly (nan as nan)
    assert torch.equal(*thetas)
    return steps[0]


@pytest.mark.parametrize("env_id, which, settings, expect", [
    ("CartPole-v1", 0, {}, "accepted, CG stopped early"),
    ("CartPole-v1", 0, {"cg_tol": 1e-2}, "accepted, CG stopped early"),
    ("Pendulum-v1", 1, {}, "backtracked"),
    ("Pendulum-v1", 1, {"max_kl": 2.0, "backtrack_iters": 1}, "refused"),
])
def test_sync_free_trpo_step_equals_the_early_exit_one(env_id, which, settings, expect):
    model = TRPO(env_id, seed=0, n_envs=2, n_steps=64, device="cpu")
    batch = list(real_batches(model, which + 1))[which]
    step = both_paths(model, batch, True, **settings)
    cfg = model.config.replace(**settings)
    assert {"accepted, CG stopped early": step.accepted and step.cg_iterations < cfg.cg_iters,
            "backtracked": step.accepted and step.backtracks > 0,
            "refused": not step.accepted and math.isnan(step.step_size)}[expect]
    model.close()


@pytest.mark.parametrize("line_search", [True, False])
@pytest.mark.parametrize("advantage", ["zero", "nan"])
def test_sync_free_step_refuses_what_the_early_exit_one_refuses(line_search, advantage):
    """Zero advantages: g = 0 and xᵀFx = 0; a NaN advantage: a step that is not finite. Both refused, θ unchanged."""
    model = NPG("CartPole-v1", seed=0, n_envs=2, n_steps=32, device="cpu")
    obs, actions, log_probs, adv = next(real_batches(model, 1))
    adv = torch.zeros_like(adv) if advantage == "zero" else adv.index_fill(0, torch.tensor([0]), math.nan)
    theta_old = flat_params(model.actor.policy_parameters())
    step = both_paths(model, (obs, actions, log_probs, adv), line_search)
    assert not step.accepted
    assert torch.equal(flat_params(model.actor.policy_parameters()), theta_old)
    model.close()


def test_sync_free_npg_step_equals_the_early_exit_one():
    model = NPG("Pendulum-v1", seed=0, n_envs=2, n_steps=64, device="cpu")
    for batch in real_batches(model, 2):
        assert both_paths(model, batch, False).accepted
    model.close()


@pytest.mark.parametrize("line_search", [True, False])
@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_sync_free_step_is_the_explicit_hessian_step(kind, line_search):
    """θ − θ_old = β x with (H + λI) x = g, β = √(2δ / xᵀ(H + λI)x): H the explicit float64 Hessian of the mean KL,
    g the surrogate's gradient; CG given as many iterations as θ has entries."""
    space = gym.spaces.Discrete(3) if kind == "categorical" else gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    actor = float64_actor(gym.spaces.Box(-1.0, 1.0, (3,), np.float32), space)
    params = actor.policy_parameters()
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        old = actor(obs)
        actions = old.sample(gen)
        log_probs = old.log_prob(actions)
    adv = torch.randn(6, generator=gen, dtype=torch.float64)
    theta_old = flat_params(params)
    g = flat_grad(surrogate(actor(obs).log_prob(actions), log_probs, adv), params)
    damped = kl_hessian(actor, params, lambda forward: old.kl(forward(obs)).mean()) + 0.1 * torch.eye(len(g))
    x = torch.linalg.solve(damped, g)
    cfg = NaturalConfig(max_kl=1e-4, damping=0.1, cg_iters=len(g), cg_tol=0.0)
    step = natural_step(actor, obs, actions, log_probs, adv, cfg, line_search, sync_free=True)
    assert step.accepted and step.backtracks == 0
    assert step.step_size == pytest.approx(math.sqrt(2e-4 / float(x @ damped @ x)), rel=1e-8)
    torch.testing.assert_close(flat_params(params) - theta_old, step.step_size * x, rtol=1e-6, atol=1e-10)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_step_on_cuda_never_synchronises_before_its_one_read_back(env_id, monkeypatch):
    """On CUDA the step runs under ``torch.cuda.set_sync_debug_mode("error")`` up to its one read-back (captured
    here), and takes the CPU's step to float tolerance."""
    model = TRPO(env_id, seed=0, n_envs=2, n_steps=64)
    batch = next(real_batches(model, 1))
    on_cpu = copy.deepcopy(model.actor)
    want = natural_step(on_cpu, *batch, model.config, True)
    device_batch = [t.to("cuda") for t in batch]
    natural_step(copy.deepcopy(model.actor).to("cuda"), *device_batch, model.config, True)  # warm up CUDA
    actor = copy.deepcopy(model.actor).to("cuda")
    read_back, figures = step_module.figures_step, []
    monkeypatch.setattr(step_module, "figures_step", lambda values, cfg: figures.append(values))
    torch.cuda.set_sync_debug_mode("error")
    try:
        natural_step(actor, *device_batch, model.config, True)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    got = read_back(figures[0], model.config)
    assert got.accepted == want.accepted and got.backtracks == want.backtracks
    assert got.cg_iterations == want.cg_iterations and got.step_size == pytest.approx(want.step_size, rel=1e-3)
    torch.testing.assert_close(flat_params(actor.policy_parameters()).cpu(), flat_params(on_cpu.policy_parameters()),
                               rtol=1e-4, atol=1e-5)
    model.close()
