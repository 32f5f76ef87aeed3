"""Videos of evaluation episodes: one MP4 per episode, one frame per step plus the first, read back with imageio."""

from __future__ import annotations

import ctypes.util
import os

import imageio
import pytest
from typer.testing import CliRunner

import natgrad
from natgrad import NatgradError
from natgrad.cli import app
from natgrad.runs.evaluation import evaluate
from natgrad.runs.training import train_run
from natgrad.tools.video import GL_BACKENDS, record_video

runner = CliRunner()


def frames(path) -> int:
    with imageio.get_reader(path) as reader:
        return reader.count_frames()


def test_a_cartpole_episode_has_a_frame_per_step(tmp_path):
    model = natgrad.TRPO("CartPole-v1", n_envs=1, n_steps=64, preset=False)
    recording = record_video(model, tmp_path / "videos", episodes=2, seed=3)
    assert [p.name for p in recording.files] == ["CartPole-v1-trpo-episode-0.mp4", "CartPole-v1-trpo-episode-1.mp4"]
    assert sorted(os.listdir(tmp_path / "videos")) == [p.name for p in recording.files]  # no stray episode
    assert recording.returns == evaluate(model, 2, seed=3)  # the deterministic evaluation episodes themselves
    for path, ret in zip(recording.files, recording.returns):
        assert frames(path) == ret + 1  # CartPole pays 1 per step; the reset frame comes first
    with pytest.raises(NatgradError, match="already exists"):
        record_video(model, tmp_path / "videos")
    model.close()


def test_eval_video_option_records_the_evaluated_episodes(tmp_path):
    run, _ = train_run("trpo", "CartPole-v1", steps=64, out=tmp_path / "run", overrides={"n_envs": 1, "n_steps": 64},
                       eval_episodes=0, checkpoint_every=0, progress=False, echo=lambda _: None)
    result = runner.invoke(app, ["eval", str(run), "--episodes", "1", "--video", str(tmp_path / "v")])
    assert result.exit_code == 0, result.output
    assert "wrote 1 video(s)" in result.output and "over 1 episodes" in result.output
    mean = float(result.output.split(": ")[-1].split(" ± ")[0])
    assert frames(tmp_path / "v" / "CartPole-v1-trpo-episode-0.mp4") == mean + 1


def test_an_env_that_cannot_render_is_one_line(tmp_path):
    model = natgrad.TRPO("natgrad-test/Dict-v0", n_envs=1, n_steps=8)
    with pytest.raises(NatgradError, match=r"natgrad-test/Dict-v0 cannot render a frame") as error:
        record_video(model, tmp_path)
    assert "\n" not in str(error.value) and not list(tmp_path.iterdir())
    model.close()


@pytest.mark.skipif(not any(ctypes.util.find_library(lib) for _, lib in GL_BACKENDS),
                    reason="neither libEGL nor libOSMesa here: MuJoCo cannot render offscreen")
def test_mujoco_renders_offscreen_without_mujoco_gl_set(tmp_path, monkeypatch):
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM", "DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.setenv(name, "")  # restored (or removed) after the test, whatever record_video sets
        monkeypatch.delenv(name)
    model = natgrad.PPO("InvertedPendulum-v5", n_envs=1, n_steps=64, env_kwargs={"width": 96, "height": 96})
    recording = record_video(model, tmp_path)
    assert os.environ["MUJOCO_GL"] in ("egl", "osmesa")
    # InvertedPendulum-v5 pays 1 per step but 0 for the step it falls on; the reset frame comes first
    assert frames(recording.files[0]) == recording.returns[0] + 2
    model.close()
