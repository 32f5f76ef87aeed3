"""What every algorithm shares: construction from an env id, the learn loop, predict, save.

An algorithm subclass names its config class and implements ``_update`` (the policy
and critic step on one batch); everything else is here, once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from natgrad import presets
from natgrad.config import Config, check_seed
from natgrad.envs import make_vec_env
from natgrad.errors import NatgradError
from natgrad.inference import observation_batch
from natgrad.policy import Critic
from natgrad.rollout import RolloutBatch, UpdateBatch, update_batch
from natgrad.sampler import Sampler, Sampling, make_sampler, rollout_parts

Callback = Callable[["Algorithm", dict[str, float]], Any]


class Algorithm:
    """``Algo(env_id, seed=0, **config).learn(steps)``; ``predict``; ``save``; ``natgrad.load``."""

    name: ClassVar[str]
    config_cls: ClassVar[type[Config]]

    def __init__(self, env_id: str, seed: int = 0, config: Config | None = None, preset: bool = True,
                 workers: int = 1, ray_address: str | None = None, worker_cpus: float = 1.0,
                 **overrides: Any) -> None:
        """``overrides`` go on top of ``config``; without a ``config``, on top of the tuned preset for
        ``env_id`` (``natgrad presets`` lists them) unless ``preset=False``, else the config's defaults.

        ``workers > 1`` or a ``ray_address`` collect the rollouts on Ray workers that share the
        ``n_envs`` envs (``pip install natgrad[ray]``; see ``natgrad.sampler.Sampling``)."""
        self.preset = presets.preset(self.name, env_id) if config is None and preset else {}
        cfg = (config or self.config_cls()).replace(**{**self.preset, **overrides})
        if not isinstance(cfg, self.config_cls):
            raise NatgradError(f"{type(self).__name__} takes a {self.config_cls.__name__}, got {type(cfg).__name__}")
        self.env_id, self.seed, self.config = env_id, check_seed(seed), cfg
        self.sampling = Sampling(workers, ray_address, worker_cpus).check(cfg.n_envs)
        torch.manual_seed(self.seed)
        # with Ray the envs live in the workers: the driver keeps one, for its spaces
        self.env = (make_vec_env(env_id, env_kwargs=cfg.env_kwargs) if self.sampling.uses_ray
                    else make_vec_env(env_id, cfg.n_envs, cfg.vectorization, cfg.env_kwargs))
        self.action_space = self.env.single_action_space
        self.actor, self.obs_normalizer, self.reward_scaler = rollout_parts(self.env, cfg)
        self.critic = Critic(self.env.single_observation_space, cfg.hidden, cfg.activation)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.num_timesteps = 0
        self.num_updates = 0
        self.recent_returns: deque[float] = deque(maxlen=100)
        self.recent_lengths: deque[int] = deque(maxlen=100)
        self.last_episodes: list[tuple[float, int]] = []  # (return, length) of episodes ended in the last batch
        self._sampler: Sampler | None = None
        self.optimizers: dict[str, torch.optim.Optimizer] = {}  # saved with checkpoints
        self._setup()

    # ---- what a subclass provides -------------------------------------------------------
    def _setup(self) -> None:
        """Build optimizers (into ``self.optimizers``) and algorithm state, once the networks exist."""

    def _update(self, data: UpdateBatch, progress: float, gae: Callable[[], UpdateBatch]) -> dict[str, float]:
        """Update actor and critic on one flattened batch; return the update's metrics.

        ``gae()`` is GAE over the same rollout again, with the critic as it is by then."""
        raise NotImplementedError

    def _extra_state(self) -> dict[str, Any]:
        """Algorithm state saved with checkpoints besides networks and normalizers."""
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    # ---- training -----------------------------------------------------------------------
    def learn(self, total_timesteps: int, callback: Callback | None = None) -> Algorithm:
        """Train for ``total_timesteps`` more env steps (whole updates); ``num_timesteps`` keeps counting.

        Schedules (``anneal_lr``, ``anneal_kl``) see progress t/T, t = ``num_timesteps`` and T the step
        count this call ends at: a model loaded from a step-t checkpoint of a ``learn(T)`` run and given
        ``learn(T − t)`` goes on where that run's schedule was, not from its start.
        ``callback(model, metrics)`` runs after every update; returning False stops training.
        """
        if total_timesteps < 0:
            raise NatgradError(f"total_timesteps must be >= 0, got {total_timesteps}")
        if self._sampler is None:
            self._sampler = make_sampler(self)
        target = self.num_timesteps + int(total_timesteps)
        while self.num_timesteps < target:
            t0 = time.perf_counter()
            batch = self._sampler.collect(self.config.n_steps)
            t1 = time.perf_counter()
            metrics = self._train_on(batch, progress=self.num_timesteps / max(1, target))
            t2 = time.perf_counter()
            self.num_timesteps += batch.size
            self.num_updates += 1
            self.recent_returns.extend(batch.episode_returns)
            self.recent_lengths.extend(batch.episode_lengths)
            self.last_episodes = list(zip(batch.episode_returns, batch.episode_lengths))
            metrics.update({
                "time/steps": float(self.num_timesteps),
                "time/updates": float(self.num_updates),
                "time/rollout_seconds": t1 - t0,
                "time/update_seconds": t2 - t1,
                "time/steps_per_second": batch.size / (t2 - t0),
                "rollout/ep_return_mean": _mean(self.recent_returns),
                "rollout/ep_length_mean": _mean(self.recent_lengths),
                "rollout/episodes": float(len(batch.episode_returns)),
            })
            if callback is not None and callback(self, metrics) is False:
                break
        return self

    def _train_on(self, batch: RolloutBatch, progress: float) -> dict[str, float]:
        """GAE on the batch, then the algorithm's update on its flattened tensors."""

        def gae() -> UpdateBatch:
            return update_batch(batch, self.critic, self.config.gamma, self.config.gae_lambda)

        data = gae()
        metrics = self._update(data, progress, gae)
        with torch.no_grad():
            metrics["policy/entropy"] = float(self.actor(data.obs).entropy().mean())
        metrics["critic/explained_variance"] = _explained_variance(data.values, data.returns)
        return metrics

    # ---- using a model -------------------------------------------------------------------
    def predict(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        """Action(s) for raw observation(s): one observation gives one action, a batch a batch.

        Box actions are clipped to the action space's bounds, ready for ``env.step``.
        """
        batch, single = observation_batch(obs, self.env.single_observation_space.shape)
        with torch.no_grad():
            dist = self.actor(torch.from_numpy(self.obs_normalizer(batch)))
            action = self.env_action((dist.mode() if deterministic else dist.sample(self.generator)).numpy())
        return action[0] if single else action

    def env_action(self, action: np.ndarray) -> np.ndarray:
        """The policy's action as the env takes it: Box actions clipped to the bounds."""
        if self.actor.continuous:
            return np.clip(action, self.action_space.low, self.action_space.high)
        return action

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a self-describing checkpoint (config, networks, normalizers, counters)."""
        from natgrad.checkpoint import save

        return save(self, path, overwrite=overwrite)

    def close(self) -> None:
        if self._sampler is not None:
            self._sampler.close()
        self.env.close()


def _mean(xs: deque) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[R − V] / Var[R]: 1 is a perfect critic, 0 no better than a constant."""
    var = returns.var()
    return float(1 - (returns - values).var() / var) if var > 0 else float("nan")
