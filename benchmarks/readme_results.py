"""The results tables of README.md and docs/results/benchmarks.md, and the README's figure, from committed result files.

Every number comes from files in the repository, never from a run directory:

- natgrad's ten-seed runs of TRPO and PPO on the five goal envs (``HEADLINE``) and its five-seed runs of every
  algorithm on nine envs (``docs/benchmarks/summary.json``), as ``natgrad report`` wrote them;
- the published numbers of Tianshou and rl-baselines3-zoo (``compare_published.PUBLISHED``);
- the zoo's own code (sb3-contrib's TRPO, SB3's PPO) re-trained here with its hyperparameters for the same 1M
  steps (``ZOO_RERUNS``, written by ``benchmarks.zoo_rerun``);
- the throughput measurement against sb3-contrib (``THROUGHPUT``, written by ``benchmarks.throughput``).

Each table sits between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` in its page; this script
rewrites what is between them and draws the figure:

    python -m benchmarks.readme_results            # rewrite the tables and the figure
    python -m benchmarks.readme_results --check    # exit 1 if a table differs from what the files give now

``tests/test_readme_results.py`` runs the check, so the pages cannot drift from the files.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from benchmarks._harness import ROOT
from benchmarks.compare_published import PUBLISHED, merge
from natgrad.tools.report import ci

DATA = ROOT / "docs" / "benchmarks"
GOAL_ENVS = ("Hopper", "HalfCheetah", "Walker2d", "Ant", "Swimmer")
# the ten goal cells, ten seeds each, made at one commit (later files' (env, algo) rows would replace earlier ones')
HEADLINE = [DATA / "goal-3e3ea6b" / "summary.json"]
ALL_ALGORITHMS = [DATA / "summary.json"]
ZOO_RERUNS = [DATA / "zoo-rerun" / "summary.json", DATA / "zoo-rerun-ant" / "summary.json",
              DATA / "zoo-rerun-hc" / "summary.json", DATA / "zoo-rerun-10" / "summary.json"]


class Made(NamedTuple):
    """When a grid's runs were made: natgrad's commit ("" where only the day is known), the day, natgrad's version."""

    commit: str
    day: str
    version: str


