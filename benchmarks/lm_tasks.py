"""GRPO (one pass, with a KL, four passes), GRPO-KL, TRPO and NPG on checkable token tasks, TRL's GRPOTrainer beside.

A task is a prompt generator and an exact-match reward: ``reverse`` (``R314=`` → ``413``), ``sort`` (``S3141=`` →
``1134``) and ``add`` (``27+8=`` → ``35``). The policy is a tiny Llama (rotary positions, random init) over a
character vocabulary, first fitted by teacher forcing on a few dozen examples of the task (the warm start: it answers
in the right format but rarely right), cached per (task, seed) so that every method starts from the same weights.
Then each method trains on the same prompts, budget and seeds; runs take turns across methods per seed, one
process and one torch thread at a time.

Per (task, method): the success rate (exact match, sampled completions) against completions sampled, its final value
(mean of the last 10% of updates), the per-update KL(π_old ‖ π_new) per token (mean and max, against δ), the KL to
the warm start, the runs that collapse, and the wall time. A run collapses when a metric is NaN, or when its success
(moving mean over ``WINDOW`` updates) ends below half its best and stays there for the last ``WINDOW`` updates.

    python -m benchmarks.lm_tasks --runs bench-out/lm --peer-python PEERS/bin/python \\
        --out docs/benchmarks/lm/summary.json --figure docs/benchmarks/lm/success.png
    python -m benchmarks.lm_tasks --out docs/benchmarks/lm/summary.json --render

The tasks also serve the command line, from the repository root:
``python -m natgrad lm train --task benchmarks.lm_tasks:reverse --set max_completion_length=6``.

This module imports only the standard library at the top (torch and transformers inside the functions, natgrad
only in ``run_natgrad``): the TRL side (``benchmarks.lm_trl``, in a virtual environment without natgrad) reuses
its tasks, tokenizer, model and warm start.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import _harness

SPECIAL = ["<pad>", "<eos>", "<unk>"]
VOCAB = SPECIAL + list("0123456789RS+=")
"""The character vocabulary: 17 tokens."""
PAD, EOS = 0, 1
MODEL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
             max_position_embeddings=32)
"""The Llama's size: 0.13M parameters, small so that 5 seeds × 7 methods × 3 tasks fit about 45 CPU minutes."""
WINDOW = 5
"""Updates in the moving mean of the success that the collapse rule reads."""
PROMPT_POOL = 2000
"""Prompts per task that training draws from (fixed: the same for every seed and method)."""

SETTINGS = dict(num_generations=8, prompts_per_update=8, max_completion_length=6, temperature=1.0)
"""What every method shares, natgrad's and TRL's: 64 completions per update."""
LEARNING_RATE = 1e-4
DELTA = 0.02
"""δ: TRPO's and NPG's bound on the mean token KL per update, and GRPO-KL's d_targ."""
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "grpo": ("grpo", dict(learning_rate=LEARNING_RATE)),  # TRL's defaults: beta=0, num_iterations=1
    "grpo-beta": ("grpo", dict(learning_rate=LEARNING_RATE, beta=0.04)),
    "grpo-mu4": ("grpo", dict(learning_rate=LEARNING_RATE, num_iterations=4)),  # passes 2-4 meet the clip
    "grpo-kl": ("grpo-kl", dict(learning_rate=LEARNING_RATE, num_iterations=4, kl_target=DELTA)),
    "trpo": ("trpo", dict(max_kl=DELTA)),
    "trpo-0.005": ("trpo", dict(max_kl=DELTA / 4)),
    "npg": ("npg", dict(max_kl=DELTA)),
    "trpo-damped": ("trpo", dict(max_kl=DELTA, damping=100.0)),  # damping from the tuning seeds 100-102
}
"""Each method: natgrad's update and its settings beyond ``SETTINGS``. GRPO-KL takes 4 passes per batch: with one,
its penalty's gradient (zero at θ_old) does nothing and it is GRPO; ``grpo-mu4`` is GRPO with the same 4 passes,
where the clip acts."""
TUNING: dict[str, tuple[str, dict[str, Any]]] = {
    **{f"trpo-delta{d:g}": ("trpo", dict(max_kl=d)) for d in (0.05, 0.1, 0.2)},
    **{f"trpo-damping{lam:g}": ("trpo", dict(max_kl=DELTA, damping=lam)) for lam in (1.0, 10.0, 1000.0, 10000.0)},
    "trpo-damped-delta0.05": ("trpo", dict(max_kl=0.05, damping=100.0)),
    **{f"{name}-ppu{n}": (METHODS[name][0], {**METHODS[name][1], "prompts_per_update": n})
       for name, n in [(m, 32) for m in ("grpo", "grpo-mu4", "trpo", "trpo-damped")] + [("grpo", 64), ("trpo", 64)]},
}
"""The variants tried on the tuning seeds (``--methods`` takes them; the default grid does not run them): TRPO with
larger trust regions, with damping from ``trpo``'s 0.1 to 10⁴ (which chose ``trpo-damped``'s 100),
and, for GRPO and TRPO alike, 32 (and 64) prompts per update instead of 8 (``-ppu32``, ``-ppu64``: as many
completions in 4 or 8 times fewer, larger updates)."""


