"""Run directories: created fresh for every run, never reused or overwritten."""

from __future__ import annotations

import json
import platform
import time
from importlib import metadata
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
