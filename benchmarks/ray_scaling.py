"""Steps/s of TRPO with the local sampler against 1, 2 and 4 Ray rollout workers, and Ray's cost per update.

Each measurement runs in its own child process with a fresh local Ray instance (``--cpus`` CPUs, each
worker reserving cpus/K). One update warms up (Ray start and worker start-up are reported apart);
then ``--updates`` updates are timed from the learn loop's own metrics. The fixed overhead of a
sampler per update is the median time of collecting one step per env (broadcast of the weights and
statistics, one step, the shares back). The configurations take turns within each repeat, so load
from other jobs on the machine falls on all of them alike; medians over repeats. Prints a markdown
table; writes JSON.

The local sampler is measured twice: as users run it, and in a process that has started Ray without
using it. On a machine shared with other jobs the second gets a different CPU share from the
scheduler (Linux autogroups): same CPU seconds, other wall time. It is the fair baseline for the
Ray rows, which all run in such a process.

    python -m benchmarks.ray_scaling --envs Hopper-v5,CartPole-v1 --workers 1,2,4 --repeats 3 \
        --out bench-out/ray_scaling.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks._harness import medians, record, refuse_existing, take_turns


def child(env_id: str, workers: int, with_ray: bool, cpus: float, n_envs: int, n_steps: int, updates: int) -> dict:
    """One configuration: ``workers`` = 0 is the local sampler, in a process with Ray started or not."""
    import torch

    import natgrad

    torch.set_num_threads(1)
    sampling = {}
    t = time.perf_counter()
    if with_ray:
        import ray

        ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
    if workers:
        sampling = {"workers": workers, "ray_address": "auto", "worker_cpus": cpus / workers}
    ray_start = time.perf_counter() - t
    model = natgrad.TRPO(env_id, seed=0, n_envs=n_envs, n_steps=n_steps, **sampling)
    t = time.perf_counter()
    model.learn(model.config.batch_size)  # warm-up: starts the workers
    first_update = time.perf_counter() - t
    rows = []
    model.learn(updates * model.config.batch_size, callback=lambda m, metrics: rows.append(metrics))
    fixed = []
    for _ in range(20):
        t = time.perf_counter()
        model._sampler.collect(1)
        fixed.append(time.perf_counter() - t)
    model.close()
    rollout = statistics.median(r["time/rollout_seconds"] for r in rows)
    update = statistics.median(r["time/update_seconds"] for r in rows)
    batch = model.config.batch_size
    return {"batch": batch, "rollout_s": rollout, "update_s": update, "steps_per_s": batch / (rollout + update),
            "rollout_steps_per_s": batch / rollout, "overhead_s": statistics.median(fixed),
            "ray_start_s": ray_start, "first_update_s": first_update}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", default="Hopper-v5,CartPole-v1")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated Ray worker counts")
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs of the local Ray instance")
    parser.add_argument("--n-envs", type=int, default=8)
    parser.add_argument("--n-steps", type=int, default=256)
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench-out/ray_scaling.json"))
    args = parser.parse_args()
    refuse_existing(args.out)
    configs = [("local", 0, False), ("local, Ray started", 0, True)]
    configs += [(f"Ray, {w} worker{'s' * (w > 1)} × {args.cpus / w:g} CPU", w, True)
                for w in map(int, args.workers.split(","))]
    results: dict = {**record(), "rows": []}
    print("| env | sampler | steps/s | rollout steps/s | rollout s/update | update s/update | overhead s/update "
          "| Ray start s | first update s |\n|---|---|---|---|---|---|---|---|---|", flush=True)
    for env_id in args.envs.split(","):
        runs = take_turns({name: (sys.executable, child, dict(env_id=env_id, workers=workers, with_ray=with_ray,
                                                              cpus=args.cpus, n_envs=args.n_envs,
                                                              n_steps=args.n_steps, updates=args.updates))
                           for name, workers, with_ray in configs}, args.repeats)
        for name, workers, _ in configs:
            row = medians(runs[name])
            row.update(env=env_id, sampler=name, workers=workers, repeats=args.repeats,
                       steps_per_s_each_repeat=[r["steps_per_s"] for r in runs[name]])
            results["rows"].append(row)
            print(f"| {env_id} | {name} | {row['steps_per_s']:.0f} | {row['rollout_steps_per_s']:.0f} "
                  f"| {row['rollout_s']:.3f} | {row['update_s']:.3f} | {row['overhead_s'] * 1e3:.1f} ms "
                  f"| {row['ray_start_s']:.1f} | {row['first_update_s']:.1f} |", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