# each committed grid under docs/benchmarks/, from docs/results/history.md; a grid's subdirectory (a summary of
# some of its seeds) was made with it. zoo-rerun-10 joined seeds 5-9, run at its commit, to zoo-rerun's seeds 0-4
MADE_AT = {
    "goal-3e3ea6b": Made("3e3ea6b", "2026-12-08", "0.1.0"), "walker-ppo-std1": Made("fef1695", "2026-11-27", "0.1.0"),
    "swimmer-ppo-tkl": Made("bb81cd0", "2026-11-27", "0.1.0"), "trpo-head": Made("42dd461", "2026-11-27", "0.1.0"),
    "ppo-head": Made("82791fd", "2026-11-27", "0.1.0"), "npg-head": Made("e547d7b", "2026-11-27", "0.1.0"),
    "idp-ppo-head": Made("57bc74c", "2026-11-27", "0.1.0"),
    "hopper-trpo-anneal": Made("de76629", "2026-11-27", "0.1.0"),
    "hopper-npg-anneal": Made("de76629", "2026-11-27", "0.1.0"),
    "ant-trpo-zoo-region": Made("6ee13d3", "2026-11-27", "0.1.0"),
    "ant-npg-zoo-region": Made("6ee13d3", "2026-11-27", "0.1.0"),
    "idp-trpo-anneal": Made("431b011", "2026-11-27", "0.1.0"), "idp-npg-anneal": Made("431b011", "2026-11-27", "0.1.0"),
    "swimmer-npg-damp03": Made("446a6ae", "2026-11-26", "0.1.0"), "humanoid-1m": Made("3f99295", "2026-11-26", "0.1.0"),
    "humanoid-more-1m": Made("a12fdf3", "2026-11-27", "0.1.0"), "small-1m": Made("62144eb", "2026-11-27", "0.1.0"),
    "small-more-1m": Made("74f4409", "2026-11-27", "0.1.0"), "ppo-kl-1m": Made("59749c5", "2026-11-27", "0.1.0"),
    "ppo-kl-swimmer": Made("e19cd6f", "2026-11-27", "0.1.0"), "idp-ppo-kl-1m": Made("cd167fe", "2026-11-27", "0.1.0"),
    "ppo-kl-ant-clip": Made("bfa4c58", "2026-11-28", "0.1.0"), "ppo-kl-hc-clip": Made("59eae98", "2026-11-28", "0.1.0"),
    "ppo-kl-walker-std1": Made("af0f49a", "2026-11-28", "0.1.0"),
    "zoo-rerun": Made("", "2026-11-27", "0.1.0"), "zoo-rerun-ant": Made("e930612", "2026-11-27", "0.1.0"),
    "zoo-rerun-hc": Made("", "2026-11-27", "0.1.0"), "zoo-rerun-10": Made("f5718a0", "2026-12-02", "0.1.0"),
}
# the grid each row of the merged ALL_ALGORITHMS summary was run in: its row there is the same, seed for seed
ROW_GRIDS = {
    **{(env, algo): "goal-3e3ea6b/seeds-0-4" for env in GOAL_ENVS for algo in ("trpo", "ppo")},
    **{(env, algo): "small-1m" for env in ("InvertedPendulum", "Reacher") for algo in ("trpo", "ppo")},
    **{(env, algo): "small-more-1m" for env in ("InvertedPendulum", "Reacher") for algo in ("npg", "ppo-kl")},
    ("Humanoid", "trpo"): "humanoid-1m", ("InvertedDoublePendulum", "trpo"): "idp-trpo-anneal",
    ("Hopper", "npg"): "hopper-npg-anneal", ("HalfCheetah", "npg"): "npg-head", ("Walker2d", "npg"): "npg-head",
    ("Ant", "npg"): "ant-npg-zoo-region", ("Swimmer", "npg"): "swimmer-npg-damp03",
    ("Humanoid", "npg"): "humanoid-more-1m", ("InvertedDoublePendulum", "npg"): "idp-npg-anneal",
    ("Humanoid", "ppo"): "humanoid-1m",
    ("InvertedDoublePendulum", "ppo"): "idp-ppo-head",
    ("Hopper", "ppo-kl"): "ppo-kl-1m", ("HalfCheetah", "ppo-kl"): "ppo-kl-hc-clip",
    ("Walker2d", "ppo-kl"): "ppo-kl-walker-std1", ("Ant", "ppo-kl"): "ppo-kl-ant-clip",
    ("Swimmer", "ppo-kl"): "ppo-kl-swimmer", ("Humanoid", "ppo-kl"): "humanoid-more-1m",
    ("InvertedDoublePendulum", "ppo-kl"): "idp-ppo-kl-1m",
}
THROUGHPUT = ROOT / "docs" / "performance" / "throughput-trpo-2026-11-26.json"
FIGURE = DATA / "results.png"
# after the line naming the commits of natgrad's runs
REGRESSION = ("`python -m benchmarks.regression` runs new seeds (200–203) of Hopper TRPO and HalfCheetah PPO on the "
              "current code and tests whether these cells moved.")
ALGO_NAMES = {"trpo": "TRPO", "npg": "NPG", "ppo": "PPO", "ppo-kl": "PPO-KL", "vpg": "VPG"}
PEER = {"trpo": "sb3-contrib TRPO", "ppo": "SB3 PPO"}


def rows(paths: list[Path]) -> dict[tuple[str, str], dict]:
    """{(env family, algo): row} of the summaries, later files replacing earlier ones."""
    return {(r["env"].split("-")[0], r["algo"]): r for r in merge([json.loads(p.read_text()) for p in paths])}


def sources(paths: list[Path]) -> dict[tuple[str, str], str]:
    """{(env family, algo): the grid directory its row comes from}, later files replacing earlier ones (``rows``)."""
    return {(r["env"].split("-")[0], r["algo"]): p.parent.name for p in paths for r in json.loads(p.read_text())}


def made(grid: str) -> Made:
    """When the runs of a grid under docs/benchmarks/ were made (a grid's subdirectory: the grid's entry)."""
    name = grid.split("/")[0]
    if name not in MADE_AT:
        raise SystemExit(f"docs/benchmarks/{name}: add the commit, day and natgrad version its runs were made at to "
                         "MADE_AT in benchmarks/readme_results.py (docs/results/history.md)")
    return MADE_AT[name]


