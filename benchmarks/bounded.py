"""Bounded and projected policies against natgrad's Gaussian, at equal budget: does a squashed Gaussian, a Beta or a
per-state trust region (TRPL) learn better than the clipped Gaussian, and how far does each method move each state?

The grid (``natgrad bench``'s, at the shipped presets, one grid directory per variant since a grid's ``--set``
overrides are the same for all its runs), by default 5 seeds of 1M steps on Hopper-v5, Walker2d-v5, HalfCheetah-v5,
Ant-v5 and Reacher-v5 (whose actions sit at their bounds often):

- TRPO and PPO with ``action_dist`` = ``gaussian`` (the default, no override), ``squashed`` and ``beta``;
- TRPL with ``projection`` = ``kl`` and ``w2`` (its bounds at TRPLConfig's defaults, PPO's presets otherwise).

Per env, a table: each cell's final evaluation (mean and 95% bootstrap CI over seeds, ``natgrad.tools.report``),
the per-state KL(π_old ‖ π_new) it produced (``policy/kl_max`` and ``policy/kl_p95`` of every update: their median
over the updates of every seed, and their largest value), the bound it was run with (TRPO: δ on the mean KL; TRPL:
ε_μ + ε_Σ per state, which bounds the projected policy in the projection's divergence while the KL measured is the
network's policy's, the one that acts next) and how many updates passed it, and whether the cell beats the
Gaussian of the same loop (TRPO's for TRPO, PPO's for PPO and TRPL) at the same budget: ``benchmarks.regression``'s
two-sample test (Mann–Whitney U) with p < 0.05, and whether the CIs are apart. One figure of training curves per env.

    python -m benchmarks.bounded --out bench-out/bounded.json              # runs in bench-out/bounded-runs/
    python -m benchmarks.bounded --envs Pendulum-v1 --steps 2048 --seeds 0 --out quick.json   # a smoke run
    python -m benchmarks.bounded --out bench-out/bounded.json --render      # the tables again

Resumable: the runs are ``natgrad bench`` grids, so the same command after a stop makes only the missing runs (the
result file is written once all are done). ``natgrad report`` aggregates any one variant's grid.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import add_output_options, record, rendered, runs_beside, write_json
from benchmarks.regression import commit, compare, seed_list
from natgrad.errors import NatgradError
from natgrad.runs.directories import joined_rows
from natgrad.tools.bench import GridSettings, RunSpec, grid, run_grid
from natgrad.tools.report import RunResult, aggregate, ci, column, find_runs, plot_curves
from natgrad.version import __version__

ENVS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5", "Reacher-v5")
VARIANTS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = {  # grid: (algorithms, --set overrides)
    "gaussian": (("trpo", "ppo"), ()),
    "squashed": (("trpo", "ppo"), (("action_dist", "squashed"),)),
    "beta": (("trpo", "ppo"), (("action_dist", "beta"),)),
    "trpl-kl": (("trpl",), (("projection", "kl"),)),
    "trpl-w2": (("trpl",), (("projection", "w2"),)),
}
BASELINE = {"trpo": "trpo gaussian", "ppo": "ppo gaussian", "trpl": "ppo gaussian"}
"""the Gaussian cell each algorithm's bounded or projected cells are tested against: the same loop"""
CELLS = ("trpo gaussian", "trpo squashed", "trpo beta", "ppo gaussian", "ppo squashed", "ppo beta", "trpl kl",
         "trpl w2")
PUBLISHED = """Published numbers beside these (to be filled in from the sources themselves; none is copied here unread):

| source | algorithm | env | metric and budget as published | value |
|---|---|---|---|---|
| Otto et al., ICLR 2021 (arXiv 2101.09207) | TRPL (KL, W2, Frobenius) | MuJoCo | *placeholder* | *placeholder* |
| Stable-Baselines3 / rsl_rl | Beta policies, where published | MuJoCo | *placeholder* | *placeholder* |
"""


def cell_name(variant: str, algo: str) -> str:
    """``("squashed", "ppo")`` → ``"ppo squashed"``; ``("trpl-w2", "trpl")`` → ``"trpl w2"``."""
    return f"{algo} {variant.removeprefix('trpl-')}"


