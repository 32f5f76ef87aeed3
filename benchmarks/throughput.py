"""Throughput and update cost: natgrad against sb3-contrib TRPO, SB3 PPO and Tianshou TRPO, side by side.

Installs nothing. Each measurement runs in its own child process (natgrad in this Python, the peers
in ``--peer-python``, a venv with stable-baselines3, sb3-contrib and, optionally, tianshou), with the
same env, batch per update, network (64-64 tanh, separate actor and critic), observation
normalization and one torch thread. The contenders of a row run one after the other, and the
repeats go round-robin, so that a change in the machine's load hits all of them alike. Reported
per contender: steps/s by wall clock and by the process's CPU time (the second is steadier on a
shared machine), the shares of CPU time inside the simulator's ``step`` (env), in the rest of the
rollout (policy: acting, normalizing, storing) and in the updates, and the peak resident memory.
The raw env loop (``gym.make`` stepped with actions drawn in advance) is the simulator's own limit.

    python -m benchmarks.throughput --peer-python /path/to/peers/bin/python \\
        --envs Hopper-v5,HalfCheetah-v5,CartPole-v1 --steps 20480 --repeats 3 --out bench-out/throughput.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks._harness import Contender, clocked, medians, random_steps, record, refuse_existing, take_turns, versions
from benchmarks.peers import PEERS


# ---------------------------------------------------------------- helpers (run in children)
def timed(obj: object, method: str, totals: dict[str, float], key: str = "env", cpu: bool = False) -> None:
    """Wrap ``obj.method`` so that its wall time adds up in ``totals[key]`` and, with ``cpu``, its CPU
    time in ``totals[key + "_cpu"]`` (the CPU clock costs ~1.5 µs a read: for whole phases, not env steps)."""
    inner = getattr(obj, method)
    totals.setdefault(key, 0.0)
    totals.setdefault(key + "_cpu", 0.0)

    def wrapper(*args, **kwargs):
        t, c = time.perf_counter(), time.process_time() if cpu else 0.0
        try:
            return inner(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - t
            if cpu:
                totals[key + "_cpu"] += time.process_time() - c

    setattr(obj, method, wrapper)


def cpu_median(run: Callable[[], object], times: int = 30) -> float:
    """The median CPU seconds of ``run()`` over ``times`` calls."""
    seconds = []
    for _ in range(times):
        t = time.process_time()
        run()
        seconds.append(time.process_time() - t)
    return statistics.median(seconds)


# ---------------------------------------------------------------- workers
def worker_raw(env_id: str, steps: int) -> dict:
    """The simulator's limit through Gymnasium: one env, actions drawn in advance."""
    import gymnasium as gym

    result = random_steps(gym.make(env_id), steps)
    return {**result, "env": result["wall"], "rollout": result["wall"], "update": 0.0,
            "rollout_cpu": result["cpu"], "update_cpu": 0.0}


def worker_natgrad(algo: str, env_id: str, steps: int, n_envs: int, n_steps: int) -> dict:
    import torch

    import natgrad
    from natgrad.rollouts.collector import Collector

    torch.set_num_threads(1)
    model = {"trpo": natgrad.TRPO, "ppo": natgrad.PPO}[algo](env_id, seed=0, preset=False, n_envs=n_envs,
                                                              n_steps=n_steps)
    totals: dict[str, float] = {}
    timed(model.env, "step", totals)
    timed(Collector, "collect", totals, "rollout", cpu=True)
    timed(model, "_train_on", totals, "update", cpu=True)
    result = clocked(lambda: model.learn(steps).num_timesteps)
    return {**result, **totals, **versions("natgrad", "torch", "gymnasium", "numpy", "mujoco")}


