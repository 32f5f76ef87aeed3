"""TRL's GRPOTrainer on the tasks of ``benchmarks.lm_tasks``: the same model, warm-start weights, prompts, reward,
completions per update, learning rate and budget as natgrad's GRPO, for the success curve and the wall time beside
it.

Runs in a virtual environment with trl and without natgrad (``python -m benchmarks.lm_tasks --peer-python …``
starts it through ``benchmarks._harness``). TRL's settings made equal to natgrad's: ``bf16=False`` (GRPOConfig
would otherwise run bf16 on a CPU), one optimizer step per generation batch of ``prompts_per_update ×
num_generations`` completions, a constant learning rate (TRL decays it linearly by default), no checkpoints; the
rest at TRL's defaults (beta=0, num_iterations=1, loss_type="dapo", scale_rewards="group", AdamW without weight
decay, max_grad_norm=1). The model is a Llama (rotary positions): TRL's log-prob pass gives no ``position_ids``,
which only a relative-position model shrugs off.
"""

from __future__ import annotations

import math
import tempfile
import time
from typing import Any

from benchmarks import lm_tasks


def run_trl(task: str, seed: int, samples: int, weights: str, learning_rate: float) -> dict[str, Any]:
    """One GRPOTrainer run from the warm start: the success and seconds per update, and the wall time of
    ``train``; the same keys as ``lm_tasks.run_natgrad``."""
    import datasets
    import torch
    import trl

    torch.set_num_threads(1)
    cfg = lm_tasks.SETTINGS
    per_update = cfg["prompts_per_update"] * cfg["num_generations"]
    with tempfile.TemporaryDirectory() as out:
        args = trl.GRPOConfig(
            output_dir=out, bf16=False, use_cpu=True, seed=seed, learning_rate=learning_rate,
            lr_scheduler_type="constant", per_device_train_batch_size=per_update, gradient_accumulation_steps=1,
            steps_per_generation=1, num_generations=cfg["num_generations"],
            max_completion_length=cfg["max_completion_length"], temperature=cfg["temperature"],
            max_steps=math.ceil(samples / per_update), logging_steps=1, save_strategy="no", report_to="none",
            disable_tqdm=True)
        trainer = trl.GRPOTrainer(model=lm_tasks.warm_model(task, seed, weights), reward_funcs=lm_tasks.exact_match,
                                  args=args, train_dataset=datasets.Dataset.from_list(lm_tasks.prompts(task)),
                                  processing_class=lm_tasks.tokenizer())
        start = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - start
    logs = [row for row in trainer.state.log_history if "reward" in row]
    return {"task": task, "method": "trl-grpo", "seed": seed, "wall": wall, "delta": None,
            "success": [row["reward"] for row in logs],
            "samples": [float(per_update * (i + 1)) for i in range(len(logs))],
            "kl": [], "kl_max": [], "kl_ref": [], "update_seconds": [row.get("step_time", math.nan) for row in logs],
            "versions": {m.__name__: m.__version__ for m in (trl, torch, datasets)}}
