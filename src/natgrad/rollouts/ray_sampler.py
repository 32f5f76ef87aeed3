"""Rollouts on Ray: K actor workers share the ``n_envs`` envs; the driver assembles one batch per update.

Per update the driver puts the policy weights and its normalizer statistics in the object
store once (a numbered *version*); every worker loads them, collects ``n_steps`` steps with
its own envs through the same ``Collector`` the local sampler uses, and sends back its share
with the version it used. The shares go side by side along the env axis, so the learner gets
the local sampler's ``RolloutBatch`` layout and GAE still runs per env.

Statistics: a worker normalizes with the driver's statistics, updated step by step with what
it sees (as the local sampler does), and sends back where they ended. The driver recovers each
worker's new data from its start and end, takes worker 0's end (the driver's plus its data) and
merges in every other worker's new data by Chan's parallel rule: the statistics of all the data,
as if one sampler had seen it, and with one worker exactly the local sampler's, bit for bit.

Seeds: worker k's envs get the seeds the local vector env would give the same envs (base +
global env index); a restarted worker takes the next unused block, so it replays nothing.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from itertools import accumulate

import ray
import torch
from ray.exceptions import RayActorError, RayTaskError
from torch import Tensor

from natgrad.config import Config
from natgrad.errors import NatgradError
from natgrad.rollouts.batch import RolloutBatch, concat_envs
from natgrad.rollouts.collector import Collector, rollout_parts
from natgrad.rollouts.envs import EnvSource, make_vec_env
from natgrad.rollouts.normalization import RunningMeanStd, added_since
from natgrad.rollouts.ray_cluster import check_cpus
from natgrad.rollouts.workers import Learner, split_envs

MAX_RESTARTS = 3  # deaths of one worker within one update before training stops
log = logging.getLogger(__name__)


@dataclass
class Broadcast:
    """What the driver sends once per update: the policy weights and its statistics, numbered."""

    version: int
    actor: dict[str, Tensor]
    obs_rms: dict
    reward_rms: dict


@dataclass
class Share:
    """One worker's part of a batch: its envs' steps, the version it used, and its statistics."""

    version: int
    batch: RolloutBatch
    obs_rms: dict
    """the broadcast statistics updated with this worker's observations"""
    reward_rms: dict


class RolloutWorker:
    """A Ray actor: its own vector env, a CPU copy of the actor and of the normalizers, and a Collector."""

    def __init__(self, env: EnvSource, config: Config, n_envs: int, seed: int) -> None:
        torch.set_num_threads(1)
        self.env = make_vec_env(env, n_envs, config.vectorization, config.env_kwargs)
        self.actor, self.obs_normalizer, self.reward_scaler = rollout_parts(
            self.env.single_observation_space, self.env.single_action_space, n_envs, config)
        self.seed = seed
        self.collector: Collector | None = None

    def collect(self, broadcast: Broadcast, n_steps: int) -> Share:
        """``n_steps`` steps of this worker's envs with the broadcast weights and statistics."""
        self.actor.load_state_dict(broadcast.actor)
        self.obs_normalizer.rms.load_state_dict(broadcast.obs_rms)
        self.reward_scaler.rms.load_state_dict(broadcast.reward_rms)
        if self.collector is None:  # resets the envs: their first observations count in this share
            self.collector = Collector(self.env, self.actor, self.obs_normalizer, self.reward_scaler, self.seed)
        batch = self.collector.collect(n_steps)
        return Share(broadcast.version, batch, self.obs_normalizer.rms.state_dict(),
                     self.reward_scaler.rms.state_dict())


