"""The benchmark runner and its report: resumable grids, nothing lost, statistics computed right."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_complete_run
from typer.testing import CliRunner

from natgrad import NatgradError
from natgrad.cli import app
from natgrad.tools.bench import GridSettings, RunSpec, grid, parse_seeds, run_grid
from natgrad.tools.report import RunResult, aggregate, bootstrap_ci, find_runs, iqm, markdown, peak_of_mean


def test_parse_seeds():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("7,0-1,3") == [0, 1, 3, 7]
    with pytest.raises(NatgradError, match="invalid --seeds"):
        parse_seeds("a-b")


def fake_runner(calls):
    """Writes what a finished run leaves behind, without training."""
    def run(spec, root, settings, resume=None):
        calls.append(spec)
        run_dir = spec.path(root)
        run_dir.mkdir(parents=True)
        (run_dir / "eval.json").write_text(json.dumps({"mean": 1.0, "std": 0.0}))
        return 0
    return run


def test_grid_is_resumable_and_keeps_unfinished_runs(tmp_path):
    specs = grid(["trpo", "ppo"], ["CartPole-v1"], [0, 1])
    settings = GridSettings(steps=1000)
    # a run killed half-way: a directory without eval.json, and its log
    half = specs[0].path(tmp_path)
    half.mkdir(parents=True)
    (half / "metrics.csv").write_text("partial")
    half.with_suffix(".log").write_text("killed")
    calls = []
    assert run_grid(tmp_path, specs, settings, jobs=2, runner=fake_runner(calls), echo=lambda s: None) == []
    assert sorted(map(str, calls)) == sorted(map(str, specs))
    kept = list((tmp_path / ".incomplete").iterdir())
    assert len(kept) == 1 and (kept[0] / "s0" / "metrics.csv").read_text() == "partial"
    calls.clear()
    run_grid(tmp_path, specs, settings, runner=fake_runner(calls), echo=lambda s: None)
    assert calls == []  # everything finished: nothing redone


def test_grid_refuses_a_directory_of_other_settings(tmp_path):
    run_grid(tmp_path, [], GridSettings(steps=1000), echo=lambda s: None)
    with pytest.raises(NatgradError, match="other settings"):
        run_grid(tmp_path, [], GridSettings(steps=2000), echo=lambda s: None)


def test_override_some_algorithm_cannot_take_is_refused_before_starting(tmp_path):
    specs = grid(["trpo", "ppo"], ["CartPole-v1"], [0])
    with pytest.raises(NatgradError, match="trpo on CartPole-v1: unknown NaturalConfig option"):
        run_grid(tmp_path, specs, GridSettings(10, (("minibatches", "4"),)), echo=lambda s: None)
    assert not (tmp_path / "CartPole-v1").exists()


def test_failed_run_is_reported(tmp_path):
    def failing(spec, root, settings, resume=None):
        return 1

    failed = run_grid(tmp_path, [RunSpec("trpo", "CartPole-v1", 0)], GridSettings(10), runner=failing,
                      echo=lambda s: None)
    assert failed == [RunSpec("trpo", "CartPole-v1", 0)]


def test_bootstrap_ci_and_iqm():
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    lo, hi = bootstrap_ci(x)
    assert lo < x.mean() < hi and lo >= 1.0 and hi <= 100.0
    assert iqm(x) == pytest.approx(3.0)  # drops 1.0 and 100.0
    assert iqm(np.arange(8.0)) == pytest.approx(3.5)  # drops 0, 1 and 6, 7
    narrow = bootstrap_ci(np.full(5, 3.0))
    assert narrow == (3.0, 3.0)


def _run(seed: int, eval_steps: list[int], eval_returns: list[float]) -> RunResult:
    return RunResult("Hopper-v5", "trpo", seed, eval_steps[-1], 0.0, eval_returns[-1], max(eval_returns), 1.0,
                     1.0, 1.0, np.array([0.0]), np.array([0.0]), np.array(eval_steps, float),
                     np.array(eval_returns, float))


def test_peak_of_mean_is_tianshous_metric_not_the_mean_of_the_peaks():
    # seed 0 peaks at 100 (returns 10), seed 1 at 200 (returns 8): the mean of the peaks is 9, but the
    # seed-mean curve is (5, 6, 3) and peaks at 200 with 6 ± 2.
    runs = [_run(0, [100, 200, 300], [10.0, 4.0, 2.0]), _run(1, [100, 200, 300], [0.0, 8.0, 4.0])]
    assert peak_of_mean(runs) == {"mean": pytest.approx(6.0), "std": pytest.approx(2.0), "step": 200}
    assert np.mean([r.best_eval for r in runs]) == pytest.approx(9.0)
    # only the steps that every run evaluated at count (a run whose layout evaluates elsewhere)
    odd = _run(2, [150, 200, 300], [100.0, 0.0, 0.0])
    assert peak_of_mean(runs + [odd]) == {"mean": pytest.approx(4.0), "std": pytest.approx(np.std([4.0, 8.0, 0.0])),
                                          "step": 200}  # its 100 at step 150 is no seed-mean point
    assert np.isnan(peak_of_mean([runs[0], _run(3, [50], [1.0])])["mean"])


def test_bench_command_runs_a_real_grid_and_reports(tmp_path):
    out = tmp_path / "grid"
    args = ["bench", "--algos", "trpo,ppo", "--envs", "CartPole-v1", "--seeds", "0-1", "--steps", "1024",
            "--jobs", "2", "--out", str(out), "--eval-every", "512", "--eval-episodes", "2",
            "--set", "n_envs=2", "--set", "n_steps=256"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    runs = find_runs(out)
    assert len(runs) == 4 and all(r.steps == 1024 for r in runs)
    rows = aggregate(runs)
    assert [(r["env"], r["algo"], r["seeds"]) for r in rows] == [("CartPole-v1", "ppo", [0, 1]),
                                                                 ("CartPole-v1", "trpo", [0, 1])]
    for row in rows:  # each seed's own numbers are kept beside the statistics made from them
        assert [p["seed"] for p in row["per_seed"]] == [0, 1]
        assert np.mean([p["final_eval"] for p in row["per_seed"]]) == pytest.approx(row["final_eval"]["mean"])
    for r in runs:
        evals = np.loadtxt(out / r.env_id / r.algo / f"s{r.seed}" / "evals.csv", delimiter=",", skiprows=1)
        assert list(evals[:, 0]) == [512, 1024]
        assert r.best_eval >= max(evals[:, 1].max(), r.final_eval) - 1e-9
    for row in rows:  # mean final eval ≤ peak of the seed-mean curve ≤ mean of the per-seed bests
        peak = row["peak_mean_eval"]
        assert row["final_eval"]["mean"] - 1e-9 <= peak["mean"] <= row["best_eval"]["mean"] + 1e-9
        assert peak["step"] in (512, 1024)
    assert (out / "summary.md").read_text().count("| CartPole-v1 |") == 2
    assert (out / "curves-natural-gradient.png").exists() and (out / "curves-proximal.png").exists()
    again = CliRunner().invoke(app, args)
    assert "4 of 4 runs already finished" in again.output


def test_report_names_the_env_options_a_row_was_run_with():
    plain = _run(0, [100], [1.0])
    options = dataclasses.replace(plain, env_id="Ant-v5", env_kwargs={"include_cfrc_ext_in_observation": False})
    rows = aggregate([plain, options])
    assert [r["env_kwargs"] for r in rows] == [{"include_cfrc_ext_in_observation": False}, {}]
    table = markdown(rows)
    assert "| Ant-v5 (include_cfrc_ext_in_observation=false) | trpo |" in table
    assert "| Hopper-v5 | trpo |" in table


def test_bench_report_reads_the_env_options_from_each_run(tmp_path):
    out = tmp_path / "grid"
    result = CliRunner().invoke(app, ["bench", "--algos", "trpo", "--envs", "Pendulum-v1", "--seeds", "0",
                                      "--steps", "256", "--out", str(out), "--eval-episodes", "1",
                                      "--set", "n_steps=128", "--set", 'env_kwargs={"g": 9.81}'])
    assert result.exit_code == 0, result.output
    assert [r.env_kwargs for r in find_runs(out)] == [{"g": 9.81}]
    assert "| Pendulum-v1 (g=9.81) | trpo | 1 |" in (out / "summary.md").read_text()


def test_bench_takes_a_module_factory_as_natgrad_train_does(tmp_path):
    out = tmp_path / "grid"
    result = CliRunner().invoke(app, ["bench", "--algos", "ppo", "--envs", "natgrad.wrappers:no_velocity", "--seeds",
                                      "0", "--steps", "128", "--out", str(out), "--eval-episodes", "1",
                                      "--set", "n_steps=64", "--set", "minibatches=2",
                                      "--set", 'env_kwargs={"env_id": "CartPole-v1"}'])
    assert result.exit_code == 0, result.output
    [run] = find_runs(out)
    assert (run.env_id, run.env_kwargs, run.steps) == ("natgrad.wrappers:no_velocity", {"env_id": "CartPole-v1"}, 128)
    assert_complete_run(out / "natgrad.wrappers_no_velocity" / "ppo" / "s0", steps=[64, 128], checkpoints=2,
                        eval_episodes=1)


def test_a_killed_grid_run_resumes_from_its_newest_valid_checkpoint(tmp_path):
    """A grid run killed after its step-512 checkpoint (and with a truncated step-768 one) is moved aside,
    kept, and continued from step 512 to the grid's 1024; the report reads one curve without overlap."""
    spec = RunSpec("trpo", "CartPole-v1", 0)
    settings = GridSettings(1024, (("n_envs", "1"), ("n_steps", "128")), eval_every=256, eval_episodes=2)
    assert run_grid(tmp_path, [spec], settings, echo=lambda s: None) == []
    run_dir = spec.path(tmp_path)
    for name in ["eval.json", "model.pt", "checkpoints/step_0000001024.pt"]:  # as a kill leaves it
        (run_dir / name).unlink()
    truncated = run_dir / "checkpoints" / "step_0000000768.pt"
    truncated.write_bytes(truncated.read_bytes()[:500])
    messages: list[str] = []
    assert run_grid(tmp_path, [spec], settings, echo=messages.append) == []
    [moved] = (tmp_path / ".incomplete").iterdir()
    kept = moved / "s0"
    assert f"{truncated.name} cannot be read" in messages[1] and "was moved to" in messages[2]
    assert messages[2].endswith(f"resuming it from {kept / 'checkpoints' / 'step_0000000512.pt'}")
    assert (kept / "checkpoints" / truncated.name).stat().st_size == 500  # the moved copy is kept as it was
    assert len((kept / "metrics.csv").read_text().splitlines()) == 1 + 8  # with its rows past step 512
    config = json.loads((run_dir / "config.json").read_text())
    assert config["resumed_from"]["step"] == 512 and config["start_timesteps"] + config["steps"] == 1024
    assert config["resumed_from"]["run_dir"] == f"../../../.incomplete/{moved.name}/s0"
    [result] = find_runs(tmp_path)
    assert result.steps == 1024 and list(result.curve_steps) == [128.0 * k for k in range(1, 9)]
    assert list(result.eval_steps) == [256, 512, 768, 1024]
    report = CliRunner().invoke(app, ["report", str(tmp_path)])
    assert report.exit_code == 0 and "| CartPole-v1 | trpo | 1 | 1,024 |" in report.output, report.output


def test_grid_paths_are_safe_names():
    assert RunSpec("ppo", "ALE/Pong-v5", 3).path(Path("g")) == Path("g/ALE_Pong-v5/ppo/s3")
    assert RunSpec("ppo", "my_envs:Maze-v0", 0).path(Path("g")) == Path("g/my_envs_Maze-v0/ppo/s0")
