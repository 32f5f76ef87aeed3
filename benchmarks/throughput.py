"""Throughput and update cost: natgrad against sb3-contrib TRPO and SB3 PPO, side by side.

Installs nothing. Each measurement runs in its own child process (natgrad in this Python,
the peers in ``--peer-python``, a venv with stable-baselines3 and sb3-contrib), one after
the other, with the same env, batch, network (64-64 tanh, separate actor and critic),
observation normalization and one torch thread. Prints a table; writes JSON.

    python benchmarks/throughput.py --peer-python /path/to/peers/bin/python \
        --envs Hopper-v5,HalfCheetah-v5,CartPole-v1 --steps 20480 --repeats 3 --out bench-out/throughput.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


# ---------------------------------------------------------------- workers (run in children)
def worker_raw(env_id: str, steps: int) -> dict:
    """The simulator's limit through Gymnasium: one env, actions drawn in advance."""
    import gymnasium as gym
    import numpy as np

    env = gym.make(env_id)
    env.reset(seed=0)
    actions = [env.action_space.sample() for _ in range(steps)]
    t = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    wall = time.perf_counter() - t
    return {"steps": steps, "wall": wall, "env": wall, "policy": 0.0, "update": 0.0, "np": np.__version__}


def worker_natgrad(algo: str, env_id: str, steps: int, n_envs: int, n_steps: int) -> dict:
    import torch

    import natgrad

    torch.set_num_threads(1)
    cls = {"trpo": natgrad.TRPO, "ppo": natgrad.PPO}[algo]
    extra = {"vf_epochs": 5, "vf_minibatch_size": 64} if algo == "trpo" else {}
    model = cls(env_id, seed=0, n_envs=n_envs, n_steps=n_steps, **extra)
    split = {"rollout": 0.0, "update": 0.0}

    def record(_, metrics):
        split["rollout"] += metrics["time/rollout_seconds"]
        split["update"] += metrics["time/update_seconds"]

    t = time.perf_counter()
    model.learn(steps, callback=record)
    wall = time.perf_counter() - t
    return {"steps": model.num_timesteps, "wall": wall, "rollout": split["rollout"], "update": split["update"]}


def worker_sb3(algo: str, env_id: str, steps: int, n_envs: int, n_steps: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    env = VecNormalize(make_vec_env(env_id, n_envs=n_envs, seed=0), norm_obs=True, norm_reward=False)
    if algo == "trpo":
        from sb3_contrib import TRPO

        # natgrad's defaults where sb3-contrib's differ: 10 CG steps, backtrack 0.5, λ 0.97
        model = TRPO("MlpPolicy", env, n_steps=n_steps, batch_size=128, n_critic_updates=10,
                     cg_max_steps=10, line_search_shrinking_factor=0.5, gae_lambda=0.97,
                     target_kl=0.01, seed=0, device="cpu")
    else:
        model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=64, n_epochs=10, seed=0, device="cpu")

    class Split(BaseCallback):
        rollout = 0.0

        def _on_rollout_start(self):
            self.t0 = time.perf_counter()

        def _on_rollout_end(self):
            Split.rollout += time.perf_counter() - self.t0

        def _on_step(self):
            return True

    t = time.perf_counter()
    model.learn(steps, callback=Split())
    wall = time.perf_counter() - t
    return {"steps": model.num_timesteps, "wall": wall, "rollout": Split.rollout, "update": wall - Split.rollout}


def worker_update_natgrad(env_id: str, batch: int, timings: int) -> dict:
    """Seconds per TRPO update (policy step + critic fit) on one batch, and per FVP."""
    import torch

    import natgrad
    from natgrad.fisher import fisher_vector_product
    from natgrad.rollout import Collector

    torch.set_num_threads(1)
    model = natgrad.TRPO(env_id, seed=0, n_steps=batch)
    collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler, seed=0)
    data = collector.collect(batch)
    times = []
    for _ in range(timings):
        t = time.perf_counter()
        metrics = model._train_on(data, progress=0.0)
        times.append(time.perf_counter() - t)
    obs = data.flat(data.obs)
    old = model.actor(obs).detach()
    params = list(model.actor.parameters())
    fvp = fisher_vector_product(old.kl(model.actor(obs)).mean(), params, 0.1)
    v = torch.randn(sum(p.numel() for p in params))
    fvp_times = []
    for _ in range(20):
        t = time.perf_counter()
        fvp(v)
        fvp_times.append(time.perf_counter() - t)
    return {"update": statistics.median(times), "fvp": statistics.median(fvp_times),
            "fvps": metrics["policy/cg_iterations"] + 1}