class RaySampler:
    """The Sampler over ``model.sampling.workers`` Ray actors (Ray must be initialized: ``ray_cluster.connect``)."""

    def __init__(self, model: Learner) -> None:
        sampling, cfg = model.sampling, model.config
        check_cpus(sampling.workers, sampling.worker_cpus, "--worker-cpus")
        self.env_source, self.config = model.env_source, cfg
        self.actor, self.obs_normalizer, self.reward_scaler = model.actor, model.obs_normalizer, model.reward_scaler
        self.n_envs = split_envs(cfg.n_envs, sampling.workers)
        self.first_env = [0, *accumulate(self.n_envs)][:-1]
        self.seed = model.seed + model.num_timesteps
        self.remote = ray.remote(RolloutWorker).options(num_cpus=sampling.worker_cpus, scheduling_strategy="SPREAD")
        self.generation = [0] * sampling.workers
        self.workers = [self._start(k) for k in range(sampling.workers)]
        self.version = 0
        self.restarts = 0

    def _start(self, k: int) -> ray.actor.ActorHandle:
        seed = self.seed + self.first_env[k] + self.generation[k] * self.config.n_envs
        return self.remote.remote(self.env_source, self.config, self.n_envs[k], seed)

    def collect(self, n_steps: int) -> RolloutBatch:
        """One batch from every worker, joined; the normalizer statistics merged exactly."""
        self.version += 1
        obs_rms, reward_rms = self.obs_normalizer.rms, self.reward_scaler.rms
        weights = {k: v.cpu() for k, v in self.actor.state_dict().items()}  # the workers act on the CPU
        broadcast = ray.put(Broadcast(self.version, weights, obs_rms.state_dict(), reward_rms.state_dict()))
        shares = self._gather(broadcast, n_steps)
        batch = assemble(shares, self.version).to(self.actor.device)
        fold(obs_rms, [s.obs_rms for s in shares])
        fold(reward_rms, [s.reward_rms for s in shares])
        return batch

    def _gather(self, broadcast: ray.ObjectRef, n_steps: int) -> list[Share]:
        """Every worker's share of this broadcast; a worker that dies is restarted and its share collected anew."""
        pending = {worker.collect.remote(broadcast, n_steps): k for k, worker in enumerate(self.workers)}
        shares: list[Share | None] = [None] * len(self.workers)
        deaths = [0] * len(self.workers)
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ref)
            try:
                shares[k] = ray.get(ref)
            except RayActorError as e:
                deaths[k] += 1
                if deaths[k] > MAX_RESTARTS:
                    raise NatgradError(f"rollout worker {k} died {deaths[k]} times in one update ({_first_line(e)}): "
                                       "see its log (`ray logs`); out of memory, or an env that crashes?") from None
                log.warning("natgrad: rollout worker %d died (%s); restarting it and collecting its share again",
                            k, _first_line(e))
                self._restart(k)
                pending[self.workers[k].collect.remote(broadcast, n_steps)] = k
            except RayTaskError as e:  # the worker raised: a NatgradError stays one line
                raise (e.cause if isinstance(e.cause, NatgradError) else e) from None
        return shares

    def _restart(self, k: int) -> None:
        ray.kill(self.workers[k])
        self.generation[k] += 1
        self.restarts += 1
        self.workers[k] = self._start(k)

    def close(self) -> None:
        """Stop the workers."""
        for worker in self.workers:
            ray.kill(worker)


def assemble(shares: list[Share], version: int) -> RolloutBatch:
    """The shares side by side along the env axis; refused unless every one was collected with ``version``."""
    versions = sorted({s.version for s in shares})
    if versions != [version]:
        raise RuntimeError(f"refusing a batch of policy versions {versions}: the update needs version {version} only")
    return concat_envs([s.batch for s in shares])


def fold(rms: RunningMeanStd, ends: list[dict]) -> None:
    """``rms`` (what was broadcast) ← worker 0's end, merged with every other worker's new data.

    Each worker started from ``rms``; Chan's rule makes the result the mean and variance of ``rms``'s
    data and all the workers' new data together (in any order). Starting from worker 0's end, which
    already holds ``rms`` and its data, makes one worker reproduce the local sampler bit for bit.
    """
    start = copy.deepcopy(rms)
    rms.load_state_dict(ends[0])
    for state in ends[1:]:
        end = copy.deepcopy(start)
        end.load_state_dict(state)
        new = added_since(end, start)
        rms.merge(new.mean, new.var, new.count)


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
