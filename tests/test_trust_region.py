"""TRPO's guarantees on real batches: KL ≤ δ after every accepted step; a refused step changes nothing."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from natgrad import NPG, TRPO
from natgrad.natural.flat import flat_params, set_flat_params
from natgrad.natural.linearized import LinearizedActor
from natgrad.natural.step import natural_step, trust_region_step
from natgrad.objectives.gae import normalize
from natgrad.objectives.losses import surrogate
from natgrad.rollouts.advantages import update_batch
from natgrad.rollouts.collector import Collector


def real_batches(model, n_batches):
    """Batches from ``model``'s env with GAE advantages, as learn() computes them."""
    collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler, seed=1)
    for _ in range(n_batches):
        data = update_batch(collector.collect(model.config.n_steps), model.critic, 0.99, 0.97)
        yield data.obs, data.actions, data.log_probs, normalize(data.advantages)


@pytest.mark.parametrize("env_id, fvp_fraction", [("CartPole-v1", 1.0), ("Pendulum-v1", 1.0), ("Pendulum-v1", 0.25)])
def test_kl_within_trust_region_after_every_accepted_update(env_id, fvp_fraction):
    model = TRPO(env_id, seed=0, n_envs=4, n_steps=128, max_kl=0.01, fvp_fraction=fvp_fraction)
    accepted = 0
    for obs, actions, log_probs, adv in real_batches(model, 12):
        before = copy.deepcopy(model.actor)
        step = natural_step(model.actor, obs, actions, log_probs, adv, model.config, line_search=True)
        with torch.no_grad():
            kl = float(before(obs).kl(model.actor(obs)).mean())  # measured independently of the step
        if step.accepted:
            accepted += 1
            assert kl <= model.config.max_kl * (1 + 1e-6)
            assert kl == pytest.approx(step.kl, rel=1e-4, abs=1e-9)
            assert step.improvement > 0
    assert accepted >= 10
    model.close()


def test_npg_takes_the_full_step_with_quadratic_kl_near_delta():
    model = NPG("CartPole-v1", seed=0, n_envs=4, n_steps=128, max_kl=0.01)
    for obs, actions, log_probs, adv in real_batches(model, 5):
        step = natural_step(model.actor, obs, actions, log_probs, adv, model.config, line_search=False)
        assert step.accepted and step.backtracks == 0
        assert 0.002 < step.kl < 0.05  # ½ΔᵀFΔ = δ exactly; the true KL is close for a small step
    model.close()


def snapshot(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("sync_free", [False, True])
def test_rejected_line_search_leaves_parameters_bit_for_bit(sync_free):
    """Every try writes its θ into the actor and fails: the step is refused and θ_old is back bit for bit, whether
    the line search stops early or makes every try and selects on the device."""
    model = TRPO("Pendulum-v1", seed=0, n_envs=2, n_steps=64)
    cfg = model.config
    obs, actions, log_probs, adv = next(real_batches(model, 1))
    params = model.actor.policy_parameters()
    linear = LinearizedActor(model.actor, obs)
    value, g = linear.value_and_grad(lambda dist: surrogate(dist.log_prob(actions), log_probs, adv))
    before, theta_old = snapshot(model.actor), flat_params(params)
    tried = []

    def never_improves(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        set_flat_params(params, theta)  # really moves the parameters, as a failing try does
        tried.append(theta)
        return torch.tensor(-math.inf), torch.tensor(0.0)

    step = trust_region_step(params, g, value, linear.fisher_vector_product(cfg.damping), evaluate=never_improves,
                             radius=cfg.max_kl, bound=cfg.max_kl, cfg=cfg, line_search=True, sync_free=sync_free)
    assert not step.accepted and len(tried) == cfg.backtrack_iters
    assert not any(torch.equal(theta, theta_old) for theta in tried)
    assert_bitwise_equal(before, snapshot(model.actor))
    model.close()


@pytest.mark.parametrize("line_search", [True, False])
def test_degenerate_step_is_refused_not_taken(line_search):
    """Zero advantages: g = 0, xᵀFx = 0, β would be inf/NaN; the step is refused, θ unchanged."""
    model = TRPO("CartPole-v1", seed=0, n_envs=2, n_steps=32)
    obs, actions, log_probs, adv = next(real_batches(model, 1))
    before = snapshot(model.actor)
    step = natural_step(model.actor, obs, actions, log_probs, torch.zeros_like(adv), model.config, line_search)
    assert not step.accepted and math.isnan(step.step_size)
    assert_bitwise_equal(before, snapshot(model.actor))
    nan_adv = adv.clone()
    nan_adv[0] = math.nan
    step = natural_step(model.actor, obs, actions, log_probs, nan_adv, model.config, line_search)
    assert not step.accepted
    assert_bitwise_equal(before, snapshot(model.actor))
    model.close()


@pytest.mark.parametrize("cls", [NPG, TRPO])
def test_anneal_kl_shrinks_the_trust_region_linearly_over_the_learn_call(cls):
    model = cls("Pendulum-v1", seed=0, n_envs=2, n_steps=64, max_kl=0.02, anneal_kl=True)
    rows = []
    model.learn(512, callback=lambda m, metrics: rows.append(metrics))
    # 4 updates of 128 steps: δ_t = 0.02 · (1 − steps done / 512)
    assert [r["policy/max_kl"] for r in rows] == pytest.approx([0.02, 0.015, 0.01, 0.005])
    for r in rows:
        if cls is TRPO and r["policy/accepted"]:
            assert r["policy/kl"] <= r["policy/max_kl"] * (1 + 1e-6)
    assert model.config.max_kl == 0.02  # the configured δ is untouched
    model.close()
