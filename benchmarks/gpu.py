"""natgrad on an accelerator, as one prepared command: natgrad on the CPU and on ``--device``, eager and compiled,
beside SB3's PPO and sb3-contrib's TRPO on the same device, on MinAtar Breakout (the small CNN), Pong (the Nature
CNN), Hopper (64-64 tanh MLP) and gymnax CartPole with 4096 envs.

Each workload trains every contender with the same settings (``spaces_peers.HYPER`` and ``NETWORK`` for the
images and Hopper; 4096 envs × 16 steps for gymnax CartPole, which only natgrad steps: the peers have no gymnax
adapter) for ``--updates`` updates after one untimed update (CUDA's and torch.compile's first calls), each run in
its own child process with one torch thread, the contenders taking turns over ``--repeats`` rounds. Reported per
contender: the median steps/s by wall clock and the update's split into rollout and update seconds (natgrad's
``time/rollout_seconds`` and ``time/update_seconds``; the peers' rollouts timed by a callback, the rest of
``learn`` as their update). ``--compile`` adds natgrad with ``compile=True`` when this natgrad takes it;
``--device cpu`` runs the whole command on a machine without a GPU; ``--quick``: a tiny batch and one update, a
smoke run of every path.

    python -m benchmarks.gpu --device cuda --compile --peer-python PEERS/bin/python --out bench-out/gpu.json
    python -m benchmarks.gpu --device cpu --quick --peer-python PEERS/bin/python --out /tmp/gpu-smoke.json
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
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
from benchmarks.device_envs import worker_natgrad
from benchmarks.peers import PEERS
from benchmarks.spaces_peers import HYPER, NETWORK, algo_names, make_env_fn, peer_policy_kwargs, sb3_kwargs

MLP = dict(hidden="64,64", activation="tanh", normalize_obs=False)  # the peers' MlpPolicy as configured below
# workload → (env id, its env_kwargs for natgrad, the network's family, the network, whether the peers run it)
WORKLOADS: dict[str, tuple[str, dict[str, Any], str, dict[str, Any], bool]] = {
    "breakout": ("MinAtar/Breakout-v1", {}, "minatar", NETWORK["minatar"], True),
    "pong": ("natgrad.wrappers:atari", {"env_id": "ALE/Pong-v5"}, "atari", NETWORK["atari"], True),
    "hopper": ("Hopper-v5", {}, "mlp", MLP, True),
    "cartpole": ("gymnax/CartPole-v1", {}, "mlp", MLP, False),
}


def settings(workload: str, algo: str, quick: bool) -> dict[str, Any]:
    """The natgrad settings of ``algo`` on ``workload``: ``HYPER`` and the network; CartPole's 4096 envs × 16
    steps with a critic minibatch of 4096; ``quick``: 2 envs (64 for CartPole) × 32 steps."""
    s = {**HYPER[algo], **WORKLOADS[workload][3]}
    if workload == "cartpole":
        s.update(n_envs=4096, n_steps=16)
    if quick:
        s.update(n_envs=64 if workload == "cartpole" else 2, n_steps=32)
    if algo == "trpo":
        s["vf_minibatch_size"] = min(s["n_envs"] * s["n_steps"], 4096 if workload == "cartpole" else 128)
    return s


def peer_env_id(workload: str) -> str:
    """The id the peers make: Pong's ALE id (``make_env_fn`` wraps it as natgrad.wrappers:atari does)."""
    env_id, env_kwargs, *_ = WORKLOADS[workload]
    return env_kwargs.get("env_id", env_id)


def worker_peer(algo: str, workload: str, steps: int, settings: dict[str, Any], device: str) -> dict[str, Any]:
    """SB3's PPO or sb3-contrib's TRPO on ``workload`` with natgrad's ``settings`` (``sb3_kwargs`` with their batch
    layout) on ``device``: one untimed update, then ``steps`` env steps ``clocked``, with the rollout seconds (a
    callback) and the rest of ``learn`` as the update seconds."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)
    env_id, _, family, _, _ = WORKLOADS[workload]
    batch = settings["n_envs"] * settings["n_steps"]
    kwargs = {**sb3_kwargs(algo), "n_steps": settings["n_steps"],
              "batch_size": batch // settings["minibatches"] if algo == "ppo" else settings["vf_minibatch_size"]}
    env = make_vec_env(make_env_fn(peer_env_id(workload)) if family != "mlp" else env_id,
                       n_envs=settings["n_envs"], seed=0)
    if algo == "ppo":
        from stable_baselines3 import PPO as cls
    else:
        from sb3_contrib import TRPO as cls
    policy = "CnnPolicy" if family == "atari" else "MlpPolicy"
    model = cls(policy, env, seed=0, device=device, policy_kwargs=peer_policy_kwargs(family), **kwargs)
    model.learn(batch)  # one whole update, outside the clock
    split = {"rollout_seconds": 0.0}

    class Rollouts(BaseCallback):
        def _on_rollout_start(self) -> None:
            self.start = time.perf_counter()

        def _on_rollout_end(self) -> None:
            split["rollout_seconds"] += time.perf_counter() - self.start

        def _on_step(self) -> bool:
            return True

    def run() -> int:
        start = model.num_timesteps
        return model.learn(steps, callback=Rollouts(), reset_num_timesteps=False).num_timesteps - start

    result = clocked(run)
    return {**result, **split, "update_seconds": result["wall"] - split["rollout_seconds"], "device": device,
            **versions("stable_baselines3", "sb3_contrib", "torch")}


def takes_compile() -> bool:
    """Whether this natgrad's algorithms take ``compile=`` (torch.compile of the update)."""
    import natgrad

    return "compile" in inspect.signature(natgrad.Algorithm.__init__).parameters


