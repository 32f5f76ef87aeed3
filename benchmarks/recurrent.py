"""Recurrent policies on partially observed classic control, beside sb3-contrib's RecurrentPPO.

CartPole-v1 and Pendulum-v1 with their velocities removed (natgrad's ``natgrad/CartPoleNoVel-v1`` and
``natgrad/PendulumNoVel-v1``: positions only). Three groups, on the same budget (RecurrentPPO's documented
one, 1e5 steps) and seeds:

- natgrad's recurrent TRPO, NPG and PPO (their presets for these envs), and the same algorithms with an MLP
  (``--set recurrent=none``), each a ``natgrad bench`` grid whose summary.json this script reads;
- sb3-contrib's RecurrentPPO with the hyperparameters of rl-baselines3-zoo's published agents (copied into
  ``RECURRENT_PPO_HYPERPARAMETERS`` below) on the same masked envs, trained here in the peers' venv
  (``--peer-python``) and scored the way ``natgrad bench`` scores natgrad: the final deterministic policy over
  10 episodes on the evaluation seeds 10000, 10001, …, and the mean return of the last 10% of training episodes;
  steps/s is env steps over the seconds of ``learn``.

It also measures the cost of one TRPO update, recurrent against MLP, on the same batch size: the seconds of a
Fisher-vector product and of the whole natural-gradient step, and the CG iterations (medians over repeats).

    natgrad bench --algos trpo,npg,ppo --envs natgrad/CartPoleNoVel-v1,natgrad/PendulumNoVel-v1 --seeds 0-2 \\
        --steps 1e5 --eval-every 10000 --jobs 2 --out bench-out/recurrent
    natgrad bench --algos trpo,npg,ppo --envs natgrad/CartPoleNoVel-v1,natgrad/PendulumNoVel-v1 --seeds 0-2 \\
        --steps 1e5 --eval-every 10000 --jobs 2 --set recurrent=none --out bench-out/recurrent-mlp
    python -m benchmarks.recurrent --peer-python PEERS/bin/python --seeds 0-2 --jobs 2 \\
        --natgrad bench-out/recurrent --mlp bench-out/recurrent-mlp --out bench-out/recurrent-peer \\
        --speed-steps 16384 --speed-repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import clocked, medians, run_jobs, take_turns
from benchmarks.peers import evaluate, final_train, training_returns

ENVS = {"natgrad/CartPoleNoVel-v1": ("CartPole-v1", (0, 2)), "natgrad/PendulumNoVel-v1": ("Pendulum-v1", (0, 1))}
# rl-baselines3-zoo's published RecurrentPPO agents for these envs (their model cards; benchmark.md: CartPoleNoVel
# 500.0 ± 0.0, PendulumNoVel -217.9 ± 140.1, at 1e5 steps): hyperparams/ppo_lstm.yml's entries plus the observation
# normalization and network those agents were trained with, which today's ppo_lstm.yml no longer lists
# (without them, here: CartPoleNoVel 316.5, 235.8, 146.6; PendulumNoVel -1244.7, -1242.6). "lin_x": x·(1 − progress).
AGENT_NETWORK = dict(ortho_init=False, activation_fn="relu", lstm_hidden_size=64, enable_critic_lstm=True,
                     net_arch=dict(pi=[64], vf=[64]))
RECURRENT_PPO_HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "natgrad/CartPoleNoVel-v1": dict(n_envs=8, n_timesteps=1e5, n_steps=32, batch_size=256, gae_lambda=0.8,
                                     gamma=0.98, n_epochs=20, ent_coef=0.0, learning_rate="lin_0.001",
                                     clip_range="lin_0.2", normalize_obs=True, policy_kwargs=AGENT_NETWORK),
    "natgrad/PendulumNoVel-v1": dict(n_envs=4, n_timesteps=1e5, n_steps=1024, gae_lambda=0.95, gamma=0.9,
                                     n_epochs=10, ent_coef=0.0, learning_rate=1e-3, clip_range=0.2, use_sde=True,
                                     sde_sample_freq=4, normalize_obs=True, policy_kwargs=AGENT_NETWORK),
}


# ---------------------------------------------------------------- the peer (runs in the peers' venv)
def masked_env(env_id: str):
    """The env of ``env_id`` as natgrad makes it: the base env observing its positions only."""
    import gymnasium as gym
    import numpy as np

    base, keep = ENVS[env_id]

    class Positions(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            box = env.observation_space
            self.observation_space = gym.spaces.Box(box.low[list(keep)], box.high[list(keep)], dtype=box.dtype)

        def observation(self, observation):
            return observation[list(keep)].astype(np.float32)

    return Positions(gym.make(base))


def peer_model(env_id: str, seed: int):
    """RecurrentPPO with the zoo's settings for ``env_id`` (one torch thread), its env and the envs inside it."""
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    kwargs = dict(RECURRENT_PPO_HYPERPARAMETERS[env_id])
    n_envs, normalize_obs = kwargs.pop("n_envs"), kwargs.pop("normalize_obs")
    kwargs.pop("n_timesteps")
    kwargs["policy_kwargs"] = {**kwargs["policy_kwargs"], "activation_fn": torch.nn.ReLU}
    for key in ("learning_rate", "clip_range"):
        if isinstance(kwargs.get(key), str):
            start = float(kwargs[key].split("_")[1])
            kwargs[key] = lambda progress, start=start: progress * start
    vec = make_vec_env(lambda: masked_env(env_id), n_envs=n_envs, seed=seed)
    env = VecNormalize(vec, norm_obs=True, norm_reward=False) if normalize_obs else vec
    return RecurrentPPO("MlpLstmPolicy", env, seed=seed, device="cpu", **kwargs), env, vec


