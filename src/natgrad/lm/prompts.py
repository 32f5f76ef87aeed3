"""Where prompts come from and what the completions earn.

Prompts: a list of token-id lists or of strings (with a tokenizer that has ``encode``), a ``datasets.Dataset``-like
sequence of rows ``{"prompt": …, other columns}``, or an iterator/generator of any of these items. A sequence is
drawn in a fresh random order each pass (seeded); an iterator is read in its own order.

Rewards: callables ``(prompts, completions, **columns) -> list[float]`` (TRL's ``reward_funcs``), one number per
completion, summed with ``reward_weights``. ``completions`` are strings when a tokenizer with ``decode`` is given, else
token-id lists, without EOS or padding; ``prompts`` are the items as given; the other columns of dict rows come as
keyword lists.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from natgrad.errors import NatgradError

RewardFunc = Callable[..., Sequence[float]]


class PromptSource:
    """Draws prompts, ``take(n)`` at a time: rows of a sequence in a seeded shuffled order, pass after pass, or the
    items of an iterator (a generator too) in order."""

    def __init__(self, prompts: Sequence[Any] | Iterable[Any], seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.rows = prompts if hasattr(prompts, "__getitem__") and hasattr(prompts, "__len__") else None
        self.stream: Iterator[Any] = iter(()) if self.rows is not None else iter(prompts)
        if self.rows is not None and len(self.rows) == 0:
            raise NatgradError("no prompts: pass a non-empty list of prompts (strings or token-id lists)")

    def take(self, n: int) -> list[Any]:
        """The next ``n`` prompt items."""
        items = []
        while len(items) < n:
            item = next(self.stream, _END)
            if item is _END:
                if self.rows is None:
                    raise NatgradError("the prompt generator ran out: pass one that yields as many prompts as "
                                       "the training asks for (e.g. an endless generator), or a list")
                order = torch.randperm(len(self.rows), generator=self.generator).tolist()
                self.stream = (self.rows[i] for i in order)
                continue
            items.append(item)
        return items


_END = object()


def prompt_of(item: Any) -> Any:
    """The prompt of a row: ``item["prompt"]`` for a mapping, else the item itself."""
    if isinstance(item, dict):
        if "prompt" not in item:
            raise NatgradError(f"a prompt row has no 'prompt' column (it has {sorted(item)}): name the prompt column "
                               "'prompt', as TRL's datasets do")
        return item["prompt"]
    return item


def encode(prompt: Any, tokenizer: Any) -> list[int]:
    """A prompt as token ids: a string through ``tokenizer.encode``, a sequence of ints as it is (at least one)."""
    ids = _token_ids(prompt, tokenizer)
    if not ids:
        raise NatgradError("an empty prompt: every prompt needs at least one token (e.g. a BOS token)")
    return ids


def _token_ids(prompt: Any, tokenizer: Any) -> list[int]:
    if isinstance(prompt, str):
        if tokenizer is None or not hasattr(tokenizer, "encode"):
            raise NatgradError("string prompts need a tokenizer: pass tokenizer=… with an encode method, or "
                               "token-id lists as prompts")
        return list(tokenizer.encode(prompt))
    if isinstance(prompt, Tensor):
        prompt = prompt.tolist()
    if not (isinstance(prompt, Sequence) and all(isinstance(t, numbers.Integral) for t in prompt)):
        raise NatgradError(f"cannot read the prompt {prompt!r:.60}: give a string (with a tokenizer) or a list of "
                           "token ids")
    return [int(t) for t in prompt]


def columns(items: Sequence[Any]) -> dict[str, list[Any]]:
    """The columns of dict rows other than ``prompt``, each a list over the rows (TRL passes them to rewards)."""
    if not items or not isinstance(items[0], dict):
        return {}
    return {key: [item.get(key) for item in items] for key in items[0] if key != "prompt"}


def total_reward(reward_funcs: Sequence[RewardFunc], weights: Sequence[float], prompts: list[Any],
                 completions: list[Any], extra: dict[str, list[Any]]) -> Tensor:
    """r_i = Σ_k w_k r_k(prompt_i, completion_i) in float64, each r_k checked to give one finite number per
    completion."""
    total = torch.zeros(len(completions), dtype=torch.float64)
    for func, weight in zip(reward_funcs, weights):
        values = list(func(prompts, completions, **extra))
        name = getattr(func, "__name__", repr(func))
        if len(values) != len(completions) or not all(isinstance(v, numbers.Real) and math.isfinite(v)
                                                      for v in values):
            raise NatgradError(f"reward function {name} must return one finite number per completion "
                               f"({len(completions)}), got {values!r:.80}")
        total += weight * torch.tensor([float(v) for v in values], dtype=torch.float64)
    return total


def reward_weights(reward_funcs: Sequence[RewardFunc], weights: Sequence[float]) -> tuple[float, ...]:
    """The weights of the reward functions: 1 each when none are given, else one per function."""
    if not reward_funcs or not all(callable(f) for f in reward_funcs):
        raise NatgradError("reward_funcs must be one or more callables (prompts, completions) -> list[float]")
    if not weights:
        return (1.0,) * len(reward_funcs)
    if len(weights) != len(reward_funcs):
        raise NatgradError(f"{len(weights)} reward_weights for {len(reward_funcs)} reward functions: give one "
                           "weight per function")
    return tuple(float(w) for w in weights)
