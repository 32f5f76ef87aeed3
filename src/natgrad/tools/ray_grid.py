"""Benchmark grids on Ray: each (algo, env, seed) is a Ray task running the local runner's ``natgrad train``.

A task trains with ``bench.run_local`` into a scratch directory on whichever node Ray places it,
then ships the run directory and its log back; the driver writes them where the local runner
would (``ROOT/<env>/<algo>/s<seed>/`` and ``.log``). So ``bench.run_grid`` resumes and
``report`` aggregates a Ray grid exactly like a local one, and the nodes share no filesystem: a run
continued from a checkpoint gets that checkpoint and its run's config.json shipped to the same place
under its scratch directory. A task whose node dies is run again from scratch by Ray.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import ray
from ray.exceptions import RayError

from natgrad.errors import NatgradError
from natgrad.rollouts.ray_cluster import check_cpus
from natgrad.runs.directories import CONFIG, run_of
from natgrad.tools.bench import GridSettings, Runner, RunSpec, run_local


def train_remote(spec: RunSpec, settings: GridSettings, resume: str | None = None,
                 given: dict[str, bytes] | None = None) -> tuple[int, dict[str, bytes]]:
    """``run_local`` in a scratch directory of this node, given the files ``given`` (relative path → content)
    and continuing from ``resume`` (one of them) if set: its exit status and every file it wrote, by path."""
    given = given or {}
    with tempfile.TemporaryDirectory(prefix="natgrad-run-") as tmp:
        root = Path(tmp)
        write_files(root, given)
        status = run_local(spec, root, settings, None if resume is None else root / resume)
        return status, {name: p.read_bytes() for p in root.rglob("*")
                        if p.is_file() and (name := str(p.relative_to(root))) not in given}


def ray_runner(run_cpus: float = 1.0) -> Runner:
    """A ``bench.run_grid`` runner that trains each run as a Ray task reserving ``run_cpus`` CPUs."""
    if not run_cpus > 0:
        raise NatgradError(f"invalid --run-cpus {run_cpus!r}: must be > 0, e.g. 1")
    check_cpus(1, run_cpus, "--run-cpus")
    task = ray.remote(train_remote).options(num_cpus=run_cpus)

    def run(spec: RunSpec, root: Path, settings: GridSettings, resume: Path | None = None) -> int:
        given = {} if resume is None else {str(p.relative_to(root)): p.read_bytes()
                                           for p in (resume, run_of(resume) / CONFIG)}
        try:
            where = None if resume is None else str(resume.relative_to(root))
            status, files = ray.get(task.remote(spec, settings, where, given))
        except RayError as e:
            log = spec.path(root).with_suffix(".log").relative_to(root)
            status, files = 1, {str(log): f"the Ray task of this run failed: {e}\n".encode()}
        write_files(root, files)
        return status

    return run


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (relative path → content) under ``root``; an existing file is never overwritten."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as f:
            f.write(content)