@dataclass(frozen=True)
class Task:
    """A checkable task: ``example(rng)`` draws (prompt, answer); a completion earns 1 when it equals the answer."""

    name: str
    example: Callable[[random.Random], tuple[str, str]]


def _digits(rng: random.Random, n: int = 4) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _reverse(rng: random.Random) -> tuple[str, str]:
    s = _digits(rng, 3)
    return f"R{s}=", s[::-1]


def _sort(rng: random.Random) -> tuple[str, str]:
    s = _digits(rng)
    return f"S{s}=", "".join(sorted(s))


def _add(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(10, 99), rng.randint(0, 9)
    return f"{a}+{b}=", str(a + b)


TASKS = {t.name: t for t in (Task("reverse", _reverse), Task("sort", _sort), Task("add", _add))}


def prompts(task: str, n: int = PROMPT_POOL, seed: int = 0) -> list[dict[str, str]]:
    """``n`` rows ``{"prompt", "answer"}`` of ``task`` (TRL's dataset rows; natgrad takes them as they are)."""
    rng = random.Random(f"{task}-{seed}")
    return [dict(zip(("prompt", "answer"), TASKS[task].example(rng))) for _ in range(n)]


def exact_match(prompts: list[Any], completions: list[str], answer: list[str], **_: Any) -> list[float]:
    """1.0 where the completion is the answer, else 0.0 (TRL's reward signature: the dataset's ``answer`` column)."""
    return [float(c == a) for c, a in zip(completions, answer)]


def tokenizer() -> Any:
    """A character-level ``PreTrainedTokenizerFast`` over ``VOCAB`` built in code (a WordLevel model, one token per
    character), left padding, ``<eos>`` and ``<pad>``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   padding_side="left")


def model(seed: int) -> Any:
    """The tiny Llama of ``MODEL``, initialized from ``seed``."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.LlamaConfig(vocab_size=len(VOCAB), pad_token_id=PAD, eos_token_id=EOS, bos_token_id=None,
                                      **MODEL)
    return transformers.LlamaForCausalLM(config)


def warm_start(task: str, seed: int, examples: int = 64, steps: int = 200, lr: float = 3e-3) -> Any:
    """``model(seed)`` fitted by teacher forcing (cross-entropy on the answer and EOS) on ``examples`` rows of
    ``task`` drawn from ``seed``, ``steps`` full-batch Adam steps: it learns the format, not the task."""
    import torch

    net, tok = model(seed), tokenizer()
    rows = prompts(task, examples, seed=1000 + seed)
    heads = [tok.encode(r["prompt"]) for r in rows]
    seqs = [h + tok.encode(r["answer"]) + [EOS] for h, r in zip(heads, rows)]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [PAD] * (width - len(s)) for s in seqs])
    target = ids.clone()
    for i, (h, s) in enumerate(zip(heads, seqs)):  # learn the answer and EOS, not the prompt or the padding
        target[i, :len(h)] = -100
        target[i, len(s):] = -100
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        loss = net(input_ids=ids, labels=target).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval()


