"""Ready ``learn`` callbacks, as Stable-Baselines3 users know them: periodic evaluation with best-model saving,
checkpoints every N steps, stopping on a reward threshold or once the return stops improving, and a list of
callbacks combined (``CallbackList``; ``learn`` also takes a plain list).

A callback is any ``f(model, metrics)``, called after every update with that update's metrics; returning False
stops training. ``natgrad train`` evaluates (``evals.csv``) and checkpoints through these same classes::

    from natgrad.runs.callbacks import CheckpointCallback, EvalCallback, StopOnNoImprovement, StopOnRewardThreshold

    evaluation = EvalCallback(every=10_000, episodes=10, best_model_path="best.pt",
                              after_eval=[StopOnRewardThreshold(475), StopOnNoImprovement(patience=5)])
    model.learn(200_000, callback=[evaluation, CheckpointCallback(50_000, "checkpoints")])

The stop callbacks read one metric, by default the mean evaluation return ``eval/mean_return`` that an
``EvalCallback`` hands to its ``after_eval`` callbacks after each evaluation; given
``key="rollout/ep_return_mean"`` they read the training return after every update instead.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from natgrad.algos.base import Callback, CallbackList
from natgrad.errors import NatgradError
from natgrad.runs.directories import checkpoint_file
from natgrad.runs.evaluation import EVAL_SEED, evaluate

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm

EVAL_MEAN = "eval/mean_return"
EVALS_HEADER = ["step", "mean", "std", "min", "max"]  # evals.csv, one row per evaluation

__all__ = ["Callback", "CallbackList", "CheckpointCallback", "EvalCallback", "StopOnNoImprovement",
           "StopOnRewardThreshold"]


def crossed(model: Algorithm, every: int) -> bool:
    """Whether the last update took the model's step count across a multiple of ``every``."""
    steps = model.num_timesteps
    return steps // every > (steps - model.config.batch_size) // every


class EvalCallback:
    """Every ``every`` env steps (whenever the model's step count crosses a multiple of it), the returns of
    ``episodes`` evaluation episodes, deterministic unless told otherwise, always from the same seeds (``seed``,
    ``seed + 1``, …) so that evaluations along training compare.

    ``log_path``: a new CSV file that gets one row per evaluation: step, mean, std, min and max return
    (``natgrad train``'s ``evals.csv``). ``best_model_path``: a new file the model is saved to whenever its mean
    return beats every earlier evaluation's. ``after_eval``: callback(s) run after each evaluation with its
    results as metrics (``eval/mean_return``, ``eval/std_return``, ``eval/min_return``, ``eval/max_return``,
    ``eval/best_mean_return``, ``time/steps``); one returning False stops training. ``env``: an env id or a
    zero-argument factory to evaluate on (a new env each time), by default one like the model's.
    ``results`` holds every evaluation's row.
    """

    def __init__(self, every: int, episodes: int = 10, log_path: str | Path | None = None,
                 best_model_path: str | Path | None = None, after_eval: Callback | Sequence[Callback] | None = None,
                 seed: int = EVAL_SEED, deterministic: bool = True,
                 env: str | Callable[[], gym.Env] | None = None) -> None:
        if every < 1 or episodes < 1:
            raise NatgradError(f"EvalCallback needs every >= 1 env steps and episodes >= 1, got {every} and {episodes}")
        if isinstance(env, gym.Env):
            raise NatgradError("EvalCallback evaluates many times: pass an env id or a zero-argument factory, "
                               "not an env instance")
        self.every, self.episodes, self.seed, self.deterministic, self.env = every, episodes, seed, deterministic, env
        self.after_eval = CallbackList(after_eval) if isinstance(after_eval, (list, tuple)) else after_eval
        self.log_path = None if log_path is None else Path(log_path)
        self.best_model_path = None if best_model_path is None else Path(best_model_path)
        if self.best_model_path is not None and self.best_model_path.exists():
            raise NatgradError(f"{self.best_model_path} already exists: choose a new best_model_path "
                               "(natgrad never overwrites a file it did not write)")
        if self.log_path is not None:
            with open(self.log_path, "x", newline="") as f:
                csv.writer(f).writerow(EVALS_HEADER)
        self.results: list[dict[str, float]] = []
        self.best_mean = -math.inf

    def __call__(self, model: Algorithm, metrics: dict[str, float]) -> bool:
        if not crossed(model, self.every):
            return True
        returns = evaluate(model, self.episodes, self.seed, self.deterministic, env=self.env)
        row = {"step": model.num_timesteps, "mean": float(np.mean(returns)), "std": float(np.std(returns)),
               "min": float(np.min(returns)), "max": float(np.max(returns))}
        self.results.append(row)
        if self.log_path is not None:
            with open(self.log_path, "a", newline="") as f:
                csv.writer(f).writerow(row.values())
        if row["mean"] > self.best_mean:
            self.best_mean = row["mean"]
            if self.best_model_path is not None:
                model.save(self.best_model_path, overwrite=True)  # its own file, checked to be new at the start
        if self.after_eval is None:
            return True
        results = {"time/steps": float(row["step"]), **{f"eval/{k}_return": row[k] for k in EVALS_HEADER[1:]},
                   "eval/best_mean_return": self.best_mean}
        return self.after_eval(model, results) is not False


