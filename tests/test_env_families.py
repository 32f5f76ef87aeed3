"""The env families of docs/results/spaces.md train end to end: Atari through the CLI, MinAtar and MiniGrid in
Python."""

import json

import pytest
from typer.testing import CliRunner

import natgrad
from natgrad.cli import app
from natgrad.runs.evaluation import evaluate


def test_cli_trains_ppo_on_atari_pong_through_the_atari_factory(tmp_path):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")  # AtariPreprocessing's resize
    out = tmp_path / "pong"
    result = CliRunner().invoke(app, ["train", "--algo", "ppo", "--env", "natgrad.wrappers:atari",
                                      "--set", 'env_kwargs={"env_id": "ALE/Pong-v5"}', "--steps", "512",
                                      "--set", "n_envs=2", "--set", "n_steps=128", "--set", "epochs=1",
                                      "--set", "minibatches=2", "--eval-episodes", "0", "--checkpoint-every", "0",
                                      "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["env_id"] == "natgrad.wrappers:atari" and config["config"]["env_kwargs"] == {"env_id": "ALE/Pong-v5"}
    assert len((out / "metrics.csv").read_text().splitlines()) == 1 + 2  # two updates of 2 × 128 steps
    model = natgrad.load(out / "model.pt")
    [leaf] = model.actor.layout.leaves
    assert leaf.shape == (4, 84, 84) and leaf.scale == pytest.approx(1 / 255)  # 4 stacked frames, channels first
    assert model.actor.encoder.features == 512  # the Nature CNN
    model.close()


@pytest.mark.parametrize("env, env_kwargs, package", [
    ("MinAtar/Breakout-v1", {}, "minatar"),
    ("natgrad.wrappers:minigrid", {"env_id": "MiniGrid-DoorKey-5x5-v0"}, "minigrid"),
])
def test_minatar_and_minigrid_train_and_evaluate(env, env_kwargs, package):
    pytest.importorskip(package)
    model = natgrad.TRPO(env, env_kwargs=env_kwargs, n_envs=2, n_steps=64, seed=0).learn(128)
    kinds = sorted(leaf.kind for leaf in model.actor.layout.leaves)
    assert kinds == (["image"] if package == "minatar" else ["discrete", "image"])  # MiniGrid: image + direction
    assert model.num_timesteps == 128 and len(evaluate(model, 1)) == 1
    model.close()
