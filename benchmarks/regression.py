"""Has the code moved the results table? A few new seeds of some of its cells, run on the current commit and tested
against the committed runs the table is made from.

The README's table (``readme_results.HEADLINE``) was run at the commits its pages name; a later commit that changes
the path a seed takes gives a new sample of each cell, which may or may not come from the same distribution. This
script re-runs a small sample, by default 4 seeds of Hopper-v5 TRPO and HalfCheetah-v5 PPO, with the table's own
command (``natgrad bench`` at the shipped presets, 1M steps, an evaluation every 25k steps), and compares each cell's
final evaluations with the table's seeds:

- a two-sample test of the final evaluations: Mann–Whitney U (scipy, where installed; no assumption of normal
  returns, which bimodal cells such as Swimmer break) or else an exact permutation test of the difference of means;
- the range check: how many new seeds fall below the lowest or above the highest of the table's seeds.

A cell whose test gives p < 0.05 has ``moved down`` or ``moved up``, else it is ``same``. The default seeds,
200–203, are neither the table's evaluation seeds (0–9: re-running them at an unchanged commit only re-tests
determinism, and at a changed one is no fresh sample of the table's distribution) nor the tuning seeds 100–107 (the
presets were chosen because they did well there, so those seeds would flatter the code). At 2 jobs on 2 cores the
default takes about 15 minutes.

    python -m benchmarks.regression --out bench-out/regression.json          # runs in bench-out/regression-runs/
    python -m benchmarks.regression --cells hopper-trpo --seeds 200 --steps 5000 --out quick.json   # compares nothing
    python -m benchmarks.regression --out bench-out/regression.json --render  # the verdicts again
    python -m benchmarks.regression --grid bench-out/goal-X.Y.Z --made-at COMMIT --out drift.json   # runs nothing

The last compares a grid made already, such as the whole table made again at a new commit (its seeds 0–9 take
other paths there, so they are a new sample), with the table, every cell it holds: what moved and what did not.

The JSON holds the commit (``git rev-parse HEAD``, and whether the work tree had changes), the settings, each cell's
per-seed results beside the table's, and the verdicts. The grid directory is a ``natgrad bench`` grid: run the
same command again after a stop and only the missing runs are made; ``natgrad report`` aggregates it.
"""

from __future__ import annotations

import argparse
import itertools
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import ROOT, add_output_options, record, rendered, runs_beside, write_json
from benchmarks.readme_results import ALGO_NAMES, DATA, HEADLINE, made, made_at, rows, sources
from natgrad.errors import NatgradError
from natgrad.tools.bench import GridSettings, grid, parse_seeds, run_grid
from natgrad.tools.report import aggregate, find_runs
from natgrad.version import __version__

ALPHA = 0.05
"""a cell has moved when the two-sample test gives p below this"""
SAMPLE_CELLS, SAMPLE_SEEDS = "hopper-trpo,halfcheetah-ppo", "200-203"
"""the sample run before a release: its cells and its seeds"""


def table_cells() -> dict[str, tuple[str, str]]:
    """{``hopper-trpo``: (env family, algo)} of every cell of the table."""
    return {f"{env.lower()}-{algo}": (env, algo) for env, algo in rows(HEADLINE)}


def parse_cells(text: str) -> list[tuple[str, str]]:
    """``--cells hopper-trpo,halfcheetah-ppo`` → [("Hopper", "trpo"), ("HalfCheetah", "ppo")]."""
    known = table_cells()
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown cell {', '.join(unknown) or repr(text)}: choose from "
                                         f"{', '.join(sorted(known))}")
    return [known[name] for name in names]


def seed_list(text: str) -> list[int]:
    """``--seeds``, as ``natgrad bench`` reads it."""
    try:
        return parse_seeds(text)
    except NatgradError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def commit() -> dict[str, Any]:
    """The commit the code ran at: ``git rev-parse HEAD`` and whether the work tree differs from it (``dirty``);
    None for both outside a git checkout."""
    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    head = git("rev-parse", "HEAD")
    status = git("status", "--porcelain") if head else None
    return {"hash": head, "dirty": None if status is None else bool(status)}


def two_sample_p(old: np.ndarray, new: np.ndarray) -> tuple[float, str]:
    """The two-sided p-value that ``old`` and ``new`` come from one distribution, and the test's name: Mann–Whitney
    U where scipy is installed, else ``permutation_p``."""
    try:
        from scipy.stats import mannwhitneyu
    except ImportError:
        return permutation_p(old, new), "permutation test of the difference of means"
    return float(mannwhitneyu(new, old, alternative="two-sided").pvalue), "Mann–Whitney U"


