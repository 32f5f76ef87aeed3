"""Benchmark grids: every (algorithm, env, seed) trains as its own ``natgrad train`` process.

A grid lives in one directory, ``ROOT/<env>/<algo>/s<seed>/`` per run (a complete run
directory: config, metrics, episodes, periodic evaluations, model, eval.json). A run is
finished once its ``eval.json`` exists, so running the same grid again only does what is
missing: a killed grid picks up where it stopped (a half-written run is moved to
``ROOT/.incomplete/``, nothing is deleted, and continues from its newest valid checkpoint
into its grid path, else starts again).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from natgrad.errors import NatgradError
from natgrad.runs.directories import check_writable, latest_checkpoint, resume_args, safe_name

GRID_FILE = "grid.json"


@dataclass(frozen=True)
class RunSpec:
    """One run of a grid."""

    algo: str
    env_id: str
    seed: int

    def path(self, root: Path) -> Path:
        """The run's directory in a grid at ``root``: ``<env>/<algo>/s<seed>``."""
        return root / safe_name(self.env_id) / self.algo / f"s{self.seed}"

    def __str__(self) -> str:
        return f"{self.env_id} {self.algo} seed {self.seed}"


@dataclass(frozen=True)
class GridSettings:
    """What every run of a grid shares; a grid directory holds runs of one setting only."""

    steps: int
    overrides: tuple[tuple[str, str], ...] = ()
    """--set KEY=VALUE on top of each preset"""
    eval_every: int = 25_000
    """env steps between deterministic evaluations (evals.csv)"""
    eval_episodes: int = 10
    device: str = "auto"
    """where each run trains (``--device``): not part of what the grid is, so a grid may go on on another device"""
    compile: bool = False
    """whether each run compiles its update (``--compile``): like ``device``, not part of what the grid is"""

    def __post_init__(self) -> None:
        if self.steps <= 0 or self.eval_every < 0 or self.eval_episodes < 1:
            raise NatgradError(f"a grid needs --steps > 0, --eval-every >= 0 and --eval-episodes >= 1 (a run is "
                               f"finished once evaluated); got {self.steps}, {self.eval_every}, {self.eval_episodes}")

    @property
    def checkpoint_every(self) -> int:
        """Env steps between a grid run's checkpoints: a quarter of its steps."""
        return max(self.steps // 4, 1)


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → [0, 1, 2, 3, 4];  ``"0,3,7"`` → [0, 3, 7];  both forms can be mixed."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, sep, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    except ValueError:
        raise NatgradError(f"invalid --seeds {text!r}: use a range like 0-4 or a list like 0,3,7") from None
    if not seeds:
        raise NatgradError(f"invalid --seeds {text!r}: no seed in it")
    return sorted(set(seeds))


def grid(algos: Iterable[str], envs: Iterable[str], seeds: Iterable[int]) -> list[RunSpec]:
    """Every combination, seeds innermost so that early results cover every (env, algo)."""
    seeds = list(seeds)
    return [RunSpec(a, e, s) for s in seeds for e in envs for a in algos]


def is_finished(run_dir: Path) -> bool:
    """Whether the run has finished: its final evaluation (``eval.json``) is written."""
    return (run_dir / "eval.json").exists()


def check_settings(root: Path, settings: GridSettings) -> None:
    """Record the grid's settings in ROOT/grid.json, or refuse if ROOT holds a grid of other settings."""
    path = root / GRID_FILE
    mine = asdict(settings)
    mine["overrides"] = [list(kv) for kv in settings.overrides]
    del mine["device"], mine["compile"]
    if path.exists():
        theirs = json.loads(path.read_text())
        if theirs != mine:
            raise NatgradError(
                f"{root} holds a grid run with other settings ({theirs}); use a new --out for {mine}"
            )
        return
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mine, indent=2) + "\n")


def check_configs(specs: Iterable[RunSpec], settings: GridSettings) -> None:
    """Refuse, before anything starts, an override that some (algo, env) of the grid cannot take."""
    from natgrad.algos import algorithm
    from natgrad.presets import preset

    for algo, env_id in sorted({(s.algo, s.env_id) for s in specs}):
        cls = algorithm(algo)
        try:
            cls.config_cls().replace(**{**preset(algo, env_id), **dict(settings.overrides)})
        except NatgradError as e:
            raise NatgradError(f"{algo} on {env_id}: {e}") from None


