"""Rollout collection over a Gymnasium vector env into time-major tensors.

Episodes that end by termination and by truncation are kept apart: the batch
records ``terminated`` and ``ended = terminated | truncated`` per step, and the
real last observation of every ended episode, so that the critic's value of a
truncated episode's last state can be bootstrapped while a terminal state gets none.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import VectorEnv
from torch import Tensor

from natgrad.finite import check_rewards, finite_rows
from natgrad.gae import gae
from natgrad.inference import NumpyActor
from natgrad.normalization import ObsNormalizer, RewardScaler
from natgrad.policy import Actor, Critic


@dataclass
class RolloutBatch:
    """T steps of N envs; every tensor is (T, N, ...) unless noted."""

    obs: Tensor  # normalized observations the policy acted on, (T, N, D)
    actions: Tensor  # unclipped actions, (T, N) or (T, N, A)
    log_probs: Tensor  # log π_old(a|s)
    rewards: Tensor  # rewards used for learning (scaled when reward scaling is on)
    terminated: Tensor  # bool: s_{t+1} is terminal, V(s_{t+1}) = 0
    ended: Tensor  # bool: terminated or truncated; GAE does not cross this step
    final_obs: Tensor  # normalized real s_{t+1} where ended (zeros elsewhere), (T, N, D)
    last_obs: Tensor  # normalized observation after the last step, (N, D)
    episode_returns: list[float]  # raw (unnormalized) returns of episodes finished here
    episode_lengths: list[int]

    @property
    def size(self) -> int:
        return self.rewards.numel()

    def flat(self, x: Tensor) -> Tensor:
        """(T, N, ...) → (T·N, ...)."""
        return x.reshape(self.size, *x.shape[2:])


@torch.no_grad()
def critic_values(critic: Critic, batch: RolloutBatch) -> tuple[Tensor, Tensor]:
    """V(s_t) and V(s_{t+1}) for every step of the batch, both (T, N).

    V(s_{t+1}) is V of the next observation in the same env, of ``last_obs`` after
    the last step, and of the real final observation where an episode was truncated;
    where it terminated it is 0.
    """
    values = critic(batch.obs)
    next_values = torch.cat([values[1:], critic(batch.last_obs).unsqueeze(0)])
    truncated = batch.ended & ~batch.terminated
    if truncated.any():
        next_values[truncated] = critic(batch.final_obs[truncated])
    next_values[batch.terminated] = 0.0
    return values, next_values


@dataclass(frozen=True)
class UpdateBatch:
    """What an update consumes: a rollout flattened to (T·N, ...), with GAE advantages and critic targets."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor  # log π_old(a|s)
    advantages: Tensor  # Â, not normalized
    returns: Tensor  # R = Â + V(s), the critic's targets
    values: Tensor  # V(s) when the batch was collected


def update_batch(batch: RolloutBatch, critic: Critic, gamma: float, lam: float) -> UpdateBatch:
    """GAE(γ, λ) over ``batch`` with ``critic``'s values (bootstrapped as ``critic_values`` says), flattened."""
    values, next_values = critic_values(critic, batch)
    advantages, returns = gae(batch.rewards, values, next_values, batch.terminated, batch.ended, gamma, lam)
    flat = batch.flat
    return UpdateBatch(flat(batch.obs), flat(batch.actions), flat(batch.log_probs), flat(advantages),
                       flat(returns), flat(values))


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
        self.obs_normalizer = obs_normalizer
        self.reward_scaler = reward_scaler
        self.n_envs = env.num_envs
        self.rng = np.random.default_rng(seed)
        space = env.single_action_space
        self.discrete = isinstance(space, spaces.Discrete)
        self.low, self.high = (None, None) if self.discrete else (space.low, space.high)
        raw, _ = env.reset(seed=seed)
        self.obs = self._observe(raw)
        self.episode_return = np.zeros(self.n_envs)
        self.episode_length = np.zeros(self.n_envs, np.int64)
        self.steps = 0  # vector env steps taken so far

    def _observe(self, raw: np.ndarray) -> np.ndarray:
        return self.obs_normalizer.observe(finite_rows(raw, self.n_envs))

    @torch.no_grad()
    def collect(self, n_steps: int) -> RolloutBatch:
        """Step the envs ``n_steps`` times. Only what the next action needs happens per step (act,
        step, normalize the observation); the rest is done over the whole batch afterwards."""
        n, d = self.n_envs, self.obs.shape[-1]
        obs = np.empty((n_steps, n, d), np.float32)
        final_obs = np.zeros((n_steps, n, d), np.float32)
        raw_rewards = np.empty((n_steps, n))
        terminated = np.empty((n_steps, n), bool)
        truncated = np.empty((n_steps, n), bool)
        if self.discrete:
            actions = np.empty((n_steps, n), np.int64)
        else:
            actions = np.empty((n_steps, n, len(self.low)), np.float32)
        policy = NumpyActor(self.actor)
        for t in range(n_steps):
            obs[t] = self.obs
            actions[t] = policy(self.obs, self.rng)
            env_action = actions[t] if self.discrete else np.minimum(np.maximum(actions[t], self.low), self.high)
            raw, raw_rewards[t], terminated[t], truncated[t], info = self.env.step(env_action)
            if "final_obs" in info:
                for i in np.flatnonzero(info["_final_obs"]):
                    final_obs[t, i] = self.obs_normalizer(finite_rows(info["final_obs"][i], 1))[0]
            self.obs = self._observe(raw)
        check_rewards(raw_rewards, self.steps)
        self.steps += n_steps
        ended = terminated | truncated
        returns, lengths = self._finish_episodes(raw_rewards, ended)
        obs_t, actions_t = torch.from_numpy(obs), torch.from_numpy(actions)
        return RolloutBatch(
            obs=obs_t,
            actions=actions_t,
            log_probs=self.actor(obs_t).log_prob(actions_t),
            rewards=torch.from_numpy(self.reward_scaler(raw_rewards, ended).astype(np.float32)),
            terminated=torch.from_numpy(terminated),
            ended=torch.from_numpy(ended),
            final_obs=torch.from_numpy(final_obs),
            last_obs=torch.from_numpy(self.obs.copy()),
            episode_returns=returns,
            episode_lengths=lengths,
        )

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
