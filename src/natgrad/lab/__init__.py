"""The natural-gradient lab: small experiments that make the theory of trust regions visible, and check it.

Each experiment module has a ``section(...)`` that computes (pure functions of tensors), then returns a
``Section``: its claim, tables and figures. ``run_lab`` is the one place that writes them to disk.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from natgrad.lab import cg, curves, fisher, invariance, quadratic, softmax
from natgrad.lab.report import Section, write_report, write_section
from natgrad.runs.directories import new_run_dir
from natgrad.version import __version__

EXPERIMENTS: dict[str, Callable[[], Section]] = {
    "softmax": softmax.section,
    "quadratic": quadratic.section,
    "fisher": fisher.section,
    "invariance": invariance.section,
    "curves": curves.section,
    "cg": cg.section,
}


def run_lab(names: Sequence[str], out: str | Path | None = None, command: str = "",
            root: str | Path = "lab-out", echo: Callable[[str], None] = print) -> Path:
    """Run the experiments ``names`` into ``out`` (new or empty; default ``root/<name>-<time>``):
    one PNG per figure and ``report.md``. Returns the report's path."""
    out_dir = new_run_dir(root, names[0] if len(names) == 1 else "all", out)
    start = time.perf_counter()
    done: list[tuple[Section, float]] = []
    for name in names:
        t0 = time.perf_counter()
        section = EXPERIMENTS[name]()
        write_section(out_dir, section)
        done.append((section, time.perf_counter() - t0))
        echo(f"\n{section.title} ({done[-1][1]:.1f} s)\n" + "\n\n".join(t.markdown() for t in section.tables))
    header = (
        f"# natgrad lab\n\nProduced by `{command}` in {time.perf_counter() - start:.0f} s of wall time "
        f"(natgrad {__version__}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), "
        f"Python {platform.python_version()}, {platform.machine()}). Each section states a claim, the numbers "
        "behind it and a figure; `tests/test_lab.py` asserts every claim on smaller instances."
    )
    report = write_report(out_dir, header, done)
    echo(f"\nreport: {report}")
    return report
