"""Where a model's rollouts run (``Sampling``), and what a sampler reads of the model it samples for (``Learner``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from gymnasium.vector import VectorEnv

from natgrad.config import Config
from natgrad.errors import NatgradError
from natgrad.policy.actor_critic import Actor
from natgrad.rollouts.envs import EnvSource
from natgrad.rollouts.normalization import ObsNormalizer, RewardScaler


@dataclass(frozen=True)
class Sampling:
    """Where rollouts run: in this process, or on Ray workers. Not saved in checkpoints."""

    workers: int = 1
    """rollout workers sharing the n_envs envs; 1 without ray_address: this process"""
    ray_address: str | None = None
    """Ray cluster: "auto", "HOST:PORT", "local"; None: this machine's, else a new one"""
    worker_cpus: float = 1.0
    """CPUs Ray reserves for each worker (fractions allowed)"""

    def __post_init__(self) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise NatgradError(f"invalid --workers {self.workers!r}: must be an integer >= 1 (1: sample locally)")
        if not (self.worker_cpus > 0 and math.isfinite(self.worker_cpus)):
            raise NatgradError(f"invalid --worker-cpus {self.worker_cpus!r}: must be > 0, e.g. 1 or 0.5")

    @property
    def uses_ray(self) -> bool:
        """Whether rollouts run on Ray workers."""
        return self.workers > 1 or self.ray_address is not None

    def check(self, n_envs: int) -> Sampling:
        """Refuse more workers than envs to share among them; return self."""
        if self.workers > n_envs:
            raise NatgradError(
                f"--workers {self.workers} needs at least {self.workers} envs to share, got n_envs={n_envs}: "
                f"--set n_envs={self.workers} (or more), or fewer workers"
            )
        return self


class Learner(Protocol):
    """What a sampler reads of the model it samples for (an ``Algorithm``)."""

    env: VectorEnv
    env_source: EnvSource
    config: Config
    actor: Actor
    obs_normalizer: ObsNormalizer
    reward_scaler: RewardScaler
    seed: int
    num_timesteps: int
    sampling: Sampling


def split_envs(n_envs: int, workers: int) -> list[int]:
    """Envs per worker, as even as possible, the larger shares first: (5, 2) → [3, 2]."""
    return [n_envs // workers + (k < n_envs % workers) for k in range(workers)]
