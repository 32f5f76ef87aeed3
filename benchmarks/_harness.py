"""What the benchmark scripts share: measurements in child processes, contenders taking turns, medians over the
repeats, and the record of the machine and command a result came from.

A measurement runs in a fresh process of a given Python (natgrad's, or the peers' virtual environment, which has
no natgrad), started as ``python -m benchmarks._harness MODULE FUNCTION KWARGS``: it calls
``FUNCTION(**KWARGS)`` of ``MODULE`` and prints ``RESULT`` and the JSON of what the function returned (a dict gets
the process's peak resident memory, ``peak_rss_mb``), or with ``--out PATH`` writes that JSON to PATH. The
repository root goes first on the child's ``PYTHONPATH``, so every Python finds this package from any working
directory. This module imports only the standard library: the peers' Python imports it too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# a contender of a side-by-side measurement: (the Python it runs in, the function it runs, its keyword arguments)
Contender = tuple[str, Callable[..., Any], dict[str, Any]]


def command(python: str, worker: Callable[..., Any], kwargs: dict[str, Any], out: Path | None = None) -> list[str]:
    """The command line that runs ``worker(**kwargs)`` in a process of ``python`` (its JSON to ``out`` if given)."""
    module = worker.__module__
    if module == "__main__":  # the running script: the name it was started by, with python -m
        module = sys.modules["__main__"].__spec__.name
    return [python, "-m", "benchmarks._harness", module, worker.__qualname__, json.dumps(kwargs),
            *(["--out", str(out)] if out else [])]


def child_environment(*paths: str) -> dict[str, str]:
    """This process's environment with the repository root first on ``PYTHONPATH``, then ``paths``."""
    path = os.pathsep.join(filter(None, [str(ROOT), *paths, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def run_child(python: str, worker: Callable[..., Any], pythonpath: tuple[str, ...] = (), **kwargs: Any) -> Any:
    """What ``worker(**kwargs)`` returns, run in a fresh process of ``python`` (``pythonpath`` after the repository
    root on its path: another commit's ``src``, say); RuntimeError with the end of its stderr if it fails."""
    out = subprocess.run(command(python, worker, kwargs), capture_output=True, text=True,
                         env=child_environment(*pythonpath))
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{worker.__name__} {kwargs} failed:\n{out.stderr[-3000:]}")


def take_turns(contenders: dict[str, Contender], repeats: int, keep_going: bool = False,
               label: str = "") -> dict[str, list[dict] | str]:
    """Each contender's results over ``repeats`` rounds in which every contender runs once, each run in its own
    child process, so that a change in the machine's load falls on all of them alike. A failure is raised; with
    ``keep_going`` the contender drops out instead, the last line of its error in place of its results."""
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    failed: dict[str, str] = {}
    for _ in range(repeats):
        for name, (python, worker, kwargs) in contenders.items():
            if name in failed:
                continue
            try:
                result = run_child(python, worker, **kwargs)
            except RuntimeError as e:
                if not keep_going:
                    raise
                failed[name] = str(e).strip().splitlines()[-1]
                continue
            runs[name].append(result)
            if "wall" in result:
                print(f"{label}{name}: {result['steps'] / result['wall']:.0f} steps/s", flush=True)
    return {name: failed.get(name) or runs[name] for name in contenders}


def medians(runs: list[dict]) -> dict[str, Any]:
    """The median over the repeats of every number the runs returned and the first run's strings; for runs
    ``clocked`` (``steps``, ``wall``, ``cpu``), the median steps/s by wall clock and by CPU time, and each run's by
    wall clock."""
    first = runs[0]
    result = {k: statistics.median(r[k] for r in runs) for k, v in first.items() if isinstance(v, (int, float))}
    result.update({k: v for k, v in first.items() if isinstance(v, str)})
    if "wall" in first:
        result["steps_per_second"] = statistics.median(r["steps"] / r["wall"] for r in runs)
        result["steps_per_cpu_second"] = statistics.median(r["steps"] / r["cpu"] for r in runs)
        result["each_steps_per_second"] = [r["steps"] / r["wall"] for r in runs]
    result["repeats"] = len(runs)
    return result


def clocked(run: Callable[[], int]) -> dict[str, float]:
    """Run ``run()`` (it returns the env steps taken) under the wall clock and the process's CPU clock."""
    wall, cpu = time.perf_counter(), time.process_time()
    steps = run()
    return {"steps": steps, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def random_steps(env: Any, steps: int) -> dict[str, float]:
    """``steps`` steps of one made env with random actions drawn in advance, ``clocked``: the simulator's own rate
    through Gymnasium and whatever wrappers ``env`` has."""
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(steps)]

    def run() -> int:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()
        return steps

    return clocked(run)


def versions(*modules: str) -> dict[str, str]:
    """``{module: its __version__}`` of the libraries a measurement ran on."""
    return {m: importlib.import_module(m).__version__ for m in modules}


def record() -> dict[str, Any]:
    """The head of a result file: the command that made it and the machine it ran on (what a natgrad run directory
    records, ``natgrad.runs.directories.machine``, with the cores and the load average at the start)."""
    from natgrad.runs.directories import machine

    script = sys.modules["__main__"].__spec__.name
    return {"command": shlex.join(["python", "-m", script, *sys.argv[1:]]),
            "machine": {**machine(), "cores": os.cpu_count() or 0,
                        "load_average_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg())}}


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--out`` (the JSON result file) and ``--render`` (only print the table of an existing ``--out``)."""
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--render", action="store_true", help="only print the table of --out")


def rendered(args: argparse.Namespace, markdown: Callable[[Any], str]) -> bool:
    """With ``--render``: print the table of ``--out`` and say so (the script then does nothing else)."""
    if args.render:
        print(markdown(json.loads(args.out.read_text())))
    return args.render


def refuse_existing(out: Path) -> None:
    """Exit if ``out`` exists: a benchmark never overwrites a result."""
    if out.exists():
        sys.exit(f"error: {out} exists: choose a new --out (benchmarks never overwrite results)")


def runs_beside(out: Path) -> Path:
    """For a benchmark made of ``natgrad bench`` grids: ``out`` refused if it exists, its folder made, and the folder
    of its runs returned, ``OUT-runs`` beside it (a grid there resumes: runs on disk are not made again)."""
    refuse_existing(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out.with_name(out.stem + "-runs")


def run_jobs(python: str, jobs: dict[Path, tuple[Callable[..., dict], dict[str, Any]]], parallel: int) -> None:
    """Per result path not on disk yet, ``worker(**kwargs)`` in its own process of ``python``, ``parallel`` at a time:
    the JSON of what it returns to the path, its output to the path's ``.log``. Resumable: a run done is not redone;
    a failed one is reported, not retried."""
    todo = [path for path in jobs if not path.exists()]
    print(f"{len(todo)} of {len(jobs)} runs to do", flush=True)

    def one(path: Path) -> None:
        worker, kwargs = jobs[path]
        path.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        with open(path.with_suffix(".log"), "w") as log:
            code = subprocess.call(command(python, worker, kwargs, path), stdout=log, stderr=subprocess.STDOUT,
                                   env=child_environment())
        status = "done" if code == 0 else f"FAILED ({code}), see {log.name}"
        print(f"{path}: {status} in {time.perf_counter() - start:.0f} s", flush=True)

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, todo))


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON to ``path``, whole or not at all (written aside, then renamed)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.rename(path)


def main() -> None:
    """A child's side: run one function of a benchmark module and hand back what it returns."""
    parser = argparse.ArgumentParser(description="run one function of a benchmark module (the child protocol)")
    parser.add_argument("module")
    parser.add_argument("function")
    parser.add_argument("kwargs", type=json.loads)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = getattr(importlib.import_module(args.module), args.function)(**args.kwargs)
    if isinstance(result, dict):
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.out:
        write_json(args.out, result)
    else:
        print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
