"""Envs stepped as one batch against Gymnasium's vector env: natgrad's TRPO and PPO on the same game through gymnax
(JAX, one jitted and vmapped call per step) or EnvPool (C++ threads) and through Gymnasium's NumPy vector env, at
several env counts, side by side.

Per (pair, algorithm, env count) both paths train with the same settings (``preset=False``, ``--n-steps`` steps per
env per update, the pair's network and hyperparameters, one torch thread, ``--device``) for ``--steps`` env steps,
each run in its own child process; the two paths take turns seed by seed (each seed is a repeat), so a change in the
machine's load falls on both alike. One update runs before the clock starts (a JAX env's compilation, a device's
first kernels). Reported per path: the median over the seeds of steps/s by wall clock and by the process's CPU time
(JAX's and EnvPool's own threads included), the seconds in rollouts and in updates (natgrad's
``time/rollout_seconds`` and ``time/update_seconds``), and per seed the final training return (the mean of the last
10% of the training episodes, as ``natgrad bench`` takes it) and the curve of ``rollout/ep_return_mean``.

    python -m benchmarks.device_envs --pairs cartpole --algos trpo,ppo --n-envs 64,256,1024 --steps 131072 \\
        --seeds 0 --out bench-out/device-envs.json
    python -m benchmarks.device_envs --render --out bench-out/device-envs.json \\
        --plot bench-out/device-envs.png   # the table again, and the learning curves
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks._harness import (
    add_output_options,
    clocked,
    medians,
    record,
    refuse_existing,
    rendered,
    take_turns,
    versions,
    write_json,
)
from benchmarks.peers import final_train
from benchmarks.spaces_peers import HYPER, NETWORK, algo_names, draw_mean_std, save_figure

# a game through a batched family and through Gymnasium's vector env: (batched id, Gymnasium id, network settings,
# hyperparameters per algorithm: MinAtar's of docs/results/spaces.md for Breakout, natgrad's defaults otherwise)
PAIRS: dict[str, tuple[str, str, dict[str, Any], dict[str, dict[str, Any]]]] = {
    "cartpole": ("gymnax/CartPole-v1", "CartPole-v1", {}, {}),
    "breakout": ("gymnax/Breakout-MinAtar", "MinAtar/Breakout-v1", NETWORK["minatar"], HYPER),
    "hopper": ("envpool/Hopper-v4", "Hopper-v4", {}, {}),
}


def natgrad_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Benchmark settings as natgrad's keywords: ``hidden`` given as ``"64,64"`` becomes a tuple."""
    return {k: tuple(int(h) for h in v.split(",")) if k == "hidden" and isinstance(v, str) else v
            for k, v in settings.items()}


