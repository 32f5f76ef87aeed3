"""The loop every language-model update shares: draw prompts, sample G completions each, reward them, take
group-relative advantages, update, measure; and saving and loading the policy."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from natgrad.errors import NatgradError
from natgrad.lm.config import LMConfig
from natgrad.lm.losses import group_advantages, k3, masked_mean, token_kl, token_log_probs
from natgrad.lm.prompts import PromptSource, RewardFunc, columns, encode, prompt_of, reward_weights, total_reward
from natgrad.lm.sampling import Rollout, completion_logits, generate

FORMAT = "natgrad-lm"
"""The ``format`` entry of a saved policy file."""


@dataclass(frozen=True)
class Batch:
    """One update's data: the rollout, its rewards and advantages, and the frozen models' token log-probs."""

    rollout: Rollout
    rewards: Tensor
    """(B,) float64: Σ_k w_k r_k per completion"""
    advantages: Tensor
    """(B,) group-relative, in the model's dtype"""
    logits_old: Tensor
    """(B, T, V) π_old's logits / temperature, no graph"""
    ref_log_probs: Tensor
    """(B, T) log π_ref of the sampled tokens"""

    @property
    def mask(self) -> Tensor:
        """(B, T) 1.0 on generated tokens."""
        return self.rollout.completion_mask.to(self.logits_old.dtype)

    @property
    def log_probs_old(self) -> Tensor:
        """(B, T) log π_old of the sampled tokens."""
        return token_log_probs(self.logits_old, self.rollout.completion_ids)


