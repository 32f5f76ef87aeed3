"""Shared against separate actor-critic networks: return, time, update cost, and the KL each update really reached.

Reads ``natgrad bench`` grids, one per design, all on the same envs, seeds and budget:

- separate networks (the default);
- a shared trunk (``--set share_trunk=true``) with TRPO's critic step ``natural`` (the default: a natural-gradient
  trunk step within ε_v = ``critic_kl`` more KL), ``head`` (the critic moves its output layer only) and ``adam``
  (the critic's Adam steps on the whole trunk after the policy step, as peers do: nothing bounds the KL);
- PPO with a shared trunk (its usual combined loss).

Per (env, design): the final deterministic evaluation (mean ± std over seeds), steps/s and the median seconds
of an update (from metrics.csv), and the KL of the whole update (``policy/kl_update``: KL(π_old ‖ π_new) after the
policy step and the critic's step together) against its bound: median, maximum, and the share of updates above
the trust region δ. It also times one update of each design on the same batch, one after the other, so that the
update costs compare on equal terms (medians over repeats).

    natgrad bench --algos trpo --envs Hopper-v5 --seeds 0-2 --steps 1e6 --jobs 2 --out bench-out/shared/separate
    natgrad bench --algos trpo --envs Hopper-v5 --seeds 0-2 --steps 1e6 --jobs 2 --set share_trunk=true \\
        --set critic_step=natural --out bench-out/shared/trpo-natural          # likewise head, adam; and PPO
    python -m benchmarks.shared_trunk --grid separate=bench-out/shared/separate \\
        --grid natural=bench-out/shared/trpo-natural ... --cost-env Hopper-v5 --out bench-out/shared/summary.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any


def kl_of_updates(run_dir: Path) -> tuple[list[float], list[float], list[bool]]:
    """Each update's whole-update KL (``policy/kl_update``, else the policy step's ``policy/kl``) and its δ, and
    whether the critic's natural trunk step was accepted (for the updates that log it)."""
    from natgrad.runs.directories import joined_rows

    kls, deltas, accepted = [], [], []
    for row in joined_rows(run_dir, "metrics.csv"):
        kl = row.get("policy/kl_update") or row.get("policy/kl")
        if kl not in (None, ""):
            kls.append(float(kl))
            deltas.append(float(row.get("policy/max_kl") or "nan"))
        if row.get("critic/trunk_step_accepted") not in (None, ""):
            accepted.append(float(row["critic/trunk_step_accepted"]) > 0)
    return kls, deltas, accepted


def grid_rows(label: str, root: Path) -> list[dict[str, Any]]:
    from natgrad.tools.bench import RunSpec
    from natgrad.tools.report import find_runs

    runs = find_runs(root)
    rows = []
    for env_id, algo in sorted({(r.env_id, r.algo) for r in runs}):
        group = [r for r in runs if (r.env_id, r.algo) == (env_id, algo)]
        kls, above, accepted = [], [], []
        for r in group:
            run_kls, deltas, run_accepted = kl_of_updates(RunSpec(r.algo, r.env_id, r.seed).path(root))
            kls += run_kls
            accepted += run_accepted
            above += [k > d * (1 + 1e-6) for k, d in zip(run_kls, deltas) if d == d]
        evals = [r.final_eval for r in group]
        rows.append({
            "env": env_id, "algo": algo, "design": label, "seeds": [r.seed for r in group],
            "final_eval_mean": statistics.mean(evals), "final_eval_std": statistics.pstdev(evals),
            "final_eval_per_seed": evals, "steps_per_second": statistics.median(r.steps_per_second for r in group),
            "update_seconds": statistics.median(r.update_seconds for r in group),
            "wall_hours": statistics.median(r.wall_seconds / 3600 for r in group),
            "kl_update_median": statistics.median(kls) if kls else float("nan"),
            "kl_update_max": max(kls) if kls else float("nan"),
            "share_above_delta": sum(above) / len(above) if above else float("nan"),
            "share_trunk_steps_accepted": sum(accepted) / len(accepted) if accepted else float("nan"),
        })
    return rows


def update_cost(env_id: str, overrides: dict[str, Any], repeats: int = 5) -> list[dict[str, Any]]:
    """Seconds of one TRPO update (policy and critic) per design on one collected batch, the designs taking turns."""
    import torch

    import natgrad
    from natgrad.rollouts.advantages import update_batch
    from natgrad.rollouts.sampler import make_sampler

    torch.set_num_threads(1)
    shared = {step: {"share_trunk": True, "critic_step": step} for step in ("natural", "head", "adam")}
    designs = {"separate": {}, **shared}
    models = {name: natgrad.TRPO(env_id, seed=0, **overrides, **kw) for name, kw in designs.items()}
    batches = {name: make_sampler(m).collect(m.config.n_steps) for name, m in models.items()}
    seconds: dict[str, list[float]] = {name: [] for name in designs}
    for _ in range(repeats):
        for name, model in models.items():
            state = {k: v.clone() for k, v in model.actor.state_dict().items()}
            critic = {k: v.clone() for k, v in model.critic.state_dict().items()}
            data = update_batch(batches[name], model.critic, model.config.gamma, model.config.gae_lambda)
            start = time.perf_counter()
            model._update(data, 0.0, lambda: data)
            seconds[name].append(time.perf_counter() - start)
            model.actor.load_state_dict(state), model.critic.load_state_dict(critic)
    for model in models.values():
        model.close()
    return [{"env": env_id, "design": name, "update_seconds": statistics.median(s)} for name, s in seconds.items()]


def percent(x: float) -> str:
    """``x`` per cent, or a dash where there is nothing to count."""
    return "—" if x != x else f"{x:.0f}%"


def markdown(rows: list[dict[str, Any]], costs: list[dict[str, Any]]) -> str:
    lines = ["| env | algo | design | seeds | final eval, mean ± std | per seed | steps/s | update, s | "
             "whole-update KL: median | max | updates above δ | natural trunk steps accepted |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        each = ", ".join(f"{x:.1f}" for x in r["final_eval_per_seed"])
        above, taken = 100 * r["share_above_delta"], 100 * r.get("share_trunk_steps_accepted", float("nan"))
        lines.append(f"| {r['env']} | {r['algo']} | {r['design']} | {len(r['seeds'])} | {r['final_eval_mean']:.1f} ± "
                     f"{r['final_eval_std']:.1f} | {each} | {r['steps_per_second']:.0f} | {r['update_seconds']:.2f} "
                     f"| {r['kl_update_median']:.4f} | {r['kl_update_max']:.4f} | {percent(above)} "
                     f"| {percent(taken)} |")
    if costs:
        lines += ["", "| env | design | one TRPO update, s (same batch, median) |", "|---|---|---|"]
        lines += [f"| {c['env']} | {c['design']} | {c['update_seconds']:.3f} |" for c in costs]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", action="append", default=[], help="LABEL=DIR of a natgrad bench grid, repeatable")
    parser.add_argument("--cost-env", action="append", default=[], help="env to time one update of each design on")
    parser.add_argument("--cost-set", action="append", default=[], help="KEY=VALUE for the timed models, repeatable")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench-out/shared/summary.json"))
    args = parser.parse_args()
    from natgrad.cli import parse_overrides

    grids = [spec.split("=", 1) for spec in args.grid]
    rows = [row for label, root in grids for row in grid_rows(label, Path(root))]
    overrides = parse_overrides(args.cost_set)
    costs = [c for env_id in args.cost_env for c in update_cost(env_id, overrides, args.repeats)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "update_cost": costs}, indent=2) + "\n")
    print(markdown(rows, costs))


if __name__ == "__main__":
    main()
