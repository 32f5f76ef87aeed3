"""``natgrad plot``: the return against env steps and the trust-region diagnostics of runs, overlaid or grouped.

The top panel holds the training return (each episode's raw return from ``episodes.csv``, as a moving
average over the last ``smooth`` episodes) and the evaluations (the periodic ones of ``evals.csv``, the
final one of ``eval.json``) with their spread (± the std over an evaluation's episodes for one run; ±
the std across runs for a group). Below, one panel per diagnostic of ``metrics.csv`` that some run
logged: the KL each update reached (and δ, ``policy/max_kl``, dashed), line-search backtracks, the CG
residual, the policy's entropy, the critic's explained variance, and PPO's clip fraction or PPO-KL's β.
Runs are overlaid one colour each, or grouped (by algorithm, env, seed or a config option) into a
mean with a band of ± one std across the group's runs. A resumed run is drawn joined with the runs it continues
(``natgrad.runs.directories.joined_rows``); a failed run (its training raised: it has a ``failed.json``) is left
out, with a line saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from natgrad.errors import NatgradError
from natgrad.runs.directories import CONFIG, EVALS, Warn, check_writable, failure, joined_rows, to_stderr
from natgrad.tools.report import across_runs
from natgrad.tools.report import column as read_column

# diagnostics of metrics.csv: column, panel title, y label, log scale
PANELS = [
    ("policy/kl", "KL per update (δ dashed)", "KL(π_old ‖ π_new), nats", True),
    ("policy/line_search_backtracks", "line-search backtracks", "backtracks per update", False),
    ("policy/cg_residual", "conjugate-gradient residual", "‖g − F x‖", True),
    ("policy/entropy", "policy entropy", "nats per state", False),
    ("critic/explained_variance", "critic explained variance", "1 − Var[R − V] / Var[R]", False),
    ("policy/clip_fraction", "PPO clip fraction", "fraction of samples clipped", False),
    ("policy/beta", "PPO-KL penalty β", "β", True),
]
MAX_KL = "policy/max_kl"
GROUPS = "algo, env, seed or config.<option> (e.g. config.max_kl)"


@dataclass
class Run:
    """What the plot reads of one run directory (joined with the runs it was resumed from)."""

    path: Path
    """The run directory."""
    config: dict[str, Any]
    """Its ``config.json``: algorithm, env, seed and every option."""
    episodes: tuple[np.ndarray, np.ndarray]
    """(step, raw return) of every training episode."""
    evals: dict[str, np.ndarray]
    """Step, mean and std of every periodic evaluation."""
    metrics: dict[str, np.ndarray]
    """``time/steps`` and every numeric column of ``metrics.csv``."""

    @property
    def name(self) -> str:
        """The run's label in a legend: algorithm, env and seed."""
        return f"{self.config['algo']} {self.config['env_id']} s{self.config['seed']}"


def find_runs(paths: list[Path], warn: Warn = to_stderr) -> list[Path]:
    """The run directories given, or found below a directory that is not one (a bench grid, a tune study);
    directories whose names start with ``.`` (a grid's ``.incomplete``) are left out, and so are failed runs
    (those with a failed.json), each named by ``warn`` in one line."""
    runs: list[Path] = []
    for path in paths:
        if (path / CONFIG).is_file():
            runs.append(path)
            continue
        if not path.is_dir():
            raise NatgradError(f"no run directory at {path}: pass directories written by natgrad train")
        found = sorted(p.parent for p in path.rglob(CONFIG)
                       if not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not found:
            raise NatgradError(f"{path} holds no run (no {CONFIG} below it): pass directories written by natgrad train")
        runs += found
    failed = {run: note for run in runs if (note := failure(run))}
    if runs and len(failed) == len(runs):
        others = f" (as did the {len(runs) - 1} other runs given)" if len(runs) > 1 else ""
        raise NatgradError(f"nothing to plot: {failed[runs[0]]}{others}")
    for note in failed.values():
        warn(f"skipped {note}")
    return [run for run in runs if run not in failed]


def read_run(run_dir: Path) -> Run:
    """A run directory's config and rows (metrics, episodes, evaluations), joined with any run it resumed."""
    config = json.loads((run_dir / CONFIG).read_text())
    episodes = joined_rows(run_dir, "episodes.csv")
    metrics_rows = joined_rows(run_dir, "metrics.csv")
    metrics = {}
    for key in metrics_rows[0] if metrics_rows else []:
        metrics[key] = np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in metrics_rows])
    return Run(run_dir, config, (read_column(episodes, "step"), read_column(episodes, "return")),
               evaluations(run_dir), metrics)