def worker_sb3(algo: str, env_id: str, steps: int, n_envs: int, n_steps: int) -> dict:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    torch.set_num_threads(1)
    inner = make_vec_env(env_id, n_envs=n_envs, seed=0)
    totals = {"rollout": 0.0, "rollout_cpu": 0.0}
    timed(inner, "step_wait", totals)
    env = VecNormalize(inner, norm_obs=True, norm_reward=False)
    if algo == "trpo":
        from sb3_contrib import TRPO

        # natgrad's defaults where sb3-contrib's differ: 10 CG steps, backtrack 0.5, λ 0.97
        model = TRPO("MlpPolicy", env, n_steps=n_steps, batch_size=128, n_critic_updates=10,
                     cg_max_steps=10, line_search_shrinking_factor=0.5, gae_lambda=0.97,
                     target_kl=0.01, seed=0, device="cpu")
    else:
        model = PPO("MlpPolicy", env, n_steps=n_steps, batch_size=64, n_epochs=10, seed=0, device="cpu")

    class Split(BaseCallback):
        def _on_rollout_start(self):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def _on_rollout_end(self):
            totals["rollout"] += time.perf_counter() - self.t0
            totals["rollout_cpu"] += time.process_time() - self.c0

        def _on_step(self):
            return True

    result = clocked(lambda: model.learn(steps, callback=Split()).num_timesteps)
    return {**result, **totals, "update": result["wall"] - totals["rollout"],
            "update_cpu": result["cpu"] - totals["rollout_cpu"],
            **versions("stable_baselines3", "sb3_contrib", "torch", "gymnasium", "numpy")}


def worker_tianshou(env_id: str, steps: int, n_envs: int, n_steps: int) -> dict:
    """Tianshou's TRPO: one natural step on the whole batch, then 20 full-batch Adam steps on the critic."""
    import gymnasium as gym
    import torch
    from tianshou.algorithm import TRPO
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Collector, VectorReplayBuffer
    from tianshou.env import DummyVectorEnv, VectorEnvNormObs
    from tianshou.utils.net.common import Net
    from tianshou.utils.torch_utils import policy_within_training_step, torch_train_mode
    from torch import nn
    from torch.distributions import Categorical, Independent, Normal

    torch.set_num_threads(1)
    torch.manual_seed(0)
    inner = DummyVectorEnv([lambda: gym.make(env_id) for _ in range(n_envs)])
    totals = {"rollout": 0.0, "update": 0.0, "rollout_cpu": 0.0, "update_cpu": 0.0}
    timed(inner, "step", totals)
    venv = VectorEnvNormObs(inner)
    venv.seed(0)
    space, obs_shape = venv.action_space[0], venv.observation_space[0].shape

    def mlp():
        return Net(state_shape=obs_shape, hidden_sizes=(64, 64), activation=nn.Tanh)

    if isinstance(space, gym.spaces.Box):
        from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic

        actor = ContinuousActorProbabilistic(preprocess_net=mlp(), action_shape=space.shape, unbounded=True)
        critic = ContinuousCritic(preprocess_net=mlp())
        dist_fn = lambda loc_scale: Independent(Normal(*loc_scale), 1)
    else:
        from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic

        actor = DiscreteActor(preprocess_net=mlp(), action_shape=space.n, softmax_output=False)
        critic = DiscreteCritic(preprocess_net=mlp())
        dist_fn = lambda logits: Categorical(logits=logits)
    policy = ProbabilisticActorPolicy(actor=actor, dist_fn=dist_fn, action_space=space, action_scaling=False)
    algorithm = TRPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=1e-3), max_kl=0.01,
                     backtrack_coeff=0.5, max_backtracks=10, optim_critic_iters=20, gae_lambda=0.97, gamma=0.99)
    buffer = VectorReplayBuffer(n_envs * n_steps, n_envs)
    collector = Collector(algorithm, venv, buffer)
    collector.reset()

    def run() -> int:
        done = 0
        while done < steps:
            t0, c0 = time.perf_counter(), time.process_time()
            with policy_within_training_step(algorithm.policy):
                done += collector.collect(n_step=n_envs * n_steps).n_collected_steps
            t1, c1 = time.perf_counter(), time.process_time()
            with policy_within_training_step(algorithm.policy), torch_train_mode(algorithm):
                algorithm.update(buffer=buffer, batch_size=None, repeat=1)
            buffer.reset(keep_statistics=True)
            totals["rollout"] += t1 - t0
            totals["update"] += time.perf_counter() - t1
            totals["rollout_cpu"] += c1 - c0
            totals["update_cpu"] += time.process_time() - c1
        return done

    return {**clocked(run), **totals, **versions("tianshou", "torch", "gymnasium", "numpy")}


