"""One TRPO update on one shared batch: natgrad's step beside sb3-contrib's.

Per (env, seed) a worker in the peers' virtual environment builds sb3-contrib's TRPO with rl-zoo's MuJoCo
hyperparameters (zoo_rerun.ZOO_HYPERPARAMETERS), trains it for ``--warmup`` steps, collects one more rollout and records
the policy before and after sb3-contrib's ``train()`` on it, with the batch that update used (normalized
observations, actions, old log-probabilities, GAE advantages). The driver, in natgrad's environment, loads
the same weights into natgrad's Actor and takes natgrad's TRPO step on the same batch with the same
settings: δ = target_kl, CG iterations, damping, backtracking factor 0.8. It prints, per run:

- rel. diff ‖Δ_natgrad − Δ_sb3‖ / ‖Δ_sb3‖ and the cosine between the two parameter changes (actor only);
- the mean KL(π_old ‖ π_new) and the surrogate gain L(θ_new) − L(θ_old) each step reached, both computed
  by natgrad's code on the same batch.

sb3-contrib's KL is ``kl_divergence(new, old).mean()`` over a tensor of shape (batch, action dims): the
mean over the action dimensions, where TRPO's KL is their sum. Its Fisher-vector products and its trust
region are therefore those of F/d and δ for the true KL with d action dimensions: the step of natgrad's
TRPO with δ' = d·δ and damping' = d·damping. Each run is compared twice: natgrad with sb3-contrib's
numbers as written ("as written") and with them so scaled ("× d"). Even then the two are not expected to
agree to float precision: sb3-contrib starts CG from 1e-4·N(0, I) rather than 0, and its line search
checks KL(π_new ‖ π_old) where natgrad's checks KL(π_old ‖ π_new).

    .venv/bin/python -m benchmarks.step_parity --peer-python PEERS/bin/python \\
        --envs Hopper-v5,Walker2d-v5,Swimmer-v5,Ant-v5,HalfCheetah-v5 --seeds 0-1 --out bench-out/step-parity
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from benchmarks._harness import run_child
from benchmarks.zoo_rerun import ZOO_HYPERPARAMETERS, zoo_model

# sb3-contrib's names of the actor's tensors → natgrad's Actor (net.0, net.2: hidden layers; net.4: mean)
ACTOR_KEYS = {"mlp_extractor.policy_net.0.weight": "net.0.weight", "mlp_extractor.policy_net.0.bias": "net.0.bias",
              "mlp_extractor.policy_net.2.weight": "net.2.weight", "mlp_extractor.policy_net.2.bias": "net.2.bias",
              "action_net.weight": "net.4.weight", "action_net.bias": "net.4.bias", "log_std": "log_std"}


def worker(env_id: str, seed: int, warmup: int, out: str) -> None:
    """sb3-contrib's TRPO: warm up, collect one batch, record the policy before and after one update."""
    import torch

    model = zoo_model("trpo", env_id, seed)
    if warmup:
        model.learn(warmup)
    batch = model.n_steps * model.n_envs
    _, callback = model._setup_learn(batch, None, reset_num_timesteps=False)
    callback.on_training_start(locals(), globals())
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    buffer = model.rollout_buffer
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.train()
    after = model.policy.state_dict()
    torch.save({
        "obs": torch.as_tensor(buffer.observations.reshape(batch, -1)),
        "actions": torch.as_tensor(buffer.actions.reshape(batch, -1)),
        "log_probs": torch.as_tensor(buffer.log_probs.reshape(batch)),
        "advantages": torch.as_tensor(buffer.advantages.reshape(batch)),
        "before": {ours: before[theirs] for theirs, ours in ACTOR_KEYS.items()},
        "after": {ours: after[theirs] for theirs, ours in ACTOR_KEYS.items()},
        "settings": {"target_kl": model.target_kl, "cg_max_steps": model.cg_max_steps,
                     "cg_damping": model.cg_damping},
    }, out)


