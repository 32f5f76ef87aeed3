"""MinAtar side by side: natgrad's TRPO and PPO against sb3-contrib's TRPO and Stable-Baselines3's PPO.

One set of hyperparameters per algorithm (``HYPER``, in natgrad's names) and one network (``NETWORK``),
written once here and given to both libraries: natgrad through ``natgrad bench --set``, the peers through
their constructors (``sb3_kwargs``). The network on both sides: separate actor and critic, each
conv(16, 3×3, stride 1) → ReLU → linear 128 → ReLU → MLP 64-64 tanh → head; MinAtar's observations are
0/1 booleans, fed as they are (no /255) to both.

The peers run in their own virtual environment (``--peer-python``; the library never imports them), one
process per run, resumable (a run whose JSON exists is not redone), and are scored the way ``natgrad bench``
scores natgrad: the final deterministic policy over 10 episodes on the evaluation seeds 10000, 10001, ...,
the mean return of the last 10% of training episodes, and the curve of the mean return of the last 100
training episodes at every update.

    # natgrad's grids: the commands, with --set from HYPER and NETWORK (one bench per algorithm)
    python -m benchmarks.spaces_peers natgrad-commands --out bench-out/minatar
    # the peers' grid, 2 runs at a time
    python -m benchmarks.spaces_peers peers --peer-python PEERS/bin/python --jobs 2 --out bench-out/minatar/peers
    # the tables and the curves, once both have finished (or to see what has so far)
    python -m benchmarks.spaces_peers report --out bench-out/minatar --docs docs/benchmarks/minatar
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._harness import run_jobs, versions
from benchmarks.peers import PEERS, evaluate, final_train

GAMES = ("MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1", "MinAtar/Asterix-v1")

# One set of hyperparameters per algorithm, in natgrad's --set names; sb3_kwargs maps them to the peers'.
HYPER: dict[str, dict[str, Any]] = {
    "ppo": dict(n_envs=8, n_steps=128, epochs=4, minibatches=4, lr=2.5e-4, gamma=0.99, gae_lambda=0.95,
                clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5),
    "trpo": dict(n_envs=8, n_steps=256, max_kl=0.01, cg_iters=10, damping=0.1, backtrack_coef=0.8,
                 backtrack_iters=10, gamma=0.99, gae_lambda=0.95, vf_epochs=10, vf_minibatch_size=128, vf_lr=1e-3),
}
# The network, in natgrad's names: the small CNN (one 3×3 conv of 16 channels, a 128-unit layer), then 64-64 tanh.
NETWORK: dict[str, dict[str, Any]] = {
    "minatar": dict(cnn="small", cnn_features=128, hidden="64,64", activation="tanh"),
    "atari": dict(cnn="nature", cnn_features=512, hidden="64,64", activation="tanh"),
}


def algo_names(text: str) -> list[str]:
    """``--algos``: comma-separated keys of ``HYPER`` (an argparse type: a clear error for any other name)."""
    names = text.split(",")
    unknown = [a for a in names if a not in HYPER]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown algorithm {', '.join(unknown)}: choose from {', '.join(HYPER)}")
    return names


def natgrad_sets(algo: str, family: str = "minatar") -> list[str]:
    """``KEY=VALUE`` for every hyperparameter and network setting, as ``natgrad --set`` takes them."""
    return [f"{k}={v}" for k, v in {**HYPER[algo], **NETWORK[family]}.items()]


def sb3_kwargs(algo: str) -> dict[str, Any]:
    """``HYPER[algo]`` as the keywords of SB3's PPO / sb3-contrib's TRPO (without n_envs)."""
    h = HYPER[algo]
    common = dict(n_steps=h["n_steps"], gamma=h["gamma"], gae_lambda=h["gae_lambda"])
    if algo == "ppo":
        return dict(common, batch_size=h["n_envs"] * h["n_steps"] // h["minibatches"], n_epochs=h["epochs"],
                    learning_rate=h["lr"], clip_range=h["clip_range"], ent_coef=h["ent_coef"], vf_coef=h["vf_coef"],
                    max_grad_norm=h["max_grad_norm"])
    return dict(common, target_kl=h["max_kl"], cg_max_steps=h["cg_iters"], cg_damping=h["damping"],
                line_search_shrinking_factor=h["backtrack_coef"], line_search_max_iter=h["backtrack_iters"],
                n_critic_updates=h["vf_epochs"], batch_size=h["vf_minibatch_size"], learning_rate=h["vf_lr"])


def natgrad_command(algo: str, out: Path, games: tuple[str, ...] = GAMES, seeds: str = "0-2", steps: str = "1e6",
                    jobs: int = 1, eval_every: str = "1e5") -> list[str]:
    """The ``natgrad bench`` command of one algorithm's MinAtar grid."""
    cmd = ["natgrad", "bench", "--envs", ",".join(games), "--algos", algo, "--seeds", seeds, "--steps", steps,
           "--jobs", str(jobs), "--eval-every", eval_every, "--out", str(out / f"natgrad-{algo}")]
    for kv in natgrad_sets(algo):
        cmd += ["--set", kv]
    return cmd