def worker_update_natgrad(env_id: str, batch: int, timings: int) -> dict:
    """Seconds per TRPO update (policy step + critic fit, and each alone) on one batch, per FVP in both
    forms, and the Gauss–Newton form's set-up per update (the actor's forward and the graph of Jᵀu)."""
    import torch

    import natgrad
    import natgrad.algos.natural
    from natgrad.natural.fisher import fisher_vector_product
    from natgrad.natural.linearized import LinearizedActor
    from natgrad.rollouts.advantages import update_batch
    from natgrad.rollouts.collector import Collector

    torch.set_num_threads(1)
    model = natgrad.TRPO(env_id, seed=0, preset=False, n_steps=batch)
    data = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler, seed=0).collect(batch)
    parts: dict[str, float] = {}
    timed(natgrad.algos.natural, "natural_step", parts, "policy_step", cpu=True)
    timed(natgrad.algos.natural, "fit_critic", parts, "critic_fit", cpu=True)
    times, fvps, policy, critic = [], [], [], []
    for _ in range(timings):
        before = dict(parts)
        t = time.process_time()
        metrics = model._train_on(data, progress=0.0)
        times.append(time.process_time() - t)
        policy.append(parts["policy_step_cpu"] - before["policy_step_cpu"])
        critic.append(parts["critic_fit_cpu"] - before["critic_fit_cpu"])
        fvps.append(metrics["policy/cg_iterations"] + 1)  # CG's products and xᵀFx
    obs = update_batch(data, model.critic, model.config.gamma, model.config.gae_lambda).sequences(1).actor_inputs
    params = model.actor.policy_parameters()
    v = torch.randn(sum(p.numel() for p in params))
    old = model.actor(obs).detach()
    products = {
        "fvp_gauss_newton": LinearizedActor(model.actor, obs).fisher_vector_product(0.1),
        "fvp_double_backprop": fisher_vector_product(old.kl(model.actor(obs)).mean(), params, 0.1),
    }
    result = {"update": statistics.median(times), "fvps": statistics.median(fvps),
              "policy_step": statistics.median(policy), "critic_fit": statistics.median(critic)}
    for name, fvp in products.items():
        result[name] = cpu_median(lambda fvp=fvp: fvp(v))
    result["fvp_set_up"] = cpu_median(lambda: LinearizedActor(model.actor, obs).fisher_vector_product(0.1))
    return result


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
    return {"update": cpu_median(model.train, timings), "fvps": 10 + 1}


# ---------------------------------------------------------------- driver
def with_shares(runs: list[dict]) -> dict:
    """``medians`` of the runs of a learning contender, with the shares of its CPU time in env, policy and update."""
    # the env's share of the rollout is read on the wall clock (a CPU clock read per env step would cost as much
    # as a CartPole step) and scaled to the rollout's CPU time
    return {**medians(runs),
            "update_share": statistics.median(r["update_cpu"] / r["cpu"] for r in runs),
            "env_share": statistics.median(r["env"] / r["rollout"] * r["rollout_cpu"] / r["cpu"] for r in runs),
            "policy_share": statistics.median((1 - r["env"] / r["rollout"]) * r["rollout_cpu"] / r["cpu"]
                                              for r in runs)}


