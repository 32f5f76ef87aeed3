"""The language-model benchmark (``benchmarks.lm_tasks``, ``benchmarks.lm_trl``): its tasks answer right, its tokenizer
is one token per character, its warm start is the same for every method of a seed, its collapse rule, the peer's
module stays free of natgrad, and the whole benchmark runs end to end at a tiny budget."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

from benchmarks import _harness, lm_tasks  # noqa: E402


def test_each_task_rewards_exactly_the_right_answer() -> None:
    rng = random.Random(0)
    for _ in range(50):
        prompt, answer = lm_tasks.TASKS["reverse"].example(rng)
        assert prompt[0] == "R" and prompt[-1] == "=" and answer == "".join(reversed(prompt[1:-1]))
        prompt, answer = lm_tasks.TASKS["sort"].example(rng)
        assert answer == "".join(sorted(prompt[1:-1])) and len(answer) == 4
        prompt, answer = lm_tasks.TASKS["add"].example(rng)
        a, b = prompt[:-1].split("+")
        assert int(answer) == int(a) + int(b)
    rows = lm_tasks.prompts("sort", 3)
    assert rows == lm_tasks.prompts("sort", 3)  # the same prompts for every seed and method
    answers = [r["answer"] for r in rows]
    completions = [answers[0], answers[1] + "0", answers[2][::-1] if answers[2] != answers[2][::-1] else "x"]
    assert lm_tasks.exact_match([r["prompt"] for r in rows], completions, answers) == [1.0, 0.0, 0.0]


def test_the_tokenizer_is_one_token_per_character_and_decodes_back() -> None:
    tok = lm_tasks.tokenizer()
    ids = tok.encode("27+8=")
    assert ids == [lm_tasks.VOCAB.index(c) for c in "27+8="]
    assert tok.decode(ids) == "27+8=" and tok.eos_token_id == lm_tasks.EOS and tok.pad_token_id == lm_tasks.PAD
    assert tok.decode(ids + [lm_tasks.EOS], skip_special_tokens=True) == "27+8="


def test_the_warm_start_is_fitted_once_per_task_and_seed_and_is_deterministic(tmp_path: Path) -> None:
    import torch

    path = lm_tasks.warm_weights("add", 3, tmp_path, sft_steps=3)
    first = torch.load(path, weights_only=True)
    again = lm_tasks.warm_start("add", 3, steps=3).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert lm_tasks.warm_weights("add", 3, tmp_path, sft_steps=3) == path and len(list(tmp_path.iterdir())) == 1


def test_a_run_collapses_on_nan_or_when_its_success_stays_below_half_its_best() -> None:
    w = lm_tasks.WINDOW
    assert lm_tasks.collapsed([0.2] * w + [0.8] * w + [0.0] * 2 * w)  # the moving mean falls, and stays down
    assert not lm_tasks.collapsed([0.2] * w + [0.8] * w + [0.0] * w)  # not yet below half for `w` updates
    assert not lm_tasks.collapsed([0.2] * w + [0.8] * w + [0.0] * 2 * w + [0.8] * 3)  # recovered
    assert not lm_tasks.collapsed([0.1] * w + [0.3] * 2 * w)
    assert not lm_tasks.collapsed([0.0] * 3 * w)  # never learned: nothing to fall from
    assert lm_tasks.collapsed([0.5, float("nan"), 0.5])


def test_the_peer_modules_import_no_natgrad() -> None:
    code = ("import sys, benchmarks.lm_trl, benchmarks.lm_tasks; "
            "print(any(m.startswith('natgrad') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=_harness.ROOT,
                          env=_harness.child_environment())
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_the_benchmark_runs_end_to_end_at_a_tiny_budget(tmp_path: Path) -> None:
    out, png = tmp_path / "summary.json", tmp_path / "success.png"
    done = subprocess.run([sys.executable, "-m", "benchmarks.lm_tasks", "--tasks", "reverse", "--methods", "grpo,trpo",
                           "--seeds", "0", "--samples", "128", "--sft-steps", "2", "--runs", str(tmp_path / "runs"),
                           "--out", str(out), "--figure", str(png)], capture_output=True, text=True,
                          cwd=_harness.ROOT, env=_harness.child_environment())
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())
    rows = {r["method"]: r for r in summary["rows"]}
    assert set(rows) == {"grpo", "trpo"} and rows["grpo"]["samples"] == 128 and png.stat().st_size > 0
    assert 0 <= rows["grpo"]["success_final_mean"] <= 1 and rows["trpo"]["wall_median"] > 0
    assert rows["trpo"]["kl_max"] <= lm_tasks.DELTA * (1 + 1e-6)  # the trust region held
    assert "| reverse | trpo | 1 |" in done.stdout