def worker(env_id: str, seed: int, steps: int, eval_episodes: int) -> dict[str, Any]:
    """Train one RecurrentPPO agent with the zoo's settings: its scores (runs in the peers' environment)."""
    import numpy as np

    model, env, vec = peer_model(env_id, seed)
    settings = RECURRENT_PPO_HYPERPARAMETERS[env_id]
    start = time.perf_counter()
    model.learn(int(steps or settings["n_timesteps"]))
    seconds = time.perf_counter() - start
    seen = env.normalize_obs if settings["normalize_obs"] else lambda obs: obs  # the training statistics
    returns = evaluate(model, masked_env(env_id), eval_episodes, seen)
    return {"env": env_id, "seed": seed, "steps": int(model.num_timesteps),
            "final_train": final_train(training_returns(vec)), "final_eval": float(np.mean(returns)),
            "final_eval_std": float(np.std(returns)), "steps_per_second": model.num_timesteps / seconds,
            "hyperparameters": settings}


def run_peers(peer_python: str, seeds: list[int], steps: int, eval_episodes: int, jobs: int, out: Path) -> None:
    """The RecurrentPPO runs of every (env, seed) not yet done, ``jobs`` at a time."""
    run_jobs(peer_python, {out / env_id.replace("/", "_") / f"s{seed}.json":
                           (worker, dict(env_id=env_id, seed=seed, steps=steps, eval_episodes=eval_episodes))
                           for env_id in ENVS for seed in seeds}, jobs)


# ---------------------------------------------------------------- speed side by side
SPEED_CONTENDERS = ("natgrad TRPO", "natgrad NPG", "natgrad PPO", "RecurrentPPO")


def speed_child(contender: str, env_id: str, steps: int) -> dict[str, float]:
    """``steps`` env steps of one contender (natgrad: its preset for ``env_id``), clocked in ``learn`` only."""
    if contender == "RecurrentPPO":
        model = peer_model(env_id, 0)[0]
        return clocked(lambda: model.learn(steps).num_timesteps)
    import torch

    import natgrad

    torch.set_num_threads(1)
    model = natgrad.ALGORITHMS[contender.split()[1].lower()](env_id, seed=0)
    return clocked(lambda: model.learn(steps).num_timesteps)