def side_by_side(contenders: dict[str, Contender], repeats: int,
                 summary: Callable[[list[dict]], dict] = medians) -> dict[str, dict | str]:
    """The contenders taking turns for ``repeats`` rounds, each one's runs summed up by ``summary``; a contender
    that fails is reported, not fatal."""
    runs = take_turns(contenders, repeats, keep_going=True)
    return {name: r if isinstance(r, str) else summary(r) for name, r in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True,
                        help="python of a venv with stable-baselines3 + sb3-contrib (and tianshou, optional)")
    parser.add_argument("--envs", default="Hopper-v5,HalfCheetah-v5,CartPole-v1")
    parser.add_argument("--algos", default="trpo,ppo")
    parser.add_argument("--steps", type=int, default=20480)
    parser.add_argument("--layouts", default="1x2048,16x128",
                        help="comma-separated N_ENVSxN_STEPS vector-env layouts, each a 2048-step batch by default")
    parser.add_argument("--no-tianshou", action="store_true", help="leave Tianshou TRPO out")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update-batch", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=Path("bench-out/throughput.json"))
    parser.add_argument("--render", type=Path, help="only print the markdown tables of a saved JSON result")
    args = parser.parse_args()
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return
    refuse_existing(args.out)
    me, peer = sys.executable, args.peer_python
    results: dict = {**record(), "throughput": [], "update": []}
    for env_id in args.envs.split(","):
        for algo in args.algos.split(","):
            for layout in args.layouts.split(","):
                n_envs, n_steps = (int(x) for x in layout.split("x"))
                common = dict(env_id=env_id, steps=args.steps, n_envs=n_envs, n_steps=n_steps)
                contenders = {"raw env": (me, worker_raw, dict(env_id=env_id, steps=args.steps)),
                              "natgrad": (me, worker_natgrad, dict(algo=algo, **common)),
                              PEERS[algo]: (peer, worker_sb3, dict(algo=algo, **common))}
                if algo == "trpo" and not args.no_tianshou:
                    contenders["tianshou"] = (peer, worker_tianshou, common)
                row = {"env": env_id, "algo": algo, "layout": layout,
                       **side_by_side(contenders, args.repeats, with_shares)}
                results["throughput"].append(row)
                print_row(row)
        if "trpo" in args.algos.split(",") and env_id != "CartPole-v1":
            kwargs = dict(env_id=env_id, batch=args.update_batch, timings=5)
            row = {"env": env_id, "batch": args.update_batch,
                   **side_by_side({"natgrad": (me, worker_update_natgrad, kwargs),
                                   PEERS["trpo"]: (peer, worker_update_sb3, kwargs)}, 1)}
            results["update"].append(row)
            print_update(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}\n\n{markdown(results)}")


def print_row(row: dict) -> None:
    raw = row["raw env"]
    print(f"\n{row['env']} {row['algo']} {row['layout']}: raw env {raw['steps_per_second']:.0f} steps/s "
          f"({raw['steps_per_cpu_second']:.0f} per CPU s)")
    ours = row["natgrad"]
    for name, r in row.items():
        if name in ("env", "algo", "layout", "raw env"):
            continue
        if isinstance(r, str):
            print(f"  {name:12s} failed: {r}")
            continue
        ratio = "" if name == "natgrad" else (
            f" | natgrad/{name} {ours['steps_per_second'] / r['steps_per_second']:.2f}x"
            f" (CPU {ours['steps_per_cpu_second'] / r['steps_per_cpu_second']:.2f}x)")
        print(f"  {name:12s} {r['steps_per_second']:7.0f} steps/s ({r['steps_per_cpu_second']:7.0f} per CPU s; "
              f"{r['steps_per_cpu_second'] / raw['steps_per_cpu_second']:4.0%} of raw) | env {r['env_share']:4.0%} "
              f"policy {r['policy_share']:4.0%} update {r['update_share']:4.0%} | {r['peak_rss_mb']:4.0f} MB{ratio}",
              flush=True)