class LMAlgorithm:
    """A policy-optimization method for a causal language model: ``learn`` returns self; ``metrics`` holds one
    dict per update. The model runs in eval mode (no dropout), so that π is one fixed function of θ."""

    name: ClassVar[str]
    config_cls: ClassVar[type[LMConfig]]

    def __init__(self, model: nn.Module, prompts: Sequence[Any] | Iterable[Any], reward_funcs: RewardFunc |
                 Sequence[RewardFunc], ref_model: nn.Module | None = None, tokenizer: Any = None,
                 **config: Any) -> None:
        """``ref_model``: the frozen reference of the KL penalty and metric (None: a copy of ``model`` now)."""
        self.config = self.config_cls.from_dict(config)
        self.model, self.tokenizer = model.eval(), tokenizer
        self.reward_funcs = list(reward_funcs) if isinstance(reward_funcs, Sequence) else [reward_funcs]
        self.weights = reward_weights(self.reward_funcs, self.config.reward_weights)
        self.ref_model = (copy.deepcopy(model) if ref_model is None else ref_model).eval().requires_grad_(False)
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise NatgradError("the model has no parameter with requires_grad: unfreeze what the update should train")
        self.prompts = PromptSource(prompts, self.config.seed)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.eos = eos_ids(self.config.eos_token_id, tokenizer, model)
        self.num_samples, self.metrics, self.last_completions = 0, [], []
        self._setup()

    def _setup(self) -> None:
        """Build what the update keeps between batches (an optimizer)."""

    def _update(self, batch: Batch) -> dict[str, float]:
        """Move θ on one batch; the update's own metrics."""
        raise NotImplementedError

    def _adapt(self, kl: float) -> None:
        """React to the mean token KL(π_old ‖ π_θ) the update reached (GRPO-KL adapts its β)."""

    def learn(self, total_samples: int | None = None, steps: int | None = None,
              callback: Callable[[LMAlgorithm, dict[str, float]], object] | None = None) -> LMAlgorithm:
        """Train for ``total_samples`` completions (rounded up to whole updates) or ``steps`` updates.
        ``callback(self, metrics)`` after each update."""
        if (total_samples is None) == (steps is None):
            raise NatgradError("learn takes total_samples (completions) or steps (updates), one of them")
        per = self.config.samples_per_update
        updates = steps if steps is not None else math.ceil(total_samples / per)
        for _ in range(int(updates)):
            start = time.perf_counter()
            batch = self.collect()
            metrics = {**self._update(batch), **self._batch_metrics(batch)}
            self._adapt(metrics["policy/kl"])
            self.num_samples += per
            metrics.update({"time/steps": float(self.num_samples), "time/update_seconds": time.perf_counter() - start})
            self.metrics.append(metrics)
            if callback is not None:
                callback(self, metrics)
        return self

    def collect(self) -> Batch:
        """Sample G completions for each of the next prompts, reward them, and score them under π_old and π_ref."""
        cfg = self.config
        items = [item for item in self.prompts.take(cfg.prompts_per_update) for _ in range(cfg.num_generations)]
        rollout = generate(self.model, [encode(prompt_of(i), self.tokenizer) for i in items],
                           max_new_tokens=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p,
                           eos=self.eos, generator=self.generator)
        completions = [self._completion(ids, n) for ids, n in
                       zip(rollout.completion_ids.tolist(), rollout.completion_mask.sum(-1).long().tolist())]
        rewards = total_reward(self.reward_funcs, self.weights, [prompt_of(i) for i in items], completions,
                               columns(items))
        self.last_completions = list(zip(rewards.tolist(), rollout.completion_mask.sum(-1).tolist()))
        with torch.no_grad():
            logits_old = completion_logits(self.model, rollout, cfg.temperature)
            ref = token_log_probs(completion_logits(self.ref_model, rollout, cfg.temperature),
                                  rollout.completion_ids)
        advantages = group_advantages(rewards, cfg.num_generations, cfg.scale_rewards).to(logits_old)
        return Batch(rollout, rewards, advantages, logits_old, ref)

    def _completion(self, ids: list[int], length: int) -> Any:
        """A completion as the reward functions see it: without EOS and padding, decoded when a tokenizer can."""
        ids = [t for t in ids[:length] if t not in self.eos]
        return self.tokenizer.decode(ids) if hasattr(self.tokenizer, "decode") else ids

    def _batch_metrics(self, batch: Batch) -> dict[str, float]:
        """Rewards (and success, when every reward is 0 or 1), completion length, KL to the reference (k3), and the
        exact KL(π_old ‖ π_θ) per token this update reached: mean and max over generated tokens."""
        r, mask = batch.rewards, batch.mask
        with torch.no_grad():
            kl = token_kl(batch.logits_old, completion_logits(self.model, batch.rollout, self.config.temperature))
        binary = bool(((r == 0) | (r == 1)).all())
        return {"rollout/reward_mean": float(r.mean()), "rollout/reward_std": float(r.std()),
                "rollout/success": float(r.mean()) if binary else math.nan,
                "rollout/completion_length": float(mask.sum(-1).mean()),
                "policy/kl_ref": float(masked_mean(k3(batch.log_probs_old, batch.ref_log_probs), mask)),
                "policy/kl": float(masked_mean(kl, mask)), "policy/kl_max": float((kl * mask).max())}

    def save(self, path: str | Path) -> Path:
        """Write the policy's state dict, the config and the progress to ``path`` (``torch.save`` of tensors and plain
        values only, which ``load`` reads with ``weights_only=True``: no code runs)."""
        state = {"format": FORMAT, "algo": self.name, "config": self.config.to_dict(), "num_samples": self.num_samples,
                 "model": self.model.state_dict(), "extra": self._extra_state()}
        torch.save(state, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path, model: nn.Module, prompts: Sequence[Any] | Iterable[Any],
             reward_funcs: RewardFunc | Sequence[RewardFunc], ref_model: nn.Module | None = None,
             tokenizer: Any = None) -> LMAlgorithm:
        """The algorithm saved at ``path``, its policy loaded into ``model`` (built by the caller, as it was saved);
        training goes on from there. Without ``ref_model``, the loaded policy is the reference."""
        state = read_policy(path)
        if state["algo"] != cls.name:
            raise NatgradError(f"{path} holds a {state['algo']} run, not {cls.name}: load it with its own class")
        model.load_state_dict(state["model"])
        algo = cls(model, prompts, reward_funcs, ref_model, tokenizer, **state["config"])
        algo.num_samples = state["num_samples"]
        algo._load_extra_state(state["extra"])
        return algo

    def _extra_state(self) -> dict[str, Any]:
        """What the update keeps between batches, for ``save`` (tensors and plain values)."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore ``_extra_state``."""


def read_policy(path: str | Path) -> dict[str, Any]:
    """A saved policy file's contents, read without running code; one line naming the fix if it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NatgradError(f"no policy file at {path}: pass a file written by save()") from None
    except Exception as e:  # any unreadable file gets the same one line
        raise NatgradError(f"cannot read {path} as a natgrad language-model policy ({type(e).__name__}): pass a "
                           "file written by save()") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise NatgradError(f"{path} is not a natgrad language-model policy: pass a file written by save()")
    return state


def load_policy(path: str | Path, model: nn.Module) -> nn.Module:
    """Load a saved policy's weights into ``model`` (built as it was saved) and return it, e.g. to sample from."""
    model.load_state_dict(read_policy(path)["model"])
    return model


def eos_ids(eos_token_id: int | None, tokenizer: Any, model: nn.Module) -> frozenset[int]:
    """The ids that end a completion: the config's, else the tokenizer's, else the model config's (a list too)."""
    for found in (eos_token_id, getattr(tokenizer, "eos_token_id", None),
                  getattr(getattr(model, "config", None), "eos_token_id", None)):
        if found is not None:
            return frozenset([found] if isinstance(found, int) else found)
    return frozenset()
