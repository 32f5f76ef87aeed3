"""Where do two commits' runs of one seed part, and why: the tool behind a moved results cell.

A seed's run is deterministic on one machine and one commit; a commit that changes the path a seed takes (a
different draw of the initial weights, another order of a sum) gives a new sample of a results cell without
changing what the code does. To tell such a commit from one that changes the algorithm:

- ``scan`` trains one seed for a few updates at ``--old`` and at every first-parent commit after it up to
  ``--new`` that changes ``src/``, and names each commit whose metrics differ from the one before it (the
  commits where the seed's path changes);
- ``pair`` trains at ``--old`` from that commit's own initial weights and at ``--new`` from the *same* weights:
  when the metrics then agree update for update, bit for bit, the commits between them changed nothing but the
  draw of the initial weights over that budget; otherwise it names the first update and the metrics that differ.

Each run is ``natgrad.<ALGO>(env, seed=SEED)`` at its shipped preset, ``learn(STEPS)`` in a fresh process on one
thread, the ``src/`` of its commit taken out with ``git archive`` under ``--cache`` (kept for later calls). The
per-update metrics compared are every one the commit logs but timings.

    python -m benchmarks.paths scan --old a582079 --new 3e3ea6b --env Ant-v5 --algo trpo --steps 10240
    python -m benchmarks.paths pair --old a582079 --new 3e3ea6b --env Ant-v5 --algo trpo --steps 1e6

The first lists one commit (``01c13ed``) for Ant-v5 TRPO seed 0; the second, from the same initial weights, parts at
the first truncated episode (its bootstrap observation is normalized at the batch's end since ``01c13ed``, at its
step before) and agrees bit for bit with that one line of ``01c13ed`` undone (docs/results/history.md).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks._harness import ROOT, run_child

TIMINGS = ("time/", "seconds", "steps_per_second")
"""metrics that are clock readings, not the run's path (``time/steps`` is kept: it counts steps)"""


def train(env: str, algo: str, steps: int, seed: int, init_in: str = "", init_out: str = "") -> dict[str, Any]:
    """(In the child, on the commit's code.) ``natgrad.<ALGO>(env, seed=seed)`` trained for ``steps``: its metrics
    after every update, timings left out. ``init_out``: first write the initial actor and critic weights there;
    ``init_in``: first load them from there."""
    os.environ["OMP_NUM_THREADS"] = "1"  # before torch loads its thread pool
    import torch

    import natgrad

    torch.set_num_threads(1)
    model = natgrad.ALGORITHMS[algo](env, seed=seed)
    if init_out:
        torch.save({"actor": model.actor.state_dict(), "critic": model.critic.state_dict()}, init_out)
    if init_in:
        weights = torch.load(init_in, weights_only=True)
        model.actor.load_state_dict(weights["actor"])
        model.critic.load_state_dict(weights["critic"])
    rows: list[dict[str, float]] = []

    def keep(_: Any, metrics: dict[str, Any]) -> bool:
        rows.append({k: float(v) for k, v in metrics.items() if k == "time/steps" or not any(t in k for t in TIMINGS)})
        return True

    model.learn(steps, callback=keep)
    return {"metrics": rows}


def first_difference(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, Any] | None:
    """The first update where two runs' metrics (those both log) are not equal to the bit: its index, steps and
    the differing values; None when they agree over every update both made."""
    for i, (x, y) in enumerate(zip(a, b)):
        differ = {k: [x[k], y[k]] for k in x if k in y and x[k] != y[k] and not (math.isnan(x[k]) and math.isnan(y[k]))}
        if differ:
            return {"update": i, "steps": x.get("time/steps"), "differ": differ}
    return None


def git(*args: str) -> str:
    """``git ARGS`` in the repository; its stdout."""
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def checkout(commit: str, cache: Path) -> Path:
    """``commit``'s ``src/`` under ``cache`` (``git archive``, once): a directory whose ``src`` goes on a run's
    ``PYTHONPATH``."""
    tree = cache / git("rev-parse", "--short=12", commit)
    if not tree.exists():
        part = tree.with_name(tree.name + ".part")
        part.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(part)], input=archive, check=True)
        part.rename(tree)
    return tree


def source_commits(old: str, new: str) -> list[str]:
    """The first-parent commits after ``old`` up to ``new`` that change ``src/``, oldest first."""
    commits = git("rev-list", "--first-parent", "--reverse", f"{old}..{new}").split()
    return [c for c in commits if subprocess.run(["git", "diff", "--quiet", f"{c}^1", c, "--", "src"],
                                                 cwd=ROOT).returncode]


def run_at(commit: str, cache: Path, **kwargs: Any) -> list[dict[str, float]]:
    """``train(**kwargs)`` on ``commit``'s code, in a fresh process: its per-update metrics."""
    try:
        return run_child(sys.executable, train, pythonpath=(str(checkout(commit, cache) / "src"),), **kwargs)["metrics"]
    except RuntimeError as e:
        raise SystemExit(f"error: the run at {commit} failed: {e}") from None


def describe(diff: dict[str, Any] | None, updates: int) -> str:
    """One line: where two runs part, or that they agree."""
    if diff is None:
        return f"the same, bit for bit, over {updates} updates"
    shown = ", ".join(f"{k} {a!r} vs {b!r}" for k, (a, b) in list(diff["differ"].items())[:3])
    return f"parts at update {diff['update']} ({diff['steps']:,.0f} steps): {shown}"


def scan(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each source commit from ``--old`` to ``--new``: whether its run parts from the previous commit's."""
    run = dict(env=args.env, algo=args.algo, steps=int(args.steps), seed=args.seed)
    rows, before = [], None
    for commit in [args.old, *source_commits(args.old, args.new)]:
        metrics = run_at(commit, args.cache, **run)
        diff = None if before is None else first_difference(before, metrics)
        line = "the start" if before is None else describe(diff, len(metrics))
        print(f"{commit[:12]}: {line}", flush=True)
        rows.append({"commit": commit, "parts": diff})
        before = metrics
    return rows


def pair(args: argparse.Namespace) -> dict[str, Any]:
    """``--old`` from its own initial weights, ``--new`` from the same ones: where (if anywhere) they part."""
    run = dict(env=args.env, algo=args.algo, steps=int(args.steps), seed=args.seed)
    weights = args.cache / f"init-{args.env}-{args.algo}-s{args.seed}-{args.old}.pt"
    old = run_at(args.old, args.cache, **run, init_out=str(weights))
    new = run_at(args.new, args.cache, **run, init_in=str(weights))
    diff = first_difference(old, new)
    print(f"{args.new[:12]} from {args.old[:12]}'s initial weights: {describe(diff, min(len(old), len(new)))}")
    return {"parts": diff, "updates": [len(old), len(new)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["scan", "pair"])
    parser.add_argument("--old", required=True, help="the earlier commit (the one a results cell was made at)")
    parser.add_argument("--new", default="HEAD", help="the later commit")
    parser.add_argument("--env", required=True)
    parser.add_argument("--algo", required=True, help="trpo, npg, ppo, ppo-kl, vpg, trpl (what both commits have)")
    parser.add_argument("--steps", type=float, default=10240, help="env steps per run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=ROOT / "bench-out" / "paths", help="work trees and weights")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args()
    args.old, args.new = git("rev-parse", args.old), git("rev-parse", args.new)
    result = {"mode": args.mode, "old": args.old, "new": args.new, "env": args.env, "algo": args.algo,
              "steps": int(args.steps), "seed": args.seed,
              "result": scan(args) if args.mode == "scan" else pair(args)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