def markdown(results: dict) -> str:
    """The throughput rows and the update rows as markdown tables (rates per CPU second)."""
    lines = ["| env | algo | envs x steps | contender | steps/s (wall) | steps per CPU s | % of raw env | "
             "env / policy / update (CPU) | peak MB | natgrad / this |", "|" + "---|" * 10]
    for row in results["throughput"]:
        ours = row["natgrad"]
        raw = row["raw env"]["steps_per_cpu_second"]
        for name, r in row.items():
            if name in ("env", "algo", "layout"):
                continue
            if isinstance(r, str):
                lines.append(f"| {row['env']} | {row['algo']} | {row['layout']} | {name} | failed: {r} |||||")
                continue
            ratio = ("" if name in ("natgrad", "raw env")
                     else f"{ours['steps_per_cpu_second'] / r['steps_per_cpu_second']:.2f}x")
            shares = "" if name == "raw env" else (f"{r['env_share']:.0%} / {r['policy_share']:.0%} / "
                                                   f"{r['update_share']:.0%}")
            lines.append(f"| {row['env']} | {row['algo']} | {row['layout']} | {name} | {r['steps_per_second']:.0f} | "
                         f"{r['steps_per_cpu_second']:.0f} | {r['steps_per_cpu_second'] / raw:.0%} | {shares} | "
                         f"{r['peak_rss_mb']:.0f} | {ratio} |")
    lines += ["", "| env | batch | natgrad update (CPU ms) | of which policy step / critic fit | FVPs "
              "| FVP Gauss-Newton (ms) | its set-up per update (ms) | FVP double backprop (ms) "
              "| sb3-contrib update (CPU ms) | natgrad / sb3-contrib |", "|" + "---|" * 10]
    for row in results["update"]:
        ours, peer = row["natgrad"], row["sb3-contrib"]
        if isinstance(ours, str) or isinstance(peer, str):
            continue
        # results saved before the split and the set-up were measured have neither
        split = (f"{ours['policy_step'] * 1e3:.1f} / {ours['critic_fit'] * 1e3:.1f}" if "policy_step" in ours else "")
        set_up = f"{ours['fvp_set_up'] * 1e3:.2f}" if "fvp_set_up" in ours else ""
        lines.append(f"| {row['env']} | {row['batch']} | {ours['update'] * 1e3:.1f} | {split} | {ours['fvps']:.0f} | "
                     f"{ours['fvp_gauss_newton'] * 1e3:.2f} | {set_up} | {ours['fvp_double_backprop'] * 1e3:.2f} | "
                     f"{peer['update'] * 1e3:.1f} | {ours['update'] / peer['update']:.2f} |")
    return "\n".join(lines)


def print_update(row: dict) -> None:
    ours, peer = row["natgrad"], row["sb3-contrib"]
    if isinstance(ours, str) or isinstance(peer, str):
        print(f"  TRPO update: failed: {ours if isinstance(ours, str) else peer}")
        return
    print(f"  TRPO update on {row['batch']} samples (CPU time): natgrad {ours['update'] * 1e3:.1f} ms "
          f"(policy step {ours['policy_step'] * 1e3:.1f}, critic fit {ours['critic_fit'] * 1e3:.1f}; "
          f"{ours['fvps']:.0f} FVPs, {ours['fvp_gauss_newton'] * 1e3:.2f} ms each + {ours['fvp_set_up'] * 1e3:.2f} "
          f"set-up; double backprop "
          f"{ours['fvp_double_backprop'] * 1e3:.2f} ms) | sb3-contrib {peer['update'] * 1e3:.1f} ms | "
          f"natgrad takes {ours['update'] / peer['update']:.2f} of sb3-contrib's time", flush=True)


if __name__ == "__main__":
    main()