def made_at(grid: str) -> str:
    """When a grid's runs were made, as the pages write it: `commit` (day), or the day alone."""
    when = made(grid)
    return f"`{when.commit}` ({when.day})" if when.commit else f"{when.day} (commit not recorded)"


def made_at_line(grids: dict[tuple[str, str], str], runs: str) -> str:
    """One sentence naming when a table's ``runs`` were made: the commit of most rows, then the other rows'."""
    when = {grid: made_at(grid) for grid in grids.values()}
    when = {grid: ("at commit " if made(grid).commit else "on ") + text for grid, text in when.items()}
    common = Counter(grids.values()).most_common(1)[0][0]
    others = [f"{env} {ALGO_NAMES[algo]} {when[grid]}" for (env, algo), grid in grids.items() if grid != common]
    return f"{runs} {when[common]}" + "".join(f"; {o}" for o in others) + "."


def versions(grids: dict[tuple[str, str], str]) -> str:
    """The natgrad versions the grids' runs were made with."""
    return " and ".join(sorted({made(grid).version for grid in grids.values()}))


def speedups() -> dict[tuple[str, str], dict[str, float]]:
    """{(env family, algo): {layout: natgrad's steps per CPU second / sb3-contrib's}} from the throughput JSON."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in json.loads(THROUGHPUT.read_text())["throughput"]:
        if "sb3-contrib" in r:
            ratio = r["natgrad"]["steps_per_cpu_second"] / r["sb3-contrib"]["steps_per_cpu_second"]
            out.setdefault((r["env"].split("-")[0], r["algo"]), {})[r["layout"]] = ratio
    return out


def best_published(env: str, algo: str) -> tuple[str, float] | None:
    """The higher of the published numbers of the cell: (source, mean)."""
    numbers = {source: mean for source, (mean, _) in PUBLISHED.get(env, {}).get(algo, {}).items()}
    if not numbers:
        return None
    source = max(numbers, key=numbers.get)
    return source, numbers[source]


def like_for_like(row: dict, source: str) -> float:
    """natgrad's number on the published source's own metric: the peak of the seed-mean evaluation curve for
    Tianshou, the mean final evaluation for rl-zoo's agent."""
    return row["peak_mean_eval"]["mean"] if source == "tianshou" else row["final_eval"]["mean"]


def readme_table() -> str:
    """One row per (env, algorithm) of the goal cells: natgrad, the best published number, the zoo's code here,
    the speed ratio."""
    ours, zoo, speed = rows(HEADLINE), rows(ZOO_RERUNS), speedups()
    lines = ["| env | algorithm | natgrad: final eval [95% CI] | best published | natgrad ÷ best "
             "| zoo's code here [95% CI] | steps/s vs sb3-contrib |",
             "|---|---|---|---|---|---|---|"]
    for algo in ("trpo", "ppo"):
        for env in GOAL_ENVS:
            row = ours[(env, algo)]
            source, published = best_published(env, algo)
            ratio = like_for_like(row, source) / published
            label = "Tianshou" if source == "tianshou" else "rl-zoo"
            peer = zoo.get((env, algo))
            peer_cell = ci(peer["final_eval"], 0) if peer else "—"
            layouts = speed.get((env, algo), {})
            speed_cell = " / ".join(f"{layouts[k]:.1f}×" for k in ("1x2048", "16x128") if k in layouts) or "—"
            mark = "**" if ratio >= 1 else ""
            lines.append(f"| {env} | {ALGO_NAMES[algo]} | {ci(row['final_eval'], 0)} | {published:.0f} ({label}) "
                         f"| {mark}{ratio:.2f}×{mark} | {peer_cell} | {speed_cell} |")
    return "\n".join(lines) + "\n\n" + headline_made_at()