def warm_weights(task: str, seed: int, cache: Path, sft_steps: int = 200) -> Path:
    """The file of the warm start of (task, seed), fitted once and then read from ``cache``."""
    import torch

    path = cache / f"warm-{task}-s{seed}-sft{sft_steps}.pt"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        torch.save(warm_start(task, seed, steps=sft_steps).state_dict(), path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
    return path


def warm_model(task: str, seed: int, weights: str) -> Any:
    """``model(seed)`` with the warm-start weights of ``weights`` (both sides load the same file)."""
    import torch

    net = model(seed)
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


@dataclass
class LMTask:
    """What ``natgrad lm train --task`` takes: the model, prompt rows, reward and tokenizer."""

    model: Any
    prompts: list[dict[str, str]]
    reward_funcs: Callable[..., list[float]]
    tokenizer: Any


def make_task(name: str, seed: int = 0) -> LMTask:
    """``name``'s warm-started model (fitted now, seconds), prompts, exact-match reward and tokenizer."""
    return LMTask(warm_start(name, seed), prompts(name), exact_match, tokenizer())


def reverse() -> LMTask:
    """Reverse three digits (``natgrad lm train --task benchmarks.lm_tasks:reverse``)."""
    return make_task("reverse")


def sort() -> LMTask:
    """Sort four digits."""
    return make_task("sort")


def add() -> LMTask:
    """Add a one-digit number to a two-digit one."""
    return make_task("add")


def run_natgrad(task: str, method: str, seed: int, samples: int, weights: str) -> dict[str, Any]:
    """One natgrad run of ``method`` from the warm start: per update the success, KLs and seconds, and the wall
    time of ``learn`` (sampling, rewards and updates)."""
    import time

    import torch

    from natgrad.lm import ALGORITHMS

    torch.set_num_threads(1)
    algo_name, extra = (METHODS | TUNING)[method]
    algo = ALGORITHMS[algo_name](warm_model(task, seed, weights), prompts(task), exact_match, tokenizer=tokenizer(),
                                 seed=seed, **{**SETTINGS, **extra})
    start = time.perf_counter()
    algo.learn(samples)
    wall = time.perf_counter() - start
    keys = {"success": "rollout/success", "kl": "policy/kl", "kl_max": "policy/kl_max", "kl_ref": "policy/kl_ref",
            "samples": "time/steps", "update_seconds": "time/update_seconds"}
    return {"task": task, "method": method, "seed": seed, "wall": wall, "delta": extra.get("max_kl"),
            **{k: [m.get(v, math.nan) for m in algo.metrics] for k, v in keys.items()}}


def moving_mean(xs: list[float], window: int = WINDOW) -> list[float]:
    """The mean of each value and the ``window − 1`` before it (fewer at the start)."""
    return [statistics.fmean(xs[max(0, i - window + 1):i + 1]) for i in range(len(xs))]


def collapsed(success: list[float], window: int = WINDOW) -> bool:
    """NaN anywhere, or the moving-mean success below half its best for each of the last ``window`` updates."""
    if any(math.isnan(x) for x in success):
        return True
    smooth = moving_mean(success, window)
    return max(smooth) > 0 and all(x < 0.5 * max(smooth) for x in smooth[-window:])


def final(xs: list[float]) -> float:
    """The mean of the last 10% of updates (at least one)."""
    return statistics.fmean(xs[-max(1, math.ceil(0.1 * len(xs))):])


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the table: success (first, final, best), KLs, collapse share and wall time over the seeds."""
    finals = [final(r["success"]) for r in runs]
    kls = [k for r in runs for k in r["kl"] if not math.isnan(k)]
    kl_maxes = [k for r in runs for k in r["kl_max"] if not math.isnan(k)]
    delta = runs[0].get("delta")
    row = {"task": runs[0]["task"], "method": runs[0]["method"], "seeds": [r["seed"] for r in runs],
           "samples": runs[0]["samples"][-1], "success_first": statistics.fmean(r["success"][0] for r in runs),
           "success_final_mean": statistics.fmean(finals), "success_final_std": statistics.pstdev(finals),
           "success_final_per_seed": finals, "collapsed": sum(collapsed(r["success"]) for r in runs) / len(runs),
           "wall_median": statistics.median(r["wall"] for r in runs)}
    if kls:
        row.update(kl_mean=statistics.fmean(kls), kl_max=max(kls), kl_token_max=max(kl_maxes),
                   kl_ref_final=statistics.fmean(final(r["kl_ref"]) for r in runs),
                   above_delta=sum(k > delta * (1 + 1e-6) for k in kls) / len(kls) if delta else None)
    return row


def beside_peer(groups: dict[tuple[str, str], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per task TRL ran: natgrad's GRPO on TRL's seeds beside TRL's GRPOTrainer (success, wall time)."""
    rows = []
    for (task, method), peer in groups.items():
        ours = {r["seed"]: r for r in groups.get((task, "grpo"), [])}
        pairs = [(p, ours[p["seed"]]) for p in peer if p["seed"] in ours]
        if method == "trl-grpo" and pairs:
            rows.append({"task": task, "natgrad": summarize([o for _, o in pairs]),
                         "trl": summarize([p for p, _ in pairs]),
                         "wall_ratio": statistics.median(p["wall"] / o["wall"] for p, o in pairs)})
    return rows


def curves(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The moving-mean success against samples: mean and std over the seeds at each update."""
    smooth = [moving_mean(r["success"]) for r in runs]
    per_update = list(zip(*smooth))
    return {"samples": runs[0]["samples"][:len(per_update)], "mean": [statistics.fmean(x) for x in per_update],
            "std": [statistics.pstdev(x) for x in per_update]}


def figure(summary: dict[str, Any], path: Path) -> None:
    """Success against completions sampled, one panel per task, mean ± std over seeds per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(c["task"] for c in summary["curves"]))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for c in (c for c in summary["curves"] if c["task"] == task):
            lo = [m - s for m, s in zip(c["mean"], c["std"])]
            hi = [m + s for m, s in zip(c["mean"], c["std"])]
            ax.plot(c["samples"], c["mean"], label=c["method"])
            ax.fill_between(c["samples"], lo, hi, alpha=0.08)
        ax.set(title=task, xlabel="completions sampled", ylabel=f"success (moving mean of {WINDOW} updates)",
               ylim=(0, 1))
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def markdown(summary: dict[str, Any]) -> str:
    """The results table, and natgrad's GRPO beside TRL's on the same seeds."""
    lines = ["| task | method | seeds | success: first | final, mean ± std | per seed | collapsed | per-update KL: "
             "mean | max | largest token KL | updates above δ | KL to warm start, final | wall, s (median) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        each = ", ".join(f"{x:.2f}" for x in r["success_final_per_seed"])
        above = "—" if r.get("above_delta") is None else f"{100 * r['above_delta']:.0f}%"
        kls = (f"{r['kl_mean']:.4f} | {r['kl_max']:.4f} | {r['kl_token_max']:.3f} | {above} | {r['kl_ref_final']:.3f}"
               if "kl_mean" in r else "— | — | — | — | —")
        lines.append(f"| {r['task']} | {r['method']} | {len(r['seeds'])} | {r['success_first']:.2f} | "
                     f"{r['success_final_mean']:.2f} ± {r['success_final_std']:.2f} | {each} | "
                     f"{100 * r['collapsed']:.0f}% | {kls} | {r['wall_median']:.1f} |")
    lines += ["", "| task | seeds | success final: natgrad GRPO | TRL GRPOTrainer | wall, s: natgrad | TRL | "
              "TRL / natgrad (median per seed) |", "|---|---|---|---|---|---|---|"]
    for p in summary.get("beside_peer", []):
        ours, peer = p["natgrad"], p["trl"]
        lines.append(f"| {p['task']} | {len(peer['seeds'])} | {ours['success_final_mean']:.2f} ± "
                     f"{ours['success_final_std']:.2f} | {peer['success_final_mean']:.2f} ± "
                     f"{peer['success_final_std']:.2f} | {ours['wall_median']:.1f} | {peer['wall_median']:.1f} | "
                     f"{p['wall_ratio']:.2f} |")
    return "\n".join(lines) + "\n"


def seeds(text: str) -> list[int]:
    """``0-4`` or ``0,2,5``."""
    if "-" in text:
        lo, hi = text.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def run_grid(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (task, seed, method) run not on disk yet, then the TRL runs; seed by seed, the methods taking turns."""
    from benchmarks import lm_trl

    paths = []
    for seed in seeds(args.seeds):
        for task in args.tasks:
            weights = str(warm_weights(task, seed, args.runs / "warm", args.sft_steps))
            jobs = {args.runs / task / method / f"s{seed}.json":
                    (run_natgrad, dict(task=task, method=method, seed=seed, samples=args.samples, weights=weights))
                    for method in args.methods}
            _harness.run_jobs(sys.executable, jobs, parallel=1)
            paths += list(jobs)
            if args.peer_python and task in args.trl_tasks and seed in seeds(args.trl_seeds):
                trl = {args.runs / task / "trl-grpo" / f"s{seed}.json":
                       (lm_trl.run_trl, dict(task=task, seed=seed, samples=args.samples, weights=weights,
                                             learning_rate=LEARNING_RATE))}
                _harness.run_jobs(args.peer_python, trl, parallel=1)
                paths += list(trl)
    return [json.loads(p.read_text()) for p in paths if p.exists()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _harness.add_output_options(parser)
    parser.add_argument("--runs", type=Path, default=Path("bench-out/lm"), help="per-run results (resumable)")
    parser.add_argument("--figure", type=Path, help="PNG of success against completions")
    parser.add_argument("--tasks", type=lambda s: s.split(","), default=list(TASKS))
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS),
                        help=f"of {', '.join(METHODS | TUNING)}; default: {', '.join(METHODS)}")
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--samples", type=int, default=5120, help="completions per run")
    parser.add_argument("--sft-steps", type=int, default=200, help="teacher-forcing steps of the warm start")
    parser.add_argument("--peer-python", help="Python of a virtual environment with trl (no natgrad)")
    parser.add_argument("--trl-tasks", type=lambda s: s.split(","), default=["reverse"])
    parser.add_argument("--trl-seeds", default="0-2")
    args = parser.parse_args()
    if _harness.rendered(args, markdown):
        return
    unknown = [m for m in args.methods if m not in METHODS | TUNING]
    if unknown:
        parser.error(f"unknown method {', '.join(unknown)}: choose from {', '.join(METHODS | TUNING)}")
    _harness.refuse_existing(args.out)
    runs = run_grid(args)
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["task"], r["method"]), []).append(r)
    head = _harness.record()
    if args.peer_python:  # a path of this machine: the result names the peers' Python by a placeholder
        head["command"] = head["command"].replace(args.peer_python, "PEERS/bin/python")
    methods = {m: (METHODS | TUNING)[m] for m in args.methods}
    summary = {**head, "settings": SETTINGS, "methods": methods, "model": MODEL, "samples": args.samples,
               "sft_steps": args.sft_steps, "window": WINDOW, "versions": _harness.versions("torch", "transformers"),
               "peer_versions": next((r["versions"] for r in runs if "versions" in r), {}),
               "rows": [summarize(g) for g in groups.values()],
               "beside_peer": beside_peer(groups),
               "curves": [{"task": t, "method": m, **curves(g)} for (t, m), g in groups.items()]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _harness.write_json(args.out, summary)
    if args.figure:
        figure(summary, args.figure)
    print(markdown(summary))


if __name__ == "__main__":
    main()
