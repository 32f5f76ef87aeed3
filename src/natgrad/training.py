"""One training run end to end, as ``natgrad train`` does it: build or resume, learn, log, evaluate."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from natgrad.algos import ALGORITHMS
from natgrad.algos.base import Algorithm, Callback, CallbackList
from natgrad.callbacks import CheckpointCallback, EvalCallback
from natgrad.errors import NatgradError
from natgrad.evaluation import evaluate, summary
from natgrad.loading import load
from natgrad.logger import RunLogger
from natgrad.runs import (
    CHECKPOINTS,
    CONFIG,
    EVALS,
    FINAL_MODEL,
    Warn,
    checkpoint_path,
    latest_model,
    machine,
    new_run_dir,
    parent_record,
    resume_args,
    safe_name,
    steps_left,
    to_stderr,
    write_json,
)
from natgrad.sampling import Sampling
from natgrad.version import __version__

DEFAULT_STEPS = 100_000  # env steps of a new run when none are given


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; the message names the checkpoint written and the command that resumes it."""


def build_model(algo: str, env_id: str, seed: int, overrides: dict[str, Any], preset: bool | Mapping[str, Any] = True,
                sampling: Sampling = Sampling(), threads: int = 1) -> Algorithm:
    """A fresh model of algorithm ``algo`` (by its CLI name), from its preset for ``env_id`` if asked (or from
    ``preset`` itself, a mapping of options)."""
    cls = ALGORITHMS.get(algo.lower())
    if cls is None:
        raise NatgradError(f"unknown algorithm {algo!r}: use one of {', '.join(sorted(ALGORITHMS))}")
    return cls(env_id, seed=seed, preset=preset, threads=threads, **asdict(sampling), **overrides)


def train_run(
    algo: str,
    env_id: str,
    steps: int | None = None,
    seed: int = 0,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    overrides: dict[str, Any] | None = None,
    resume: Path | None = None,
    checkpoint_every: int = 100_000,
    eval_episodes: int = 10,
    eval_every: int = 0,
    preset: bool | Mapping[str, Any] = True,
    progress: bool = True,
    argv: list[str] | None = None,
    sampling: Sampling = Sampling(),
    threads: int = 1,
    echo: Callable[[str], object] = print,
    warn: Warn = to_stderr,
    after_eval: Callback | None = None,
) -> tuple[Path, dict[str, float] | None]:
    """Train for ``steps`` env steps into a new run directory; return it and the final evaluation.

    ``steps`` defaults to ``DEFAULT_STEPS``; with ``resume`` it counts steps beyond the checkpoint, and
    defaults to what the resumed run had left of its own total. With ``eval_every``, a deterministic
    evaluation of ``eval_episodes`` episodes every that many env steps goes to ``evals.csv``; the final one
    goes to ``eval.json``, written last. ``sampling`` says where rollouts run (a resumed run samples as told
    here, not as the run it continues did). Everything is checked before the run directory is made;
    ``echo`` names it as training starts. Ctrl-C saves a checkpoint and raises ``Interrupted``.

    The evaluations and checkpoints are ``natgrad.callbacks``' ``EvalCallback`` and ``CheckpointCallback``;
    ``after_eval`` runs after each periodic evaluation with its results (returning False stops training).
    """
    if steps is not None and steps <= 0:
        raise NatgradError(f"--steps must be > 0, got {steps}")
    if eval_every < 0 or eval_episodes < 0:
        raise NatgradError("--eval-every and --eval-episodes must be >= 0")
    if checkpoint_every < 0:
        raise NatgradError(f"--checkpoint-every must be >= 0 (0: only the final model), got {checkpoint_every}")
    overrides = overrides or {}
    if resume is not None:
        source = latest_model(resume, warn)
        model = load(source, threads=threads, **asdict(sampling), **overrides)
        steps = steps_left(source, model.num_timesteps) if steps is None else steps
    else:
        source = None
        model = build_model(algo, env_id, seed, overrides, preset, sampling, threads)
        steps = DEFAULT_STEPS if steps is None else steps
    run_dir = new_run_dir(runs_root, safe_name(f"{model.env_id}-{model.name}-s{model.seed}"), out)
    write_json(run_dir / CONFIG, {
        "algo": model.name, "env_id": model.env_id, "seed": model.seed, "steps": steps,
        "config": model.config.to_dict(), "sampling": asdict(model.sampling), "preset": model.preset,
        "resumed_from": parent_record(source, run_dir, model.num_timesteps) if source else None,
        "start_timesteps": model.num_timesteps, "natgrad_version": __version__, "command": argv,
        "machine": machine(),
    })
    echo(f"run directory: {run_dir}")
    start = time.perf_counter()
    callbacks = CallbackList([
        *([EvalCallback(eval_every, eval_episodes, run_dir / EVALS, after_eval=after_eval)]
          if eval_every and eval_episodes else []),
        *([CheckpointCallback(checkpoint_every, run_dir / CHECKPOINTS)] if checkpoint_every else []),
        RunLogger(run_dir, steps, progress),
    ])
    try:
        model.learn(steps, callback=callbacks)
    except KeyboardInterrupt:
        path = checkpoint_path(run_dir, model.num_timesteps)
        if not path.exists():
            model.save(path)
        command = shlex.join(["natgrad", "train", *resume_args(run_dir, checkpoint_every, eval_every, eval_episodes)])
        raise Interrupted(f"interrupted: saved {path}; resume with: {command}") from None
    finally:
        callbacks.close()
    model.save(run_dir / FINAL_MODEL)
    result = None
    if eval_episodes > 0:
        returns = evaluate(model, eval_episodes)
        result = summary(returns)
        write_json(run_dir / "eval.json", {**result, "returns": returns, "deterministic": True,
                                           "num_timesteps": model.num_timesteps,
                                           "wall_seconds": time.perf_counter() - start})
    model.close()
    return run_dir, result
