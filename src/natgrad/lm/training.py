"""A language-model run into a new run directory that ``natgrad plot`` reads: ``config.json``, ``metrics.csv`` (one row
per update, ``time/steps`` = completions so far), ``episodes.csv`` (each completion's reward as its return, its
length in tokens), TensorBoard under ``tb/``, and the policy in ``model.pt``.

A task is named ``module:function``: the function returns ``(model, prompts, reward_funcs)`` or an object with those
attributes (and, optionally, ``tokenizer`` and ``ref_model``). Naming it imports the module, the user's opt-in.
"""

from __future__ import annotations

import csv
import importlib
import json
import math
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from natgrad.errors import NatgradError, one_line
from natgrad.lm.engine import LMAlgorithm
from natgrad.runs.directories import CONFIG, FINAL_MODEL, new_run_dir, safe_name


class LMRunLogger:
    """A ``learn`` callback: one ``metrics.csv`` row and one TensorBoard point per metric per update, and every
    completion's reward and length in ``episodes.csv``."""

    def __init__(self, run_dir: Path) -> None:
        self.metrics_file = open(run_dir / "metrics.csv", "x", newline="")
        self.metrics: csv.DictWriter | None = None
        self.episodes_file = open(run_dir / "episodes.csv", "x", newline="")
        self.episodes = csv.writer(self.episodes_file)
        self.episodes.writerow(["step", "return", "length"])
        self.tb = SummaryWriter(str(run_dir / "tb"))

    def __call__(self, algo: LMAlgorithm, metrics: dict[str, float]) -> None:
        steps = int(metrics["time/steps"])
        if self.metrics is None:
            self.metrics = csv.DictWriter(self.metrics_file, fieldnames=list(metrics))
            self.metrics.writeheader()
        self.metrics.writerow(metrics)
        self.episodes.writerows((steps, reward, int(length)) for reward, length in algo.last_completions)
        for file in (self.metrics_file, self.episodes_file):
            file.flush()
        for key, value in metrics.items():
            if math.isfinite(value):
                self.tb.add_scalar(key, value, steps)

    def close(self) -> None:
        """Close the CSV files and the TensorBoard writer."""
        self.tb.close()
        self.metrics_file.close()
        self.episodes_file.close()


def load_task(name: str) -> dict[str, Any]:
    """The task ``module:function`` names, called: its model, prompts, reward functions, tokenizer and reference."""
    module, _, function = name.rpartition(":")
    if not module or not function:
        raise NatgradError(f"--task {name!r}: name a function as module:function, e.g. mytasks:make_task")
    try:
        factory = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as e:
        raise NatgradError(f"cannot load the task {name!r} ({one_line(e)}): make the module importable (installed, "
                           "or on PYTHONPATH) and check the function's name") from None
    task = factory()
    if isinstance(task, tuple) and len(task) == 3:
        task = dict(zip(("model", "prompts", "reward_funcs"), task))
    else:
        task = {key: getattr(task, key, None) for key in ("model", "prompts", "reward_funcs", "tokenizer", "ref_model")}
    if any(task.get(key) is None for key in ("model", "prompts", "reward_funcs")):
        raise NatgradError(f"the task {name!r} must return (model, prompts, reward_funcs) or an object with those "
                           "attributes")
    return task


def train_lm(algo_cls: type[LMAlgorithm], task: str, total_samples: int, overrides: dict[str, Any],
             out: str | Path | None = None, runs_root: str | Path = "runs") -> Path:
    """Train ``algo_cls`` on the task ``module:function`` for ``total_samples`` completions into a new run
    directory; returns it."""
    parts = load_task(task)
    algo = algo_cls(parts.pop("model"), parts.pop("prompts"), parts.pop("reward_funcs"), **parts, **overrides)
    run_dir = new_run_dir(runs_root, f"lm-{algo.name}-{safe_name(task)}-s{algo.config.seed}", out)
    (run_dir / CONFIG).write_text(json.dumps({"algo": f"lm-{algo.name}", "env_id": task, "seed": algo.config.seed,
                                              "total_samples": total_samples, "config": algo.config.to_dict()},
                                             indent=2))
    logger = LMRunLogger(run_dir)
    try:
        algo.learn(total_samples, callback=logger)
    finally:
        logger.close()
    algo.save(run_dir / FINAL_MODEL)
    return run_dir