def train_command(spec: RunSpec, run_dir: Path, settings: GridSettings, resume: Path | None = None) -> list[str]:
    """The ``natgrad train`` command line of one run (the same Python as this process); with ``resume``, the
    one that continues from that checkpoint up to the grid's steps (the checkpoint holds the run's config) on the
    grid's own env, never one the checkpoint names (a checkpoint of another algorithm or seed is refused)."""
    cmd = [sys.executable, "-m", "natgrad", "train", "--out", str(run_dir), "--no-progress", "--threads", "1",
           "--device", settings.device, "--algo", spec.algo, "--env", spec.env_id, "--seed", str(spec.seed)]
    if settings.compile:
        cmd.append("--compile")
    if resume is not None:
        return cmd + resume_args(resume, settings.checkpoint_every, settings.eval_every, settings.eval_episodes)
    cmd += ["--steps", str(settings.steps), "--eval-every", str(settings.eval_every), "--eval-episodes",
            str(settings.eval_episodes), "--checkpoint-every", str(settings.checkpoint_every)]
    for key, value in settings.overrides:
        cmd += ["--set", f"{key}={value}"]
    return cmd


def set_aside(root: Path, spec: RunSpec) -> Path | None:
    """Move an unfinished run directory (and its log) to ROOT/.incomplete/; return where it went."""
    run_dir = spec.path(root)
    log = run_dir.with_suffix(".log")
    if not run_dir.exists() and not log.exists():
        return None
    name = f"{spec.env_id}-{spec.algo}-s{spec.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    target = root / ".incomplete" / safe_name(name)
    k = 0
    while target.exists():
        k += 1
        target = target.with_name(f"{target.name}-{k}")
    target.mkdir(parents=True)
    for item in (run_dir, log):
        if item.exists():
            shutil.move(str(item), str(target / item.name))
    return target


def run_local(spec: RunSpec, root: Path, settings: GridSettings, resume: Path | None = None) -> int:
    """Train one run (continuing from the checkpoint ``resume``, if given) in a child process, its output in
    ``<run_dir>.log``; return its exit status."""
    run_dir = spec.path(root)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.with_suffix(".log"), "x") as log:
        command = train_command(spec, run_dir, settings, resume)
        return subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode


Runner = Callable[[RunSpec, Path, GridSettings, Path | None], int]


def run_grid(
    root: Path,
    specs: Sequence[RunSpec],
    settings: GridSettings,
    jobs: int = 1,
    runner: Runner = run_local,
    echo: Callable[[str], Any] = print,
) -> list[RunSpec]:
    """Run every unfinished spec, ``jobs`` at a time; return the specs that failed.

    An unfinished run is moved to ROOT/.incomplete/ and continued from its newest valid checkpoint
    (``runner(spec, root, settings, checkpoint)``), or started again when it has none."""
    if jobs < 1:
        raise NatgradError(f"--jobs must be >= 1, got {jobs}")
    check_configs(specs, settings)
    check_writable(root, "choose another --out")
    check_settings(root, settings)
    todo = [s for s in specs if not is_finished(s.path(root))]
    echo(f"{len(specs) - len(todo)} of {len(specs)} runs already finished in {root}; {len(todo)} to run")
    resume: dict[RunSpec, Path | None] = dict.fromkeys(todo)
    for spec in todo:
        moved = set_aside(root, spec)
        if moved is not None:
            resume[spec] = latest_checkpoint(moved / spec.path(root).name, echo)
            then = f"resuming it from {resume[spec]}" if resume[spec] else "starting it again (no valid checkpoint)"
            echo(f"an unfinished {spec} was moved to {moved}; {then}")
    failed: list[RunSpec] = []
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        started = {pool.submit(_timed, runner, spec, root, settings, resume[spec]): spec for spec in todo}
        for k, future in enumerate(as_completed(started), 1):
            spec = started[future]
            status, seconds = future.result()
            if status == 0 and is_finished(spec.path(root)):
                result = json.loads((spec.path(root) / "eval.json").read_text())
                echo(f"[{k}/{len(todo)}] {spec}: eval {result['mean']:.1f} ± {result['std']:.1f} in {seconds:.0f} s")
            else:
                failed.append(spec)
                echo(f"[{k}/{len(todo)}] {spec}: FAILED (exit {status}); see {spec.path(root).with_suffix('.log')}")
    return failed


def _timed(runner: Runner, spec: RunSpec, root: Path, settings: GridSettings,
           resume: Path | None) -> tuple[int, float]:
    start = time.perf_counter()
    return runner(spec, root, settings, resume), time.perf_counter() - start
