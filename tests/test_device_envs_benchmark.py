"""``benchmarks.device_envs``: each pair's settings reach natgrad (Breakout takes the MinAtar hyperparameters), and a
result file renders as the table and, with ``--plot``, as the figure of its learning curves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import device_envs
from benchmarks.spaces_peers import HYPER


def test_breakout_trains_with_the_minatar_hyperparameters_and_the_others_with_natgrads_defaults() -> None:
    _, _, network, hyper = device_envs.PAIRS["breakout"]
    assert hyper["ppo"]["epochs"] == HYPER["ppo"]["epochs"] and network["cnn"] == "small"
    assert device_envs.PAIRS["cartpole"][3] == {} and device_envs.PAIRS["hopper"][3] == {}


def path_result(rate: float, rollout: float, update: float) -> dict:
    """What ``measure`` keeps of one path over two seeds, with made-up numbers."""
    return {"steps": 1000, "steps_per_second": rate, "steps_per_cpu_second": rate / 2, "rollout_seconds": rollout,
            "update_seconds": update, "final_train_per_seed": [20.0, 30.0],
            "curves": [{"seed": s, "steps": [100, 200, 300], "returns": [10.0, 20.0, 30.0 + s]} for s in (0, 1)]}


def test_a_result_renders_as_the_table_and_its_curves_as_a_figure(tmp_path: Path) -> None:
    out, png = tmp_path / "r.json", tmp_path / "curves.png"
    row = {"pair": "cartpole", "algo": "ppo", "n_envs": 8, "n_steps": 4,
           "gymnax/CartPole-v1": path_result(3000.0, 0.5, 2.0), "CartPole-v1": path_result(2000.0, 1.0, 2.0)}
    out.write_text(json.dumps({"rows": [row]}))
    done = subprocess.run([sys.executable, "-m", "benchmarks.device_envs", "--render", "--out", str(out), "--plot",
                           str(png)], capture_output=True, text=True, cwd=Path(device_envs.__file__).parents[1])
    assert done.returncode == 0, done.stderr
    # gymnax ÷ Gymnasium: 3000 / 2000 by wall clock and by CPU time, rollouts 1.0 s / 0.5 s
    assert "| 1.50×, 1.50×, 2.00× |" in done.stdout and "| 20.0, 30.0 |" in done.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
