"""PPO-Clip's loss by hand, PPO-KL's β rule step by step, and both learning CartPole."""

from __future__ import annotations

import math

import pytest
import torch
from test_algorithms import seeds_reaching

import natgrad
from natgrad.objectives.adaptive_kl import adapt_beta
from natgrad.objectives.losses import clipped_surrogate, kl_penalized_surrogate


def test_clipped_surrogate_by_hand():
    eps = 0.2
    # ratios 0.5, 0.9, 1.1, 1.5 with advantages of both signs
    ratios = torch.tensor([0.5, 0.9, 1.1, 1.5, 0.5, 0.9, 1.1, 1.5], dtype=torch.float64)
    adv = torch.tensor([1.0, 1.0, 1.0, 1.0, -1.0, -1.0, -1.0, -2.0], dtype=torch.float64)
    log_old = torch.zeros(8, dtype=torch.float64)
    log_new = ratios.log().requires_grad_()
    # min(r A, clip(r) A) term by term:
    #  A>0: r=0.5 → min(0.5, 0.8)=0.5 | 0.9 → 0.9 | 1.1 → 1.1 | 1.5 → min(1.5, 1.2)=1.2 (clipped)
    #  A<0: r=0.5 → min(-0.5, -0.8)=-0.8 (clipped) | 0.9 → -0.9 | 1.1 → -1.1 | 1.5 → min(-3, -2.4)=-3
    expected = (0.5 + 0.9 + 1.1 + 1.2 - 0.8 - 0.9 - 1.1 - 3.0) / 8
    loss = clipped_surrogate(log_new, log_old, adv, eps)
    assert float(loss.detach()) == pytest.approx(expected, abs=1e-12)
    loss.backward()
    grad = log_new.grad
    # d/dlog r of r·A/8 is r·A/8 where unclipped; exactly 0 where the clipped term is the minimum
    active = torch.tensor([False, False, False, True, True, False, False, False])
    assert torch.all(grad[active] == 0)
    torch.testing.assert_close(grad[~active], (ratios * adv / 8)[~active])


def test_kl_penalized_surrogate_by_hand():
    log_new = torch.log(torch.tensor([1.2, 0.8]))
    loss = kl_penalized_surrogate(log_new, torch.zeros(2), torch.tensor([1.0, -1.0]), torch.tensor([0.1, 0.3]), 2.0)
    assert float(loss) == pytest.approx((1.2 - 0.8) / 2 - 2.0 * 0.2)


def test_beta_schedule_follows_the_rule_exactly():
    target = 0.01
    kls = [0.02, 0.016, 0.015, 0.0067, 0.006, 0.001, 0.01, math.nan, 0.5]
    # > 1.5·d: ×2 | 0.016 > 0.015: ×2 | 0.015 not > 0.015: keep | 0.0067 ≥ d/1.5=0.00667: keep
    # 0.006 < d/1.5: ÷2 | ÷2 | keep | non-finite: ×2 | ×2
    expected = [2.0, 4.0, 4.0, 4.0, 2.0, 1.0, 1.0, 2.0, 4.0]
    beta, seen = 1.0, []
    for kl in kls:
        beta = adapt_beta(beta, kl, target)
        seen.append(beta)
    assert seen == expected


def test_beta_stays_within_bounds():
    beta = 1.0
    for _ in range(200):
        beta = adapt_beta(beta, 1.0, 0.01, beta_min=1e-3, beta_max=1e3)
    assert beta == 1e3
    for _ in range(200):
        beta = adapt_beta(beta, 0.0, 0.01, beta_min=1e-3, beta_max=1e3)
    assert beta == 1e-3


def test_ppo_kl_logs_and_adapts_beta_every_update(tmp_path):
    model = natgrad.PPOKL("CartPole-v1", seed=0, n_envs=2, n_steps=128, minibatches=4, epochs=2)
    rows = []
    model.learn(768, callback=lambda m, metrics: rows.append(metrics))
    for row in rows:
        assert row["policy/beta_next"] == adapt_beta(row["policy/beta"], row["policy/kl"], 0.01)
    assert [r["policy/beta"] for r in rows[1:]] == [r["policy/beta_next"] for r in rows[:-1]]
    model.save(tmp_path / "m.pt")
    assert natgrad.load(tmp_path / "m.pt").beta == model.beta == rows[-1]["policy/beta_next"]
    model.close()


