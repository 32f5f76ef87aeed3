"""natgrad plot: the panels a user gets, and the curves drawn, computed again here from the run's files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from natgrad import NatgradError
from natgrad.cli import app
from natgrad.runs.directories import checkpoint_path
from natgrad.runs.training import train_run
from natgrad.tools.plot import figure

runner = CliRunner()
TINY = {"n_envs": "1", "n_steps": "64"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two TRPO seeds, one PPO run, and a run resumed from TRPO seed 0's checkpoint at step 256."""
    root = tmp_path_factory.mktemp("runs")
    common = dict(steps=512, overrides=TINY, checkpoint_every=256, eval_every=128, eval_episodes=2, progress=False,
                  echo=lambda _: None)
    out = {}
    for name, algo, seed in (("trpo0", "trpo", 0), ("trpo1", "trpo", 1), ("ppo0", "ppo", 0)):
        out[name], _ = train_run(algo, "CartPole-v1", seed=seed, out=root / name, **common)
    resumed = {**common, "steps": 256, "overrides": {}}
    out["resumed"], _ = train_run("trpo", "CartPole-v1", out=root / "resumed",
                                  resume=checkpoint_path(out["trpo0"], 256), **resumed)
    return out


def episodes(run_dir):
    rows = list(csv.DictReader(open(run_dir / "episodes.csv")))
    return np.array([float(r["step"]) for r in rows]), np.array([float(r["return"]) for r in rows])


def moving_average_by_step(steps, returns, window):
    """For each step count, the mean of the last ``window`` returns of the episodes ended by then."""
    return {s: np.mean(returns[: np.flatnonzero(steps <= s)[-1] + 1][-window:]) for s in np.unique(steps)}


def titles(fig):
    return [ax.get_title() for ax in fig.axes[1:]]


def test_panels_are_those_the_runs_logged(runs):
    trpo = titles(figure([runs["trpo0"]]))
    assert trpo == ["KL per update (δ dashed)", "line-search backtracks", "conjugate-gradient residual",
                    "policy entropy", "critic explained variance"]
    both = titles(figure([runs["trpo0"], runs["ppo0"]]))
    assert both == trpo + ["PPO clip fraction"]
    assert "PPO-KL penalty β" not in both


def test_one_run_is_its_moving_average_and_its_evaluations(runs):
    fig = figure([runs["trpo1"]], smooth=5)
    line = fig.axes[0].lines[0]
    expected = moving_average_by_step(*episodes(runs["trpo1"]), 5)
    assert list(line.get_xdata()) == sorted(expected)
    assert np.allclose(line.get_ydata(), [expected[s] for s in sorted(expected)])
    evals = list(csv.DictReader(open(runs["trpo1"] / "evals.csv")))
    marker = fig.axes[0].lines[1]  # errorbar's data line
    assert list(marker.get_xdata()) == [float(r["step"]) for r in evals] == [128, 256, 384, 512]
    assert np.allclose(marker.get_ydata(), [float(r["mean"]) for r in evals])
    kl = fig.axes[1].lines
    assert [line.get_linestyle() for line in kl] == ["-", "--"]  # KL reached, and δ


def test_a_resumed_run_is_drawn_joined_with_its_parent(runs):
    line = figure([runs["resumed"]], smooth=3).axes[0].lines[0]
    parent_steps, parent_returns = episodes(runs["trpo0"])
    child_steps, child_returns = episodes(runs["resumed"])
    keep = parent_steps <= 256  # the parent's episodes up to the checkpoint, then the child's
    expected = moving_average_by_step(np.r_[parent_steps[keep], child_steps], np.r_[parent_returns[keep],
                                                                                    child_returns], 3)
    assert line.get_xdata()[0] == parent_steps[0] and line.get_xdata()[-1] == child_steps[-1] > 256
    assert np.allclose(line.get_ydata(), [expected[s] for s in sorted(expected)])


def test_group_is_the_mean_and_std_across_its_runs(runs):
    fig = figure([runs["trpo0"], runs["trpo1"], runs["ppo0"]], group="algo", smooth=4)
    top = fig.axes[0]
    trpo = next(line for line in top.lines if line.get_label() == "algo=trpo (2 runs)")
    grid = trpo.get_xdata()
    curves = []
    for name in ("trpo0", "trpo1"):
        expected = moving_average_by_step(*episodes(runs[name]), 4)
        curves.append(np.interp(grid, sorted(expected), [expected[s] for s in sorted(expected)]))
    assert grid[0] == 0 and grid[-1] == 512
    assert np.allclose(trpo.get_ydata(), np.mean(curves, 0))
    band = top.collections[0].get_paths()[0].vertices[:, 1]  # the ± std band of the first group
    assert np.isclose(band.max(), np.max(np.mean(curves, 0) + np.std(curves, 0)))


def test_group_by_a_config_option_and_refusals(runs, tmp_path):
    fig = figure([runs["trpo0"], runs["trpo1"]], group="config.max_kl")
    assert [line.get_label() for line in fig.axes[0].lines if not line.get_label().startswith("_")] == \
        ["max_kl=0.01 (2 runs)"]
    with pytest.raises(NatgradError, match=r"cannot group by 'config.max_kl'.*options of .*ppo0"):
        figure([runs["ppo0"]], group="config.max_kl")
    out = tmp_path / "curves.png"
    result = runner.invoke(app, ["plot", str(runs["trpo0"].parent), "--group", "algo", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = runner.invoke(app, ["plot", str(runs["trpo0"]), "--out", str(out)])
    assert isinstance(again.exception, NatgradError) and "already exists" in str(again.exception)
