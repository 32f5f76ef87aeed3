"""What every algorithm must do: run on both space types, be deterministic under a seed, learn CartPole."""

from __future__ import annotations

import math

import pytest

import natgrad

ALGOS = [natgrad.TRPO, natgrad.NPG, natgrad.VPG, natgrad.PPO, natgrad.PPOKL]


def run_metrics(cls, env_id, seed, **kw):
    rows = []
    model = cls(env_id, seed=seed, n_envs=2, n_steps=128, **kw)
    model.learn(512, callback=lambda m, metrics: rows.append(metrics))
    model.close()
    return rows


@pytest.mark.parametrize("cls", ALGOS)
@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_runs_and_logs_finite_metrics(cls, env_id):
    rows = run_metrics(cls, env_id, seed=0)
    assert len(rows) == 2
    for key in ("policy/kl", "policy/entropy", "critic/loss", "time/steps_per_second"):
        assert all(math.isfinite(r[key]) for r in rows), key


@pytest.mark.parametrize("cls", ALGOS)
def test_same_seed_same_run_other_seed_other_run(cls):
    def strip(rows):  # drop timings; NaN (no episode finished yet) compared as None
        return [{k: None if math.isnan(v) else v for k, v in r.items()
                 if not k.startswith("time/") or k == "time/steps"} for r in rows]

    a, b, c = (strip(run_metrics(cls, "Pendulum-v1", seed)) for seed in (0, 0, 1))
    assert a == b
    assert a != c


def first_update_reaching(cls, threshold, budget, **kw):
    """Env steps at which the mean of the last 100 training episodes first reaches ``threshold``."""
    model = cls("CartPole-v1", seed=0, n_envs=8, n_steps=256, **kw)
    reached = []

    def stop(m, metrics):
        if metrics["rollout/ep_return_mean"] >= threshold:
            reached.append(m.num_timesteps)
            return False

    model.learn(budget, callback=stop)
    model.close()
    return reached


def test_trpo_learns_cartpole_within_budget():
    assert first_update_reaching(natgrad.TRPO, 475, budget=150_000)
