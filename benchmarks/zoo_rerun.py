"""rl-baselines3-zoo's own agents re-trained here: its implementation, its hyperparameters, several seeds.

The zoo's benchmark.md reports one trained agent per (algo, env). This script trains the same
implementation (sb3-contrib's TRPO, Stable-Baselines3's PPO) with the same hyperparameters (the zoo's
hyperparams/trpo.yml and ppo.yml, copied into ZOO_HYPERPARAMETERS below) on natgrad's envs and seeds, and scores it
the way `natgrad bench` scores natgrad: the final deterministic policy over 10 episodes on the
evaluation seeds 10000, 10001, ... (observation statistics frozen, raw rewards), and the mean raw return
of the last 10% of training episodes. Beside it: natgrad's row and the zoo's published single agent.

Workers run in the peers' virtual environment (the library never imports sb3); the driver runs in
natgrad's. Resumable: a run whose JSON exists is not redone.

    .venv/bin/python -m benchmarks.zoo_rerun --peer-python PEERS/bin/python \\
        --cells trpo:Hopper-v5,trpo:Walker2d-v5 --seeds 0-4 --jobs 2 --out bench-out/zoo-rerun \\
        --natgrad docs/benchmarks/summary.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import run_jobs
from benchmarks.peers import evaluate, final_train, training_returns

# The zoo's hyperparameters (DLR-RM/rl-baselines3-zoo, hyperparams/trpo.yml at 13a3fe7 and
# hyperparams/ppo.yml at 00128b5; the v3/v4 entries, used here for v5). "normalize" is VecNormalize
# on observations and rewards, with the algorithm's γ.
_TRPO_MUJOCO = dict(n_envs=2, batch_size=128, n_steps=1024, gamma=0.99, gae_lambda=0.95, sub_sampling_factor=1,
                    cg_max_steps=25, cg_damping=0.1, n_critic_updates=20, learning_rate=1e-3)
ZOO_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "trpo": {
        "Hopper-v5": _TRPO_MUJOCO,
        "Walker2d-v5": _TRPO_MUJOCO,
        "Ant-v5": _TRPO_MUJOCO,
        "HalfCheetah-v5": {**_TRPO_MUJOCO, "target_kl": 0.04},
        "Swimmer-v5": {**_TRPO_MUJOCO, "gamma": 0.9999},
    },
    "ppo": {
        "Swimmer-v5": dict(n_envs=1, gamma=0.9999),  # SB3's PPO defaults otherwise
        "HalfCheetah-v5": dict(n_envs=1, batch_size=64, n_steps=512, gamma=0.98, learning_rate=2.0633e-05,
                               ent_coef=0.000401762, clip_range=0.1, n_epochs=20, gae_lambda=0.92,
                               max_grad_norm=0.8, vf_coef=0.58096,
                               policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn="relu",
                                                  net_arch=dict(pi=[256, 256], vf=[256, 256]))),
    },
}
# gym.make keywords per env: natgrad's Ant-v5 row observes no contact forces (its preset's env_kwargs), and the
# zoo's Ant agent, trained on Ant-v3 under mujoco-py >= 2.0, saw them as zeros; both re-run on the same Ant-v5.
ENV_KWARGS: dict[str, dict[str, Any]] = {"Ant-v5": {"include_cfrc_ext_in_observation": False}}


def zoo_model(algo: str, env_id: str, seed: int, time_feature: bool = False) -> Any:
    """The zoo's agent for (algo, env_id), untrained: its hyperparameters, on VecNormalize with its γ; with
    ``time_feature``, each env also wrapped in sb3-contrib's TimeFeatureWrapper (runs in the peers' environment)."""
    import torch
    from sb3_contrib import TRPO
    from sb3_contrib.common.wrappers import TimeFeatureWrapper
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    kwargs = dict(ZOO_HYPERPARAMETERS[algo][env_id])
    n_envs = kwargs.pop("n_envs")
    if "policy_kwargs" in kwargs:
        kwargs["policy_kwargs"] = {**kwargs["policy_kwargs"], "activation_fn": torch.nn.ReLU}
    wrapper = TimeFeatureWrapper if time_feature else None
    env = VecNormalize(make_vec_env(env_id, n_envs=n_envs, seed=seed, wrapper_class=wrapper,
                                    env_kwargs=ENV_KWARGS.get(env_id)), gamma=kwargs["gamma"])
    cls = TRPO if algo == "trpo" else PPO
    return cls("MlpPolicy", env, seed=seed, device="cpu", **kwargs)


def worker(algo: str, env_id: str, seed: int, steps: int, eval_episodes: int,
           time_feature: bool = False) -> dict[str, Any]:
    """Train one zoo agent: its scores (runs in the peers' environment)."""
    import gymnasium as gym
    import numpy as np
    from sb3_contrib.common.wrappers import TimeFeatureWrapper

    model = zoo_model(algo, env_id, seed, time_feature)
    env = model.get_env()  # the VecNormalize itself
    start = time.time()
    model.learn(int(steps))
    hours = (time.time() - start) / 3600
    rewards = training_returns(env.venv)  # Monitor sits inside VecNormalize and inside the time feature
    env.training, env.norm_reward = False, False
    eval_env = gym.make(env_id, **ENV_KWARGS.get(env_id, {}))
    eval_env = TimeFeatureWrapper(eval_env) if time_feature else eval_env
    returns = evaluate(model, eval_env, eval_episodes, env.normalize_obs)
    return {"algo": algo, "env": env_id, "seed": seed, "steps": int(model.num_timesteps),
            "final_train": final_train(rewards), "final_eval": float(np.mean(returns)),
            "final_eval_std": float(np.std(returns)), "wall_hours": hours,
            "env_kwargs": ENV_KWARGS.get(env_id, {}),
            "hyperparameters": {**ZOO_HYPERPARAMETERS[algo][env_id],
                                **({"env_wrapper": "TimeFeatureWrapper"} if time_feature else {})}}


def _cells(text: str) -> list[tuple[str, str]]:
    cells = []
    for cell in text.split(","):
        algo, _, env_id = cell.partition(":")
        if env_id not in ZOO_HYPERPARAMETERS.get(algo, {}):
            known = ", ".join(f"{a}:{e}" for a, envs in ZOO_HYPERPARAMETERS.items() for e in envs)
            raise SystemExit(f"no zoo hyperparameters for {cell!r}: known cells are {known}")
        cells.append((algo, env_id))
    return cells


def run_grid(peer_python: str, cells: list[tuple[str, str]], seeds: list[int], steps: int, eval_episodes: int,
             jobs: int, out: Path, time_feature: bool = False) -> None:
    """The zoo agents' runs of every (cell, seed) not yet done, ``jobs`` at a time."""
    run_jobs(peer_python, {out / algo / env_id / f"s{seed}.json":
                           (worker, dict(algo=algo, env_id=env_id, seed=seed, steps=steps, eval_episodes=eval_episodes,
                                         time_feature=time_feature))
                           for algo, env_id in cells for seed in seeds}, jobs)


def aggregate(out: Path, cells: list[tuple[str, str]], natgrad_summary: Path | None) -> list[dict]:
    """Per cell: the zoo agents' scores across seeds (mean, 95% bootstrap CI, each seed), natgrad's and the zoo's."""
    import numpy as np

    from benchmarks.compare_published import PUBLISHED
    from natgrad.tools.report import stats

    natgrad = {(r["algo"], r["env"]): r for r in json.loads(natgrad_summary.read_text())} if natgrad_summary else {}
    rows = []
    for algo, env_id in cells:
        runs = [json.loads(p.read_text()) for p in sorted((out / algo / env_id).glob("s*.json"))]
        if not runs:
            continue
        ours = natgrad.get((algo, env_id))
        rows.append({
            "algo": algo, "env": env_id, "seeds": [r["seed"] for r in runs],
            "final_train": stats(np.array([r["final_train"] for r in runs])),
            "final_eval": stats(np.array([r["final_eval"] for r in runs])),
            "wall_hours": float(np.median([r["wall_hours"] for r in runs])),
            "per_seed": runs,
            "natgrad_final_train": ours["final_train"] if ours else None,
            "natgrad_final_eval": ours["final_eval"] if ours else None,
            "zoo_published": PUBLISHED.get(env_id.split("-")[0], {}).get(algo, {}).get("zoo"),
        })
    return rows


def markdown(rows: list[dict]) -> str:
    from natgrad.tools.report import ci

    lines = ["| algo | env | seeds | zoo's agents here: final train return [95% CI] | final eval [95% CI] "
             "| final eval per seed | natgrad: final train return | final eval | zoo's published agent | hours/run |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        each = ", ".join(f"{p['final_eval']:.1f}" for p in r["per_seed"])
        ours = " | ".join(ci(r[k]) if r[k] else "—" for k in ("natgrad_final_train", "natgrad_final_eval"))
        zoo = f"{r['zoo_published'][0]:.1f} ± {r['zoo_published'][1]:.1f}" if r["zoo_published"] else "—"
        lines.append(f"| {r['algo']} | {r['env']} | {len(r['seeds'])} | {ci(r['final_train'])} | {ci(r['final_eval'])} "
                     f"| {each} | {ours} | {zoo} | {r['wall_hours']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cells", required=True, help="algo:env pairs, e.g. trpo:Hopper-v5,ppo:Swimmer-v5")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--steps", type=float, default=1e6)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-out/zoo-rerun"))
    parser.add_argument("--peer-python", help="python of the venv with stable-baselines3 and sb3-contrib")
    parser.add_argument("--natgrad", type=Path,
                        help="natgrad's summary.json to stand beside, e.g. docs/benchmarks/summary.json")
    parser.add_argument("--time-feature", action="store_true",
                        help="wrap every env in sb3-contrib's TimeFeatureWrapper, as the zoo's published PPO Swimmer "
                             "agent was (its model card's env_wrapper)")
    args = parser.parse_args()
    cells = _cells(args.cells)
    from natgrad.tools.bench import parse_seeds

    seeds = parse_seeds(args.seeds)
    if args.peer_python:
        run_grid(args.peer_python, cells, seeds, int(args.steps), args.eval_episodes, args.jobs, args.out,
                 args.time_feature)
    rows = aggregate(args.out, cells, args.natgrad)
    (args.out / "summary.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
