"""Summarize a tree of natgrad run directories ROOT/<env>/<algo>/s<seed> as a markdown table.

Per (env, algo), across seeds: the final training return (mean of the last 100 training
episodes, as logged in the last row of metrics.csv), the deterministic evaluation (eval.json),
steps/s over the whole run and the median seconds per update.

    python benchmarks/summarize_runs.py ROOT [--json OUT.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
from pathlib import Path


def run_summary(run: Path) -> dict:
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    wall = sum(float(r["time/rollout_seconds"]) + float(r["time/update_seconds"]) for r in rows)
    return {
        "train_return": float(rows[-1]["rollout/ep_return_mean"]),
        "eval_return": json.loads((run / "eval.json").read_text())["mean"],
        "steps": float(rows[-1]["time/steps"]),
        "steps_per_second": float(rows[-1]["time/steps"]) / wall,
        "seconds_per_update": statistics.median(float(r["time/update_seconds"]) for r in rows),
    }


def mean_std(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.1f} ± {statistics.pstdev(xs):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    table = {}
    for eval_file in sorted(args.root.glob("*/*/s*/eval.json")):
        run = eval_file.parent
        table.setdefault((run.parent.parent.name, run.parent.name), []).append(run_summary(run))
    print("| env | algo | seeds | steps | train return | eval return (deterministic) | steps/s | s/update |")
    print("|---|---|---|---|---|---|---|---|")
    for (env, algo), runs in table.items():
        print(f"| {env} | {algo} | {len(runs)} | {runs[0]['steps']:.0f} | "
              f"{mean_std([r['train_return'] for r in runs])} | {mean_std([r['eval_return'] for r in runs])} | "
              f"{statistics.median(r['steps_per_second'] for r in runs):.0f} | "
              f"{statistics.median(r['seconds_per_update'] for r in runs):.3f} |")
    if args.json:
        args.json.write_text(json.dumps({f"{e}/{a}": r for (e, a), r in table.items()}, indent=2))


if __name__ == "__main__":
    main()
