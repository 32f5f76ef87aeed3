"""rl-zoo's single agents as a bar for a seed mean: per cell, how each implementation's seeds stand against it.

Each rl-zoo number is one trained agent (its ± is over evaluation episodes; the zoo's benchmark.md itself
calls its table one run per agent, a check of maximal performance rather than a quantitative benchmark).
For every cell with a zoo number, this prints that number and, for natgrad's runs and for the zoo's own
implementation re-trained here (``benchmarks.zoo_rerun``, same seeds, same scoring): the number of seeds, the
mean final evaluation, how many seeds end at or above the agent, the best seed, and P(mean ≥ agent): the
bootstrap probability that the mean final evaluation of ``--n`` seeds drawn from that implementation's seeds
reaches the agent's number, an estimate of how often a fresh ``--n``-seed run would pass the bar.

    python -m benchmarks.single_agent_bar docs/benchmarks/goal-3e3ea6b/summary.json \\
        --zoo docs/benchmarks/zoo-rerun/summary.json docs/benchmarks/zoo-rerun-10/summary.json

Summaries are merged as in ``benchmarks.compare_published`` (a later file's (env, algo) row replaces an earlier one's).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from benchmarks.compare_published import PUBLISHED, merge
from natgrad.tools.report import bootstrap_means


def seed_evals(row: dict) -> np.ndarray:
    """The final deterministic evaluation of every seed of a summary row (natgrad's or zoo_rerun.py's)."""
    return np.array([p["final_eval"] for p in row["per_seed"]], float)


def pass_probability(evals: np.ndarray, bar: float, n: int, resamples: int = 100_000, seed: int = 0) -> float:
    """P(mean of n seeds drawn with replacement from ``evals`` ≥ bar): the bootstrap estimate."""
    return float((bootstrap_means(evals, n, resamples, seed) >= bar).mean())


def cells(evals: np.ndarray | None, bar: float, n: int) -> str:
    """seeds | mean | seeds ≥ bar | best seed | P(mean ≥ bar), or dashes where there are no runs."""
    if evals is None:
        return "— | — | — | — | —"
    return (f"{len(evals)} | {evals.mean():.1f} ({evals.mean() / bar:.2f}×) | {int((evals >= bar).sum())} of "
            f"{len(evals)} | {evals.max():.1f} | {pass_probability(evals, bar, n):.3f}")


def table(natgrad: list[dict], zoo: list[dict], n: int) -> str:
    rerun = {(r["env"], r["algo"]): r for r in zoo}
    lines = [f"| cell | zoo's agent | natgrad: seeds | mean final eval | seeds ≥ agent | best seed "
             f"| P(mean of {n} ≥ agent) | zoo's code here: seeds | mean final eval | seeds ≥ agent | best seed "
             f"| P(mean of {n} ≥ agent) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in natgrad:
        published = PUBLISHED.get(r["env"].split("-")[0], {}).get(r["algo"], {}).get("zoo")
        if published is None:
            continue
        theirs = rerun.get((r["env"], r["algo"]))
        bar = published[0]
        lines.append(f"| {r['algo'].upper()} {r['env']} | {bar:.1f} | {cells(seed_evals(r), bar, n)} "
                     f"| {cells(seed_evals(theirs) if theirs else None, bar, n)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", type=Path, nargs="+", help="natgrad's summary.json files, oldest first")
    parser.add_argument("--zoo", type=Path, nargs="*", default=[],
                        help="summary.json files of benchmarks.zoo_rerun (the zoo's code re-trained here)")
    parser.add_argument("--n", type=int, default=10, help="seeds in the mean the bar is held to (default 10)")
    args = parser.parse_args()
    natgrad = merge([json.loads(p.read_text()) for p in args.summary])
    zoo = [row for p in args.zoo for row in json.loads(p.read_text())]
    print(table(natgrad, zoo, args.n))


if __name__ == "__main__":
    main()
