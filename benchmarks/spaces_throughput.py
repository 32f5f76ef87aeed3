"""Steps/s on image observations: natgrad's TRPO and PPO beside sb3-contrib's TRPO and SB3's PPO, short runs.

Same batch, hyperparameters and network on both sides (``spaces_peers.HYPER`` and ``NETWORK``): on MinAtar
the small CNN, on Atari (``natgrad.wrappers:atari``: AtariPreprocessing, 84×84 grayscale, 4 frames stacked;
the peers build the same wrappers) a Nature CNN per actor and critic, each followed by 64-64 tanh. Each
measurement is its own child process (natgrad in this Python, the peers in ``--peer-python``) with one torch
thread; the contenders of a row run one after the other and the repeats go round-robin, so a change in the
machine's load hits all alike. Reported: the median over repeats of steps/s by wall clock and by the process's
CPU time (steadier on a shared machine), of the time in ``learn`` only (model construction excluded), and
the raw env loop (one env, random actions) for scale, and the *floor*: the tensor work of an update alone
(``worker_floor``), a bound on the steps/s of an eager-PyTorch implementation of these settings on this machine.

    python -m benchmarks.spaces_throughput --peer-python PEERS/bin/python --envs ALE/Pong-v5 \\
        --steps ppo=10240,trpo=6144 --repeats 3 --out bench-out/throughput-atari.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from benchmarks._harness import (
    add_output_options,
    clocked,
    medians,
    random_steps,
    record,
    refuse_existing,
    rendered,
    take_turns,
)
from benchmarks.peers import PEERS
from benchmarks.spaces_peers import HYPER, NETWORK, algo_names, make_env_fn, peer_model


def family(env_id: str) -> str:
    return "minatar" if env_id.startswith("MinAtar/") else "atari"


def network(env_id: str) -> dict:
    """``NETWORK`` for the env's family as keyword arguments of natgrad's constructors (hidden as a tuple)."""
    net = dict(NETWORK[family(env_id)])
    net["hidden"] = tuple(int(h) for h in net["hidden"].split(","))
    return net


def worker_raw(env_id: str, steps: int) -> dict:
    """One env stepped with random actions: the simulator's own rate through Gymnasium and the wrappers."""
    return random_steps(make_env_fn(env_id)(), steps)


def worker_natgrad(algo: str, env_id: str, steps: int) -> dict:
    import torch

    import natgrad

    torch.set_num_threads(1)
    settings = {**HYPER[algo], **network(env_id)}
    if family(env_id) == "atari":
        env, settings["env_kwargs"] = "natgrad.wrappers:atari", {"env_id": env_id}
    else:
        env = env_id
    model = {"trpo": natgrad.TRPO, "ppo": natgrad.PPO}[algo](env, seed=0, **settings)
    return clocked(lambda: model.learn(steps).num_timesteps)


def worker_peer(algo: str, env_id: str, steps: int) -> dict:
    model = peer_model(algo, env_id, 0, family(env_id))
    return clocked(lambda: model.learn(steps).num_timesteps)