def evaluations(run_dir: Path) -> dict[str, np.ndarray]:
    """Step, mean and std of the run's periodic evaluations (``evals.csv``, joined with any run it resumed), and
    its final one (``eval.json``) where no periodic one was made at that step (as with ``--eval-every 0``)."""
    rows = joined_rows(run_dir, EVALS)
    evals = {k: read_column(rows, k) for k in ("step", "mean", "std")}
    if (run_dir / "eval.json").is_file():
        final = json.loads((run_dir / "eval.json").read_text())
        if final["num_timesteps"] not in evals["step"]:
            evals = {k: np.append(evals[k], final[key]) for k, key in
                     (("step", "num_timesteps"), ("mean", "mean"), ("std", "std"))}
    return evals


def group_of(run: Run, key: str) -> str:
    """The value of ``key`` (algo | env | seed | config.<option>) for ``run``, as a label."""
    if key in ("algo", "seed"):
        return f"{key}={run.config[key]}"
    if key == "env":
        return run.config["env_id"]
    option = key.removeprefix("config.")
    if not key.startswith("config.") or option not in run.config.get("config", {}):
        known = ", ".join(sorted(run.config.get("config", {})))
        raise NatgradError(f"cannot group by {key!r}: use {GROUPS}; the options of {run.path} are {known}")
    return f"{option}={json.dumps(run.config['config'][option])}"


