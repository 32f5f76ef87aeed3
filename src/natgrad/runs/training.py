"""One training run end to end, as ``natgrad train`` does it: build or resume, learn, log, evaluate."""

from __future__ import annotations

import shlex
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from natgrad.algos import algorithm
from natgrad.algos.base import Algorithm, Callback, CallbackList
from natgrad.algos.checkpoint import read
from natgrad.algos.loading import load
from natgrad.errors import NatgradError, one_line
from natgrad.rollouts.envs import untrusted_env
from natgrad.rollouts.workers import Sampling
from natgrad.runs.callbacks import CheckpointCallback, EvalCallback
from natgrad.runs.directories import (
    CHECKPOINTS,
    CONFIG,
    EVALS,
    FAILED,
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
from natgrad.runs.evaluation import evaluate, summary
from natgrad.runs.logger import RunLogger
from natgrad.version import __version__

DEFAULT_STEPS = 100_000  # env steps of a new run when none are given
DEFAULT_ALGO, DEFAULT_ENV, DEFAULT_SEED = "trpo", "CartPole-v1", 0  # of a new run when none are given


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped training; the message names the checkpoint written and the command that resumes
    it, ``status`` is the exit status a shell gives that stop: 130 for Ctrl-C, 143 for SIGTERM."""

    def __init__(self, message: str, status: int = 130) -> None:
        super().__init__(message)
        self.status = status


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived during training (see ``sigterm_interrupts``): stopped as Ctrl-C stops it."""


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within: SIGTERM (what ``timeout``, ``docker stop``, SLURM and systemd send) raises ``Terminated`` instead of
    killing the process; the handler before is put back after. Only in the main thread, the one Python runs signal
    handlers in (elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def build_model(algo: str, env_id: str, seed: int, overrides: dict[str, Any], preset: bool | Mapping[str, Any] = True,
                sampling: Sampling = Sampling(), threads: int = 1, device: str = "auto",
                compile: bool = False) -> Algorithm:
    """A fresh model of algorithm ``algo`` (by its CLI name) on ``device`` (its update compiled with ``compile``), from
    its preset for ``env_id`` if asked (or from ``preset`` itself, a mapping of options)."""
    return algorithm(algo.lower())(env_id, seed=seed, preset=preset, threads=threads, device=device, compile=compile,
                                   **asdict(sampling), **overrides)


def resume_model(checkpoint: Path, algo: str | None = None, env_id: str | None = None, seed: int | None = None,
                 trust_env: bool = False, overrides: dict[str, Any] | None = None, sampling: Sampling = Sampling(),
                 threads: int = 1, device: str = "auto", compile: bool = False) -> Algorithm:
    """The model saved at ``checkpoint``, on ``device`` (its update compiled with ``compile``), to train on: on
    ``env_id`` when given (the user's, which must have the model's spaces), else on the env the checkpoint names (one
    natgrad would import only with ``trust_env``; see ``natgrad.load``). ``algo`` and ``seed``, when given, must be the
    checkpoint's; ``overrides`` cannot change the options that shape the networks. Anything refused is one line, before
    any env is made where it can be."""
    payload = read(checkpoint)
    saved = {"--algo": payload.get("algo"), "--seed": payload.get("seed")}
    given = {"--algo": None if algo is None else algo.lower(), "--seed": seed}
    conflicts = [flag for flag, value in given.items() if value is not None and value != saved[flag]]
    if conflicts:
        raise NatgradError(f"{' and '.join(f'{flag} {given[flag]}' for flag in conflicts)} cannot change on resume: "
                           f"{checkpoint} holds a {saved['--algo']} model of seed {saved['--seed']}; leave "
                           f"{' and '.join(conflicts)} out, or start a new run without --resume")
    model = load(checkpoint, env=env_id, trust_env=trust_env, threads=threads, device=device, compile=compile,
                 **asdict(sampling), **(overrides or {}))
    if model.env is None:
        model.close()
        raise NatgradError(model.no_env_reason)
    return model


def train_run(
    algo: str | None = None,
    env_id: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    out: Path | None = None,
    runs_root: Path = Path("runs"),
    overrides: dict[str, Any] | None = None,
    resume: Path | None = None,
    trust_env: bool = False,
    checkpoint_every: int = 100_000,
    eval_episodes: int = 10,
    eval_every: int = 0,
    preset: bool | Mapping[str, Any] = True,
    progress: bool | None = None,
    argv: list[str] | None = None,
    sampling: Sampling = Sampling(),
    threads: int = 1,
    device: str = "auto",
    compile: bool = False,
    echo: Callable[[str], object] = print,
    warn: Warn = to_stderr,
    after_eval: Callback | None = None,
) -> tuple[Path, dict[str, float] | None]:
    """Train for ``steps`` env steps into a new run directory; return it and the final evaluation.

    A new run trains ``algo`` on ``env_id`` from ``seed`` (``DEFAULT_ALGO``, ``DEFAULT_ENV``, ``DEFAULT_SEED`` when
    None); a resumed one continues the checkpoint's (``resume_model``: ``env_id`` replaces its env, ``trust_env``
    lets it make an env the checkpoint names by module). ``steps`` defaults to ``DEFAULT_STEPS``; with ``resume`` it
    counts steps beyond the checkpoint, and defaults to what the resumed run had left of its own total. With
    ``eval_every``, a deterministic evaluation of ``eval_episodes`` episodes every that many env steps goes to
    ``evals.csv``; the final one goes to ``eval.json``, written last. ``sampling`` says where rollouts run (a resumed
    run samples as told here, not as the run it continues did), ``device`` where the update runs. ``progress``: a live
    progress bar on stderr (None: only where stderr is a terminal). Everything is checked before the run directory is
    made; ``echo`` names it as training starts. Ctrl-C or SIGTERM saves a checkpoint and raises ``Interrupted``; an
    error in training leaves ``failed.json`` in the run directory (see ``learn_run``). ``compile``: the update
    compiled (``compile=True`` of the algorithms).

    The evaluations and checkpoints are ``natgrad.runs.callbacks``' ``EvalCallback`` and ``CheckpointCallback``;
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
        model = resume_model(source, algo, env_id, seed, trust_env, overrides, sampling, threads, device, compile)
        steps = steps_left(source, model.num_timesteps) if steps is None else steps
    else:
        source = None
        model = build_model(algo or DEFAULT_ALGO, env_id or DEFAULT_ENV, DEFAULT_SEED if seed is None else seed,
                            overrides, preset, sampling, threads, device, compile)
        steps = DEFAULT_STEPS if steps is None else steps
    run_dir = new_run_dir(runs_root, safe_name(f"{model.env_id}-{model.name}-s{model.seed}"), out)
    write_json(run_dir / CONFIG, {
        "algo": model.name, "env_id": model.env_id, "seed": model.seed, "steps": steps,
        "config": model.config.to_dict(), "sampling": asdict(model.sampling), "device": str(model.device),
        "compile": model.compiler.enabled,
        "preset": model.preset,
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
        RunLogger(run_dir, steps, progress, model.config.batch_size),
    ])
    try:
        learn_run(model, steps, callbacks, run_dir, _resume_args(model, run_dir, checkpoint_every, eval_every,
                                                                 eval_episodes))
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


def _resume_args(model: Algorithm, run_dir: Path, checkpoint_every: int, eval_every: int,
                 eval_episodes: int) -> list[str]:
    """``resume_args`` of ``run_dir``, with ``--env`` naming the model's env where a checkpoint's name alone would not
    make it (a ``module:factory``: natgrad makes what a file names only when told)."""
    args = resume_args(run_dir, checkpoint_every, eval_every, eval_episodes)
    return args + ["--env", model.env_id] if model.env_id and untrusted_env(model.env_id) else args


def learn_run(model: Algorithm, steps: int, callbacks: Callback, run_dir: Path, resume: list[str]) -> None:
    """``model.learn`` for a run directory. Ctrl-C or SIGTERM (see ``sigterm_interrupts``) saves a checkpoint and
    raises ``Interrupted`` naming the command that resumes it (``natgrad train`` with the options ``resume``);
    any other error leaves ``failed.json`` (the error, the env steps and updates done, the traceback) so that the
    run reads as failed, and is raised again."""
    try:
        with sigterm_interrupts():
            model.learn(steps, callback=callbacks)
    except KeyboardInterrupt as e:
        path = checkpoint_path(run_dir, model.num_timesteps)
        if not path.exists():
            model.save(path)
        command = shlex.join(["natgrad", "train", *resume])
        what, status = ("terminated (SIGTERM)", 143) if isinstance(e, Terminated) else ("interrupted", 130)
        raise Interrupted(f"{what}: saved {path}; resume with: {command}", status) from None
    except Exception as e:
        error = one_line(e) if isinstance(e, NatgradError) else f"{type(e).__name__}: {one_line(e)}"
        write_json(run_dir / FAILED, {"error": error, "step": model.num_timesteps, "updates": model.num_updates,
                                      "traceback": "".join(traceback.format_exception(e))})
        raise