def worker_update_sb3(env_id: str, batch: int, timings: int) -> dict:
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.utils import configure_logger
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    env = VecNormalize(make_vec_env(env_id, n_envs=1, seed=0), norm_obs=True, norm_reward=False)
    model = TRPO("MlpPolicy", env, n_steps=batch, batch_size=128, n_critic_updates=10, cg_max_steps=10,
                 line_search_shrinking_factor=0.5, gae_lambda=0.97, target_kl=0.01, seed=0, device="cpu")
    model._logger = configure_logger(0, None, "", False)
    model.learn(batch)  # one rollout + one update: fills the buffer
    times = []
    for _ in range(timings):
        t = time.perf_counter()
        model.train()
        times.append(time.perf_counter() - t)
    return {"update": statistics.median(times), "fvps": 10 + 1}


WORKERS = {"raw": worker_raw, "natgrad": worker_natgrad, "sb3": worker_sb3,
           "update-natgrad": worker_update_natgrad, "update-sb3": worker_update_sb3}


def child_main(kind: str, kwargs: dict) -> None:
    result = WORKERS[kind](**kwargs)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


# ---------------------------------------------------------------- driver
def run_child(python: str, kind: str, **kwargs) -> dict:
    cmd = [python, __file__, "--child", kind, json.dumps(kwargs)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"{kind} {kwargs} failed:\n{out.stderr[-2000:]}")


def median_of(python: str, kind: str, repeats: int, **kwargs) -> dict:
    runs = [run_child(python, kind, **kwargs) for _ in range(repeats)]
    keys = [k for k, v in runs[0].items() if isinstance(v, (int, float))]
    result = {k: statistics.median(r[k] for r in runs) for k in keys}
    if "wall" in runs[0]:
        result["steps_per_second"] = statistics.median(r["steps"] / r["wall"] for r in runs)
    result["repeats"] = repeats
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True, help="python of a venv with stable-baselines3 + sb3-contrib")
    parser.add_argument("--envs", default="Hopper-v5,HalfCheetah-v5,CartPole-v1")
    parser.add_argument("--algos", default="trpo,ppo")
    parser.add_argument("--steps", type=int, default=20480)
    parser.add_argument("--layouts", default="1x2048,16x128",
                        help="comma-separated N_ENVSxN_STEPS vector-env layouts, each a 2048-step batch by default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update-batch", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=Path("bench-out/throughput.json"))
    args = parser.parse_args()
    if args.out.exists():
        sys.exit(f"error: {args.out} exists: choose a new --out (benchmarks never overwrite results)")
    results: dict = {"command": " ".join(sys.argv), "throughput": [], "update": []}
    me = sys.executable
    for env_id in args.envs.split(","):
        raw = median_of(me, "raw", args.repeats, env_id=env_id, steps=args.steps)
        for algo in args.algos.split(","):
            for layout in args.layouts.split(","):
                n_envs, n_steps = (int(x) for x in layout.split("x"))
                common = dict(algo=algo, env_id=env_id, steps=args.steps, n_envs=n_envs, n_steps=n_steps)
                ours = median_of(me, "natgrad", args.repeats, **common)
                peer = median_of(args.peer_python, "sb3", args.repeats, **common)
                results["throughput"].append({"env": env_id, "algo": algo, "layout": layout, "raw": raw,
                                              "natgrad": ours, "peer": peer})
                print_row(env_id, f"{algo} {layout}", raw, ours, peer)
        if env_id != "CartPole-v1":
            ours = median_of(me, "update-natgrad", 1, env_id=env_id, batch=args.update_batch, timings=5)
            peer = median_of(args.peer_python, "update-sb3", 1, env_id=env_id, batch=args.update_batch, timings=5)
            results["update"].append({"env": env_id, "batch": args.update_batch, "natgrad": ours, "peer": peer})
            print(f"  TRPO update on {args.update_batch} samples: natgrad {ours['update'] * 1e3:.1f} ms "
                  f"({ours['fvps']:.0f} FVPs, {ours['fvp'] * 1e3:.2f} ms each) | sb3-contrib "
                  f"{peer['update'] * 1e3:.1f} ms | ratio {peer['update'] / ours['update']:.2f}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def print_row(env_id: str, algo: str, raw: dict, ours: dict, peer: dict) -> None:
    peer_name = "sb3-contrib" if algo.startswith("trpo") else "sb3"
    print(f"{env_id:15s} {algo:12s} raw env {raw['steps_per_second']:8.0f} steps/s | natgrad "
          f"{ours['steps_per_second']:7.0f} ({ours['steps_per_second'] / raw['steps_per_second']:.0%} of raw; "
          f"rollout {ours['rollout'] / ours['wall']:.0%}, update {ours['update'] / ours['wall']:.0%}; "
          f"{ours['peak_rss_mb']:.0f} MB) | {peer_name} {peer['steps_per_second']:7.0f} "
          f"(rollout {peer['rollout'] / peer['wall']:.0%}; {peer['peak_rss_mb']:.0f} MB) | "
          f"ratio {ours['steps_per_second'] / peer['steps_per_second']:.2f}x", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_main(sys.argv[2], json.loads(sys.argv[3]))
    else:
        main()
