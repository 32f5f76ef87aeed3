"""Run directories: created fresh for every run, never reused or overwritten."""

from __future__ import annotations

import csv
import json
import math
import operator
import os
import platform
import re
import sys
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from natgrad.algos.checkpoint import read
from natgrad.errors import NatgradError, one_line

FINAL_MODEL = "model.pt"
CHECKPOINTS = "checkpoints"
CONFIG = "config.json"
EVALS = "evals.csv"
FAILED = "failed.json"  # left by a run whose training raised: the error and the step
STEP_COLUMNS = {"metrics.csv": "time/steps", "episodes.csv": "step", EVALS: "step"}  # per-step files of a run

Warn = Callable[[str], object]


def to_stderr(message: str) -> None:
    """Print a one-line warning on stderr."""
    print(message, file=sys.stderr)


def safe_name(text: str) -> str:
    """``text`` usable as one file name everywhere: every character but letters, digits, ``.``, ``_`` and
    ``-`` becomes ``_`` (``ALE/Pong-v5`` → ``ALE_Pong-v5``, ``module:Env-v0`` → ``module_Env-v0``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def new_run_dir(root: str | Path, name: str, out: str | Path | None = None) -> Path:
    """``out`` if given (it must not exist, or be an empty directory), else ``root/name-TIMESTAMP[-k]``."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise NatgradError(
                f"{path} already exists and is not empty: choose a new --out (natgrad never overwrites a run)"
            )
        check_writable(path, "choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        return path
    check_writable(root, "choose another --runs-root")
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for k in range(1000):
        path = base if k == 0 else base.with_name(f"{base.name}-{k}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise NatgradError(f"could not create a new run directory under {root}: too many runs named {base.name}")


def check_writable(path: str | Path, fix: str) -> None:
    """Refuse in one line, before any work, a destination that cannot be written: a file or directory to make, or
    a directory to write into. The nearest of ``path`` and its parents that exists must be a directory in which a
    file can be made (one is made and removed, so read-only file systems and places even root cannot write count).
    ``fix`` ends the message: what to do instead, e.g. "choose another --out"."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if os.path.exists(p)), Path("."))
    if not existing.is_dir():
        raise NatgradError(f"cannot write {path}: {existing} is a file, not a directory; {fix}")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        raise NatgradError(f"cannot write {path}: {existing} is not writable ({e.strerror}); {fix}") from None


def failure(run_dir: str | Path) -> str | None:
    """None for a run that did not fail; else one line from its failed.json: the run, the step and the error."""
    path = Path(run_dir) / FAILED
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
        return f"{run_dir} failed at step {record['step']}: {record['error']}"
    except (ValueError, KeyError, TypeError):  # cut short as it was written
        return f"{run_dir} failed (its {FAILED} cannot be read)"


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to a file that must not exist yet; if it does (two runs given the same ``--out``
    at once: the first run's config.json claims the directory), a one-line NatgradError, nothing written."""
    try:
        f = open(path, "x")
    except FileExistsError:
        raise NatgradError(f"{path} already exists: another run is writing into {path.parent}; choose a new --out "
                           "(natgrad never overwrites a run)") from None
    with f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


def machine() -> dict[str, Any]:
    """What a run's numbers can depend on besides its config and seed: the CPU and its vector instruction sets,
    the kernel level torch dispatches to, and the versions of the libraries that compute the env and the update.

    Runs are bit-for-bit repeatable on one machine; this says which machine, so a run that parts from its
    twin elsewhere can be told apart."""
    import numpy as np
    import torch

    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    cpu, flags = platform.processor(), []
    try:  # Linux: the model and the vector instruction sets the kernels may dispatch to
        info = dict(line.split(":", 1) for line in open("/proc/cpuinfo").read().split("\n\n")[0].splitlines())
        info = {k.strip(): v.strip() for k, v in info.items()}
        cpu = info.get("model name", cpu)
        flags = sorted(f for f in info.get("flags", "").split() if f.startswith(("sse", "avx", "fma")))
    except (OSError, ValueError):
        pass
    return {
        "cpu": cpu, "cpu_simd": flags, "platform": platform.platform(), "python": platform.python_version(),
        "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy": np.__version__, "gymnasium": version("gymnasium"), "mujoco": version("mujoco"),
    }


def checkpoint_path(run_dir: Path, step: int) -> Path:
    """Where a run directory keeps its checkpoint of ``step``."""
    return checkpoint_file(run_dir / CHECKPOINTS, step)


def checkpoint_file(directory: Path, step: int) -> Path:
    """The checkpoint of ``step`` in ``directory``: ``step_<10 digits>.pt``, so names sort by step."""
    return Path(directory) / f"step_{step:010d}.pt"


def latest_model(run_dir: str | Path, warn: Warn = to_stderr) -> Path:
    """The final model of a run, else its newest readable checkpoint (an interrupted run); a file as given."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    if not run_dir.is_dir():
        raise NatgradError(f"no run directory at {run_dir}: pass a directory written by natgrad train")
    if (run_dir / FINAL_MODEL).exists():
        return run_dir / FINAL_MODEL
    path = latest_checkpoint(run_dir, warn)
    if path is None:
        raise NatgradError(f"{run_dir} holds no {FINAL_MODEL} and no readable checkpoint (corrupt or truncated "
                           "ones are skipped): was it written by natgrad train?")
    return path


def latest_checkpoint(run_dir: Path, warn: Warn = to_stderr) -> Path | None:
    """The newest checkpoint of ``run_dir`` that can be read (None if none can); ``warn`` says in one line
    which newer ones were skipped as corrupt or truncated."""
    checkpoints = sorted((run_dir / CHECKPOINTS).glob("step_*.pt"), reverse=True)
    for skipped, path in enumerate(checkpoints):
        try:
            read(path)
        except NatgradError:
            continue
        if skipped:
            bad = checkpoints[0] if skipped == 1 else f"the newest {skipped} checkpoints in {run_dir / CHECKPOINTS}"
            warn(f"warning: {bad} cannot be read (corrupt or truncated); using {path}, the newest valid checkpoint")
        return path
    return None


def run_of(checkpoint: Path) -> Path | None:
    """The run directory that wrote ``checkpoint`` (its model.pt or one of its checkpoints), or None."""
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS else checkpoint.parent
    return run_dir if (run_dir / CONFIG).is_file() else None


def parent_record(checkpoint: Path, run_dir: Path, step: int) -> dict[str, Any]:
    """What a run resumed from ``checkpoint`` (at ``step``) records in its config.json as ``resumed_from``:
    the parent run directory (None for a file outside any run) and the checkpoint, both relative to ``run_dir``
    so that a grid moved as a whole keeps its links."""
    parent = run_of(checkpoint)
    return {"run_dir": _relative(parent, run_dir) if parent else None,
            "checkpoint": _relative(checkpoint, run_dir), "step": step}


def steps_left(checkpoint: Path, timesteps: int) -> int:
    """Env steps from ``timesteps`` to the total of the run that wrote ``checkpoint`` (its start_timesteps
    + steps); refused for a finished run (its model.pt) or a file outside a run, which have no steps left."""
    run_dir = run_of(checkpoint)
    if run_dir is None:
        raise NatgradError(f"{checkpoint} is not in a run directory, so it has no total to continue to: "
                           "pass --steps N to train N more steps")
    if checkpoint.name == FINAL_MODEL:
        raise NatgradError(f"{run_dir} finished its training: pass --steps N to train N more steps")
    try:  # only these two numbers are read: nothing else in config.json steers the resumed run
        config = json.loads((run_dir / CONFIG).read_text())
        total = operator.index(config["start_timesteps"]) + operator.index(config["steps"])
    except (ValueError, KeyError, TypeError) as e:
        raise NatgradError(f"{run_dir / CONFIG} holds no total of env steps ({type(e).__name__}: {one_line(e)}); the "
                           "file is damaged: pass --steps N to train N more steps") from None
    return max(0, total - timesteps)


def lineage(run_dir: Path) -> list[tuple[Path, float]]:
    """The run and the runs it was resumed from, oldest first, each with the last step of its own that
    counts: the step its child resumed from (the run itself: all of it)."""
    chain: list[tuple[Path, float]] = [(run_dir, math.inf)]
    while True:
        config = json.loads((chain[-1][0] / CONFIG).read_text())
        parent = config.get("resumed_from")
        if not isinstance(parent, dict) or parent.get("run_dir") is None:  # a fresh run, or resumed from a file
            return chain[::-1]
        path = Path(os.path.normpath(chain[-1][0] / parent["run_dir"]))
        if not (path / CONFIG).is_file():
            raise NatgradError(f"{chain[-1][0]} was resumed from {path}, which is gone: put that run back "
                               "to read the whole curve")
        chain.append((path, parent["step"]))


def joined_rows(run_dir: Path, name: str) -> list[dict[str, str]]:
    """The rows of one per-step file (metrics.csv, episodes.csv or evals.csv) of a run joined with its
    ancestors': each parent's rows up to the step its child resumed from, then the child's; one curve
    without an overlapping row."""
    rows: list[dict[str, str]] = []
    for path, last in lineage(run_dir):
        if (path / name).exists():
            with open(path / name, newline="") as f:
                rows += [r for r in csv.DictReader(f) if float(r[STEP_COLUMNS[name]]) <= last]
    return rows


def resume_args(run: Path, checkpoint_every: int, eval_every: int, eval_episodes: int) -> list[str]:
    """``natgrad train`` options that continue ``run`` up to its total, checkpointing and evaluating as it did."""
    return ["--resume", str(run), "--checkpoint-every", str(checkpoint_every), "--eval-every", str(eval_every),
            "--eval-episodes", str(eval_episodes)]


def _relative(path: Path, start: Path) -> str:
    return os.path.relpath(os.path.abspath(path), os.path.abspath(start))