class CheckpointCallback:
    """A checkpoint ``directory/step_<steps>.pt`` every ``every`` env steps of this training (counted from the
    first update it sees); checkpoints hold the networks, optimizers, normalizer statistics and counters, so
    ``natgrad.load`` continues from one. An existing file is never overwritten."""

    def __init__(self, every: int, directory: str | Path) -> None:
        if every < 1:
            raise NatgradError(f"CheckpointCallback needs every >= 1 env steps, got {every}")
        self.every, self.directory = every, Path(directory)
        self.start: int | None = None
        self.next = every
        self.saved: list[Path] = []

    def __call__(self, model: Algorithm, metrics: dict[str, float]) -> bool:
        if self.start is None:
            self.start = model.num_timesteps - model.config.batch_size
        if model.num_timesteps - self.start >= self.next:
            self.saved.append(model.save(checkpoint_file(self.directory, model.num_timesteps)))
            self.next += self.every
        return True


class StopOnRewardThreshold:
    """Stops training once the metric ``key`` reaches ``threshold``: by default the mean evaluation return (as
    an ``EvalCallback``'s ``after_eval``), or e.g. ``key="rollout/ep_return_mean"`` after every update."""

    def __init__(self, threshold: float, key: str = EVAL_MEAN) -> None:
        self.threshold, self.key = threshold, key

    def __call__(self, model: Algorithm, metrics: dict[str, float]) -> bool:
        return not _metric(metrics, self.key, type(self).__name__) >= self.threshold


class StopOnNoImprovement:
    """Stops training once the metric ``key`` has not beaten its best by more than ``min_delta`` for ``patience``
    calls in a row: evaluations as an ``EvalCallback``'s ``after_eval`` (the default ``key``), or updates with
    ``key="rollout/ep_return_mean"``. A NaN (no episode finished yet) neither improves nor counts."""

    def __init__(self, patience: int, key: str = EVAL_MEAN, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise NatgradError(f"StopOnNoImprovement needs patience >= 1, got {patience}")
        self.patience, self.key, self.min_delta = patience, key, min_delta
        self.best = -math.inf
        self.without = 0  # calls since the best

    def __call__(self, model: Algorithm, metrics: dict[str, float]) -> bool:
        value = _metric(metrics, self.key, type(self).__name__)
        if math.isnan(value):
            return True
        if value > self.best + self.min_delta:
            self.best, self.without = value, 0
        else:
            self.without += 1
        return self.without < self.patience


def _metric(metrics: dict[str, float], key: str, who: str) -> float:
    if key not in metrics:
        hint = ("pass it as an EvalCallback's after_eval, or key='rollout/ep_return_mean'" if key == EVAL_MEAN
                else f"known here: {', '.join(sorted(metrics))}")
        raise NatgradError(f"{who} reads {key!r}, which these metrics do not have: {hint}")
    return float(metrics[key])