def contenders(workload: str, algo: str, args: argparse.Namespace, compiled: bool) -> dict[str, Any]:
    """The contenders of one row: natgrad on the CPU, on the device, compiled there, and the peer there."""
    env_id, env_kwargs, _, _, peered = WORKLOADS[workload]
    s = settings(workload, algo, args.quick)
    steps = s["n_envs"] * s["n_steps"] * args.updates
    ours = dict(algo=algo, env_id=env_id, steps=steps, settings=s, env_kwargs=env_kwargs)
    me, device = sys.executable, args.device
    rows = {"natgrad cpu": (me, worker_natgrad, {**ours, "device": "cpu"})}
    if device != "cpu":
        rows[f"natgrad {device}"] = (me, worker_natgrad, {**ours, "device": device})
    if compiled:
        rows[f"natgrad {device} compiled"] = (me, worker_natgrad, {**ours, "device": device,
                                                                     "settings": {**s, "compile": True}})
    if peered and args.peer_python:
        peer = dict(algo=algo, workload=workload, steps=steps, settings=s, device=device)
        rows[f"{PEERS[algo]} {device}"] = (args.peer_python, worker_peer, peer)
    return rows


def markdown(results: dict[str, Any]) -> str:
    """The table: per workload, algorithm and contender, steps/s, the rollout / update split and the ratio."""
    lines = ["| workload | algo | batch | contender | steps/s (wall) | rollout / update s | natgrad on the device ÷ "
             "this |", "|---" * 7 + "|"]
    for row in results["rows"]:
        runs = {name: r for name, r in row["contenders"].items() if isinstance(r, dict)}
        ours = runs.get(f"natgrad {results['device']}")
        for name, r in row["contenders"].items():
            if not isinstance(r, dict):
                lines.append(f"| {row['workload']} | {row['algo']} | {row['batch']} | {name} | failed: {r} | | |")
                continue
            ratio = f"{ours['steps_per_second'] / r['steps_per_second']:.2f}×" if ours and ours is not r else ""
            lines.append(f"| {row['workload']} | {row['algo']} | {row['batch']} | {name} "
                         f"| {r['steps_per_second']:.0f} | {r['rollout_seconds']:.2f} / {r['update_seconds']:.2f} "
                         f"| {ratio} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, mps")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated, of {', '.join(WORKLOADS)}")
    parser.add_argument("--algos", type=algo_names, default=["trpo", "ppo"])
    parser.add_argument("--updates", type=int, default=3, help="timed updates per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="add natgrad with compile=True where it takes it")
    parser.add_argument("--peer-python", default="", help="the peers' Python (SB3, sb3-contrib); empty: no peers")
    parser.add_argument("--quick", action="store_true", help="2 envs × 32 steps, one update, one repeat")
    add_output_options(parser)
    args = parser.parse_args()
    if rendered(args, markdown):
        return
    workloads = args.workloads.split(",")
    if unknown := [w for w in workloads if w not in WORKLOADS]:
        parser.error(f"unknown workload {', '.join(unknown)}: choose from {', '.join(WORKLOADS)}")
    refuse_existing(args.out)
    from natgrad.config import resolve_device  # here, not at the top: the peers' Python imports this module
    from natgrad.errors import NatgradError

    try:
        args.device = str(resolve_device(args.device, "--device"))
    except NatgradError as e:
        parser.error(str(e))
    if args.quick:
        args.updates, args.repeats = 1, 1
    compiled = args.compile and takes_compile()
    if args.compile and not compiled:
        print("this natgrad takes no compile=: the compiled rows are left out", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {**record(), "device": args.device, "compiled": compiled, "rows": []}
    for workload in workloads:
        for algo in args.algos:
            s = settings(workload, algo, args.quick)
            runs = take_turns(contenders(workload, algo, args, compiled), args.repeats, keep_going=True,
                              label=f"{workload} {algo} ")
            results["rows"].append({"workload": workload, "algo": algo, "batch": s["n_envs"] * s["n_steps"],
                                    "settings": s, "contenders": {name: medians(r) if isinstance(r, list) else r
                                                                  for name, r in runs.items()}})
            write_json(args.out, results)  # each row as it finishes
    print(markdown(results))


if __name__ == "__main__":
    main()