def worker_floor(algo: str, env_id: str, steps: int) -> dict:
    """The tensor work of ``steps // batch`` updates and nothing else: natgrad's actor and critic modules (the
    network both sides build) on random observations of the env's space, in the batch shapes of ``HYPER``.
    Per update, both: ``n_steps`` no-grad passes of actor and critic over ``n_envs`` states (acting). PPO:
    epochs × minibatches steps of forward, backward and Adam for the actor and for the critic. TRPO: one
    forward of the actor over the batch and a backward through it (the gradient); per CG iteration a no-grad
    pass and a backward (a Fisher-vector product Jᵀ M J v needs J v, whose linear maps are those of a forward
    pass, and Jᵀw, a backward); one no-grad pass (one line-search trial); ``vf_epochs`` epochs of critic
    minibatch steps. No env, no GAE, no losses, no logging: an implementation of these settings does at least
    this much."""
    import numpy as np
    import torch

    from natgrad.policy.actor_critic import Actor, Critic, as_inputs
    from natgrad.policy.spaces import ObsLayout

    torch.set_num_threads(1)
    torch.manual_seed(0)
    h, net = HYPER[algo], network(env_id)
    env = make_env_fn(env_id)()
    env.observation_space.seed(0)
    layout = ObsLayout(env.observation_space)
    actor, critic = Actor(layout, env.action_space, **net), Critic(layout, **net)
    batch = h["n_envs"] * h["n_steps"]

    def states(n: int):
        raw = np.stack([env.observation_space.sample() for _ in range(n)])
        return as_inputs(layout.pack(layout.encode(raw, n)))

    def fit(model: torch.nn.Module, opt: torch.optim.Optimizer, inputs, count: int) -> None:
        for _ in range(count):
            opt.zero_grad()
            model.body(inputs).square().mean().backward()
            opt.step()

    ppo = algo == "ppo"
    actor_opt = torch.optim.Adam(actor.parameters(), h["lr"]) if ppo else None  # TRPO steps the actor by CG
    critic_opt = torch.optim.Adam(critic.parameters(), h["lr"] if ppo else h["vf_lr"])
    minibatch = batch // h["minibatches"] if ppo else h["vf_minibatch_size"]
    acting, full, part = states(h["n_envs"]), states(batch), states(minibatch)

    def update() -> None:
        with torch.no_grad():
            for _ in range(h["n_steps"]):
                actor.body(acting), critic.body(acting)
        if ppo:
            count = h["epochs"] * h["minibatches"]
            fit(actor, actor_opt, part, count)
            fit(critic, critic_opt, part, count)
            return
        out, params = actor.body(full), list(actor.parameters())
        for i in range(1 + h["cg_iters"]):
            if i:
                with torch.no_grad():
                    actor.body(full)
            torch.autograd.grad(out.square().mean(), params, retain_graph=True)
        with torch.no_grad():
            actor.body(full)
        fit(critic, critic_opt, part, h["vf_epochs"] * math.ceil(batch / minibatch))

    def run() -> int:
        updates = max(1, steps // batch)
        for _ in range(updates):
            update()
        return updates * batch

    return clocked(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True)
    parser.add_argument("--envs", default="ALE/Pong-v5")
    parser.add_argument("--algos", type=algo_names, default=list(HYPER))
    parser.add_argument("--steps", default="ppo=10240,trpo=6144", help="env steps per run, per algorithm")
    parser.add_argument("--raw-steps", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    add_output_options(parser)
    args = parser.parse_args()
    if rendered(args, markdown):
        return
    refuse_existing(args.out)
    steps = {k: int(float(v)) for k, v in (kv.split("=") for kv in args.steps.split(","))}
    me = sys.executable
    results: dict = {**record(), "rows": []}
    for env_id in args.envs.split(","):
        raw = take_turns({"raw env": (me, worker_raw, dict(env_id=env_id, steps=args.raw_steps))}, args.repeats,
                         label=f"{env_id} ")
        for algo in args.algos:
            kwargs = dict(algo=algo, env_id=env_id, steps=steps[algo])
            contenders = {"natgrad": (me, worker_natgrad, kwargs), PEERS[algo]: (args.peer_python, worker_peer, kwargs),
                          "floor": (me, worker_floor, kwargs)}
            runs = take_turns(contenders, args.repeats, label=f"{env_id} {algo} ")
            row = {"env": env_id, "algo": algo, "batch": HYPER[algo]["n_envs"] * HYPER[algo]["n_steps"],
                   **{name: medians(r) for name, r in {**raw, **runs}.items()}}
            results["rows"].append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


def markdown(results: dict) -> str:
    lines = ["| env | algo | batch | steps per run | contender | steps/s (wall) | steps per CPU s | peak MB "
             "| natgrad / this (wall) | natgrad / this (CPU) |", "|---" * 10 + "|"]
    for row in results["rows"]:
        ours = row["natgrad"]
        for name, r in row.items():
            if not isinstance(r, dict):
                continue
            ratio = "" if name in ("natgrad", "raw env") else (
                f"{ours['steps_per_second'] / r['steps_per_second']:.2f}x | "
                f"{ours['steps_per_cpu_second'] / r['steps_per_cpu_second']:.2f}x")
            lines.append(f"| {row['env']} | {row['algo']} | {row['batch']} | {r['steps']:,} | {name} "
                         f"| {r['steps_per_second']:.0f} | {r['steps_per_cpu_second']:.0f} | {r['peak_rss_mb']:.0f} "
                         f"| {ratio or ' |'} |")
    bounds = [f"- {row['env']} {row['algo']}: the floor runs {floor / r['steps_per_second']:.2f}x {name}'s "
              "steps/s (wall), the most an eager-PyTorch implementation of these settings could reach here"
              for row in results["rows"] if "floor" in row for floor in [row["floor"]["steps_per_second"]]
              for name, r in row.items() if isinstance(r, dict) and name in PEERS.values()]
    return "\n".join(lines + ([""] + bounds if bounds else [])) + "\n"


if __name__ == "__main__":
    main()