def permutation_p(old: np.ndarray, new: np.ndarray, resamples: int = 100_000, seed: int = 0) -> float:
    """P(|mean(A) − mean(B)| ≥ |mean(new) − mean(old)|) over relabellings (A, B) of the pooled returns with
    len(A) = len(new): every relabelling where there are at most ``resamples``, else ``resamples`` random ones."""
    pooled = np.concatenate([new, old]).astype(float)
    n, k = len(pooled), len(new)
    if math.comb(n, k) <= resamples:
        picks = np.array(list(itertools.combinations(range(n), k)))
    else:
        picks = np.argsort(np.random.default_rng(seed).random((resamples, n)), axis=1)[:, :k]
    in_a = np.zeros((len(picks), n), bool)
    np.put_along_axis(in_a, picks, True, axis=1)
    diffs = in_a @ pooled / k - ~in_a @ pooled / (n - k)
    observed = abs(np.mean(new) - np.mean(old))
    return float(np.mean(np.abs(diffs) >= observed * (1 - 1e-12)))  # the observed split itself counts, as it must


def compare(old: list[float], new: list[float], alpha: float = ALPHA) -> dict[str, Any]:
    """The verdict on a cell's new final evaluations against the table's: ``moved down`` / ``moved up`` where the
    two-sample test gives p < ``alpha``, else ``same``; the means, both ranges, how many new seeds lie outside
    the old range, and the smallest p any samples of these sizes can give, 2 / C(n_old + n_new, n_new) (all new
    seeds below, or all above, every old one)."""
    old_a, new_a = np.asarray(old, float), np.asarray(new, float)
    p, test = two_sample_p(old_a, new_a)
    moved = "moved down" if new_a.mean() < old_a.mean() else "moved up"
    return {"verdict": moved if p < alpha else "same", "p": p, "test": test, "alpha": alpha,
            "old_mean": float(old_a.mean()), "new_mean": float(new_a.mean()),
            "old_range": [float(old_a.min()), float(old_a.max())],
            "new_range": [float(new_a.min()), float(new_a.max())],
            "below_range": int((new_a < old_a.min()).sum()), "above_range": int((new_a > old_a.max()).sum()),
            "smallest_p": 2 / math.comb(len(old_a) + len(new_a), len(new_a))}


def cell_result(env: str, algo: str, new_row: dict, table: dict[tuple[str, str], dict]) -> dict[str, Any]:
    """One cell: the new seeds' results beside the table's row, and the comparison where the budgets agree."""
    old_row, grid_name = table[(env, algo)], sources(HEADLINE)[(env, algo)]
    old = [s["final_eval"] for s in old_row["per_seed"]]
    new = [s["final_eval"] for s in new_row["per_seed"]]
    same_budget = new_row["steps"] == old_row["steps"]
    return {"env": new_row["env"], "algo": algo,
            "table": {"grid": str((DATA / grid_name).relative_to(ROOT)), "made_at": made_at(grid_name),
                      "natgrad_version": made(grid_name).version, "seeds": old_row["seeds"],
                      "steps": old_row["steps"], "final_eval": old},
            "new": {"seeds": new_row["seeds"], "steps": new_row["steps"], "final_eval": new,
                    "per_seed": new_row["per_seed"]},
            "comparison": compare(old, new) if same_budget else None}


def verdict(cell: dict) -> str:
    """One line per cell: the verdict, p, the means and both ranges, or why nothing was compared."""
    name = f"{cell['env']} {ALGO_NAMES[cell['algo']]}"
    new, table, c = cell["new"], cell["table"], cell["comparison"]
    if c is None:
        return (f"{name}: not compared: the new runs took {new['steps']:,} steps, the table's {table['steps']:,} "
                f"(mean final eval {np.mean(new['final_eval']):.1f} on seeds {_seeds(new['seeds'])}); run at the "
                "table's budget (--steps 1e6) to test it")
    outside = [f"{c[side]} of {len(new['seeds'])} new seeds {where} the old range" for side, where in
               (("below_range", "below"), ("above_range", "above")) if c[side]]
    return (f"{name}: {c['verdict']} (p = {c['p']:.3f}, {c['test']}): mean {c['new_mean']:.1f} on seeds "
            f"{_seeds(new['seeds'])} [{c['new_range'][0]:.1f}, {c['new_range'][1]:.1f}] against {c['old_mean']:.1f} "
            f"on the table's seeds {_seeds(table['seeds'])} [{c['old_range'][0]:.1f}, {c['old_range'][1]:.1f}]"
            f"; {', '.join(outside) or 'every new seed inside the old range'}"
            + (f"; {len(new['seeds'])} new seed(s) cannot reach p < {c['alpha']} (at best p = {c['smallest_p']:.3f}): "
               "add seeds" if c["smallest_p"] >= c["alpha"] else ""))