def speed(peer_python: str, steps: int, repeats: int) -> list[dict[str, Any]]:
    """Steps/s of every contender on both envs: one child process per measurement, the contenders taking turns
    within each repeat (so a change in the machine's load hits all alike); medians over ``repeats``."""
    rows = []
    for env_id in ENVS:
        contenders = {c: (peer_python if c == "RecurrentPPO" else sys.executable, speed_child,
                          dict(contender=c, env_id=env_id, steps=steps)) for c in SPEED_CONTENDERS}
        speeds = {c: medians(runs) for c, runs in take_turns(contenders, repeats, label=f"{env_id} ").items()}
        peer = speeds["RecurrentPPO"]["steps_per_second"]
        rows += [{"env": env_id, "contender": c, "steps": steps, "each_steps_per_second": s["each_steps_per_second"],
                  "steps_per_second": s["steps_per_second"], "ratio": s["steps_per_second"] / peer}
                 for c, s in speeds.items()]
    return rows


# ---------------------------------------------------------------- the update's cost (natgrad's venv)
def update_cost(env_id: str, repeats: int = 5) -> list[dict[str, Any]]:
    """Seconds of one FVP and of one natural-gradient step, and CG iterations, recurrent (the TRPO preset) against
    the same with an MLP, on one collected batch each; medians over ``repeats``."""
    import torch

    import natgrad
    from natgrad.natural.linearized import LinearizedActor
    from natgrad.natural.step import natural_step
    from natgrad.objectives.gae import normalize
    from natgrad.rollouts.advantages import update_batch
    from natgrad.rollouts.sampler import make_sampler

    torch.set_num_threads(1)
    rows = []
    for recurrent in ("lstm", "none"):
        model = natgrad.TRPO(env_id, seed=0, recurrent=recurrent)
        batch = make_sampler(model).collect(model.config.n_steps)
        data = update_batch(batch, model.critic, model.config.gamma, model.config.gae_lambda)
        seq = data.sequences(model.config.n_steps if model.actor.recurrent else 1)
        adv = normalize(seq.advantages)
        theta = [p.detach().clone() for p in model.actor.parameters()]
        fvp_seconds, step_seconds, iterations = [], [], []
        for _ in range(repeats):
            fvp = LinearizedActor(model.actor, seq.actor_inputs).fisher_vector_product(model.config.damping)
            v = torch.randn(sum(p.numel() for p in model.actor.policy_parameters()))
            start = time.perf_counter()
            fvp(v)
            fvp_seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            step = natural_step(model.actor, seq.actor_inputs, seq.actions, seq.log_probs, adv, model.config, True)
            step_seconds.append(time.perf_counter() - start)
            iterations.append(step.cg_iterations)
            for p, t in zip(model.actor.parameters(), theta):
                p.data.copy_(t)
        rows.append({"env": env_id, "network": "LSTM" if recurrent == "lstm" else "MLP",
                     "batch": model.config.batch_size, "sequence": f"{model.config.n_steps} × {model.config.n_envs}",
                     "fvp_ms": 1000 * statistics.median(fvp_seconds),
                     "natural_step_ms": 1000 * statistics.median(step_seconds),
                     "cg_iterations": statistics.median(iterations)})
        model.close()
    return rows


# ---------------------------------------------------------------- the table
def table(natgrad_root: Path, mlp_root: Path, peer_root: Path) -> list[dict[str, Any]]:
    """Per env and contender: seeds, final eval mean ± std over seeds, final train return, steps/s (median)."""
    from natgrad.tools.report import find_runs

    rows = []
    for label, root in (("recurrent", natgrad_root), ("MLP", mlp_root)):
        runs = find_runs(root) if root and root.exists() else []
        for env_id, algo in sorted({(r.env_id, r.algo) for r in runs}):
            group = [r for r in runs if (r.env_id, r.algo) == (env_id, algo)]
            rows.append(_row(env_id, f"natgrad {algo.upper()} {label}", [r.seed for r in group],
                             [r.final_eval for r in group], [r.final_train for r in group],
                             [r.steps_per_second for r in group]))
    for env_id in ENVS:
        peers = [json.loads(p.read_text()) for p in sorted((peer_root / env_id.replace("/", "_")).glob("s*.json"))]
        if peers:
            rows.append(_row(env_id, "sb3-contrib RecurrentPPO", [p["seed"] for p in peers],
                             [p["final_eval"] for p in peers], [p["final_train"] for p in peers],
                             [p["steps_per_second"] for p in peers]))
    return sorted(rows, key=lambda r: r["env"])


