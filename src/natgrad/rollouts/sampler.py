"""Where a learner's batches come from: the Sampler interface, the local sampler, and the choice between them.

The local sampler steps the model's own vector env in this process (the default). With
``workers > 1`` or a ``ray_address``, ``natgrad.rollouts.ray_sampler`` spreads the same ``n_envs``
envs over Ray actors; the batch keeps its size and layout, so every hyperparameter keeps
its meaning. Ray is imported only then.
"""

from __future__ import annotations

from typing import Protocol

from natgrad.rollouts.batch import RolloutBatch
from natgrad.rollouts.collector import Collector
from natgrad.rollouts.workers import Learner


class Sampler(Protocol):
    """Hands the learner one batch of ``n_steps`` steps per env, collected with the current policy."""

    def collect(self, n_steps: int) -> RolloutBatch:
        """The next batch: ``n_steps`` steps of every env."""
        ...

    def close(self) -> None:
        """Release what the sampler holds (workers, processes)."""
        ...


class LocalSampler:
    """The default: one Collector over the model's own vector env, in this process."""

    def __init__(self, model: Learner) -> None:
        self.collector = Collector(model.env, model.actor, model.obs_normalizer, model.reward_scaler,
                                   seed=model.seed + model.num_timesteps)

    def collect(self, n_steps: int) -> RolloutBatch:
        """``n_steps`` steps of every env, in this process."""
        return self.collector.collect(n_steps)

    def close(self) -> None:
        """Nothing to release: the env belongs to the model."""


def make_sampler(model: Learner) -> Sampler:
    """The sampler ``model.sampling`` asks for; Ray is connected (or started) only when it is needed."""
    if not model.sampling.uses_ray:
        return LocalSampler(model)
    from natgrad.rollouts.ray_cluster import connect

    connect(model.sampling.ray_address)
    from natgrad.rollouts.ray_sampler import RaySampler

    return RaySampler(model)
