"""Sampling and benchmark grids on Ray: the local sampler's batches, pooled statistics, workers that die.

One local Ray instance (2 CPUs, workers at 0.5 CPU) serves the whole module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_algorithms import seeds_reaching
from test_cli import assert_complete_run
from typer.testing import CliRunner

import natgrad
from natgrad import NatgradError
from natgrad.cli import app
from natgrad.rollouts.collector import Collector, rollout_parts
from natgrad.rollouts.envs import make_vec_env
from natgrad.rollouts.sampler import LocalSampler, make_sampler
from natgrad.tools.bench import GridSettings, grid, run_grid

ray = pytest.importorskip("ray")
from natgrad.rollouts.ray_sampler import Share, assemble  # noqa: E402
from natgrad.tools.ray_grid import ray_runner  # noqa: E402

TESTS = Path(__file__).parent
FIELDS = ["obs", "actions", "log_probs", "rewards", "terminated", "ended", "first", "truncated_at", "final_obs",
          "last_obs"]


@pytest.fixture(scope="module")
def kill_marker(tmp_path_factory):
    """A local Ray for the module; the file whose deletion lets ray_envs.KillOnceCartPole kill its worker once."""
    marker = tmp_path_factory.mktemp("ray") / "kill-once"
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR",
             runtime_env={"env_vars": {"PYTHONPATH": path, "NATGRAD_TEST_KILL_MARKER": str(marker),
                                       "NATGRAD_TEST_STEP_LOG": str(marker.parent / "steps.log")}})
    yield marker
    ray.shutdown()


def assert_same_batch(a, b):
    for name in FIELDS:
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.episode_returns == b.episode_returns and a.episode_lengths == b.episode_lengths


@pytest.mark.parametrize("env_id, recurrent", [("CartPole-v1", "none"), ("Pendulum-v1", "none"),
                                               ("CartPole-v1", "lstm")])
def test_one_worker_collects_the_local_batch_bit_for_bit(kill_marker, env_id, recurrent):
    """A recurrent actor's worker carries its envs' states from batch to batch as the local sampler does."""
    kwargs = dict(seed=3, n_envs=3, n_steps=100, normalize_reward=True, preset=False, recurrent=recurrent)
    local = natgrad.TRPO(env_id, **kwargs)
    remote = natgrad.TRPO(env_id, workers=1, ray_address="auto", worker_cpus=0.5, **kwargs)
    local_sampler, ray_sampler = LocalSampler(local), make_sampler(remote)
    for _ in range(3):  # the policy changes between batches, the statistics carry over
        a, b = local_sampler.collect(100), ray_sampler.collect(100)
        assert_same_batch(a, b)
        if recurrent != "none":
            assert torch.equal(a.actor_states, b.actor_states) and a.actor_states.abs().sum() > 0
        for a, b in [(local.obs_normalizer.rms, remote.obs_normalizer.rms),
                     (local.reward_scaler.rms, remote.reward_scaler.rms)]:
            assert np.array_equal(a.mean, b.mean) and np.array_equal(a.var, b.var) and a.count == b.count
        for p, q in zip(local.actor.parameters(), remote.actor.parameters()):
            step = 0.1 * torch.randn_like(p)
            p.data.add_(step), q.data.add_(step)
    ray_sampler.close(), local.close(), remote.close()


def test_two_workers_give_the_local_layout_and_the_pooled_statistics(kill_marker):
    model = natgrad.TRPO("Pendulum-v1", seed=5, n_envs=3, n_steps=64, workers=2, worker_cpus=0.5,
                         normalize_reward=True, preset=False)
    sampler = make_sampler(model)
    batch = sampler.collect(64)
    # what the two workers hold: envs [0, 1] and [2], seeded as one local vector env of 3 envs would seed them
    parts = []
    for n_envs, first_env in [(2, 0), (1, 2)]:
        env = make_vec_env("Pendulum-v1", n_envs)
        actor, obs_normalizer, reward_scaler = rollout_parts(env.single_observation_space, env.single_action_space,
                                                             n_envs, model.config)
        actor.load_state_dict(model.actor.state_dict())
        collector = Collector(env, actor, obs_normalizer, reward_scaler, seed=5 + first_env)
        parts.append((collector.collect(64), obs_normalizer.rms, reward_scaler.rms))
    assert batch.obs.shape == (64, 3, 3) and batch.last_obs.shape == (3, 3) and batch.size == 192
    for name in FIELDS:
        dim = 0 if name in ("last_obs", "final_obs", "truncated_at") else 1  # no episode is truncated in 64 steps
        assert torch.equal(getattr(batch, name), torch.cat([getattr(p[0], name) for p in parts], dim)), name
    # the driver's statistics are those of its prior (count 1e-4, mean 0, var 1) and every worker's data
    # together, by sums of x and x² (each worker's statistics hold the prior and its own data)
    # (observations: each env's first one and 64 steps; rewards: 64 steps)
    for rms, k, count in [(model.obs_normalizer.rms, 1, 65 * 3), (model.reward_scaler.rms, 2, 64 * 3)]:
        n, total, squares = 1e-4, 0.0, 1e-4 * 1.0
        for p in parts:
            n += p[k].count - 1e-4
            total += p[k].count * p[k].mean
            squares += p[k].count * (p[k].var + p[k].mean**2) - 1e-4
        assert rms.count == pytest.approx(1e-4 + count) and n == pytest.approx(rms.count)
        np.testing.assert_allclose(rms.mean, total / n, rtol=1e-9)
        np.testing.assert_allclose(rms.var, squares / n - (total / n) ** 2, rtol=1e-8)
    assert sampler.version == 1
    sampler.close(), model.close()


def test_workers_collect_their_shares_at_the_same_time(kill_marker):
    """Two workers step their envs in two processes whose stepping overlaps in time (a timeline, not a timing)."""
    log = kill_marker.parent / "steps.log"  # where the workers' SlowCartPole logs its steps
    model = natgrad.TRPO("ray_envs:SlowCartPole-v0", n_envs=4, n_steps=100, workers=2, worker_cpus=0.5,
                         preset=False)
    sampler = make_sampler(model)
    sampler.collect(1)  # the workers are up
    log.unlink(missing_ok=True)
    sampler.collect(100)
    sampler.close(), model.close()
    spans: dict[str, tuple[float, float]] = {}
    for pid, t in (line.split() for line in log.read_text().splitlines()):
        lo, hi = spans.get(pid, (float(t), float(t)))
        spans[pid] = (min(lo, float(t)), max(hi, float(t)))
    assert len(spans) == 2, spans  # two worker processes stepped
    (a0, a1), (b0, b1) = spans.values()
    overlap = min(a1, b1) - max(a0, b0)
    assert overlap > 0.5 * min(a1 - a0, b1 - b0), spans  # ... at the same time, not one after the other


def test_a_batch_of_mixed_policy_versions_is_refused():
    model = natgrad.TRPO("CartPole-v1", n_envs=2, n_steps=8, preset=False)
    part = LocalSampler(model).collect(8)
    stats = model.obs_normalizer.rms.state_dict()
    shares = [Share(v, part, stats, stats) for v in (4, 4)]
    assert assemble(shares, 4).obs.shape == (8, 4, 4)
    with pytest.raises(RuntimeError, match=r"policy versions \[3, 4\]"):
        assemble([shares[0], Share(3, part, stats, stats)], 4)
    model.close()


def test_a_killed_worker_is_restarted_and_training_goes_on_with_full_batches(kill_marker):
    model = natgrad.TRPO("ray_envs:KillOnceCartPole-v0", seed=1, n_envs=4, n_steps=128, workers=2, worker_cpus=0.5,
                         preset=False)
    kill_marker.touch()  # a worker's env kills its process at its 50th step, in the first collect
    seen = []
    model.learn(2 * 512, callback=lambda m, metrics: seen.append((metrics["time/steps"], m._sampler.restarts)))
    assert not kill_marker.exists() and seen == [(512.0, 1), (1024.0, 1)]
    sampler = model._sampler
    pid = ray.get(sampler.workers[1].__ray_call__.remote(lambda worker: os.getpid()))
    os.kill(pid, signal.SIGKILL)  # dead between two updates: found at the next collect
    batch = sampler.collect(128)
    assert sampler.restarts == 2 and batch.obs.shape == (128, 4, 4) and sampler.version == 3
    # nothing of the share lost mid-collection: every step of three batches, each env's first observation,
    # and the first observations of the 2 envs of the worker restarted between batches
    assert model.obs_normalizer.rms.count == pytest.approx(1e-4 + 4 * (3 * 128 + 1) + 2)
    model.close()


@pytest.mark.slow
def test_trpo_on_two_workers_learns_cartpole_within_the_local_budget(kill_marker):
    assert len(seeds_reaching(natgrad.TRPO, 475, budget=150_000, workers=2, worker_cpus=0.5)) >= 2


def test_an_error_inside_a_worker_stops_training_with_its_one_line(kill_marker):
    model = natgrad.TRPO("conftest:natgrad-test/NaNObs-v0", n_envs=1, n_steps=8, workers=1, ray_address="auto",
                         worker_cpus=0.5)
    with pytest.raises(NatgradError, match=r"^the environment returned a non-finite observation \(nan\)") as error:
        model.learn(8)
    assert "\n" not in str(error.value)
    model.close()


def test_train_on_ray_then_load_and_predict_without_ray(kill_marker, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--algo", "ppo", "--env", "CartPole-v1", "--steps", "1024",
                                      "--out", str(out), "--set", "n_envs=4", "--set", "n_steps=128",
                                      "--eval-episodes", "2", "--no-progress", "--workers", "2",
                                      "--worker-cpus", "0.5", "--ray-address", "auto"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["sampling"] == {"workers": 2, "ray_address": "auto", "worker_cpus": 0.5}
    obs = np.random.default_rng(0).normal(size=(16, 4))
    expected = natgrad.load(out / "model.pt").predict(obs, deterministic=True)
    no_ray = ("import sys, json, numpy as np; sys.modules['ray'] = None; import natgrad; "
              f"m = natgrad.load({str(out / 'model.pt')!r}); "
              f"print(json.dumps(m.predict(np.array({obs.tolist()}), deterministic=True).tolist())); "
              "m.learn(512); assert 'ray' not in [k for k, v in sys.modules.items() if v is not None]")
    child = subprocess.run([sys.executable, "-c", no_ray], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.splitlines()[-1]) == expected.tolist()


def test_bench_grid_on_ray_gives_the_local_grid(kill_marker, tmp_path):
    specs = grid(["trpo"], ["CartPole-v1"], [0, 1])
    settings = GridSettings(512, (("n_envs", "2"), ("n_steps", "128")), eval_every=256, eval_episodes=2)
    run_grid(tmp_path / "local", specs[:1], settings, echo=lambda s: None)
    args = ["bench", "--algos", "trpo", "--envs", "CartPole-v1", "--seeds", "0-1", "--steps", "512",
            "--set", "n_envs=2", "--set", "n_steps=128", "--eval-every", "256", "--eval-episodes", "2",
            "--out", str(tmp_path / "ray"), "--ray-address", "auto", "--run-cpus", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and (tmp_path / "ray" / "summary.md").read_text().count("| CartPole-v1 |") == 1
    for spec in specs:  # 2 updates of 256 steps, a checkpoint and an evaluation after each
        assert_complete_run(spec.path(tmp_path / "ray"), steps=[256, 512], checkpoints=2, eval_episodes=2,
                            evals=[256, 512])
    assert specs[0].path(tmp_path / "ray").with_suffix(".log").exists()
    local, remote = (json.loads((specs[0].path(tmp_path / d) / "eval.json").read_text()) for d in ("local", "ray"))
    assert local["returns"] == remote["returns"]  # the same `natgrad train` command, the same seed
    assert "2 of 2 runs already finished" in CliRunner().invoke(app, args).output
    killed = specs[1].path(tmp_path / "ray")  # as if killed after its step-256 checkpoint: the task gets that
    for name in ["eval.json", "model.pt", "checkpoints/step_0000000512.pt"]:  # checkpoint and goes on from it
        (killed / name).unlink()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0 and "resuming it from" in result.output, result.output
    config = assert_complete_run(killed, steps=[512], checkpoints=1, eval_episodes=2, evals=[512])
    assert config["resumed_from"]["step"] == 256


def test_more_cpus_than_the_cluster_has_is_refused(kill_marker):
    model = natgrad.TRPO("CartPole-v1", n_envs=4, workers=4)
    with pytest.raises(NatgradError, match="more than the Ray cluster's 2: pass --worker-cpus 0.5"):
        model.learn(64)
    model.close()
    with pytest.raises(NatgradError, match="--run-cpus 2"):
        ray_runner(run_cpus=3)


@pytest.mark.slow  # ~15 s of Ray workers starting on 2 cores; run with -m slow
def test_tune_trials_run_as_ray_tasks_and_report_through_the_driver(kill_marker, tmp_path):
    from natgrad.tools.ray_tune import ray_runner
    from natgrad.tools.tune import TuneSettings, tune

    optuna = pytest.importorskip("optuna")
    space = {"n_envs": 1, "n_steps": 64, "max_kl": {"low": 0.005, "high": 0.05, "log": True}}
    settings = TuneSettings("trpo", "CartPole-v1", 256, 2, 128, 2, 0, {}, space)
    written = tune(settings, tmp_path, ray_runner("auto", jobs=2, run_cpus=0.5), echo=lambda _: None)
    study = optuna.load_study(study_name="natgrad", storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    for trial in study.trials:  # each task's evaluations reached the study, its run directory came back
        assert sorted(trial.intermediate_values) == [128, 256]
        run = tmp_path / "trials" / f"{trial.number:04d}"
        assert json.loads((run / "eval.json").read_text())["mean"] == trial.value
        assert json.loads((run / "config.json").read_text())["config"]["max_kl"] == trial.params["max_kl"]
    assert written[0] == tmp_path / "best.toml"
