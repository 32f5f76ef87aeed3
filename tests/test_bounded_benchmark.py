"""benchmarks.bounded: the per-state KL summary of a cell and its verdict against its loop's Gaussian, and the whole
grid end to end at a tiny budget on Pendulum (every cell trained, the JSON, the tables and a curves figure)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from benchmarks import _harness, bounded


def test_a_cells_kl_summary_pools_every_update_of_every_seed_and_counts_those_past_its_bound() -> None:
    seeds = [{"bound": 0.031, "mean_kl": [0.01, 0.02], "kl_p95": [0.02, 0.03], "kl_max": [0.03, 0.05]},
             {"bound": 0.031, "mean_kl": [0.015], "kl_p95": [0.025], "kl_max": [0.031]}]
    trpl = bounded.kl_summary(seeds, per_state=True)
    assert trpl["updates"] == 3 and trpl["past_bound"] == 1  # 0.05 only: 0.031 is on the bound, not past it
    assert trpl["kl_max_median"] == 0.031 and trpl["kl_max_max"] == 0.05 and trpl["kl_p95_median"] == 0.025
    assert trpl["mean_kl_median"] == 0.015 and trpl["mean_kl_max"] == 0.02
    trpo = bounded.kl_summary([dict(s, bound=0.012) for s in seeds], per_state=False)  # δ bounds the mean KL
    assert trpo["past_bound"] == 2
    assert bounded.kl_summary([dict(s, bound=None) for s in seeds], per_state=False)["past_bound"] is None


def row(cell: str, finals: list[float]) -> dict:
    """A cell's row as ``aggregate`` gives it (the statistics the verdict reads)."""
    lo, hi = np.percentile(finals, [2.5, 97.5])
    return {"cell": cell, "algo": cell.split()[0], "per_seed": [{"final_eval": x} for x in finals],
            "final_eval": {"mean": float(np.mean(finals)), "ci_low": float(lo), "ci_high": float(hi)}}


def test_a_cell_beats_its_loops_gaussian_only_when_the_test_says_so() -> None:
    gaussian = row("ppo gaussian", [1000.0, 1100.0, 1050.0, 980.0, 1020.0])
    better = bounded.versus(gaussian, row("trpl kl", [2000.0, 2100.0, 1900.0, 2050.0, 1980.0]))
    assert better["beats"] and better["cis_apart"] and better["p"] < 0.05
    alike = bounded.versus(gaussian, row("ppo beta", [1010.0, 1090.0, 1040.0, 990.0, 1030.0]))
    assert not alike["beats"] and alike["verdict"] == "same" and not alike["cis_apart"]
    one_seed = bounded.versus(row("ppo gaussian", [1000.0]), row("ppo beta", [5000.0]))
    assert not one_seed["beats"] and not one_seed["cis_apart"]  # one seed a side proves nothing
    assert bounded.BASELINE["trpl"] == "ppo gaussian" and bounded.BASELINE["trpo"] == "trpo gaussian"


def test_a_tiny_grid_runs_every_cell_and_renders_its_table(tmp_path: Path) -> None:
    out = tmp_path / "bounded.json"
    command = [sys.executable, "-m", "benchmarks.bounded", "--envs", "Pendulum-v1", "--steps", "2048", "--seeds", "0",
               "--jobs", "2", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=_harness.ROOT, env=_harness.child_environment())
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    rows = result["envs"]["Pendulum-v1"]
    assert sorted(r["cell"] for r in rows) == sorted(bounded.CELLS)
    for r in rows:
        kl = r["kl"]
        assert r["seeds"] == [0] and kl["updates"] >= 1
        assert 0 < kl["mean_kl_median"] <= kl["kl_p95_max"] <= kl["kl_max_max"]
        assert (kl["bound"] is None) == (r["algo"] == "ppo")
        assert (r["versus"] is None) == r["cell"].endswith("gaussian")
    assert result["settings"]["variants"]["beta"]["overrides"] == {"action_dist": "beta"}
    assert [Path(p).name for p in result["curves"]] == ["bounded-Pendulum-v1.png"]
    assert Path(result["curves"][0]).exists()
    assert "| trpl w2 | 1 |" in done.stdout and "placeholder" in done.stdout
    again = subprocess.run([*command[:3], "--out", str(out), "--render"], capture_output=True, text=True,
                           cwd=_harness.ROOT, env=_harness.child_environment())
    assert again.returncode == 0 and "**Pendulum-v1**" in again.stdout and "| ppo beta | 1 |" in again.stdout
