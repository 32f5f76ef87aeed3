"""MiniGrid (Dict observation: the 7×7 egocentric image and the direction) with natgrad's TRPO and PPO.

Each env trains through the factory ``natgrad.wrappers:minigrid`` (the MiniGrid env without its text mission)
with the hyperparameters and network of the MinAtar comparison (``spaces_peers.HYPER`` and ``NETWORK``), nothing
tuned: one ``natgrad bench`` per (env, algorithm), since ``--set`` applies to every run of a grid.

    python -m benchmarks.spaces_minigrid commands --out bench-out/minigrid    # the bench commands, one per line
    python -m benchmarks.spaces_minigrid report --out bench-out/minigrid --docs docs/benchmarks/minigrid
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from benchmarks.spaces_peers import HYPER, draw_mean_std, natgrad_sets, save_figure, write_report

ENVS = {"MiniGrid-DoorKey-5x5-v0": "5e5", "MiniGrid-Empty-Random-6x6-v0": "3e5"}  # env id: env steps per run
FACTORY = "natgrad.wrappers:minigrid"


def bench_command(env_id: str, algo: str, out: Path, seeds: str = "0-2", jobs: int = 1) -> list[str]:
    """``natgrad bench`` of one (env, algorithm) into OUT/<env>/natgrad-<algo>."""
    cmd = ["natgrad", "bench", "--envs", FACTORY, "--algos", algo, "--seeds", seeds, "--steps", ENVS[env_id],
           "--jobs", str(jobs), "--eval-every", "5e4", "--out", str(out / env_id / f"natgrad-{algo}"),
           "--set", f"env_kwargs={json.dumps({'env_id': env_id})}"]
    for kv in natgrad_sets(algo):
        cmd += ["--set", kv]
    return cmd


def rows(out: Path, episodes: int = 20) -> list[dict]:
    """``natgrad bench``'s aggregate per (env, algorithm), each seed also with its final model's mean return when
    it samples its actions (``stochastic_eval``): MiniGrid's argmax policies can loop where sampling ones do not."""
    from natgrad.tools.report import aggregate, find_runs

    found = []
    for env_id in ENVS:
        for algo in HYPER:
            root = out / env_id / f"natgrad-{algo}"
            if root.exists():
                for row in aggregate(find_runs(root)):
                    for seed in row["per_seed"]:
                        seed["stochastic_eval"] = stochastic_eval(root, algo, seed["seed"], episodes)
                    found.append(dict(row, env=env_id))
    return found


def stochastic_eval(root: Path, algo: str, seed: int, episodes: int) -> float:
    """Mean return of the final model of one run over ``episodes`` episodes, actions sampled (the evaluation
    seeds, as ``natgrad eval --stochastic``)."""
    import statistics

    import natgrad
    from natgrad.runs.evaluation import evaluate

    model = natgrad.load(next(root.glob(f"*/{algo}/s{seed}/model.pt")))
    return statistics.mean(evaluate(model, episodes, deterministic=False))


def markdown(found: list[dict]) -> str:
    """The table, two decimals (returns lie in [0, 1])."""
    from natgrad.tools.report import ci

    lines = ["| env | algo | seeds | steps | final train return [95% CI] | final eval [95% CI] | final eval per seed "
             "| final eval sampling, per seed | steps/s | hours/run |", "|---" * 10 + "|"]
    for r in found:
        each = ", ".join(f"{p['final_eval']:.2f}" for p in r["per_seed"])
        sampled = ", ".join(f"{p['stochastic_eval']:.2f}" for p in r["per_seed"])
        lines.append(f"| {r['env']} | {r['algo']} | {len(r['seeds'])} | {r['steps']:,} | {ci(r['final_train'], 2)} "
                     f"| {ci(r['final_eval'], 2)} | {each} | {sampled} | {r['steps_per_second']:.0f} "
                     f"| {r['wall_hours']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(out: Path, path: Path) -> None:
    """Training return of TRPO and PPO, one panel per env, mean ± std across seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    from natgrad.tools.report import find_runs

    fig, axes = plt.subplots(1, len(ENVS), figsize=(5 * len(ENVS), 3.6), squeeze=False)
    for ax, env_id in zip(axes[0], ENVS):
        for algo, color in zip(HYPER, ("C0", "C2")):
            root = out / env_id / f"natgrad-{algo}"
            runs = find_runs(root) if root.exists() else []
            if not runs:
                continue
            draw_mean_std(ax, [(r.curve_steps, r.curve_returns) for r in runs], color,
                          f"natgrad {algo.upper()} ({len(runs)} seeds)")
        ax.set_title(env_id, fontsize=10)
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.set_xlabel("env steps")
        ax.set_ylabel("return (last 100 episodes)")
        ax.set_ylim(-0.02, 1.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    save_figure(fig, "MiniGrid (image + direction), natgrad: mean ± std across seeds", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["commands", "report"])
    parser.add_argument("--out", type=Path, default=Path("bench-out/minigrid"))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--docs", type=Path, help="report: also write summary.json and curves.png here")
    args = parser.parse_args()
    if args.command == "commands":
        for env_id in ENVS:
            for algo in HYPER:
                print(shlex.join(bench_command(env_id, algo, args.out, jobs=args.jobs)))
        return
    found = rows(args.out)
    print(markdown(found))
    write_report(args.out, args.docs, {"summary.json": json.dumps(found, indent=2) + "\n"},
                 lambda path: plot(args.out, path))


if __name__ == "__main__":
    main()