def worker_natgrad(algo: str, env_id: str, steps: int, settings: dict[str, Any], seed: int = 0, device: str = "cpu",
                   env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """natgrad's ``algo`` on ``env_id`` with ``settings`` (``preset=False``), one update before the clock, then
    ``steps`` env steps ``clocked``, with the rollout and update seconds, the final training return and the curve
    (env steps, ``rollout/ep_return_mean``) at every update."""
    import torch

    import natgrad

    torch.set_num_threads(1)
    algorithm = {"trpo": natgrad.TRPO, "ppo": natgrad.PPO}[algo]
    model = algorithm(env_id, seed=seed, preset=False, device=device, env_kwargs=env_kwargs or {},
                      **natgrad_settings(settings))
    model.learn(1)  # one whole update, outside the clock
    start, returns = model.num_timesteps, [r for r, _ in model.last_episodes]
    split, curve = {"rollout_seconds": 0.0, "update_seconds": 0.0}, []

    def keep(m: Any, metrics: dict[str, float]) -> None:
        for key in split:
            split[key] += metrics[f"time/{key}"]
        returns.extend(r for r, _ in m.last_episodes)
        curve.append((m.num_timesteps, metrics["rollout/ep_return_mean"]))

    result = clocked(lambda: model.learn(steps, callback=keep).num_timesteps - start)
    return {**result, **split, "final_train": final_train(returns), "episodes": len(returns),
            "batch": model.config.batch_size, "device": str(model.device),
            "curve_steps": [c[0] for c in curve], "curve_returns": [c[1] for c in curve],
            **versions("natgrad", "torch", "gymnasium", "numpy")}


def measure(pair: str, algo: str, n_envs: int, args: argparse.Namespace) -> dict[str, Any]:
    """One row: both paths of ``pair`` with ``n_envs`` envs, taking turns seed by seed."""
    batched, gymnasium, network, hyper = PAIRS[pair]
    settings = {**hyper.get(algo, {}), **network, "n_envs": n_envs, "n_steps": args.n_steps}
    runs: dict[str, list[dict]] = {batched: [], gymnasium: []}
    for seed in args.seeds:
        contenders = {env_id: (sys.executable, worker_natgrad, dict(algo=algo, env_id=env_id, steps=args.steps,
                                                                    settings=settings, seed=seed, device=args.device))
                      for env_id in runs}
        for env_id, got in take_turns(contenders, 1, label=f"{algo} {n_envs} envs seed {seed} ").items():
            runs[env_id].extend(got)
    row: dict[str, Any] = {"pair": pair, "algo": algo, "n_envs": n_envs, "n_steps": args.n_steps}
    for env_id, r in runs.items():
        row[env_id] = {**medians(r), "final_train_per_seed": [x["final_train"] for x in r],
                       "curves": [{"seed": s, "steps": x["curve_steps"], "returns": x["curve_returns"]}
                                  for s, x in zip(args.seeds, r)]}
    return row


def markdown(results: dict[str, Any]) -> str:
    """The table: per row and path, steps/s, the rollout / update seconds and the rollouts' own steps/s, the return
    per seed, and the ratio."""
    lines = ["| game | algo | envs × steps | env id | steps/s (wall) | steps per CPU s | rollout / update s "
             "| rollout steps/s | final return per seed | batched ÷ Gymnasium (wall, CPU, rollout) |",
             "|---" * 10 + "|"]
    for row in results["rows"]:
        batched, gymnasium, _, _ = PAIRS[row["pair"]]
        for env_id in (batched, gymnasium):
            r = row[env_id]
            ratio = "" if env_id == gymnasium else ", ".join(
                f"{r[key] / row[gymnasium][key]:.2f}×" for key in ("steps_per_second", "steps_per_cpu_second"))
            if env_id == batched:
                ratio += f", {row[gymnasium]['rollout_seconds'] / r['rollout_seconds']:.2f}×"
            per_seed = ", ".join(f"{x:.1f}" for x in r["final_train_per_seed"])
            lines.append(f"| {row['pair']} | {row['algo']} | {row['n_envs']} × {row['n_steps']} | {env_id} "
                         f"| {r['steps_per_second']:.0f} | {r['steps_per_cpu_second']:.0f} "
                         f"| {r['rollout_seconds']:.1f} / {r['update_seconds']:.1f} "
                         f"| {r['steps'] / r['rollout_seconds']:.0f} | {per_seed} | {ratio} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """The learning curves of every row, one panel each: per path the mean ± std across seeds of
    ``rollout/ep_return_mean`` against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    rows = results["rows"]
    cols = min(3, len(rows))
    lines = -(-len(rows) // cols)
    fig, axes = plt.subplots(lines, cols, figsize=(max(4.6 * cols, 8.0), 3.4 * lines), squeeze=False)
    for ax in axes.flat[len(rows):]:
        ax.set_visible(False)
    for ax, row in zip(axes.flat, rows):
        for env_id, color in zip(PAIRS[row["pair"]][:2], ("C0", "C1")):
            curves = [(c["steps"], c["returns"]) for c in row[env_id]["curves"]]
            draw_mean_std(ax, curves, color, f"{env_id} ({len(curves)} seeds)")
        ax.set_title(f"{row['pair']}: {row['algo'].upper()}, {row['n_envs']} envs × {row['n_steps']} steps",
                     fontsize=10)
        ax.xaxis.set_major_formatter(EngFormatter())
        ax.set_xlabel("env steps")
        ax.set_ylabel("return (last 100 episodes)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, "natgrad through a batched env and through Gymnasium's vector env: mean ± std across seeds", path)


def seed_list(text: str) -> list[int]:
    """``--seeds``: a range ``0-2`` or a list ``0,3``."""
    first, dash, last = text.partition("-")
    return list(range(int(first), int(last) + 1)) if dash else [int(s) for s in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default="cartpole", help=f"comma-separated, of {', '.join(PAIRS)}")
    parser.add_argument("--algos", type=algo_names, default=["trpo", "ppo"])
    parser.add_argument("--n-envs", default="64,256,1024", help="comma-separated env counts")
    parser.add_argument("--n-steps", type=int, default=16, help="steps per env per update")
    parser.add_argument("--steps", type=int, default=131072, help="env steps per run, after the first update")
    parser.add_argument("--seeds", type=seed_list, default=[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", type=Path, help="also draw the learning curves of --out to this PNG")
    add_output_options(parser)
    args = parser.parse_args()
    if not rendered(args, markdown):
        measure_all(parser, args)
    if args.plot:
        plot(json.loads(args.out.read_text()), args.plot)


def measure_all(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Every row the command line asks for, each written to ``--out`` as it finishes, then the table."""
    pairs = args.pairs.split(",")
    unknown = [p for p in pairs if p not in PAIRS]
    if unknown:
        parser.error(f"unknown pair {', '.join(unknown)}: choose from {', '.join(PAIRS)}")
    refuse_existing(args.out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {**record(), "rows": []}
    for pair in pairs:
        for algo in args.algos:
            for n_envs in (int(n) for n in args.n_envs.split(",")):
                results["rows"].append(measure(pair, algo, n_envs, args))
                write_json(args.out, results)  # each row as it finishes
    print(markdown(results))


if __name__ == "__main__":
    main()