def headline_table() -> str:
    """docs/results/benchmarks.md: the goal cells on ten seeds, each metric beside the published number."""
    ours = rows(HEADLINE)
    lines = ["| env | algorithm | final eval [95% CI] | rl-zoo agent | ratio | peak of the mean eval ± std "
             "| Tianshou | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for algo in ("trpo", "ppo"):
        for env in GOAL_ENVS:
            r = ours[(env, algo)]
            pub = PUBLISHED[env][algo]
            peak, final = r["peak_mean_eval"], r["final_eval"]["mean"]
            lines.append(f"| {env}-v5 | {ALGO_NAMES[algo]} | {ci(r['final_eval'])} | {pub['zoo'][0]:.1f} "
                         f"| {_ratio(final, pub['zoo'][0])} | {peak['mean']:.1f} ± {peak['std']:.1f} "
                         f"| {pub['tianshou'][0]:.1f} | {_ratio(peak['mean'], pub['tianshou'][0])} |")
    return "\n".join(lines) + "\n\n" + headline_made_at()


def headline_made_at() -> str:
    """Under the tables of the ten-seed goal cells: when natgrad's runs were made, and how to test today's code."""
    grids = sources(HEADLINE)
    return made_at_line(grids, f"natgrad's runs were made with natgrad {versions(grids)}") + " " + REGRESSION


def algorithm_tables() -> str:
    """docs/results/benchmarks.md: every algorithm on every env with a preset, seeds 0–4, beside Tianshou's number."""
    ours = merge([json.loads(p.read_text()) for p in ALL_ALGORITHMS])
    lines = ["| env | algorithm | final eval [95% CI] | peak of the mean eval ± std | Tianshou | ratio "
             "| final train return [95% CI] | hours/run | made at |",
             "|---|---|---|---|---|---|---|---|---|"]
    order = {a: i for i, a in enumerate(ALGO_NAMES)}
    for r in sorted(ours, key=lambda r: (r["env"], order[r["algo"]])):
        env = r["env"].split("-")[0]
        grid = row_grid(r)
        tianshou = PUBLISHED.get(env, {}).get(r["algo"], {}).get("tianshou")
        peak = r["peak_mean_eval"]
        pub = f"{tianshou[0]:.1f}" if tianshou else "—"
        ratio = _ratio(peak["mean"], tianshou[0]) if tianshou else "—"
        lines.append(f"| {r['env']} | {ALGO_NAMES[r['algo']]} | {ci(r['final_eval'])} "
                     f"| {peak['mean']:.1f} ± {peak['std']:.1f} | {pub} | {ratio} | {ci(r['final_train'])} "
                     f"| {r['wall_hours']:.2f} | {made_at(grid)} |")
    return "\n".join(lines) + f"\n\nEvery row made with natgrad {versions(ROW_GRIDS)}; *made at*: natgrad's commit."


def row_grid(row: dict) -> str:
    """The grid directory a row of the merged summary was run in (``ROW_GRIDS``), checked: that grid's
    summary.json holds the same row, seed for seed."""
    key = (row["env"].split("-")[0], row["algo"])
    grid = ROW_GRIDS.get(key)
    theirs = rows([DATA / grid / "summary.json"]).get(key) if grid else None
    if theirs is None or theirs["per_seed"] != row["per_seed"]:
        raise SystemExit(f"{row['env']} {row['algo']}: name the grid under docs/benchmarks/ its row was run in "
                         "(its summary.json has the same row) in ROW_GRIDS in benchmarks/readme_results.py")
    return grid


def zoo_table() -> str:
    """docs/results/benchmarks.md: the zoo's code re-trained here beside natgrad's ten seeds of the same cells."""
    ours, zoo = rows(HEADLINE), rows(ZOO_RERUNS)
    lines = ["| env | the zoo's code | seeds | final eval [95% CI] | natgrad, 10 seeds | natgrad ÷ zoo's code "
             "| zoo's published agent |",
             "|---|---|---|---|---|---|---|"]
    for algo in ("trpo", "ppo"):
        for env in GOAL_ENVS:
            peer = zoo.get((env, algo))
            if peer is None:
                continue
            r = ours[(env, algo)]
            lines.append(f"| {env}-v5 | {PEER[algo]} | {len(peer['seeds'])} | {ci(peer['final_eval'])} "
                         f"| {ci(r['final_eval'])} | {r['final_eval']['mean'] / peer['final_eval']['mean']:.2f}× "
                         f"| {PUBLISHED[env][algo]['zoo'][0]:.1f} |")
    return "\n".join(lines) + "\n\n" + made_at_line(sources(ZOO_RERUNS), "The zoo's code was run here")


def _ratio(ours: float, published: float) -> str:
    """ours / published where returns are positive (else the difference); bold where natgrad is at or above."""
    text = f"{ours / published:.2f}×" if published > 0 else f"{ours - published:+.1f}"
    return f"**{text}**" if ours >= published else text


def figure(path: Path) -> Path:
    """Per seed, natgrad's final evaluations and the zoo's code's, beside the published numbers: one panel per
    (algorithm, env) of the goal cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ours, zoo = rows(HEADLINE), rows(ZOO_RERUNS)
    fig, axes = plt.subplots(2, len(GOAL_ENVS), figsize=(13, 6.2), layout="constrained")
    for i, algo in enumerate(("trpo", "ppo")):
        for j, env in enumerate(GOAL_ENVS):
            ax = axes[i, j]
            groups = [("natgrad", ours[(env, algo)], "tab:blue")]
            if (env, algo) in zoo:
                groups.append(("zoo's code", zoo[(env, algo)], "tab:orange"))
            for x, (_, row, color) in enumerate(groups):
                evals = np.array([p["final_eval"] for p in row["per_seed"]])
                jitter = np.linspace(-0.12, 0.12, len(evals))
                ax.scatter(x + jitter, evals, s=16, color=color, alpha=0.75, linewidths=0)
                stat = row["final_eval"]
                interval = [[stat["mean"] - stat["ci_low"]], [stat["ci_high"] - stat["mean"]]]
                ax.errorbar(x + 0.3, stat["mean"], yerr=interval, fmt="o", color="black", markersize=4, capsize=3,
                            linewidth=1)
            pub = PUBLISHED[env][algo]
            ax.axhline(pub["zoo"][0], color="tab:red", linestyle="--", linewidth=1)
            ax.axhline(pub["tianshou"][0], color="tab:gray", linestyle=":", linewidth=1.2)
            ax.set_xticks(range(len(groups)), [g[0] for g in groups])
            ax.set_xlim(-0.5, len(groups) - 0.3)
            ax.set_title(f"{env} {ALGO_NAMES[algo]}", fontsize=11)
            ax.grid(axis="y", alpha=0.3)
            ax.tick_params(labelsize=9)
        axes[i, 0].set_ylabel("final evaluation return", fontsize=10)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color="tab:blue", label="natgrad, one dot per seed"),
        plt.Line2D([], [], marker="o", linestyle="", color="tab:orange", label="the zoo's code re-run here"),
        plt.Line2D([], [], marker="o", color="black", label="mean, 95% CI"),
        plt.Line2D([], [], color="tab:red", linestyle="--", label="rl-zoo's published agent"),
        plt.Line2D([], [], color="tab:gray", linestyle=":", label="Tianshou (peak of its 10-seed mean)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=9, frameon=False)
    fig.suptitle("MuJoCo v5 at 1M steps: final deterministic evaluation per seed", fontsize=12)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def replace_between(text: str, name: str, body: str) -> str:
    """``text`` with what stands between ``<!-- results:name -->`` and ``<!-- /results:name -->`` set to ``body``."""
    pattern = re.compile(rf"(<!-- results:{name} -->\n)(.*?)(<!-- /results:{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no <!-- results:{name} --> ... <!-- /results:{name} --> markers")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(3), text, count=1)


def pages() -> dict[Path, str]:
    """Every page this script owns tables in, as it should read now."""
    readme = ROOT / "README.md"
    results = ROOT / "docs" / "results" / "benchmarks.md"
    out = {readme: replace_between(readme.read_text(), "readme", readme_table())}
    text = results.read_text()
    for name, body in (("headline", headline_table()), ("algorithms", algorithm_tables()), ("zoo", zoo_table())):
        text = replace_between(text, name, body)
    out[results] = text
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the tables are current")
    args = parser.parse_args()
    stale = [path for path, text in pages().items() if path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)}: its results tables differ from the committed result files; "
                  "run python -m benchmarks.readme_results", file=sys.stderr)
        raise SystemExit(1 if stale else 0)
    for path, text in pages().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"wrote {figure(FIGURE).relative_to(ROOT)}")


if __name__ == "__main__":
    main()
