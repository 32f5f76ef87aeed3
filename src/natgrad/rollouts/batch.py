"""The batches an update works on: a rollout of T steps of N envs (``RolloutBatch``), and the same with GAE
advantages and critic targets (``UpdateBatch``), both time-major.

Episodes that end by termination and by truncation are kept apart: the batch records ``terminated``
and ``ended = terminated | truncated`` per step, and the real last observation of every truncated
episode, so that the critic's value of a truncated episode's last state can be bootstrapped while a
terminal state gets none. ``first`` marks the observations that start an episode: a recurrent network
resets its state there, so no state leaks from one episode into the next, and the batch keeps the
actor's state entering every step so that any stretch of it can be re-run from where it began.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from itertools import accumulate
from typing import Any

import torch
from torch import Tensor

from natgrad.policy.actor_critic import PolicyInputs
from natgrad.policy.spaces import Obs, tree_cat, tree_map


@dataclass
class RolloutBatch:
    """T steps of N envs; every tensor is (T, N, ...) unless noted."""

    obs: Obs
    """observations the policy acted on (the vector normalized), (T, N, ...) per leaf"""
    actions: Tensor
    """unclipped actions, (T, N) or (T, N, A)"""
    log_probs: Tensor
    """log π_old(a|s)"""
    rewards: Tensor
    """rewards used for learning (scaled when reward scaling is on)"""
    terminated: Tensor
    """bool: s_{t+1} is terminal, V(s_{t+1}) = 0"""
    ended: Tensor
    """bool: terminated or truncated; GAE does not cross this step"""
    first: Tensor
    """bool: obs[t] starts an episode"""
    masks: Tensor | None
    """bool legal actions (T, N, n), or None"""
    actor_states: Tensor | None
    """the actor's recurrent state entering step t, before first[t] resets it (T, N, S)"""
    truncated_at: Tensor
    """(K, 2) int64: (t, n) of every step that ended its episode by truncation only"""
    final_obs: Obs
    """(K, ...): the real s_{t+1} of those steps, normalized"""
    last_obs: Obs
    """(N, ...): the observation after the last step"""
    episode_returns: list[float]
    """raw (unnormalized) returns of episodes finished here"""
    episode_lengths: list[int]

    @property
    def size(self) -> int:
        """Env steps in the batch: T · N."""
        return self.rewards.numel()

    def to(self, device: torch.device | str) -> RolloutBatch:
        """The batch with every tensor on ``device`` (a Ray worker's, collected on the CPU, for a learner on a GPU)."""
        moved = {f.name: _apply(lambda x: x.to(device), getattr(self, f.name)) for f in fields(self)
                 if f.name not in ("episode_returns", "episode_lengths")}
        return replace(self, **moved)


@dataclass(frozen=True)
class UpdateBatch:
    """What an update consumes: a rollout with GAE advantages and critic targets, every tensor (T, N, ...).

    ``sequences(L)`` cuts it into pieces of L steps side by side, (L, M); ``columns`` picks some of them.
    A network without a recurrent core reads single states: ``sequences(1)``, (1, T·N).
    """

    obs: Obs
    actions: Tensor
    log_probs: Tensor
    """log π_old(a|s)"""
    advantages: Tensor
    """Â, not normalized"""
    returns: Tensor
    """R = Â + V(s), the critic's targets"""
    values: Tensor
    """V(s) when the batch was collected"""
    first: Tensor
    masks: Tensor | None
    actor_states: Tensor | None
    """entering each step (T, N, S)"""
    critic_states: Tensor | None
    critic_end: Tensor | None = None
    """the critic's state after the last step (N, S): where the next batch starts"""

    @property
    def size(self) -> int:
        """States in the batch."""
        return self.returns.numel()

    @property
    def actor_inputs(self) -> PolicyInputs:
        """What the actor reads to re-run every sequence from its stored start."""
        return PolicyInputs(self.obs, self.masks, self.first, first_state(self.actor_states))

    @property
    def critic_inputs(self) -> PolicyInputs:
        """What the critic reads: the observations, episode starts and its own stored state (no mask)."""
        return PolicyInputs(self.obs, None, self.first, first_state(self.critic_states))

    def sequences(self, length: int) -> UpdateBatch:
        """Pieces of ``length`` steps (which must divide T) as columns: (T, N, …) → (L, T/L · N, …), column
        k·N + n holding steps kL … kL + L − 1 of env n; each piece starts from its stored states."""
        steps = self.returns.shape[0]
        if length == steps:
            return self
        cut = lambda x: x.reshape(steps // length, length, *x.shape[1:]).transpose(0, 1).reshape(
            length, -1, *x.shape[2:])
        return self._map(cut)

    def columns(self, index: Any) -> UpdateBatch:
        """The pieces selected by ``index`` (an index tensor or a slice)."""
        return self._map(lambda x: x[:, index])

    def _map(self, fn) -> UpdateBatch:
        """``fn`` on every per-step field; the pieces it makes have no state after them (critic_end None)."""
        per_step = (f.name for f in fields(self) if f.name != "critic_end")
        return UpdateBatch(**{name: _apply(fn, getattr(self, name)) for name in per_step})


def _apply(fn, x: Any) -> Any:
    return None if x is None else tree_map(fn, x)

def first_state(states: Tensor | None) -> Tensor | None:
    """The state entering the first step of per-step ``states`` (None without a recurrent core)."""
    return None if states is None else states[0]


def concat_envs(batches: list[RolloutBatch]) -> RolloutBatch:
    """Batches of the same T side by side along the env axis: (T, N_1), (T, N_2), … → (T, N_1 + N_2 + …).

    Each env keeps its own column, so GAE still runs along each env's own time axis.
    """
    along_envs = lambda name, dim=1: None if getattr(batches[0], name) is None else tree_cat(
        [getattr(b, name) for b in batches], dim)
    offsets = [0, *accumulate(b.rewards.shape[1] for b in batches)]
    return RolloutBatch(
        obs=along_envs("obs"),
        actions=along_envs("actions"),
        log_probs=along_envs("log_probs"),
        rewards=along_envs("rewards"),
        terminated=along_envs("terminated"),
        ended=along_envs("ended"),
        first=along_envs("first"),
        masks=along_envs("masks"),
        actor_states=along_envs("actor_states"),
        truncated_at=torch.cat([b.truncated_at + torch.tensor([0, k], device=b.truncated_at.device)
                                for b, k in zip(batches, offsets)]),
        final_obs=along_envs("final_obs", dim=0),  # (K, ...), env indices shifted in truncated_at
        last_obs=along_envs("last_obs", dim=0),  # (N, ...)
        episode_returns=[r for b in batches for r in b.episode_returns],
        episode_lengths=[n for b in batches for n in b.episode_lengths],
    )
