"""Aggregating a benchmark grid: per (env, algorithm) statistics across seeds, tables and curves.

Per run: the final training return (mean of the last 10% of training episodes), the final
deterministic evaluation, and the best periodic evaluation. Across seeds: mean with a 95% bootstrap
confidence interval, interquartile mean (IQM), std; and the peak of the seed-mean evaluation curve,
max_t mean_seeds eval(t) with the std across seeds at that t: the metric of Tianshou's benchmark
(never above the mean of the per-seed bests, never below the mean final evaluation).
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from natgrad.runs.directories import FAILED, Warn, check_writable, failure, joined_rows, to_stderr
from natgrad.tools.bench import GRID_FILE

FINISHED_RUNS = "*/*/s*/eval.json"  # the finished runs of a grid, ROOT/<env>/<algo>/s<seed>/
FAILED_RUNS = f"*/*/s*/{FAILED}"  # its failed ones
FAMILIES = {"natural gradient": ("trpo", "npg", "vpg"), "proximal": ("ppo", "ppo-kl")}


@dataclass(frozen=True)
class RunResult:
    """One finished run of a grid, as the report reads it from its run directory."""

    env_id: str
    algo: str
    seed: int
    steps: int
    final_train: float
    """mean raw return of the last 10% of training episodes"""
    final_eval: float
    """deterministic evaluation after training"""
    best_eval: float
    """max over training of the periodic deterministic evaluations (and the final one)"""
    wall_seconds: float
    steps_per_second: float
    """env steps over the time spent collecting and updating (evaluations excluded)"""
    update_seconds: float
    """median seconds of one update (policy step + critic fit)"""
    curve_steps: np.ndarray
    """env steps at each update"""
    curve_returns: np.ndarray
    """mean return of the last 100 training episodes at each update"""
    eval_steps: np.ndarray
    """env steps of each deterministic evaluation, the final one last"""
    eval_returns: np.ndarray
    """mean return of each of those evaluations"""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """the env's constructor keywords (its config)"""


def read_run(run_dir: Path) -> RunResult:
    """The results of one finished run directory; a resumed run's curves are joined with its ancestors'."""
    config = json.loads((run_dir / "config.json").read_text())
    final = json.loads((run_dir / "eval.json").read_text())
    metrics, episodes, evals_rows = (joined_rows(run_dir, name) for name in ("metrics.csv", "episodes.csv",
                                                                              "evals.csv"))
    returns = column(episodes, "return")
    tail = returns[-max(1, math.ceil(0.1 * len(returns))):] if len(returns) else np.array([math.nan])
    evals, eval_steps = column(evals_rows, "mean"), column(evals_rows, "step")
    periodic = eval_steps < final["num_timesteps"]  # an evaluation at the last step is the final one
    steps = column(metrics, "time/steps")
    rollout = column(metrics, "time/rollout_seconds")
    update = column(metrics, "time/update_seconds")
    return RunResult(
        env_id=config["env_id"], algo=config["algo"], seed=config["seed"], steps=final["num_timesteps"],
        final_train=float(tail.mean()), final_eval=float(final["mean"]),
        best_eval=float(max([final["mean"], *evals])), wall_seconds=float(final.get("wall_seconds", math.nan)),
        steps_per_second=float(steps[-1] / (rollout.sum() + update.sum())), update_seconds=float(np.median(update)),
        curve_steps=steps, curve_returns=column(metrics, "rollout/ep_return_mean"),
        eval_steps=np.append(eval_steps[periodic], final["num_timesteps"]),
        eval_returns=np.append(evals[periodic], final["mean"]),
        env_kwargs=config.get("config", {}).get("env_kwargs", {}),
    )


def find_runs(root: Path) -> list[RunResult]:
    """Every finished run under ``root`` (``ROOT/<env>/<algo>/s<seed>/eval.json``)."""
    return [read_run(p.parent) for p in sorted(root.glob(FINISHED_RUNS))]


def failed_runs(root: Path) -> list[str]:
    """One line per failed run of the grid at ``root`` (its failed.json; runs set aside in ``.incomplete`` are
    left out): the run, the step and the error."""
    paths = [p for p in sorted(root.glob(FAILED_RUNS)) if not any(x.startswith(".") for x in p.relative_to(root).parts)]
    return [note for p in paths if (note := failure(p.parent))]


