"""The per-state KL every algorithm logs after an update: ``policy/kl_max`` and ``policy/kl_p95`` are the largest value
and the 95th percentile over the batch's states of KL(π_old ‖ π_new), recomputed here independently (by
torch.distributions, in float64) from copies of the policy before and after the update."""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.distributions as td

import natgrad
from natgrad.algos import compiled
from natgrad.algos.natural import StateKL
from natgrad.natural.step import NaturalStep, natural_step
from natgrad.policy.distributions import Beta, SquashedGaussian, StateDependentStd

CASES = {  # name: (algorithm, options)
    "trpo": ("trpo", {}),
    "trpo-beta": ("trpo", {"action_dist": "beta"}),
    "trpo-squashed-state-std": ("trpo", {"action_dist": "squashed", "state_dependent_std": True}),
    "npg": ("npg", {}),
    "ppo": ("ppo", {}),
    "ppo-kl-beta": ("ppo-kl", {"action_dist": "beta"}),
    "vpg": ("vpg", {}),
    "trpl": ("trpl", {}),
}


def per_dimension(dist) -> td.Distribution:
    """The torch.distributions twin of a Box policy, per action dimension, in float64 (a squashed Gaussian's KL is
    its latent Gaussian's: the squash is a bijection)."""
    dist = dist.inner if isinstance(dist, StateDependentStd) else dist
    dist = dist.gaussian if isinstance(dist, SquashedGaussian) else dist
    if isinstance(dist, Beta):
        alpha, beta = dist.concentrations
        return td.Beta(alpha.double(), beta.double())
    return td.Normal(dist.mean.double(), dist.log_std.double().exp().expand_as(dist.mean))


def recorded(cls: type, monkeypatch: pytest.MonkeyPatch) -> list[tuple[dict[str, float], torch.Tensor]]:
    """Every update of ``cls`` from now on, as (its metrics, KL(π_old ‖ π_new) at each state of its batch)."""
    seen = []
    real = cls._update

    def update(self, data, progress, gae):
        before = copy.deepcopy(self.actor)
        metrics = real(self, data, progress, gae)
        with torch.no_grad():
            old, new = per_dimension(before(data.actor_inputs)), per_dimension(self.actor(data.actor_inputs))
        seen.append((metrics, td.kl_divergence(old, new).sum(-1).flatten()))
        return metrics

    monkeypatch.setattr(cls, "_update", update)
    return seen


def assert_logged_spread_is_the_batchs(updates: list[tuple[dict[str, float], torch.Tensor]]) -> None:
    """Each update's kl_max, kl_p95 and kl against the independent per-state KL, to float32's rounding (the policy's
    KL is a difference of terms of order 1, so it is exact to about 1e-7 only); some update moved the policy."""
    close = functools.partial(pytest.approx, rel=1e-4, abs=2e-7)
    for metrics, kl in updates:
        assert metrics["policy/kl_max"] == close(float(kl.max()))
        assert metrics["policy/kl_p95"] == close(float(torch.quantile(kl, 0.95)))
        assert metrics["policy/kl"] == close(float(kl.mean()))
    assert max(m["policy/kl_max"] for m, _ in updates) > 0


def train(algo: str, **options) -> None:
    """Three updates of 2×128 steps of a small ``algo`` model on Pendulum, on the CPU."""
    model = natgrad.ALGORITHMS[algo]("Pendulum-v1", seed=0, preset=False, device="cpu", n_envs=2, n_steps=128,
                                     hidden=(16, 16), **options)
    model.learn(768)
    model.close()


@pytest.mark.parametrize("case", CASES)
def test_every_algorithm_logs_the_largest_and_95th_percentile_per_state_kl_of_its_update(case, monkeypatch):
    algo, options = CASES[case]
    updates = recorded(natgrad.ALGORITHMS[algo], monkeypatch)
    train(algo, **options)
    assert len(updates) == 3
    assert_logged_spread_is_the_batchs(updates)
    for metrics, kl in updates:
        assert metrics["policy/kl"] <= metrics["policy/kl_p95"] <= metrics["policy/kl_max"] or kl.max() == 0


def test_the_sync_free_step_keeps_the_accepted_tries_kl(monkeypatch):
    """The accelerators' step makes every line-search try: the logged spread is still the accepted θ's."""
    monkeypatch.setattr(compiled, "natural_step", functools.partial(natural_step, sync_free=True))
    updates = recorded(natgrad.TRPO, monkeypatch)
    train("trpo", max_kl=0.05, backtrack_coef=0.3)
    assert_logged_spread_is_the_batchs(updates)


def step(accepted: bool, backtracks: int) -> NaturalStep:
    """A ``NaturalStep`` that accepted (or refused) the ``backtracks``-th try."""
    return NaturalStep(accepted=accepted, kl=0.0, improvement=0.0, backtracks=backtracks, cg_iterations=10,
                       cg_residual=0.0, step_size=1.0, grad_norm=1.0)


def test_the_kept_kl_is_the_accepted_tries_and_zero_when_the_step_is_refused():
    tries = [torch.tensor([0.5, 0.25]), torch.tensor([0.1, 0.3]), torch.tensor([0.2, 0.0])]
    forward, like = StateKL(lambda kl: (torch.tensor(1.0), kl)), torch.full((2,), -7.0)
    assert forward.at(step(True, 0), like) is None  # nothing tried here: a replayed graph
    assert torch.equal(forward.at(step(False, 0), like), torch.zeros(2))  # refused before any try (g = 0, xᵀFx ≤ 0)
    for kl in tries:
        value, mean = forward(kl)
        assert float(value) == 1.0 and float(mean) == pytest.approx(float(kl.mean()))
    assert forward.at(step(True, 1), like) is tries[1]
    assert torch.equal(forward.at(step(False, 3), like), torch.zeros(2))
