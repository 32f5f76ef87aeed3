"""What an experiment hands back (tables, figures, a claim) and the one place that writes them to disk."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn, not by every natgrad command
    from matplotlib.figure import Figure


def sci(x: float, digits: int = 3) -> str:
    """A number for a table: ``digits`` significant digits, exponent only where needed."""
    return f"{x:.{digits}g}"


@dataclass(frozen=True)
class Table:
    """Rows of already formatted cells under named columns."""

    columns: Sequence[str]
    rows: Sequence[Sequence[str]]

    def markdown(self) -> str:
        """The table in markdown."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass(frozen=True)
class Section:
    """One experiment's result: what it shows, its tables, and its figures by file name."""

    title: str
    claim: str
    """markdown: what to look at and why it holds"""
    tables: Sequence[Table]
    figures: dict[str, Figure] = field(default_factory=dict)
    """"softmax.png" → figure"""

    def markdown(self, seconds: float) -> str:
        """The section in markdown: title, claim, tables, figures and the seconds it took."""
        parts = [f"## {self.title}", self.claim, *(t.markdown() for t in self.tables)]
        parts += [f"![{Path(name).stem}]({name})" for name in self.figures]
        parts.append(f"*{seconds:.1f} s*")
        return "\n\n".join(parts) + "\n"


def figure(ncols: int = 1, nrows: int = 1, width: float = 5.2, height: float = 4.0) -> tuple[Figure, list]:
    """A figure of ``nrows × ncols`` panels (a flat list of axes), drawn by the Agg backend, never shown."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, [ax for row in axes for ax in row]


def write_section(out: Path, section: Section) -> None:
    """Save the section's figures as PNGs in ``out``; an existing file is never replaced."""
    for name, fig in section.figures.items():
        with open(out / name, "xb") as f:
            fig.savefig(f, format="png", dpi=110)


def write_report(out: Path, header: str, sections: Sequence[tuple[Section, float]]) -> Path:
    """``out/report.md``: the header, then every section with its tables and figures."""
    path = out / "report.md"
    with open(path, "x") as f:
        f.write(header + "\n\n" + "\n".join(s.markdown(seconds) for s, seconds in sections))
    return path
