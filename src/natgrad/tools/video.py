"""Videos of a model's episodes: ``natgrad.runs.evaluation.evaluate`` on an env wrapped in Gymnasium's ``RecordVideo``.

The env renders with ``render_mode="rgb_array"``; RecordVideo collects each episode's frames, and each video is
written with imageio-ffmpeg (``pip install 'natgrad[video]'``, which also brings MoviePy, the writer RecordVideo
asks for: MoviePy's writer drops the last frame of some lengths, e.g. of 11 to 14 frames at 50 fps). MuJoCo
renders offscreen through the OpenGL platform named by ``MUJOCO_GL``; where the user has not set it, natgrad sets
``egl`` if libEGL can be loaded, else ``osmesa`` if libOSMesa can (Debian: libegl1, libegl-mesa0 and
libgl1-mesa-dri; or libosmesa6) (``offscreen_defaults``).
"""

from __future__ import annotations

import ctypes.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import RecordVideo

from natgrad.errors import NatgradError, one_line
from natgrad.rollouts.envs import EnvLike, env_source
from natgrad.runs.directories import check_writable, safe_name
from natgrad.runs.evaluation import EVAL_SEED, evaluate

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm

GL_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))  # MUJOCO_GL value, the library it loads
RENDER_HINT = ("MuJoCo renders offscreen with MUJOCO_GL=egl (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri) or "
               "MUJOCO_GL=osmesa (libosmesa6)")
RGB_HINT = "record an env that supports render_mode='rgb_array'"


class FrameExactRecordVideo(RecordVideo):
    """Gymnasium's ``RecordVideo`` with each video written by imageio-ffmpeg, every frame it collected kept."""

    def stop_recording(self) -> None:
        """Write the episode's frames with imageio-ffmpeg, every one of them."""
        if self.recorded_frames:
            import imageio_ffmpeg

            height, width = self.recorded_frames[0].shape[:2]
            writer = imageio_ffmpeg.write_frames(os.path.join(self.video_folder, f"{self._video_name}.mp4"),
                                                 (width, height), fps=self.frames_per_sec, macro_block_size=2,
                                                 ffmpeg_log_level="error")
            writer.send(None)
            for frame in self.recorded_frames:
                writer.send(np.ascontiguousarray(frame[..., :3], np.uint8))
            writer.close()
        self.recorded_frames = []
        self.recording = False


@dataclass(frozen=True)
class Recording:
    """What ``record_video`` wrote: one MP4 file per episode, and the episodes' returns."""

    files: list[Path]
    returns: list[float]


def offscreen_defaults() -> str | None:
    """Where the user has not chosen: ``MUJOCO_GL`` set to the first offscreen backend whose library loads here,
    and without a display ``SDL_VIDEODRIVER=dummy`` (pygame, which draws the classic-control envs, then needs
    none). Returns ``MUJOCO_GL``."""
    if "MUJOCO_GL" not in os.environ:
        for backend, library in GL_BACKENDS:
            if ctypes.util.find_library(library):
                os.environ["MUJOCO_GL"] = backend
                break
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return os.environ.get("MUJOCO_GL")


def record_video(model: Algorithm, video_dir: str | Path, episodes: int = 1, seed: int = EVAL_SEED,
                 deterministic: bool = True, env: EnvLike | None = None, name_prefix: str | None = None) -> Recording:
    """Run ``episodes`` evaluation episodes of ``model`` (deterministic unless told otherwise, from seeds
    ``seed``, ``seed + 1``, …, as ``evaluate`` does) and write each as ``video_dir/<prefix>-episode-<k>.mp4``.

    ``env``: an id, a factory or an env with ``render_mode="rgb_array"`` (default: one like the model's, made
    to render). ``name_prefix`` defaults to ``<env>-<algo>``. A file that is there already is never overwritten.
    """
    if episodes < 1:
        raise NatgradError(f"episodes must be >= 1, got {episodes}")
    video_dir = Path(video_dir)
    prefix = name_prefix or safe_name(f"{model.env_id or 'env'}-{model.name}")
    files = [video_dir / f"{prefix}-episode-{k}.mp4" for k in range(episodes)]
    taken = [str(f) for f in files if f.exists()]
    if taken:
        raise NatgradError(f"{taken[0]} already exists: choose a new video directory or name prefix "
                           "(natgrad never overwrites a file)")
    check_writable(video_dir, "choose another video directory")
    offscreen_defaults()
    rendering = _rendering_env(model, env, seed)
    try:
        with warnings.catch_warnings():  # "Overwriting existing videos": the names written are checked above
            warnings.filterwarnings("ignore", message=".*Overwriting existing videos")
            recorder = FrameExactRecordVideo(rendering, str(video_dir), episode_trigger=lambda _: True,
                                             name_prefix=prefix, disable_logger=True)
    except gym.error.DependencyNotInstalled:
        rendering.close()
        raise NatgradError("recording videos needs MoviePy and imageio-ffmpeg: pip install 'natgrad[video]'") from None
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        recorder.close()
        raise NatgradError("recording videos needs imageio-ffmpeg: pip install 'natgrad[video]'") from None
    returns = evaluate(model, episodes, seed, deterministic, env=recorder)  # closing the env writes the last file
    return Recording(files, returns)


def _rendering_env(model: Algorithm, env: EnvLike | None, seed: int) -> gym.Env:
    """An env that renders RGB frames: ``env`` if it is one, else made from it (or from the model's env) with
    ``render_mode="rgb_array"``; refused in one line if it renders no frame."""
    if isinstance(env, gym.Env):
        made = env
    else:
        source = model.env_source if env is None else env_source(env)
        kwargs = model.config.env_kwargs if env is None else {}
        if source is None:
            raise NatgradError(model.no_env_reason)
        if not source.repeatable:
            raise NatgradError("natgrad cannot make another env like the one this model trained on: pass env=... "
                               "(an env made with render_mode='rgb_array', or an id or factory) to record")
        with warnings.catch_warnings():  # an env without rgb_array is refused below, in one line
            warnings.simplefilter("ignore")
            try:
                made = source.make({**kwargs, "render_mode": "rgb_array"})
            except TypeError:  # a factory without a render_mode keyword
                made = source.make(kwargs)
    name = made.spec.id if made.spec is not None else type(made.unwrapped).__name__
    try:
        made.reset(seed=seed)
        frame = made.render()
    except Exception as e:  # whatever the env's renderer raises: no display, no OpenGL, not implemented
        made.close()
        raise NatgradError(f"{name} cannot render a frame ({type(e).__name__}: {one_line(e) or 'no message'}); "
                           f"{RENDER_HINT if _is_mujoco(made) else RGB_HINT}") from None
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3):
        made.close()
        raise NatgradError(f"{name} renders no RGB frame (render_mode={made.render_mode!r} gave "
                           f"{type(frame).__name__}): {RGB_HINT}")
    return made


def _is_mujoco(env: gym.Env) -> bool:
    """Whether the env is a MuJoCo one (a class of ``mujoco`` or Gymnasium's MuJoCo envs), which ``MUJOCO_GL`` makes
    render offscreen."""
    return any(cls.__module__.startswith(("mujoco", "gymnasium.envs.mujoco")) for cls in type(env.unwrapped).__mro__)