def smoothed(steps: np.ndarray, returns: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean of the last ``window`` episode returns (fewer at the start) at each episode, one point per env
    step count (the last episode that ended by then)."""
    if not len(returns):
        return steps, returns
    sums = np.cumsum(np.insert(returns, 0, 0.0))
    ends = np.arange(1, len(returns) + 1)
    starts = np.maximum(ends - window, 0)
    means = (sums[ends] - sums[starts]) / (ends - starts)
    last = np.r_[steps[1:] != steps[:-1], True]  # the last episode of each step count
    return steps[last], means[last]


def figure(run_dirs: list[Path], group: str | None = None, smooth: int = 20, warn: Warn = to_stderr) -> Any:
    """The matplotlib figure of ``natgrad plot`` for these run directories (see the module docstring); ``warn``
    names each failed run, left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    if smooth < 1:
        raise NatgradError(f"--smooth must be >= 1 episodes, got {smooth}")
    runs = [read_run(p) for p in find_runs(run_dirs, warn)]
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_of(run, group) if group else _label(run, runs), []).append(run)
    panels = [p for p in PANELS if any(np.isfinite(r.metrics.get(p[0], [np.nan])).any() for r in runs)]
    cols = 3
    rows = -(-len(panels) // cols)
    fig = plt.figure(figsize=(14, 4.6 + 3.0 * rows))
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[1.6] + [1] * rows)
    top = fig.add_subplot(grid[0, :])
    axes = [fig.add_subplot(grid[1 + k // cols, k % cols], sharex=top) for k in range(len(panels))]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (label, members) in enumerate(groups.items()):
        colour = colours[k % len(colours)]
        name = f"{label} ({len(members)} runs)" if group else label
        _returns(top, members, colour, name, smooth)
        for ax, (column, _, _, log) in zip(axes, panels):
            _diagnostic(ax, members, column, colour, log)
    envs = sorted({r.config["env_id"] for r in runs})
    top.set_title(f"{', '.join(envs)}: training return (moving average of {smooth} episodes, lines) and "
                  "deterministic evaluations (markers, ± std)", fontsize=11)
    top.set_ylabel("episode return (raw)")
    top.legend(fontsize=9, loc="best")
    for ax, (_, title, ylabel, log) in zip(axes, panels):
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        if log:
            ax.set_yscale("log")
    for ax in [top, *axes]:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.tick_params(labelsize=8, labelbottom=True)
        ax.set_xlabel("env steps", fontsize=9)
    fig.tight_layout()
    return fig


def plot_runs(run_dirs: list[Path], out: Path, group: str | None = None, smooth: int = 20,
              warn: Warn = to_stderr) -> Path:
    """Write ``figure(run_dirs, group, smooth, warn)`` to ``out`` (a new PNG file); return its path."""
    import matplotlib.pyplot as plt

    out = Path(out)
    if out.exists():
        raise NatgradError(f"{out} already exists: choose a new --out (natgrad never overwrites a file)")
    check_writable(out, "choose another --out")
    fig = figure(run_dirs, group, smooth, warn)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _returns(ax: Any, runs: list[Run], colour: str, label: str, smooth: int) -> None:
    """Training return (line) and evaluations (markers) of one run or the mean of a group, with their spread."""
    curves = [smoothed(*r.episodes, smooth) for r in runs if len(r.episodes[1])]
    if len(curves) == 1:
        ax.plot(*curves[0], color=colour, lw=1.6, label=label)
    elif curves:
        steps, mean, std = across_runs(curves)
        ax.plot(steps, mean, color=colour, lw=1.8, label=label)
        ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.18, lw=0)
    evaluated = [r.evals for r in runs if len(r.evals["step"])]
    if len(evaluated) == 1:
        e = evaluated[0]
        ax.errorbar(e["step"], e["mean"], yerr=e["std"], fmt="o", ms=4, color=colour, capsize=2, alpha=0.9)
    elif evaluated:
        common = sorted(set.intersection(*(set(e["step"].tolist()) for e in evaluated)))
        at = np.array([[e["mean"][list(e["step"]).index(s)] for s in common] for e in evaluated])
        if common:
            ax.errorbar(common, at.mean(0), yerr=at.std(0), fmt="o", ms=4, color=colour, capsize=2, alpha=0.9)


def _diagnostic(ax: Any, runs: list[Run], column: str, colour: str, log: bool) -> None:
    """One metrics.csv column against env steps: a run's line, or a group's mean and ± std band (on a log axis
    the geometric mean and a ×/÷ geometric-std band, of the positive values); the KL panel also draws δ dashed."""
    for key, style in ((column, "-"), *([(MAX_KL, "--")] if column == "policy/kl" else [])):
        curves = [(r.metrics["time/steps"], r.metrics[key]) for r in runs
                  if key in r.metrics and np.isfinite(r.metrics[key]).any()]
        if len(curves) == 1:
            ax.plot(*curves[0], style, color=colour, lw=1.0 if style == "-" else 1.2)
        elif curves:
            if log:
                curves = [(steps, np.log(np.where(values > 0, values, np.nan))) for steps, values in curves]
            steps, mean, std = across_runs(curves)
            low, mid, high = (np.exp(mean - std), np.exp(mean), np.exp(mean + std)) if log else \
                (mean - std, mean, mean + std)
            ax.plot(steps, mid, style, color=colour, lw=1.2)
            if style == "-":
                ax.fill_between(steps, low, high, color=colour, alpha=0.18, lw=0)


def _label(run: Run, runs: list[Run]) -> str:
    """A run's legend label: algorithm, env and seed, with its directory where another run shares them."""
    same = [r for r in runs if r.name == run.name]
    return run.name if len(same) == 1 else f"{run.name} ({run.path.name})"
