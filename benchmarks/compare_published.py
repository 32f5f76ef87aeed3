"""natgrad's benchmark grid beside the published numbers of Tianshou and rl-baselines3-zoo.

Reads the summary.json that `natgrad bench` / `natgrad report` wrote and prints a markdown table per
algorithm: natgrad's final return (last 10% of training episodes, mean [95% bootstrap CI] across seeds),
its final deterministic evaluation, the peak of its seed-mean evaluation curve (± std across seeds at that
step: the metric Tianshou reports), and the published numbers beside the natgrad number of the same metric,
with the ratio. A summary written before `natgrad report` computed that peak (its run directories gone)
only bounds it: mean final evaluation ≤ peak ≤ mean of the per-seed best evaluations; the verdict then
says whether the bound alone decides it.

    python -m benchmarks.compare_published bench-out/mujoco/summary.json > table.md

Then a table of every run's own numbers (seed by seed). Given several summaries, a later one's
(env, algo) rows replace an earlier one's (a row re-run after a preset changed replaces the old row);
``--merged FILE`` writes the rows so combined, in the format of summary.json.

Sources (MuJoCo v3 envs; v2 for Reacher and the two pendulums; 1M steps unless noted):
- Tianshou: examples/mujoco/README.md of thu-ml/tianshou: the max over training of the test return
  (10 episodes) averaged over 10 seeds, ± the std across seeds at that point (its
  benchmark/<env>/<algo>/test_rew_10seeds.csv: the largest "rew" up to 1M steps, with its "rew:shaded").
- rl-baselines3-zoo: benchmark.md of DLR-RM/rl-baselines3-zoo: one trained agent per env, its
  deterministic evaluation over ~150k steps (mean ± std over episodes, not seeds).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from natgrad.tools.report import ci, env_label

# env → algo → source → (mean, std)
PUBLISHED: dict[str, dict[str, dict[str, tuple[float, float]]]] = {
    "Ant": {"trpo": {"tianshou": (2866.7, 707.9), "zoo": (4982.3, 663.8)},
            "npg": {"tianshou": (2358.0, 517.5)},
            "ppo": {"tianshou": (3258.4, 1079.3), "zoo": (1327.2, 451.6)}},
    "HalfCheetah": {"trpo": {"tianshou": (4471.2, 804.9), "zoo": (1785.5, 68.7)},
                    "npg": {"tianshou": (3485.2, 716.6)},
                    "ppo": {"tianshou": (5783.9, 1244.0), "zoo": (5819.1, 663.5)}},
    "Hopper": {"trpo": {"tianshou": (2046.0, 1037.9), "zoo": (3618.4, 356.8)},
               "npg": {"tianshou": (1915.2, 550.5)},
               "ppo": {"tianshou": (2609.3, 700.8), "zoo": (2410.4, 10.0)}},
    "Walker2d": {"trpo": {"tianshou": (3826.7, 782.7), "zoo": (4933.1, 1452.5)},
                 "npg": {"tianshou": (2503.2, 963.3)},
                 "ppo": {"tianshou": (3588.5, 756.6), "zoo": (3478.8, 821.7)}},
    "Swimmer": {"trpo": {"tianshou": (40.9, 19.6), "zoo": (365.7, 2.1)},
                "npg": {"tianshou": (31.5, 8.0)},
                "ppo": {"tianshou": (66.7, 99.1), "zoo": (281.6, 9.7)}},
    "Humanoid": {"trpo": {"tianshou": (810.1, 126.1)},
                 "npg": {"tianshou": (765.1, 91.3)},
                 "ppo": {"tianshou": (787.1, 193.5)}},
    "InvertedDoublePendulum": {"trpo": {"tianshou": (8435.2, 1073.3)},
                               "npg": {"tianshou": (9243.2, 276.0)},
                               "ppo": {"tianshou": (9231.3, 270.4)}},
    "Reacher": {"trpo": {"tianshou": (-5.1, 0.8)},
                "npg": {"tianshou": (-4.5, 0.5)},
                "ppo": {"tianshou": (-4.1, 0.3)}},
    "InvertedPendulum": {"trpo": {"tianshou": (1000.0, 0.0)},
                         "npg": {"tianshou": (1000.0, 0.0)},
                         "ppo": {"tianshou": (1000.0, 0.0)}},
}


def relation(ours: float, published: float) -> str:
    """ours against published: a ratio where returns are positive, else the difference (Reacher's are negative)."""
    return f"{ours / published:.2f}×" if published > 0 else f"{ours - published:+.1f}"


def verdict(ours: float, published: tuple[float, float] | None) -> str:
    if published is None:
        return "—"
    mean, std = published
    return f"{mean:.1f} ± {std:.1f} ({'≥' if ours >= mean else 'short:'} {relation(ours, mean)})"


def tianshou_cells(row: dict, published: tuple[float, float] | None) -> tuple[str, str]:
    """natgrad's peak of the seed-mean evaluation curve, and the verdict against Tianshou's number.
    Without the peak (an old summary) the bounds final eval ≤ peak ≤ best eval decide, or say undecided."""
    peak = row.get("peak_mean_eval")
    if peak is not None:
        return f"{peak['mean']:.1f} ± {peak['std']:.1f}", verdict(peak["mean"], published)
    low, high = row["final_eval"]["mean"], row["best_eval"]["mean"]
    ours = f"in [{low:.1f}, {high:.1f}]"
    if published is None:
        return ours, "—"
    mean, std = published
    if low >= mean:
        return ours, f"{mean:.1f} ± {std:.1f} (≥ {relation(low, mean)} even at the lower bound)"
    if high < mean:
        return ours, f"{mean:.1f} ± {std:.1f} (short: ≤ {relation(high, mean)})"
    return ours, f"{mean:.1f} ± {std:.1f} (undecided: {relation(low, mean)} to {relation(high, mean)})"


def table(rows: list[dict], algo: str) -> str:
    """Like for like: the peak of natgrad's seed-mean evaluation curve against Tianshou's (the same metric),
    natgrad's final deterministic evaluation against rl-zoo's trained agent."""
    lines = [f"### {algo.upper()}", "",
             "| env | seeds | natgrad final train return [95% CI] | natgrad final eval [95% CI] "
             "| natgrad best eval (mean ± std) | natgrad peak of the mean eval ± std | Tianshou (same metric) "
             "| rl-zoo (final eval) | hours/run |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["algo"] != algo:
            continue
        published = PUBLISHED.get(r["env"].split("-")[0], {}).get(algo, {})
        peak, against_tianshou = tianshou_cells(r, published.get("tianshou"))
        lines.append(f"| {env_label(r)} | {len(r['seeds'])} | {ci(r['final_train'])} | {ci(r['final_eval'])} "
                     f"| {r['best_eval']['mean']:.1f} ± {r['best_eval']['std']:.1f} | {peak} | {against_tianshou} "
                     f"| {verdict(r['final_eval']['mean'], published.get('zoo'))} | {r['wall_hours']:.2f} |")
    return "\n".join(lines) + "\n"


def per_seed(rows: list[dict]) -> str:
    """Each run's own numbers, so that every mean above can be checked seed by seed."""
    lines = ["### Per seed", "",
             "| env | algo | seed | final train return | final eval | best eval | hours |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for p in r.get("per_seed", []):
            lines.append(f"| {env_label(r)} | {r['algo']} | {p['seed']} | {p['final_train']:.1f} "
                         f"| {p['final_eval']:.1f} "
                         f"| {p['best_eval']:.1f} | {p['wall_hours']:.2f} |")
    return "\n".join(lines) + "\n"


def merge(summaries: list[list[dict]]) -> list[dict]:
    """The rows of all summaries, a later summary's (env, algo) row replacing an earlier one's; sorted."""
    rows = {(r["env"], r["algo"]): r for summary in summaries for r in summary}
    return [rows[key] for key in sorted(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summary", type=Path, nargs="+", help="summary.json of natgrad bench grids, oldest first")
    parser.add_argument("--merged", type=Path,
                        help="write the combined rows here (as summary.json): a new file, or one of the inputs")
    args = parser.parse_args()
    rows = merge([json.loads(path.read_text()) for path in args.summary])
    if args.merged is not None:
        if args.merged.exists() and args.merged.resolve() not in {p.resolve() for p in args.summary}:
            parser.error(f"{args.merged} exists: name a new file (or one of the inputs, to update it)")
        args.merged.write_text(json.dumps(rows, indent=2) + "\n")
    for algo in sorted({r["algo"] for r in rows}):
        print(table(rows, algo))
    print(per_seed(rows))


if __name__ == "__main__":
    main()
