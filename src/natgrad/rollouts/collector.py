"""Rollout collection: the current actor steps a Gymnasium vector env, and the steps come back as a
``RolloutBatch`` of time-major tensors (observations normalized, masks and recurrent states kept, episode returns
counted)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import Space
from gymnasium.vector import VectorEnv

from natgrad.config import Config
from natgrad.policy.actor_critic import Actor, PolicyInputs
from natgrad.policy.inference import Acting
from natgrad.policy.spaces import VECTOR, Obs, ObsLayout, check_masks
from natgrad.rollouts.batch import RolloutBatch, first_state
from natgrad.rollouts.envs import offers_action_masks
from natgrad.rollouts.finite import check_rewards, finite_rows
from natgrad.rollouts.normalization import ObsNormalizer, RewardScaler


def uses_env_masks(env: VectorEnv, actor: Actor) -> bool:
    """Whether ``actor`` acting on ``env`` takes legal-action masks from the envs' ``action_masks()``: its actions
    are (Multi)Discrete, its observations carry no mask of their own, and the envs offer one."""
    return actor.action.mask_size > 0 and not actor.layout.has_mask and offers_action_masks(env)


class Observer:
    """Raw observations of a vector env's N envs → leaf arrays (the vector normalized) and legal-action masks.

    ``update``: the observations update the normalizer's statistics (training), or not (evaluation). Masks
    come from the observation's ``action_mask`` entry, else from the env's ``action_masks()`` if it has one.
    """

    def __init__(self, env: VectorEnv, actor: Actor, obs_normalizer: ObsNormalizer, update: bool = True) -> None:
        self.env, self.action, self.layout = env, actor.action, actor.layout
        self.obs_normalizer, self.update = obs_normalizer, update
        self.env_masks = uses_env_masks(env, actor)

    @property
    def masked(self) -> bool:
        """Whether the envs give legal-action masks."""
        return self.layout.has_mask or self.env_masks

    def __call__(self, raw: Any) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        rows = self.env.num_envs
        arrays = self.normalized(raw, rows, self.update)
        mask = self.layout.mask(raw, rows)
        if self.env_masks:
            mask = np.stack(self.env.call("action_masks"))
        return arrays, None if mask is None else check_masks(mask, self.action)

    def normalized(self, raw: Any, rows: int, update: bool = False) -> dict[str, np.ndarray]:
        """Leaf arrays of ``rows`` raw observations, the vector normalized (the statistics updated if ``update``)."""
        arrays = self.layout.encode(raw, rows)
        if VECTOR in arrays:
            vector = finite_rows(arrays[VECTOR], rows)
            arrays[VECTOR] = self.obs_normalizer.observe(vector) if update else self.obs_normalizer(vector)
        return arrays


class Collector:
    """Steps a vector env with the current actor and hands back a RolloutBatch."""

    def __init__(
        self,
        env: VectorEnv,
        actor: Actor,
        obs_normalizer: ObsNormalizer,
        reward_scaler: RewardScaler,
        seed: int | None = None,
    ) -> None:
        self.env = env
        self.actor = actor
        self.layout: ObsLayout = actor.layout
        self.obs_normalizer = obs_normalizer
        self.reward_scaler = reward_scaler
        self.device = actor.device
        self.n_envs = env.num_envs
        raw, _ = env.reset(seed=seed)
        self.observe = Observer(env, actor, obs_normalizer)
        self.acting = Acting(actor, self.n_envs, np.random.default_rng(seed), masks=self.observe.masked)
        self.obs, self.mask = self.observe(raw)
        self.first = np.ones(self.n_envs, bool)
        self.episode_return = np.zeros(self.n_envs)
        self.episode_length = np.zeros(self.n_envs, np.int64)
        self.steps = 0  # vector env steps taken so far

    @torch.no_grad()
    def collect(self, n_steps: int) -> RolloutBatch:
        """Step the envs ``n_steps`` times. Only what the next action needs happens per step (act,
        step, normalize the observation); the rest is done over the whole batch afterwards."""
        n, action = self.n_envs, self.actor.action
        self.acting.refresh()
        obs = self.layout.empty((n_steps, n))
        raw_rewards = np.empty((n_steps, n))
        terminated = np.empty((n_steps, n), bool)
        truncated = np.empty((n_steps, n), bool)
        first = np.empty((n_steps, n), bool)
        actions = np.empty((n_steps, n, *action.shape), action.dtype)
        masks = None if self.mask is None else np.empty((n_steps, n, self.mask.shape[1]), bool)
        states = None if self.acting.state is None else torch.empty(n_steps, n, self.actor.state_size,
                                                                     device=self.device)
        final_at, final_raw = [], []
        for t in range(n_steps):
            for key, value in self.obs.items():
                obs[key][t] = value
            first[t] = self.first
            if masks is not None:
                masks[t] = self.mask
            if states is not None:
                states[t] = self.acting.state
            actions[t] = self.acting(self.obs, self.mask, self.first)
            raw, raw_rewards[t], terminated[t], truncated[t], info = self.env.step(action.to_env(actions[t]))
            if "final_obs" in info:
                for i in np.flatnonzero(info["_final_obs"] & truncated[t] & ~terminated[t]):
                    final_at.append((t, i))
                    final_raw.append(info["final_obs"][i])
            self.obs, self.mask = self.observe(raw)
            self.first = terminated[t] | truncated[t]
        check_rewards(raw_rewards, self.steps)
        self.steps += n_steps
        ended = terminated | truncated
        returns, lengths = self._finish_episodes(raw_rewards, ended)
        device = self.device
        to_device = lambda x: torch.from_numpy(x).to(device)  # one copy of each array to the device
        obs_t, actions_t, first_t = self.layout.pack(obs, device), to_device(actions), to_device(first)
        masks_t = None if masks is None else to_device(masks)
        return RolloutBatch(
            obs=obs_t,
            actions=actions_t,
            log_probs=self.actor(PolicyInputs(obs_t, masks_t, first_t, first_state(states))).log_prob(actions_t),
            rewards=to_device(self.reward_scaler(raw_rewards, ended).astype(np.float32)),
            terminated=to_device(terminated),
            ended=to_device(ended),
            first=first_t,
            masks=masks_t,
            actor_states=states,
            truncated_at=to_device(np.array(final_at, np.int64).reshape(-1, 2)),
            final_obs=self._final_obs(final_raw),
            last_obs=self.layout.pack({k: v.copy() for k, v in self.obs.items()}, device),
            episode_returns=returns,
            episode_lengths=lengths,
        )

    def _final_obs(self, raws: list[Any]) -> Obs:
        """The real last observations of the truncated episodes, normalized with the statistics as they are."""
        if not raws:
            return self.layout.pack(self.layout.empty((0,)), self.device)
        rows = [self.observe.normalized(raw, 1) for raw in raws]
        return self.layout.pack({k: np.concatenate([r[k] for r in rows]) for k in rows[0]}, self.device)

    def _finish_episodes(self, rewards: np.ndarray, ended: np.ndarray) -> tuple[list[float], list[int]]:
        """Raw returns and lengths of the episodes that ended in this batch, in the order they ended,
        carrying the unfinished ones over to the next batch. Returns are summed in time order."""
        returns, lengths = [], []
        start = np.zeros(self.n_envs, np.int64)
        for t, i in zip(*np.nonzero(ended)):
            returns.append(_running_sum(self.episode_return[i], rewards[start[i] : t + 1, i]))
            lengths.append(int(self.episode_length[i] + t + 1 - start[i]))
            self.episode_return[i], self.episode_length[i] = 0.0, 0
            start[i] = t + 1
        for i in range(self.n_envs):
            self.episode_return[i] = _running_sum(self.episode_return[i], rewards[start[i] :, i])
            self.episode_length[i] += len(rewards) - start[i]
        return returns, lengths


def _running_sum(initial: float, xs: np.ndarray) -> float:
    """initial + x₀ + x₁ + … added one at a time, left to right (np.sum would pair them up)."""
    return float(np.cumsum(np.concatenate(([initial], xs)))[-1])


def rollout_parts(observation_space: Space, action_space: Space, n_envs: int, cfg: Config
                  ) -> tuple[Actor, ObsNormalizer, RewardScaler]:
    """What stepping ``n_envs`` envs of these spaces takes: a fresh actor, and observation and reward
    statistics for them (the observation statistics cover the vector part of the observations only)."""
    layout = ObsLayout(observation_space, cfg.image_channels)
    actor = Actor.from_config(layout, action_space, cfg)
    obs_normalizer = ObsNormalizer((layout.vector_size,), cfg.normalize_obs)
    return actor, obs_normalizer, RewardScaler(n_envs, cfg.gamma, cfg.normalize_reward)
