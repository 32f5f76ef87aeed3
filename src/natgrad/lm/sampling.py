"""Completions of a causal language model: left-padded prompts, the sampling loop, and scoring at the same positions.

A policy is any causal LM called as ``model(input_ids=…, attention_mask=…, position_ids=…)`` that returns logits
(B, L, V) or an output with ``.logits``: a ``transformers`` ``PreTrainedModel`` or a plain ``nn.Module``. Prompts of
different lengths are left-padded; every token's position is the number of real tokens before it, computed from the
attention mask, in sampling and in scoring alike, so each token is scored at the position it was sampled at (models
with learned positions, GPT-2's, otherwise score a left-padded prompt as if shifted).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from natgrad.policy.distributions import Categorical


@dataclass(frozen=True)
class Rollout:
    """B sequences, each a left-padded prompt and then its completion padded on the right after EOS."""

    input_ids: Tensor
    """(B, P + T) token ids (padding: any id, masked out)"""
    attention_mask: Tensor
    """(B, P + T) int64, 1 on real tokens: the prompt's and the completion's up to and with EOS"""
    prompt_length: int
    """P: the padded prompts' length; the completion occupies columns P…P+T−1"""

    @property
    def position_ids(self) -> Tensor:
        """Each token's position: the real tokens before it (padding gets 0)."""
        return position_ids(self.attention_mask)

    @property
    def completion_ids(self) -> Tensor:
        """(B, T) the sampled tokens."""
        return self.input_ids[:, self.prompt_length:]

    @property
    def completion_mask(self) -> Tensor:
        """(B, T) 1.0 on generated tokens (up to and with EOS), 0.0 on padding."""
        return self.attention_mask[:, self.prompt_length:].float()


def position_ids(attention_mask: Tensor) -> Tensor:
    """(B, L) positions from a (B, L) 0/1 mask: cumsum − 1 on real tokens, 0 on padding."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0) * attention_mask.long()


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """(ids, mask), each (B, P): the prompts right-aligned, P = the longest."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
    for i, p in enumerate(prompts):
        if len(p):
            ids[i, width - len(p):] = torch.as_tensor(list(p), dtype=torch.long, device=device)
            mask[i, width - len(p):] = 1
    return ids, mask


def logits_of(output: Any) -> Tensor:
    """The logits of a model's output: the tensor itself, ``.logits``, or the first of a tuple."""
    if isinstance(output, Tensor):
        return output
    return output.logits if hasattr(output, "logits") else output[0]


def padded_logits(model: nn.Module, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
    """(B, L, V) logits at every column of a left-padded batch. The model sees each row with its padding moved behind
    its real tokens (the real tokens in order from column 0), so no query of a real token meets padding before it
    and no position lacks a key to attend to; positions come from the mask; the logits go back to the columns."""
    order = torch.sort(1 - attention_mask, dim=1, stable=True).indices  # real tokens first, in their order
    ids, mask = input_ids.gather(1, order), attention_mask.gather(1, order)
    out = logits_of(model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)))
    return out.gather(1, order.argsort(dim=1).unsqueeze(-1).expand(-1, -1, out.shape[-1]))


def completion_logits(model: nn.Module, rollout: Rollout, temperature: float) -> Tensor:
    """(B, T, V) logits / temperature of π at each completion token, scored at the positions it was sampled at."""
    logits = padded_logits(model, rollout.input_ids, rollout.attention_mask)
    return logits[:, rollout.prompt_length - 1: -1] / temperature


def top_p_mask(logits: Tensor, top_p: float) -> Tensor | None:
    """The tokens kept by nucleus sampling (bool, like ``logits``): the most probable ones whose probabilities,
    before the last one added, sum to less than ``top_p``; None when ``top_p`` is 1 (all)."""
    if top_p >= 1.0:
        return None
    probs, order = torch.softmax(logits, dim=-1).sort(dim=-1, descending=True)
    keep_sorted = probs.cumsum(-1) - probs < top_p  # the first token is always kept
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def uses_cache(model: nn.Module) -> bool:
    """Whether the model takes ``past_key_values`` (then sampling feeds one token per step)."""
    return "past_key_values" in inspect.signature(model.forward).parameters


@torch.no_grad()
def generate(model: nn.Module, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float = 1.0,
             top_p: float = 1.0, eos: frozenset[int] = frozenset(), pad_id: int = 0,
             generator: torch.Generator | None = None) -> Rollout:
    """Sample one completion per prompt (repeat a prompt G times in ``prompts`` for G of them) from
    softmax(logits / temperature), nucleus-filtered by ``top_p``, until EOS or ``max_new_tokens``; after EOS,
    padding. With a KV cache when the model offers ``past_key_values``, else each step recomputes the sequence."""
    device = next(model.parameters()).device
    ids, mask = left_pad(prompts, pad_id, device)
    prompt_length, cache, past = ids.shape[1], uses_cache(model), None
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        if cache:  # left-padded, the new token fed alone, as Hugging Face models generate
            step = ids[:, -1:] if past is not None else ids
            out = model(input_ids=step, attention_mask=mask, position_ids=position_ids(mask)[:, -step.shape[1]:],
                        use_cache=True, past_key_values=past)
            logits, past = logits_of(out)[:, -1], out.past_key_values
        else:
            logits = padded_logits(model, ids, mask)[:, -1]
        logits = logits.float() / temperature
        token = Categorical(logits, top_p_mask(logits, top_p)).sample(generator)
        token = torch.where(done, pad_id, token)
        ids = torch.cat([ids, token[:, None]], dim=1)
        mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
        done = done | torch.isin(token, torch.tensor(sorted(eos), dtype=torch.long, device=device))
        if bool(done.all()):
            break
    return Rollout(ids, mask, prompt_length)