def is_grid(root: Path) -> bool:
    """Whether ``root`` is a benchmark grid: it holds grid.json (natgrad bench wrote it) or finished runs."""
    return (root / GRID_FILE).is_file() or any(root.glob(FINISHED_RUNS))


def bootstrap_means(x: np.ndarray, n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """The means of ``resamples`` draws of ``n`` seeds from ``x`` with replacement."""
    return np.random.default_rng(seed).choice(x, (resamples, n)).mean(1)


def bootstrap_ci(x: np.ndarray, level: float = 0.95, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample the seeds with replacement."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return (float(x.mean()), float(x.mean())) if len(x) else (math.nan, math.nan)
    means = bootstrap_means(x, len(x), resamples, seed)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def iqm(x: np.ndarray) -> float:
    """Interquartile mean: the mean of the values left after dropping the lowest and highest 25%."""
    x = np.sort(np.asarray(x, float))
    cut = int(0.25 * len(x))
    return float(x[cut:len(x) - cut].mean()) if len(x) else math.nan


def stats(x: np.ndarray) -> dict[str, float]:
    """Mean, 95% bootstrap CI, IQM and std of per-seed values."""
    lo, hi = bootstrap_ci(x)
    return {"mean": float(np.mean(x)), "ci_low": lo, "ci_high": hi, "iqm": iqm(x), "std": float(np.std(x))}


def peak_of_mean(runs: list[RunResult]) -> dict[str, float]:
    """Tianshou's metric: t* = argmax_t mean_seeds eval(t) over the steps every run evaluated at;
    the mean and the std across seeds at t*, and t* itself."""
    curves = [dict(zip(r.eval_steps.tolist(), r.eval_returns.tolist())) for r in runs]
    common = sorted(set.intersection(*map(set, curves))) if curves else []
    if not common:
        return {"mean": math.nan, "std": math.nan, "step": math.nan}
    at = np.array([[curve[t] for t in common] for curve in curves])
    best = int(np.argmax(at.mean(0)))
    return {"mean": float(at[:, best].mean()), "std": float(at[:, best].std()), "step": int(common[best])}


def aggregate(runs: list[RunResult]) -> list[dict]:
    """One row per (env, algo): seeds, steps, the three return statistics, speed (medians across seeds),
    the wall-clock time per run, and each seed's own numbers."""
    rows = []
    for env_id, algo in sorted({(r.env_id, r.algo) for r in runs}):
        group = [r for r in runs if (r.env_id, r.algo) == (env_id, algo)]
        rows.append({
            "env": env_id, "env_kwargs": group[0].env_kwargs, "algo": algo, "seeds": sorted(r.seed for r in group),
            "steps": int(np.median([r.steps for r in group])),
            "final_train": stats(np.array([r.final_train for r in group])),
            "final_eval": stats(np.array([r.final_eval for r in group])),
            "best_eval": stats(np.array([r.best_eval for r in group])),
            "peak_mean_eval": peak_of_mean(group),
            "wall_hours": float(np.mean([r.wall_seconds for r in group]) / 3600),
            "steps_per_second": float(np.median([r.steps_per_second for r in group])),
            "update_seconds": float(np.median([r.update_seconds for r in group])),
            "per_seed": [{"seed": r.seed, "final_train": r.final_train, "final_eval": r.final_eval,
                          "best_eval": r.best_eval, "wall_hours": r.wall_seconds / 3600}
                         for r in sorted(group, key=lambda r: r.seed)],
        })
    return rows


def ci(s: dict, digits: int = 1) -> str:
    """A ``stats`` dict as text: mean [95% CI], ``digits`` decimals."""
    return f"{s['mean']:.{digits}f} [{s['ci_low']:.{digits}f}, {s['ci_high']:.{digits}f}]"


def markdown(rows: list[dict]) -> str:
    """The aggregate as a markdown table."""
    lines = ["| env | algo | seeds | steps | final train return, mean [95% CI] | IQM | final eval, mean [95% CI] "
             "| best eval, mean ± std | peak of the mean eval ± std (at step) | steps/s | s/update | hours/run |",
             "|---" * 12 + "|"]
    for r in rows:  # a summary.json written before the peak was computed has none: "—"
        peak = r.get("peak_mean_eval", {"mean": math.nan, "std": math.nan, "step": math.nan})
        lines.append(f"| {env_label(r)} | {r['algo']} | {len(r['seeds'])} | {r['steps']:,} | {ci(r['final_train'])} "
                     f"| {r['final_train']['iqm']:.1f} | {ci(r['final_eval'])} "
                     f"| {r['best_eval']['mean']:.1f} ± {r['best_eval']['std']:.1f} "
                     f"| {_peak(peak)} | {r['steps_per_second']:.0f} "
                     f"| {r['update_seconds']:.3f} | {r['wall_hours']:.2f} |")
    return "\n".join(lines) + "\n"


def env_label(row: dict) -> str:
    """The env id and the keywords it was made with, if any: 'Ant-v5 (include_cfrc_ext_in_observation=false)'."""
    options = row.get("env_kwargs") or {}
    return row["env"] + (f" ({', '.join(f'{k}={json.dumps(v)}' for k, v in options.items())})" if options else "")


def _peak(peak: dict) -> str:
    return "—" if math.isnan(peak["mean"]) else f"{peak['mean']:.1f} ± {peak['std']:.1f} ({peak['step']:,})"


def across_runs(curves: list[tuple[np.ndarray, np.ndarray]], points: int = 200) -> tuple[np.ndarray, ...]:
    """Curves (steps, values) of several runs read on one grid of ``points`` steps, from 0 to where the shortest
    ends (each interpolated linearly; leading NaNs take the first finite value): the grid, and the mean and the
    std across the runs at each of its steps."""
    grid = np.linspace(0, min(steps[-1] for steps, _ in curves), points)
    ys = np.array([np.interp(grid, steps, _fill_nan(values)) for steps, values in curves])
    return grid, ys.mean(0), ys.std(0)


def plot_curves(runs: list[RunResult], algos: tuple[str, ...], title: str, path: Path) -> bool:
    """Learning curves of ``algos``, one panel per env: mean over seeds with a ±1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    envs = sorted({r.env_id for r in runs if r.algo in algos})
    if not envs:
        return False
    cols = min(3, len(envs))
    rows = math.ceil(len(envs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    for ax, env_id in zip(axes.flat, envs):
        for algo, style in zip(algos, itertools.cycle(("-", "--", ":"))):  # coinciding curves (TRPO ≡ NPG) stay visible
            group = [r for r in runs if (r.env_id, r.algo) == (env_id, algo) and len(r.curve_steps)]
            if not group:
                continue
            grid, mean, std = across_runs([(r.curve_steps, r.curve_returns) for r in group])
            ax.plot(grid, mean, style, lw=1.8, label=f"{algo} ({len(group)} seeds)")
            ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
        ax.set_title(env_id)
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.set_xlabel("env steps")
        ax.set_ylabel("training return (last 100 episodes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(envs):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}: mean ± std across seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(root: Path, warn: Warn = to_stderr) -> list[Path]:
    """summary.json, summary.md and one curves PNG per algorithm family in ``root``; returns the files. The
    finished runs are aggregated; ``warn`` names each failed one in a line."""
    check_writable(root, "copy the grid to a place you can write and report on the copy")
    for note in failed_runs(root):
        warn(f"skipped {note}")
    runs = find_runs(root)
    rows = aggregate(runs)
    written = [root / "summary.json", root / "summary.md"]
    written[0].write_text(json.dumps(rows, indent=2) + "\n")
    written[1].write_text(markdown(rows))
    for family, algos in FAMILIES.items():
        path = root / f"curves-{family.replace(' ', '-')}.png"
        if plot_curves(runs, algos, family, path):
            written.append(path)
    return written


def column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    """One column of CSV rows as floats."""
    return np.array([float(row[name]) for row in rows], float)


def _fill_nan(y: np.ndarray) -> np.ndarray:
    """Leading NaNs (no episode finished yet) take the first finite value."""
    finite = np.flatnonzero(np.isfinite(y))
    if not len(finite):
        return np.zeros_like(y)
    y = y.copy()
    y[: finite[0]] = y[finite[0]]
    return y