def kl_figures(run_dir: Path) -> dict[str, Any]:
    """One run's per-update figures of the per-state KL (``mean_kl`` from ``policy/kl``, ``kl_p95``, ``kl_max``) and the
    bound it ran with: ε_μ + ε_Σ per state for TRPL, δ on the mean for TRPO and NPG, None for the others."""
    rows = joined_rows(run_dir, "metrics.csv")
    config = json.loads((run_dir / "config.json").read_text())["config"]
    bound = config["mean_bound"] + config["cov_bound"] if "mean_bound" in config else config.get("max_kl")
    return {"bound": bound, "mean_kl": column(rows, "policy/kl").tolist(),
            **{name: column(rows, f"policy/{name}").tolist() for name in ("kl_p95", "kl_max")}}


def kl_summary(figures: list[dict[str, Any]], per_state: bool) -> dict[str, Any]:
    """A cell's per-state KL over every update of every seed: the median and the largest of mean_kl, kl_p95, kl_max;
    the bound, and how many updates passed it: the largest state's KL (``per_state``, TRPL) or the mean (TRPO)."""
    pooled = {name: np.concatenate([f[name] for f in figures]) for name in ("mean_kl", "kl_p95", "kl_max")}
    summary = {f"{name}_{how}": float(fn(values)) for name, values in pooled.items()
               for how, fn in (("median", np.median), ("max", np.max))}
    bound = figures[0]["bound"]
    past = None if bound is None else int((pooled["kl_max" if per_state else "mean_kl"] > bound * (1 + 1e-6)).sum())
    return {**summary, "updates": int(len(pooled["mean_kl"])), "bound": bound, "past_bound": past}


