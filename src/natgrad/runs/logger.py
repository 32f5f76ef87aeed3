"""Per-update metrics to CSV, TensorBoard and a live progress bar; every training episode."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm


class RunLogger:
    """A ``learn`` callback: one CSV row and one TensorBoard point per metric per update."""

    def __init__(self, run_dir: Path, total_steps: int, progress: bool | None = None, batch_size: int = 1) -> None:
        """``total_steps``: what ``learn`` is given; ``learn`` trains whole updates of ``batch_size`` env steps, so the
        bar's total is that rounded up to a multiple of it. ``progress`` None: a bar only where stderr is a terminal."""
        self.csv_file = open(run_dir / "metrics.csv", "x", newline="")
        self.csv: csv.DictWriter | None = None
        self.episodes_file = open(run_dir / "episodes.csv", "x", newline="")
        self.episodes = csv.writer(self.episodes_file)
        self.episodes.writerow(["step", "return", "length"])  # raw returns of every training episode
        self.tb = SummaryWriter(str(run_dir / "tb"))
        self.bar = tqdm(total=-(-total_steps // batch_size) * batch_size, unit="step",
                        disable=None if progress is None else not progress, dynamic_ncols=True, leave=False)
        self.start_steps: int | None = None

    def __call__(self, model: Algorithm, metrics: dict[str, float]) -> None:
        steps = int(metrics["time/steps"])
        if self.start_steps is None:
            self.start_steps = steps - int(model.config.batch_size)
        if self.csv is None:
            self.csv = csv.DictWriter(self.csv_file, fieldnames=list(metrics))
            self.csv.writeheader()
        self.csv.writerow(metrics)
        self.csv_file.flush()
        self.episodes.writerows((steps, ret, length) for ret, length in model.last_episodes)
        self.episodes_file.flush()
        for key, value in metrics.items():
            if math.isfinite(value):
                self.tb.add_scalar(key, value, steps)
        self.bar.update(steps - self.start_steps - self.bar.n)
        self.bar.set_postfix(ret=f"{metrics['rollout/ep_return_mean']:.1f}",
                             kl=f"{metrics['policy/kl']:.4f}", sps=f"{metrics['time/steps_per_second']:.0f}")

    def close(self) -> None:
        """Close the progress bar, TensorBoard writer and CSV files."""
        self.bar.close()
        self.tb.close()
        self.csv_file.close()
        self.episodes_file.close()
