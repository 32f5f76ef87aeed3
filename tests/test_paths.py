"""benchmarks.paths: where two runs' metrics part, which commits change ``src/``, and a pair of runs end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from benchmarks import _harness, paths

RUN = [{"time/steps": 2048.0, "policy/kl": 0.0093, "critic/loss": 0.41},
       {"time/steps": 4096.0, "policy/kl": 0.0088, "critic/loss": 0.37}]


def test_runs_that_agree_bit_for_bit_do_not_part() -> None:
    assert paths.first_difference(RUN, [dict(r) for r in RUN]) is None
    assert paths.first_difference(RUN, RUN[:1]) is None  # over the updates both made
    with_nan = [{**r, "policy/kl": math.nan} for r in RUN]
    assert paths.first_difference(with_nan, [dict(r) for r in with_nan]) is None  # NaN where both have NaN


def test_the_first_update_that_differs_in_the_last_bit_is_named_with_its_values() -> None:
    other = [dict(RUN[0]), {**RUN[1], "critic/loss": math.nextafter(0.37, 1.0)}]
    diff = paths.first_difference(RUN, other)
    assert diff == {"update": 1, "steps": 4096.0, "differ": {"critic/loss": [0.37, math.nextafter(0.37, 1.0)]}}
    assert paths.describe(diff, 2).startswith("parts at update 1 (4,096 steps): critic/loss 0.37 vs 0.37000000000")
    assert paths.describe(None, 2) == "the same, bit for bit, over 2 updates"


def test_a_metric_only_one_commit_logs_is_not_a_difference() -> None:
    newer = [{**r, "policy/kl_max": 0.05} for r in RUN]  # a later commit logs more
    assert paths.first_difference(RUN, newer) is None


def test_source_commits_are_the_first_parent_ones_that_change_src() -> None:
    commits = paths.source_commits("a582079", "3e3ea6b")
    assert any(c.startswith("01c13ed") for c in commits) and len(commits) == len(set(commits))
    assert not any(c.startswith("a582079") for c in commits)  # after --old, up to --new
    for c in commits[:3]:
        assert subprocess.run(["git", "diff", "--quiet", f"{c}^1", c, "--", "src"], cwd=_harness.ROOT).returncode == 1


def test_a_commit_paired_with_itself_from_the_same_weights_agrees_bit_for_bit(tmp_path: Path) -> None:
    out = tmp_path / "pair.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks.paths", "pair", "--old", "HEAD", "--new", "HEAD",
                           "--env", "CartPole-v1", "--algo", "trpo", "--steps", "4096", "--cache",
                           str(tmp_path / "cache"), "--out", str(out)], capture_output=True, text=True,
                          cwd=_harness.ROOT, env=_harness.child_environment())
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    (n, m), parts = result["result"]["updates"], result["result"]["parts"]
    assert n == m >= 2 and parts is None and result["old"] == result["new"]
    assert f"initial weights: the same, bit for bit, over {n} updates" in done.stdout
    assert (tmp_path / "cache" / result["old"][:12] / "src" / "natgrad" / "__init__.py").exists()  # the commit's code
