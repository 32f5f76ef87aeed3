"""benchmarks.regression: the verdict on a cell's new seeds against the table's (a two-sample test and the range
check), and a run end to end at a tiny budget that records the commit it ran at."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import _harness, regression

TABLE = [3287.0, 3510.2, 2108.9, 3709.5, 3402.1, 3350.8, 2850.7, 3601.4, 3020.3, 3455.0]  # ten seeds of a cell


def test_a_sample_shifted_down_is_flagged_with_the_seeds_below_the_old_range() -> None:
    result = regression.compare(TABLE, [1500.0, 1720.5, 1810.2, 2201.0])
    assert result["verdict"] == "moved down" and result["p"] < 0.01
    assert result["below_range"] == 3 and result["above_range"] == 0  # 2201.0 is above the old minimum 2108.9
    assert result["old_range"] == [2108.9, 3709.5] and result["new_mean"] == pytest.approx(1807.925)


def test_a_sample_from_the_same_distribution_is_not_flagged() -> None:
    result = regression.compare(TABLE, [3150.0, 3480.0, 2950.0, 3600.0])
    assert result["verdict"] == "same" and result["p"] > 0.5
    assert result["below_range"] == result["above_range"] == 0


def test_a_sample_shifted_up_is_flagged_up() -> None:
    result = regression.compare(TABLE, [4100.0, 4250.0, 3990.0, 4400.0])
    assert result["verdict"] == "moved up" and result["above_range"] == 4
    assert result["p"] == pytest.approx(result["smallest_p"]) == pytest.approx(2 / 1001)  # all four above all ten


def test_one_new_seed_is_never_flagged_and_the_line_says_so() -> None:
    new = [900.0]
    cell = {"env": "Hopper-v5", "algo": "trpo", "comparison": regression.compare(TABLE, new),
            "table": {"seeds": list(range(10)), "steps": 1_001_472, "final_eval": TABLE},
            "new": {"seeds": [200], "steps": 1_001_472, "final_eval": new}}
    assert cell["comparison"]["verdict"] == "same" and cell["comparison"]["below_range"] == 1
    assert regression.verdict(cell).endswith("1 new seed(s) cannot reach p < 0.05 (at best p = 0.182): add seeds")


def test_without_scipy_the_permutation_test_gives_scipys_exact_p() -> None:
    stats = pytest.importorskip("scipy.stats")
    new = np.array([1500.0, 1720.5, 3400.2, 2201.0])
    old = np.array(TABLE)
    theirs = stats.permutation_test((new, old), lambda a, b: abs(a.mean() - b.mean()), permutation_type="independent",
                                    alternative="greater", n_resamples=np.inf).pvalue
    assert regression.permutation_p(old, new) == pytest.approx(theirs)  # 1001 relabellings: exact
    sampled = regression.permutation_p(old, new, resamples=500)  # fewer than the relabellings: sampled
    assert abs(sampled - theirs) < 0.06


def test_without_scipy_the_verdict_falls_back_to_the_permutation_test(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # import scipy.stats now raises ImportError
    result = regression.compare(TABLE, [1500.0, 1720.5, 1810.2, 2201.0])
    assert result["test"] == "permutation test of the difference of means" and result["verdict"] == "moved down"
    assert result["p"] == pytest.approx(regression.permutation_p(np.array(TABLE), np.array([1500.0, 1720.5, 1810.2,
                                                                                             2201.0])))


def test_the_verdict_line_names_the_move_p_means_and_ranges() -> None:
    cell = {"env": "Hopper-v5", "algo": "trpo",
            "table": {"seeds": list(range(10)), "steps": 1_001_472, "final_eval": TABLE},
            "new": {"seeds": [200, 201, 202, 203], "steps": 1_001_472, "final_eval": [1500.0, 1720.5, 1810.2, 2201.0]}}
    cell["comparison"] = regression.compare(TABLE, cell["new"]["final_eval"])
    line = regression.verdict(cell)
    assert line.startswith("Hopper-v5 TRPO: moved down (p = 0.00")
    assert ("mean 1807.9 on seeds 200–203 [1500.0, 2201.0] against 3229.6 on the table's seeds 0–9 [2108.9, 3709.5]"
            in line)  # the table's mean: 3229.59
    assert line.endswith("; 3 of 4 new seeds below the old range")


def test_a_cell_outside_the_table_and_the_tables_own_seeds_are_refused() -> None:
    with pytest.raises(Exception, match="unknown cell hopper-vpg: choose from .*hopper-trpo"):
        regression.parse_cells("hopper-vpg")
    with pytest.raises(regression.NatgradError, match=r"seeds \[3\] are the table's own"):
        regression.run([("Hopper", "trpo")], [3, 200], regression.GridSettings(steps=100), 1, Path("unused"))


def test_a_tiny_run_writes_the_commit_the_settings_and_each_seed_and_compares_nothing(tmp_path: Path) -> None:
    out = tmp_path / "regression.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.regression", "--cells", "hopper-trpo", "--seeds", "200",
                           "--steps", "300", "--jobs", "1", "--out", str(out)], capture_output=True, text=True,
                          cwd=_harness.ROOT, env=_harness.child_environment())
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_harness.ROOT, capture_output=True, text=True).stdout
    assert result["commit"]["hash"] == head.strip() and isinstance(result["commit"]["dirty"], bool)
    assert result["settings"]["steps"] == 300 and result["settings"]["seeds"] == [200]
    cell = result["cells"][0]
    assert cell["new"]["seeds"] == [200] and cell["new"]["steps"] == 2048 and len(cell["new"]["final_eval"]) == 1
    assert cell["table"]["steps"] == 1_001_472 and cell["comparison"] is None  # another budget: nothing compared
    assert "Hopper-v5 TRPO: not compared: the new runs took 2,048 steps, the table's 1,001,472" in done.stdout
    rendered = subprocess.run([sys.executable, "-m", "benchmarks.regression", "--out", str(out), "--render"],
                              capture_output=True, text=True, cwd=_harness.ROOT, env=_harness.child_environment())
    assert "not compared" in rendered.stdout and result["commit"]["hash"][:12] in rendered.stdout


    def compare_grid(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "benchmarks.regression", "--grid", result["settings"]["grid"],
                               *args], capture_output=True, text=True, cwd=_harness.ROOT,
                              env=_harness.child_environment())

    whole = compare_grid("--out", str(tmp_path / "drift.json"))  # every cell of the table: this grid has one
    assert whole.returncode == 1 and "error: no finished run of ant-ppo, ant-trpo, halfcheetah-ppo" in whole.stderr
    assert "choose the cells it holds with --cells" in whole.stderr and not (tmp_path / "drift.json").exists()
    again = compare_grid("--cells", "hopper-trpo", "--made-at", "abc1234", "--out", str(tmp_path / "drift.json"))
    assert again.returncode == 0, again.stderr[-2000:]
    drift = json.loads((tmp_path / "drift.json").read_text())
    assert drift["commit"] == {"hash": "abc1234", "dirty": None} and drift["settings"]["ran"] is False
    assert drift["cells"][0]["new"] == cell["new"]  # the same runs, read again, none made
    assert again.stdout.startswith(f"natgrad {drift['natgrad_version']} at abc1234 (the runs of ")
