"""Where a learner's batches come from: the Sampler interface, the local sampler, and the choice between them.

The local sampler steps the model's own vector env in this process (the default). With
``workers > 1`` or a ``ray_address``, ``natgrad.ray_sampler`` spreads the same ``n_envs``
envs over Ray actors; the batch keeps its size and layout, so every hyperparameter keeps
its meaning. Ray is imported only then.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import accumulate
from typing import TYPE_CHECKING, Protocol

import torch
from gymnasium import Space

from natgrad.config import Config
from natgrad.errors import NatgradError
from natgrad.normalization import ObsNormalizer, RewardScaler
from natgrad.policy import Actor
from natgrad.rollout import Collector, RolloutBatch
from natgrad.spaces import ObsLayout, tree_cat

if TYPE_CHECKING:
    from natgrad.algos.base import Algorithm


class Sampler(Protocol):
    """Hands the learner one batch of ``n_steps`` steps per env, collected with the current policy."""

    def collect(self, n_steps: int) -> RolloutBatch: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Sampling:
    """Where rollouts run: in this process, or on Ray workers. Not saved in checkpoints."""

    workers: int = 1  # rollout workers sharing the n_envs envs; 1 without ray_address: this process
    ray_address: str | None = None  # Ray cluster: "auto", "HOST:PORT", "local"; None: this machine's, else a new one
    worker_cpus: float = 1.0  # CPUs Ray reserves for each worker (fractions allowed)

    def __post_init__(self) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise NatgradError(f"invalid --workers {self.workers!r}: must be an integer >= 1 (1: sample locally)")
        if not (self.worker_cpus > 0 and math.isfinite(self.worker_cpus)):
            raise NatgradError(f"invalid --worker-cpus {self.worker_cpus!r}: must be > 0, e.g. 1 or 0.5")

    @property
    def uses_ray(self) -> bool:
        return self.workers > 1 or self.ray_address is not None

    def check(self, n_envs: int) -> Sampling:
        """Refuse more workers than envs to share among them; return self."""
        if self.workers > n_envs:
            raise NatgradError(
                f"--workers {self.workers} needs at least {self.workers} envs to share, got n_envs={n_envs}: "
                f"--set n_envs={self.workers} (or more), or fewer workers"
            )
        return self


class LocalSampler:
    """The default: one Collector over the model's own vector env, in this process."""

    def __init__(self, model: Algorithm) -> None:
        self.collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler,
                                   seed=model.seed + model.num_timesteps)

    def collect(self, n_steps: int) -> RolloutBatch:
        return self.collector.collect(n_steps)

    def close(self) -> None:
        """Nothing to release: the env belongs to the model."""


def rollout_parts(observation_space: Space, action_space: Space, n_envs: int, cfg: Config
                  ) -> tuple[Actor, ObsNormalizer, RewardScaler]:
    """What stepping ``n_envs`` envs of these spaces takes: a fresh actor, and observation and reward
    statistics for them (the observation statistics cover the vector part of the observations only)."""
    layout = ObsLayout(observation_space, cfg.image_channels)
    actor = Actor.from_config(layout, action_space, cfg)
    obs_normalizer = ObsNormalizer((layout.vector_size,), cfg.normalize_obs)
    return actor, obs_normalizer, RewardScaler(n_envs, cfg.gamma, cfg.normalize_reward)


def make_sampler(model: Algorithm) -> Sampler:
    """The sampler ``model.sampling`` asks for; Ray is connected (or started) only when it is needed."""
    if not model.sampling.uses_ray:
        return LocalSampler(model)
    from natgrad.ray_cluster import connect

    connect(model.sampling.ray_address)
    from natgrad.ray_sampler import RaySampler

    return RaySampler(model)


def split_envs(n_envs: int, workers: int) -> list[int]:
    """Envs per worker, as even as possible, the larger shares first: (5, 2) → [3, 2]."""
    return [n_envs // workers + (k < n_envs % workers) for k in range(workers)]


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
        truncated_at=torch.cat([b.truncated_at + torch.tensor([0, k]) for b, k in zip(batches, offsets)]),
        final_obs=along_envs("final_obs", dim=0),  # (K, ...), env indices shifted in truncated_at
        last_obs=along_envs("last_obs", dim=0),  # (N, ...)
        episode_returns=[r for b in batches for r in b.episode_returns],
        episode_lengths=[n for b in batches for n in b.episode_lengths],
    )
