"""The sampler choice without Ray: the local default, bad settings, a missing Ray, and the statistics workers send."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

import natgrad
from natgrad import NatgradError
from natgrad.cli import main
from natgrad.rollouts.batch import concat_envs
from natgrad.rollouts.normalization import RunningMeanStd, added_since
from natgrad.rollouts.ray_cluster import check_reachable
from natgrad.rollouts.sampler import LocalSampler
from natgrad.rollouts.workers import split_envs


def test_importing_natgrad_and_training_locally_never_imports_ray():
    code = ("import sys, natgrad, natgrad.cli, natgrad.tools.bench, natgrad.rollouts.sampler, "
            "natgrad.rollouts.ray_cluster; natgrad.TRPO('CartPole-v1', n_envs=2, n_steps=32).learn(64); "
            "assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_local_sampling_is_the_default():
    model = natgrad.TRPO("CartPole-v1", n_envs=2, n_steps=32).learn(64)
    assert not model.sampling.uses_ray and isinstance(model._sampler, LocalSampler)
    model.close()


def test_envs_are_split_evenly_and_batches_join_along_the_env_axis():
    assert split_envs(5, 2) == [3, 2] and split_envs(4, 4) == [1] * 4 and split_envs(7, 3) == [3, 2, 2]
    model = natgrad.TRPO("Pendulum-v1", n_envs=2, n_steps=16, preset=False)
    sampler = LocalSampler(model)
    a, b = sampler.collect(16), sampler.collect(16)
    joined = concat_envs([a, b])
    assert joined.obs.shape == (16, 4, 3) and joined.last_obs.shape == (4, 3) and joined.size == 64
    assert torch.equal(joined.rewards[:, 2:], b.rewards) and torch.equal(joined.last_obs[:2], a.last_obs)
    assert joined.episode_returns == a.episode_returns + b.episode_returns
    model.close()


def test_a_workers_new_data_is_recovered_from_its_statistics_and_the_merge_is_exact():
    rng = np.random.default_rng(0)
    seen, worker_a, worker_b = (rng.normal(loc, 2.0, (n, 3)) for loc, n in [(0.0, 500), (5.0, 40), (-3.0, 90)])
    driver = RunningMeanStd((3,))
    driver.update(seen)
    driver.merge(np.full(3, 1.0), np.full(3, 4.0), 1e6)  # a long run behind it: the precision test
    news = []
    for data in (worker_a, worker_b):
        worker = copy.deepcopy(driver)
        for row in data:  # step by step, as a collector updates
            worker.update(row)
        new = added_since(worker, driver)
        np.testing.assert_allclose(new.mean, data.mean(0), rtol=1e-9)
        np.testing.assert_allclose(new.var, data.var(0), rtol=1e-7)
        assert new.count == pytest.approx(len(data), rel=1e-12)
        news.append(new)
    assert added_since(driver, driver).count == 0
    pooled = copy.deepcopy(driver)
    for new in news:
        pooled.merge(new.mean, new.var, new.count)
    direct = copy.deepcopy(driver)
    direct.update(np.concatenate([worker_a, worker_b]))
    np.testing.assert_allclose(pooled.mean, direct.mean, rtol=1e-12)
    np.testing.assert_allclose(pooled.var, direct.var, rtol=1e-10)
    naive = (news[0].var + news[1].var) / 2  # what averaging the workers' statistics would give
    both = np.concatenate([worker_a, worker_b]).var(0)
    assert not np.allclose(naive, both, rtol=0.1)


@pytest.mark.parametrize("kwargs, match", [
    ({"workers": 0}, "invalid --workers 0: must be an integer >= 1"),
    ({"workers": 4, "n_envs": 2}, r"--workers 4 needs at least 4 envs to share, got n_envs=2: --set n_envs=4"),
    ({"workers": 2, "n_envs": 2, "worker_cpus": 0}, "invalid --worker-cpus 0"),
])
def test_bad_sampling_settings(kwargs, match):
    with pytest.raises(NatgradError, match=match):
        natgrad.TRPO("CartPole-v1", **kwargs)


def run_cli(argv, capsys, monkeypatch) -> str:
    monkeypatch.setattr("sys.argv", ["natgrad", *argv])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_missing_ray_is_one_line_naming_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    for command in (["train", "--workers", "2", "--out", str(tmp_path / "run")],
                    ["bench", "--ray-address", "auto", "--envs", "CartPole-v1", "--out", str(tmp_path / "grid")]):
        assert "pip install natgrad[ray]" in run_cli(command, capsys, monkeypatch)
    assert not (tmp_path / "run").exists() and not (tmp_path / "grid").exists()


def test_unreachable_or_malformed_ray_address_is_one_line(capsys, monkeypatch):
    pytest.importorskip("ray")
    err = run_cli(["train", "--workers", "2", "--ray-address", "127.0.0.1:1"], capsys, monkeypatch)
    assert "no Ray cluster answers at --ray-address 127.0.0.1:1" in err and "ray start --head" in err
    with pytest.raises(NatgradError, match="invalid --ray-address 'head-node': use auto, HOST:PORT"):
        check_reachable("head-node")
