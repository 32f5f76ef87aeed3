"""Run directories: created fresh for every run, never reused or overwritten."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from natgrad.errors import NatgradError

FINAL_MODEL = "model.pt"
CHECKPOINTS = "checkpoints"


def new_run_dir(root: str | Path, name: str, out: str | Path | None = None) -> Path:
    """``out`` if given (it must not exist, or be an empty directory), else ``root/name-TIMESTAMP[-k]``."""
    if out is not None:
        path = Path(out)
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise NatgradError(
                f"{path} already exists and is not empty: choose a new --out (natgrad never overwrites a run)"
            )
        path.mkdir(parents=True, exist_ok=True)
        return path
    base = Path(root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for k in range(1000):
        path = base if k == 0 else base.with_name(f"{base.name}-{k}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise NatgradError(f"could not create a new run directory under {root}: too many runs named {base.name}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to a file that must not exist yet."""
    with open(path, "x") as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS / f"step_{step:010d}.pt"


def latest_model(run_dir: str | Path) -> Path:
    """The final model of a run, else its newest checkpoint (an interrupted run)."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    if not run_dir.is_dir():
        raise NatgradError(f"no run directory at {run_dir}: pass a directory written by natgrad train")
    if (run_dir / FINAL_MODEL).exists():
        return run_dir / FINAL_MODEL
    checkpoints = sorted((run_dir / CHECKPOINTS).glob("step_*.pt"))
    if not checkpoints:
        raise NatgradError(f"{run_dir} holds no {FINAL_MODEL} and no checkpoints: was it written by natgrad train?")
    return checkpoints[-1]