def _row(env_id: str, contender: str, seeds: list[int], evals: list[float], trains: list[float],
         sps: list[float]) -> dict[str, Any]:
    spread = statistics.pstdev(evals) if len(evals) > 1 else 0.0
    return {"env": env_id, "contender": contender, "seeds": seeds, "final_eval_mean": statistics.mean(evals),
            "final_eval_std": spread, "final_eval_per_seed": evals, "final_train_mean": statistics.mean(trains),
            "steps_per_second": statistics.median(sps)}


def markdown(rows: list[dict[str, Any]], costs: list[dict[str, Any]], speeds: list[dict[str, Any]]) -> str:
    lines = ["| env | contender | seeds | final eval, mean ± std over seeds | per seed | final train return "
             "| steps/s (whole runs) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        each = ", ".join(f"{x:.1f}" for x in r["final_eval_per_seed"])
        lines.append(f"| {r['env']} | {r['contender']} | {len(r['seeds'])} | {r['final_eval_mean']:.1f} ± "
                     f"{r['final_eval_std']:.1f} | {each} | {r['final_train_mean']:.1f} "
                     f"| {r['steps_per_second']:.0f} |")
    if speeds:
        lines += ["", "| env | contender | steps/s, median | each repeat | ÷ RecurrentPPO |", "|---|---|---|---|---|"]
        lines += [f"| {r['env']} | {r['contender']} | {r['steps_per_second']:.0f} | "
                  f"{', '.join(f'{x:.0f}' for x in r['each_steps_per_second'])} | {r['ratio']:.2f}× |" for r in speeds]
    if costs:
        lines += ["", "| env | network | batch (T × N) | one FVP, ms | natural-gradient step, ms | CG iterations |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {c['env']} | {c['network']} | {c['batch']} ({c['sequence']}) | {c['fvp_ms']:.1f} "
                  f"| {c['natural_step_ms']:.0f} | {c['cg_iterations']:.0f} |" for c in costs]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--steps", type=float, default=0, help="peer budget (default: the zoo's, 1e5)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench-out/recurrent-peer"))
    parser.add_argument("--peer-python", help="python of the venv with sb3-contrib (trains the peers)")
    parser.add_argument("--natgrad", type=Path, help="the natgrad bench grid of the recurrent presets")
    parser.add_argument("--mlp", type=Path, help="the natgrad bench grid with --set recurrent=none")
    parser.add_argument("--cost-repeats", type=int, default=5, help="repeats of the update-cost measurement (0: skip)")
    parser.add_argument("--speed-steps", type=int, default=0,
                        help="also measure steps/s side by side: this many env steps per measurement (0: skip)")
    parser.add_argument("--speed-repeats", type=int, default=3, help="repeats of the side-by-side speed measurement")
    args = parser.parse_args()
    from natgrad.tools.bench import parse_seeds

    if args.peer_python:
        run_peers(args.peer_python, parse_seeds(args.seeds), int(args.steps), args.eval_episodes, args.jobs, args.out)
    rows = table(args.natgrad, args.mlp, args.out)
    costs = [c for env_id in ENVS for c in update_cost(env_id, args.cost_repeats)] if args.cost_repeats else []
    speeds = speed(args.peer_python, args.speed_steps, args.speed_repeats) if args.speed_steps else []
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"rows": rows, "update_cost": costs, "speed": speeds},
                                                      indent=2) + "\n")
    text = markdown(rows, costs, speeds)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