def test_ppo_logs_clip_fraction_and_respects_target_kl():
    model = natgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=128, minibatches=4, target_kl=1e-6)
    rows = []
    model.learn(256, callback=lambda m, metrics: rows.append(metrics))
    assert 0 <= rows[0]["policy/clip_fraction"] <= 1
    assert rows[0]["policy/epochs"] == 1  # stopped after the first epoch: approx KL > 1e-6
    model.close()


def test_ppo_annealing_decays_lr_linearly_over_the_learn_call():
    model = natgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64, minibatches=2, anneal_lr=True)
    rows = []
    model.learn(512, callback=lambda m, metrics: rows.append(metrics))
    # 4 updates of 128 steps: lr = 3e-4 · (1 − steps done / 512)
    assert [r["policy/lr"] for r in rows] == pytest.approx([3e-4, 2.25e-4, 1.5e-4, 0.75e-4])
    model.close()


@pytest.mark.parametrize("cls", [natgrad.PPO, natgrad.PPOKL])
def test_ppo_learns_cartpole_within_budget(cls):
    # on this machine seeds 0-9 all reach 475, by 133k steps (PPO) and 102k (PPO-KL)
    assert len(seeds_reaching(cls, 475, budget=200_000)) >= 2


def test_ppo_kl_stops_the_epochs_when_the_kl_passes_its_limit():
    """β pinned near 0 (as after a run of halvings) and a large step size: without the guard an update moves the
    policy far past d_targ; with it, the epochs end after the first one whose KL passes kl_stop·d_targ."""
    def run(kl_stop):
        model = natgrad.PPOKL("CartPole-v1", seed=0, n_envs=4, n_steps=128, minibatches=4, lr=3e-3, beta_init=1e-6,
                              beta_min=1e-6, beta_max=1e-6, kl_stop=kl_stop, preset=False)
        rows = []
        model.learn(2048, callback=lambda m, metrics: rows.append(metrics))
        model.close()
        return rows

    free, guarded = run(0), run(4.0)
    assert "policy/kl_stopped" not in free[0] and all(r["policy/epochs"] == 10 for r in free)
    assert max(r["policy/kl"] for r in free) > 0.2
    assert any(r["policy/kl_stopped"] for r in guarded)
    for r in guarded:
        assert (r["policy/epochs"] < 10) == bool(r["policy/kl_stopped"])
    assert max(r["policy/kl"] for r in guarded) < max(r["policy/kl"] for r in free)


@pytest.mark.parametrize("recompute", [False, True])
def test_ppo_recomputes_advantages_before_every_later_epoch(monkeypatch, recompute):
    """recompute_advantages: GAE again, with the critic as the last epoch left it, before epochs 2, 3, ..."""
    import natgrad.algos.base as base

    critics_seen: list[list[torch.Tensor]] = []
    real = base.update_batch

    def spy(batch, critic, *args):
        critics_seen.append([p.detach().clone() for p in critic.parameters()])
        return real(batch, critic, *args)

    monkeypatch.setattr(base, "update_batch", spy)
    model = natgrad.PPO("CartPole-v1", seed=0, n_envs=2, n_steps=64, minibatches=2, epochs=3,
                        recompute_advantages=recompute)
    model.learn(256)  # 2 updates
    assert len(critics_seen) == (6 if recompute else 2)
    if recompute:  # each GAE of an update saw a critic trained by one more epoch
        for a, b in zip(critics_seen, critics_seen[1:3]):
            assert any(not torch.equal(x, y) for x, y in zip(a, b))
    model.close()


def test_ppo_recompute_advantages_changes_nothing_with_one_epoch_and_something_with_two():
    def params(epochs: int, recompute: bool) -> torch.Tensor:
        model = natgrad.PPO("Pendulum-v1", seed=3, n_envs=2, n_steps=64, minibatches=2, epochs=epochs,
                            recompute_advantages=recompute)
        model.learn(256)
        model.close()
        return torch.cat([p.detach().reshape(-1) for p in model.actor.parameters()])

    assert torch.equal(params(1, False), params(1, True))
    assert not torch.equal(params(2, False), params(2, True))
