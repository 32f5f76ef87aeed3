"""The benchmarks package: every script imports as ``benchmarks.NAME``, the harness's child protocol hands back what a
measurement returned, and the peers are scored with natgrad's evaluation seeds and final-return rule."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks
from benchmarks import _harness, peers, throughput
from natgrad.runs.evaluation import EVAL_SEED


def test_every_script_imports_as_a_module_of_the_package_and_its_docstring_names_it() -> None:
    names = [m.name for m in pkgutil.iter_modules(benchmarks.__path__)]
    assert len(names) > 10
    for name in names:
        importlib.import_module(f"benchmarks.{name}")
        assert f"``{name}``" in benchmarks.__doc__, name


def test_a_child_hands_back_its_clocks_and_memory_and_a_failing_one_drops_out() -> None:
    runs = _harness.take_turns({"raw": (sys.executable, throughput.worker_raw, dict(env_id="CartPole-v1", steps=50)),
                                "bad": (sys.executable, throughput.worker_raw, dict(env_id="NoSuch-v0", steps=50))},
                               repeats=2, keep_going=True)
    assert [r["steps"] for r in runs["raw"]] == [50, 50]
    assert all(r["wall"] > 0 and r["cpu"] > 0 and r["peak_rss_mb"] > 0 for r in runs["raw"])
    assert isinstance(runs["bad"], str) and "NoSuch" in runs["bad"]
    with pytest.raises(RuntimeError, match="NoSuch"):
        _harness.take_turns({"bad": (sys.executable, throughput.worker_raw, dict(env_id="NoSuch-v0", steps=1))}, 1)


def test_a_grid_of_jobs_writes_each_result_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "raw" / "s0.json"
    jobs = {path: (throughput.worker_raw, dict(env_id="CartPole-v1", steps=20))}
    _harness.run_jobs(sys.executable, jobs, parallel=1)
    assert json.loads(path.read_text())["steps"] == 20
    _harness.run_jobs(sys.executable, jobs, parallel=1)
    assert "0 of 1 runs to do" in capsys.readouterr().out


def test_medians_over_the_repeats() -> None:
    runs = [{"steps": 100, "wall": w, "cpu": 2 * w, "name": "x"} for w in (1.0, 2.0, 4.0)]
    result = _harness.medians(runs)
    assert result["wall"] == 2.0 and result["name"] == "x" and result["repeats"] == 3
    assert result["steps_per_second"] == 50.0 and result["steps_per_cpu_second"] == 25.0
    assert result["each_steps_per_second"] == [100.0, 50.0, 25.0]


def test_the_peers_are_scored_on_natgrads_evaluation_seeds_and_final_return_rule() -> None:
    assert peers.EVAL_SEED == EVAL_SEED
    assert peers.final_train(list(range(25))) == 23.0  # the last ⌈10%⌉ = 3 episodes
    assert peers.final_train([5.0]) == 5.0


def smoke(tmp_path: Path, module: str, *args: str) -> dict:
    """Run ``python -m benchmarks.MODULE ARGS --out tmp`` from the repository root; the JSON it wrote."""
    out = tmp_path / f"{module}.json"
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args, "--out", str(out)], capture_output=True,
                          text=True, cwd=_harness.ROOT, env=_harness.child_environment())
    assert done.returncode == 0, done.stderr[-2000:]
    assert "steps/s" in done.stdout
    return json.loads(out.read_text())


def test_the_gpu_script_runs_end_to_end_on_the_cpu(tmp_path: Path) -> None:
    pytest.importorskip("gymnax")
    result = smoke(tmp_path, "gpu", "--device", "cpu", "--quick", "--workloads", "cartpole", "--algos", "ppo")
    assert result["device"] == "cpu" and result["machine"]["load_average_at_start"]
    run = result["rows"][0]["contenders"]["natgrad cpu"]
    assert run["steps"] == 64 * 32 and run["rollout_seconds"] > 0 and run["update_seconds"] > 0


def test_the_device_envs_script_runs_both_paths_side_by_side(tmp_path: Path) -> None:
    pytest.importorskip("gymnax")
    result = smoke(tmp_path, "device_envs", "--pairs", "cartpole", "--algos", "ppo", "--n-envs", "8", "--n-steps",
                   "8", "--steps", "128")
    row = result["rows"][0]
    for env_id in ("gymnax/CartPole-v1", "CartPole-v1"):
        assert row[env_id]["steps"] == 128 and row[env_id]["repeats"] == 1 and len(row[env_id]["curves"]) == 1