# ---------------------------------------------------------------- the peers' side (runs in --peer-python)
def peer_policy_kwargs(family: str) -> dict[str, Any]:
    """SB3 policy keywords for the same network as natgrad's: a separate CNN per actor and critic, 64-64 tanh."""
    from torch import nn

    kwargs: dict[str, Any] = dict(share_features_extractor=False, net_arch=dict(pi=[64, 64], vf=[64, 64]),
                                  activation_fn=nn.Tanh)
    if family == "minatar":
        kwargs["features_extractor_class"] = minatar_cnn()
        kwargs["features_extractor_kwargs"] = dict(features_dim=NETWORK["minatar"]["cnn_features"])
    return kwargs


def minatar_cnn() -> type:
    """MinAtar's network as an SB3 features extractor: (N, H, W, C) 0/1 → conv 16 3×3 → ReLU → 128 → ReLU."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class MinAtarCNN(BaseFeaturesExtractor):
        def __init__(self, observation_space: Any, features_dim: int = 128) -> None:
            super().__init__(observation_space, features_dim)
            height, width, channels = observation_space.shape
            self.net = nn.Sequential(nn.Conv2d(channels, 16, 3, 1), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(16 * (height - 2) * (width - 2), features_dim), nn.ReLU())

        def forward(self, obs: Any) -> Any:
            return self.net(obs.permute(0, 3, 1, 2).float())

    return MinAtarCNN


def make_env_fn(env_id: str) -> Any:
    """A zero-argument maker of ``env_id`` (MinAtar ids registered first; Atari ids as natgrad.wrappers:atari)."""
    import gymnasium as gym

    if env_id.startswith("MinAtar/"):
        import minatar.gym

        if env_id not in gym.registry:
            minatar.gym.register_envs()
        return lambda: gym.make(env_id)
    import ale_py

    gym.register_envs(ale_py)

    def atari() -> Any:  # natgrad.wrappers.atari, written out (the peers do not import natgrad)
        env = gym.make(env_id, frameskip=1)
        env = gym.wrappers.AtariPreprocessing(env, frame_skip=4, screen_size=84, grayscale_obs=True, noop_max=30)
        return gym.wrappers.FrameStackObservation(env, 4)

    return atari


def peer_model(algo: str, env_id: str, seed: int, family: str = "minatar") -> Any:
    """The peer's model for (algo, env_id), untrained, with ``HYPER`` and the same network as natgrad's."""
    import torch
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    env = make_vec_env(make_env_fn(env_id), n_envs=HYPER[algo]["n_envs"], seed=seed)
    policy = "MlpPolicy" if family == "minatar" else "CnnPolicy"
    if algo == "ppo":
        from stable_baselines3 import PPO as cls
    else:
        from sb3_contrib import TRPO as cls
    return cls(policy, env, seed=seed, device="cpu", policy_kwargs=peer_policy_kwargs(family), **sb3_kwargs(algo))


def peer_worker(algo: str, env_id: str, seed: int, steps: int, eval_episodes: int) -> dict[str, Any]:
    """Train one peer run: its scores, curve and speed (runs in the peers' environment)."""
    import numpy as np
    from stable_baselines3.common.callbacks import BaseCallback

    model = peer_model(algo, env_id, seed)
    episodes: list[tuple[int, float, int]] = []  # (env steps when it ended, return, length), in order of ending
    curve: list[tuple[int, float]] = []
    times = {"rollout": 0.0, "update": [], "last": None}

    class Record(BaseCallback):
        def _on_rollout_start(self) -> None:
            now = time.perf_counter()
            if times["last"] is not None:
                times["update"].append(now - times["last"])
            times["start"] = now

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                if "episode" in info:
                    episodes.append((self.num_timesteps, float(info["episode"]["r"]), int(info["episode"]["l"])))
            return True

        def _on_rollout_end(self) -> None:
            times["last"] = time.perf_counter()
            times["rollout"] += times["last"] - times["start"]
            recent = [e[1] for e in episodes[-100:]]
            curve.append((self.num_timesteps, float(np.mean(recent)) if recent else math.nan))

    wall, cpu = time.perf_counter(), time.process_time()
    model.learn(steps, callback=Record())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    evals = evaluate(model, make_env_fn(env_id)(), eval_episodes)
    return {"algo": algo, "peer": PEERS[algo], "env": env_id, "seed": seed, "steps": int(model.num_timesteps),
            "final_train": final_train([e[1] for e in episodes]), "final_eval": float(np.mean(evals)),
            "final_eval_std": float(np.std(evals)), "eval_returns": evals, "episodes": len(episodes),
            "learn_seconds": wall, "learn_cpu_seconds": cpu, "steps_per_second": model.num_timesteps / wall,
            "steps_per_cpu_second": model.num_timesteps / cpu, "rollout_seconds": times["rollout"],
            "update_seconds": float(np.median(times["update"])) if times["update"] else math.nan,
            "curve_steps": [c[0] for c in curve], "curve_returns": [c[1] for c in curve],
            "hyperparameters": {**sb3_kwargs(algo), "n_envs": HYPER[algo]["n_envs"]},
            "versions": versions("stable_baselines3", "sb3_contrib", "torch", "gymnasium", "numpy")}


def run_peers(peer_python: str, algos: list[str], games: list[str], seeds: list[int], steps: int,
              eval_episodes: int, jobs: int, out: Path) -> None:
    """The peers' runs of every (algo, game, seed) not yet done, ``jobs`` at a time, the seeds outermost."""
    run_jobs(peer_python, {out / algo / game.replace("/", "_") / f"s{seed}.json":
                           (peer_worker, dict(algo=algo, env_id=game, seed=seed, steps=steps,
                                              eval_episodes=eval_episodes))
                           for seed in seeds for game in games for algo in algos}, jobs)


# ---------------------------------------------------------------- report (runs in natgrad's environment)
def read_peers(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/*/s*.json"))]


def check_natgrad_grid(root: Path, algo: str) -> None:
    """Refuse a natgrad grid whose --set differs from HYPER and NETWORK (the comparison would not be like for like)."""
    grid = json.loads((root / "grid.json").read_text())
    given = {k: v for k, v in grid["overrides"]}
    want = dict(kv.split("=", 1) for kv in natgrad_sets(algo))
    if given != want:
        raise SystemExit(f"{root}: natgrad ran with --set {given}, this script's settings are {want}")


def compare(out: Path) -> list[dict]:
    """One row per (game, algo): natgrad's and the peer's statistics across seeds, and the ratios."""
    import numpy as np

    from natgrad.tools.report import aggregate, find_runs, stats

    peers = read_peers(out / "peers")
    rows = []
    for algo in HYPER:
        root = out / f"natgrad-{algo}"
        if not (root / "grid.json").exists():
            continue
        check_natgrad_grid(root, algo)
        ours = {r["env"]: r for r in aggregate(find_runs(root))}
        for game in GAMES:
            theirs = [p for p in peers if (p["algo"], p["env"]) == (algo, game)]
            if game not in ours or not theirs:
                continue
            mine = ours[game]
            peer = {"seeds": sorted(p["seed"] for p in theirs),
                    "final_train": stats(np.array([p["final_train"] for p in theirs])),
                    "final_eval": stats(np.array([p["final_eval"] for p in theirs])),
                    "steps_per_second": float(np.median([p["steps_per_second"] for p in theirs])),
                    "steps_per_cpu_second": float(np.median([p["steps_per_cpu_second"] for p in theirs])),
                    "update_seconds": float(np.median([p["update_seconds"] for p in theirs])),
                    "wall_hours": float(np.mean([p["learn_seconds"] for p in theirs]) / 3600),
                    "per_seed": [{k: p[k] for k in ("seed", "final_train", "final_eval", "steps_per_second")}
                                 for p in sorted(theirs, key=lambda p: p["seed"])]}
            rows.append({"env": game, "algo": algo, "peer_name": PEERS[algo], "natgrad": mine, "peer": peer,
                         "train_ratio": mine["final_train"]["mean"] / peer["final_train"]["mean"],
                         "eval_ratio": mine["final_eval"]["mean"] / peer["final_eval"]["mean"],
                         "speed_ratio": mine["steps_per_second"] / peer["steps_per_second"]})
    return rows


def markdown(rows: list[dict]) -> str:
    from natgrad.tools.report import ci

    lines = ["| game | algo | seeds | natgrad final train [95% CI] | peer final train [95% CI] | ratio "
             "| natgrad final eval [95% CI] | peer final eval [95% CI] | ratio | natgrad steps/s (grid) "
             "| peer steps/s (grid) | ratio |", "|---" * 12 + "|"]
    for r in rows:
        ours, peer = r["natgrad"], r["peer"]
        lines.append(f"| {r['env'].split('/')[1]} | {r['algo']} vs {r['peer_name']} | {len(ours['seeds'])} / "
                     f"{len(peer['seeds'])} | {ci(ours['final_train'])} | {ci(peer['final_train'])} "
                     f"| {r['train_ratio']:.2f} | {ci(ours['final_eval'])} | {ci(peer['final_eval'])} "
                     f"| {r['eval_ratio']:.2f} | {ours['steps_per_second']:.0f} | {peer['steps_per_second']:.0f} "
                     f"| {r['speed_ratio']:.2f}x |")
    lines += ["", "steps/s (grid): medians over each grid's runs, which ran at different times beside different "
              "work; the side-by-side speed is `benchmarks/spaces_throughput.py`'s.",
              "", "| game | algo | seed | natgrad final train | final eval | peer final train | final eval |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        theirs = {p["seed"]: p for p in r["peer"]["per_seed"]}
        for s in r["natgrad"]["per_seed"]:
            p = theirs.get(s["seed"], {"final_train": math.nan, "final_eval": math.nan})
            lines.append(f"| {r['env'].split('/')[1]} | {r['algo']} | {s['seed']} | {s['final_train']:.1f} "
                         f"| {s['final_eval']:.1f} | {p['final_train']:.1f} | {p['final_eval']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(out: Path, path: Path) -> None:
    """Training curves, natgrad beside the peer: one row per algorithm, one column per game, mean ± std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import EngFormatter

    from natgrad.tools.report import find_runs

    peers = read_peers(out / "peers")
    algos = [a for a in HYPER if (out / f"natgrad-{a}").exists()]
    ours = {a: find_runs(out / f"natgrad-{a}") for a in algos}
    fig, axes = plt.subplots(len(algos), len(GAMES), figsize=(4.6 * len(GAMES), 3.4 * len(algos)), squeeze=False)
    for i, algo in enumerate(algos):
        for j, game in enumerate(GAMES):
            ax = axes[i, j]
            curves = {"natgrad": [(r.curve_steps, r.curve_returns) for r in ours[algo] if r.env_id == game],
                      PEERS[algo]: [(np.array(p["curve_steps"]), np.array(p["curve_returns"])) for p in peers
                                    if (p["algo"], p["env"]) == (algo, game)]}
            for (name, group), color in zip(curves.items(), ("C0", "C1")):
                if group:
                    draw_mean_std(ax, group, color, f"{name} ({len(group)} seeds)")
            ax.set_title(f"{game.split('/')[1]}: {algo.upper()}", fontsize=10)
            ax.xaxis.set_major_formatter(EngFormatter())
            ax.set_xlabel("env steps")
            if j == 0:
                ax.set_ylabel("return (last 100 episodes)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, loc="upper left")
    save_figure(fig, "MinAtar, natgrad beside sb3-contrib TRPO / SB3 PPO: mean ± std across seeds", path)


def draw_mean_std(ax: Any, curves: list[tuple[Any, Any]], color: str, label: str) -> None:
    """The mean ± std across seeds of training curves (env steps, return), over the steps all of them cover."""
    import numpy as np

    grid = np.linspace(max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves), 200)
    ys = np.array([np.interp(grid, s, np.nan_to_num(y, nan=0.0)) for s, y in curves])
    ax.plot(grid, ys.mean(0), color=color, lw=1.6, label=label)
    ax.fill_between(grid, ys.mean(0) - ys.std(0), ys.mean(0) + ys.std(0), color=color, alpha=0.2, lw=0)


def write_report(out: Path, docs: Path | None, texts: dict[str, str], draw: Callable[[Path], None]) -> None:
    """``texts`` (file name → content) and the figure ``draw`` saves as curves.png, into ``out`` and copied to
    ``docs`` if given."""
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out / name).write_text(text)
    draw(out / "curves.png")
    if docs:
        docs.mkdir(parents=True, exist_ok=True)
        for name in [*texts, "curves.png"]:
            shutil.copyfile(out / name, docs / name)


def save_figure(fig, title: str, path: Path) -> None:
    """Title ``fig``, lay it out, write it to ``path`` and close it."""
    import matplotlib.pyplot as plt

    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("natgrad-commands", help="print natgrad's bench command per algorithm")
    cmd.add_argument("--out", type=Path, default=Path("bench-out/minatar"))
    cmd.add_argument("--jobs", type=int, default=1)
    cmd.add_argument("--steps", default="1e6")
    cmd.add_argument("--seeds", default="0-2")
    cmd.add_argument("--algos", type=algo_names, default=list(HYPER))
    cmd.add_argument("--games", default=",".join(GAMES))
    peers = sub.add_parser("peers", help="train the peers' grid (resumable)")
    peers.add_argument("--peer-python", required=True)
    peers.add_argument("--algos", type=algo_names, default=list(HYPER))
    peers.add_argument("--games", default=",".join(GAMES))
    peers.add_argument("--seeds", default="0-2")
    peers.add_argument("--steps", type=float, default=1e6)
    peers.add_argument("--eval-episodes", type=int, default=10)
    peers.add_argument("--jobs", type=int, default=1)
    peers.add_argument("--out", type=Path, default=Path("bench-out/minatar/peers"))
    report = sub.add_parser("report", help="compare natgrad's grids with the peers' runs")
    report.add_argument("--out", type=Path, default=Path("bench-out/minatar"))
    report.add_argument("--docs", type=Path, help="also write summary.json, comparison.md and curves.png here")
    args = parser.parse_args()
    if args.command == "natgrad-commands":
        for algo in args.algos:
            print(shlex.join(natgrad_command(algo, args.out, tuple(args.games.split(",")), args.seeds, args.steps,
                                             args.jobs)))
    elif args.command == "peers":
        from natgrad.tools.bench import parse_seeds

        run_peers(args.peer_python, args.algos, args.games.split(","), parse_seeds(args.seeds),
                  int(args.steps), args.eval_episodes, args.jobs, args.out)
    else:
        rows = compare(args.out)
        table = markdown(rows)
        print(table)
        write_report(args.out, args.docs, {"summary.json": json.dumps(rows, indent=2) + "\n", "comparison.md": table},
                     lambda path: plot(args.out, path))


if __name__ == "__main__":
    main()