def _seeds(seeds: list[int]) -> str:
    """[0, 1, 2] → '0–2'; [0, 3] → '0,3'."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ",".join(map(str, seeds))


def markdown(result: dict) -> str:
    """The verdicts of a result file, under the commit they were made at."""
    head, settings = result["commit"], result["settings"]
    state = "an unknown commit" if head["hash"] is None else head["hash"][:12]
    state += " with uncommitted changes" if head["dirty"] else ""
    source = "" if settings.get("ran", True) else f" (the runs of {settings['grid']}, made before)"
    lines = [f"natgrad {result['natgrad_version']} at {state}{source}, {settings['steps']:,} steps per run:"]
    for cell in result["cells"]:
        table = cell["table"]
        lines.append(f"- {verdict(cell)} (the table's runs: natgrad {table['natgrad_version']} at {table['made_at']})")
    return "\n".join(lines)


def run(cells: list[tuple[str, str]], seeds: list[int], settings: GridSettings, jobs: int, root: Path) -> list[dict]:
    """Train every (cell, seed) as ``natgrad bench`` does, in the grid directory ``root``; each cell's result."""
    table = rows(HEADLINE)
    overlap = sorted(set(seeds) & {s for key in cells for s in table[key]["seeds"]})
    if overlap:
        raise NatgradError(f"seeds {overlap} are the table's own: they would re-test determinism, not sample the "
                           "code anew; choose others (--seeds 200-203)")
    specs = [spec for env, algo in cells for spec in grid([algo], [table[(env, algo)]["env"]], seeds)]
    failed = run_grid(root, specs, settings, jobs=jobs)
    if failed:
        raise NatgradError(f"{len(failed)} run(s) failed ({', '.join(map(str, failed))}); see their logs in {root} "
                           "and run the same command again")
    return read(root, cells, seeds)


def read(root: Path, cells: list[tuple[str, str]], seeds: list[int] | None = None) -> list[dict]:
    """Each cell's result from the finished runs of the grid directory ``root`` (of ``seeds``, or all it holds): a
    cell with no finished run there is an error naming it."""
    runs = [r for r in find_runs(root) if seeds is None or r.seed in seeds]  # the grid may hold other seeds
    new = {(r["env"].split("-")[0], r["algo"]): r for r in aggregate(runs)}
    missing = [f"{env.lower()}-{algo}" for env, algo in cells if (env, algo) not in new]
    if missing:
        raise NatgradError(f"no finished run of {', '.join(missing)} in {root}: run the grid first, or choose the "
                           "cells it holds with --cells")
    table = rows(HEADLINE)
    return [cell_result(env, algo, new[(env, algo)], table) for env, algo in cells]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", type=parse_cells,
                        help=f"comma-separated cells of the table, env-algo (default: {SAMPLE_CELLS}; with --grid, "
                        "every cell)")
    parser.add_argument("--seeds", type=seed_list,
                        help=f"a range 200-203 or a list 200,205 (default: {SAMPLE_SEEDS}; with --grid, all it holds)")
    parser.add_argument("--steps", type=float, default=1e6, help="env steps per run; the table's is 1e6")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one process each")
    parser.add_argument("--grid", type=Path, help="run nothing: compare the finished runs of this natgrad bench grid "
                        "(a table made again, say) with the table, every cell in --cells, of --seeds or all it holds")
    parser.add_argument("--made-at", help="with --grid: the commit its runs were made at, for the record")
    add_output_options(parser)
    args = parser.parse_args()
    if not args.grid:  # a sample of new seeds, or a grid made already: its cells and seeds, all by default
        args.cells, args.seeds = args.cells or parse_cells(SAMPLE_CELLS), args.seeds or seed_list(SAMPLE_SEEDS)
    args.cells = args.cells or list(table_cells().values())
    if rendered(args, markdown):
        return
    root = args.grid or runs_beside(args.out)
    try:
        settings = GridSettings(steps=int(args.steps))
        cells = (read(root, args.cells, args.seeds) if args.grid else
                 run(args.cells, args.seeds, settings, args.jobs, root))
    except NatgradError as e:
        raise SystemExit(f"error: {e}") from None
    ran = {"steps": settings.steps, "eval_every": settings.eval_every, "eval_episodes": settings.eval_episodes,
           "jobs": args.jobs} if not args.grid else {"steps": cells[0]["new"]["steps"]}
    result = {**record(), "natgrad_version": __version__,
              "commit": commit() if not args.grid else {"hash": args.made_at, "dirty": None},
              "settings": {"cells": [f"{env.lower()}-{algo}" for env, algo in args.cells], "seeds": args.seeds,
                           **ran, "alpha": ALPHA, "grid": str(root), "ran": not args.grid},
              "cells": cells}
    write_json(args.out, result)
    print(markdown(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