def compare(rec: dict, scale: bool) -> dict[str, float]:
    """natgrad's TRPO step on the recorded batch (``rec``, the worker's file), from the recorded weights,
    against sb3-contrib's;
    with ``scale``, δ and damping multiplied by the number of action dimensions."""
    import numpy as np
    import torch
    from gymnasium import spaces

    from natgrad.config import NaturalConfig
    from natgrad.natural.step import natural_step
    from natgrad.objectives.gae import normalize
    from natgrad.objectives.losses import surrogate
    from natgrad.policy.actor_critic import Actor

    obs, actions, log_probs_old = rec["obs"].float(), rec["actions"].float(), rec["log_probs"].float()
    adv = normalize(rec["advantages"].float())
    box = spaces.Box(-np.inf, np.inf, (obs.shape[1],))
    actor = Actor(box, spaces.Box(-1.0, 1.0, (actions.shape[1],)))
    s = rec["settings"]
    d = actions.shape[1] if scale else 1
    cfg = NaturalConfig(max_kl=d * s["target_kl"], cg_iters=s["cg_max_steps"], damping=d * s["cg_damping"],
                        backtrack_coef=0.8)

    def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([state[k].reshape(-1).float() for k in ACTOR_KEYS.values()])

    def load(state: dict[str, torch.Tensor]) -> None:
        actor.load_state_dict({k: v.float() for k, v in state.items()})

    def kl_and_gain(state: dict[str, torch.Tensor]) -> tuple[float, float]:
        load(state)
        with torch.no_grad():
            new = actor(obs)
            gain = surrogate(new.log_prob(actions), log_probs_old, adv) - surrogate(log_probs_old, log_probs_old, adv)
            return float(old.kl(new).mean()), float(gain)

    load(rec["before"])
    with torch.no_grad():
        old = actor(obs)
    step = natural_step(actor, obs, actions, log_probs_old, adv, cfg, line_search=True)
    ours = {k: v.detach().clone() for k, v in actor.state_dict().items()}
    d_ours, d_theirs = flat(ours) - flat(rec["before"]), flat(rec["after"]) - flat(rec["before"])
    kl_ours, gain_ours = kl_and_gain(ours)
    kl_theirs, gain_theirs = kl_and_gain(rec["after"])
    norm = float(d_theirs.norm())
    return {
        "rel_diff": float((d_ours - d_theirs).norm()) / norm if norm > 0 else math.nan,
        "cosine": float(torch.nn.functional.cosine_similarity(d_ours, d_theirs, dim=0)) if norm > 0 else math.nan,
        "norm_natgrad": float(d_ours.norm()), "norm_sb3": norm,
        "kl_natgrad": kl_ours, "kl_sb3": kl_theirs, "gain_natgrad": gain_ours, "gain_sb3": gain_theirs,
        "backtracks_natgrad": step.backtracks, "max_kl": cfg.max_kl, "damping": cfg.damping,
    }


def _key(row: dict) -> tuple:
    return row["env"], row["seed"], row["scaled"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", help="python of the venv with sb3-contrib")
    parser.add_argument("--envs", default="Hopper-v5")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--warmup", type=int, default=0, help="steps sb3-contrib trains before the recorded update")
    parser.add_argument("--out", type=Path, default=Path("bench-out/step-parity"))
    args = parser.parse_args()
    import torch

    from natgrad.tools.bench import parse_seeds

    if not args.peer_python:
        parser.error("--peer-python is required: the python of a venv with sb3-contrib installed")
    for env_id in args.envs.split(","):
        if env_id not in ZOO_HYPERPARAMETERS["trpo"]:
            parser.error(f"no zoo TRPO hyperparameters for {env_id}: known envs are "
                         f"{', '.join(ZOO_HYPERPARAMETERS['trpo'])}")
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    print("| env | seed | warm-up steps | natgrad's δ, damping | rel. diff of Δθ | cosine | ‖Δθ‖ natgrad / sb3 "
          "| KL natgrad / sb3 | surrogate gain natgrad / sb3 | natgrad backtracks |\n" + "|---" * 10 + "|")
    for env_id in args.envs.split(","):
        for seed in parse_seeds(args.seeds):
            path = args.out / f"{env_id}-s{seed}-w{args.warmup}.pt"
            if not path.exists():  # sb3-contrib's side, in the peers' environment
                run_child(args.peer_python, worker, env_id=env_id, seed=seed, warmup=args.warmup, out=str(path))
            rec = torch.load(path)
            for scale in (False, True):
                r = {"env": env_id, "seed": seed, "warmup": args.warmup, "scaled": scale, **compare(rec, scale)}
                rows.append(r)
                print(f"| {env_id} | {seed} | {args.warmup:,} | {'× d' if scale else 'as written'}: "
                      f"{r['max_kl']:g}, {r['damping']:g} | {r['rel_diff']:.2e} | {r['cosine']:.6f} "
                      f"| {r['norm_natgrad']:.4f} / {r['norm_sb3']:.4f} | {r['kl_natgrad']:.5f} / {r['kl_sb3']:.5f} "
                      f"| {r['gain_natgrad']:.5f} / {r['gain_sb3']:.5f} | {r['backtracks_natgrad']} |", flush=True)
    # one JSON per warm-up, accumulating across calls: a row is replaced only by the same (env, seed, scaling)
    path = args.out / f"parity-w{args.warmup}.json"
    kept = {_key(r): r for r in (json.loads(path.read_text()) if path.exists() else [])}
    kept.update({_key(r): r for r in rows})
    path.write_text(json.dumps(list(kept.values()), indent=2) + "\n")


if __name__ == "__main__":
    main()