def cell_rows(root: Path, envs: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """{env: one row per cell}: ``natgrad.tools.report.aggregate``'s statistics with the cell's name, its per-state
    KL summary and its verdict against its Gaussian baseline."""
    by_env: dict[str, list[dict]] = {env: [] for env in envs}
    for variant in VARIANTS:
        runs = [r for r in find_runs(root / variant) if r.seed in seeds and r.env_id in envs]
        for row in aggregate(runs):
            figures = [kl_figures(RunSpec(row["algo"], row["env"], seed).path(root / variant)) for seed in row["seeds"]]
            by_env[row["env"]].append({**row, "cell": cell_name(variant, row["algo"]),
                                       "kl": kl_summary(figures, per_state=row["algo"] == "trpl")})
    for rows in by_env.values():
        named = {row["cell"]: row for row in rows}
        for row in rows:
            base = named.get(BASELINE[row["algo"]])
            row["baseline"] = None if base is None or base is row else base["cell"]
            row["versus"] = None if row["baseline"] is None else versus(base, row)
    return by_env


def versus(base: dict, row: dict) -> dict[str, Any]:
    """``row``'s final evaluations against ``base``'s: the two-sample test (``benchmarks.regression.compare``) and
    whether the 95% CIs are apart (never with a single seed on a side: its CI is a point); ``beats`` when the test
    gives p < 0.05 upward."""
    old = [s["final_eval"] for s in base["per_seed"]]
    new = [s["final_eval"] for s in row["per_seed"]]
    test = compare(old, new)
    a, b = base["final_eval"], row["final_eval"]
    apart = min(len(old), len(new)) > 1 and (b["ci_low"] > a["ci_high"] or b["ci_high"] < a["ci_low"])
    return {**test, "cis_apart": apart, "beats": test["verdict"] == "moved up"}


def curves(root: Path, rows: dict[str, list[dict]], seeds: list[int], out: Path) -> list[str]:
    """One PNG per env beside ``out``: training curves (mean ± std over seeds) in a panel per loop: TRPO's three
    distributions, PPO's, and TRPL's two projections beside PPO's Gaussian; the files written."""
    written = []
    for env in rows:
        runs: list[RunResult] = []
        for variant in VARIANTS:
            for r in find_runs(root / variant):
                if r.env_id == env and r.seed in seeds:
                    cell = cell_name(variant, r.algo)
                    runs.append(dataclasses.replace(r, env_id=f"{env}: {r.algo.upper()}", algo=cell))
                    if cell == "ppo gaussian":  # TRPL's panel shows its loop's Gaussian too
                        runs.append(dataclasses.replace(r, env_id=f"{env}: TRPL", algo=cell))
        path = out.with_name(f"{out.stem}-{env}.png")
        if plot_curves(runs, CELLS, f"{env}, bounded and projected policies", path):
            written.append(str(path))
    return written


def run(envs: list[str], seeds: list[int], settings: GridSettings, jobs: int, root: Path) -> None:
    """Train every cell and seed as ``natgrad bench`` does, one grid directory per variant under ``root``: every cell
    of a seed before the next seed, so that a grid stopped early still covers every cell."""
    failed = []
    for seed in seeds:
        for variant, (algos, overrides) in VARIANTS.items():
            failed += run_grid(root / variant, grid(algos, envs, [seed]),
                               dataclasses.replace(settings, overrides=overrides), jobs=jobs)
    if failed:
        raise NatgradError(f"{len(failed)} run(s) failed ({', '.join(map(str, failed))}); see their logs in {root} "
                           "and run the same command again")


def kl_text(x: float) -> str:
    """A KL to three significant digits."""
    return f"{x:.3g}"


def markdown(result: dict) -> str:
    """A table per env: final evaluation, the per-state KL and the verdict against the Gaussian."""
    s = result["settings"]
    lines = [f"natgrad {result['natgrad_version']}, {s['steps']:,} steps per run, seeds {s['seeds']}; per-state KL "
             "is KL(π_old ‖ π_new) after each update, over the batch's states (median over the updates / largest):"]
    for env, rows in result["envs"].items():
        lines += ["", f"**{env}**", "",
                  "| cell | seeds | final eval, mean [95% CI] | mean KL | KL p95 | KL max | bound | updates past it "
                  "| against the Gaussian of its loop |", "|---" * 9 + "|"]
        for row in sorted(rows, key=lambda r: CELLS.index(r["cell"])):
            k = row["kl"]
            kind = "per state" if row["algo"] == "trpl" else "mean"
            bound = "—" if k["bound"] is None else f"{k['bound']:.3g} ({kind})"
            past = "—" if k["past_bound"] is None else f"{k['past_bound']} of {k['updates']}"
            lines.append(f"| {row['cell']} | {len(row['seeds'])} | {ci(row['final_eval'])} "
                         f"| {kl_text(k['mean_kl_median'])} "
                         f"| {kl_text(k['kl_p95_median'])} / {kl_text(k['kl_p95_max'])} "
                         f"| {kl_text(k['kl_max_median'])} / {kl_text(k['kl_max_max'])} | {bound} | {past} "
                         f"| {against(row)} |")
    return "\n".join(lines + ["", result["published"]])


def against(row: dict) -> str:
    """The verdict of a cell against its Gaussian baseline, in words."""
    v = row["versus"]
    if v is None:
        return "—" if row["baseline"] is None else f"no {row['baseline']} cell"
    word = "beats" if v["beats"] else ("below" if v["verdict"] == "moved down" else "no difference")
    return f"{word} {row['baseline']} (p = {v['p']:.3f}{', CIs apart' if v['cis_apart'] else ''})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default=",".join(ENVS), help="comma-separated env ids")
    parser.add_argument("--seeds", type=seed_list, default="0-4", help="a range 0-4 or a list 0,3")
    parser.add_argument("--steps", type=float, default=1e6, help="env steps per run")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes of each evaluation")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once, one process each")
    add_output_options(parser)
    args = parser.parse_args()
    if rendered(args, markdown):
        return
    root = runs_beside(args.out)
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    try:
        settings = GridSettings(steps=int(args.steps), eval_episodes=args.eval_episodes)
        run(envs, args.seeds, settings, args.jobs, root)
    except NatgradError as e:
        raise SystemExit(f"error: {e}") from None
    rows = cell_rows(root, envs, args.seeds)
    result = {**record(), "commit": commit(), "natgrad_version": __version__,
              "settings": {"envs": envs, "seeds": args.seeds, "steps": settings.steps,
                           "eval_every": settings.eval_every, "eval_episodes": settings.eval_episodes,
                           "jobs": args.jobs, "grid": str(root),
                           "variants": {v: {"algos": list(a), "overrides": dict(o)} for v, (a, o) in VARIANTS.items()}},
              "envs": rows, "curves": curves(root, rows, args.seeds, args.out), "published": PUBLISHED}
    write_json(args.out, result)
    print(markdown(result))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
