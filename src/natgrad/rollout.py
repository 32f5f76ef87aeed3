"""Rollout collection over a Gymnasium vector env into time-major tensors, and GAE on them.

Episodes that end by termination and by truncation are kept apart: the batch records ``terminated``
and ``ended = terminated | truncated`` per step, and the real last observation of every truncated
episode, so that the critic's value of a truncated episode's last state can be bootstrapped while a
terminal state gets none. ``first`` marks the observations that start an episode: a recurrent network
resets its state there, so no state leaks from one episode into the next, and the batch keeps the
actor's state entering every step so that any stretch of it can be re-run from where it began.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import accumulate
from typing import Any

import numpy as np
import torch
from gymnasium import Space
from gymnasium.vector import VectorEnv
from torch import Tensor

from natgrad.config import Config
from natgrad.envs import offers_action_masks
from natgrad.finite import check_rewards, finite_rows
from natgrad.gae import gae
from natgrad.inference import Acting
from natgrad.normalization import ObsNormalizer, RewardScaler
from natgrad.policy import Actor, Critic, PolicyInputs
from natgrad.spaces import VECTOR, Obs, ObsLayout, check_masks, tree_cat, tree_map


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
        return PolicyInputs(self.obs, self.masks, self.first, _start(self.actor_states))

    @property
    def critic_inputs(self) -> PolicyInputs:
        """What the critic reads: the observations, episode starts and its own stored state (no mask)."""
        return PolicyInputs(self.obs, None, self.first, _start(self.critic_states))

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


def _start(states: Tensor | None) -> Tensor | None:
    return None if states is None else states[0]


@torch.no_grad()
def critic_values(critic: Critic, batch: RolloutBatch, state: Tensor | None = None
                  ) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """V(s_t) and V(s_{t+1}) for every step (both (T, N)), the critic's state entering every step and after
    the last one (None without a recurrent core); ``state``: its state entering step 0.

    V(s_{t+1}) is V of the next observation in the same env, of ``last_obs`` after the last step, and of
    the real final observation where an episode was truncated, under the state that episode had reached;
    where it terminated it is 0.
    """
    values, after = critic.values_and_states(PolicyInputs(batch.obs, None, batch.first, state))
    last = PolicyInputs(tree_map(lambda x: x[None], batch.last_obs), None, batch.ended[-1:],
                        None if after is None else after[-1])
    next_values = torch.cat([values[1:], critic(last)])
    if len(batch.truncated_at):
        t, n = batch.truncated_at.T
        final = PolicyInputs(tree_map(lambda x: x[None], batch.final_obs), None, None,
                             None if after is None else after[t, n])
        next_values[t, n] = critic(final)[0]
    next_values[batch.terminated] = 0.0
    entering = None if after is None else torch.cat([(state if state is not None else torch.zeros_like(after[0]))[None],
                                                     after[:-1]])
    return values, next_values, entering, None if after is None else after[-1]


def update_batch(batch: RolloutBatch, critic: Critic, gamma: float, lam: float,
                 critic_state: Tensor | None = None) -> UpdateBatch:
    """GAE(γ, λ) over ``batch`` with ``critic``'s values (bootstrapped as ``critic_values`` says)."""
    values, next_values, entering, end = critic_values(critic, batch, critic_state)
    advantages, returns = gae(batch.rewards, values, next_values, batch.terminated, batch.ended, gamma, lam)
    return UpdateBatch(batch.obs, batch.actions, batch.log_probs, advantages, returns, values, batch.first,
                       batch.masks, batch.actor_states, entering, end)


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
        states = None if self.acting.state is None else torch.empty(n_steps, n, self.actor.state_size)
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
        obs_t, actions_t = self.layout.pack(obs), torch.from_numpy(actions)
        first_t = torch.from_numpy(first)
        masks_t = None if masks is None else torch.from_numpy(masks)
        return RolloutBatch(
            obs=obs_t,
            actions=actions_t,
            log_probs=self.actor(PolicyInputs(obs_t, masks_t, first_t, _start(states))).log_prob(actions_t),
            rewards=torch.from_numpy(self.reward_scaler(raw_rewards, ended).astype(np.float32)),
            terminated=torch.from_numpy(terminated),
            ended=torch.from_numpy(ended),
            first=first_t,
            masks=masks_t,
            actor_states=states,
            truncated_at=torch.tensor(final_at, dtype=torch.int64).reshape(-1, 2),
            final_obs=self._final_obs(final_raw),
            last_obs=self.layout.pack({k: v.copy() for k, v in self.obs.items()}),
            episode_returns=returns,
            episode_lengths=lengths,
        )

    def _final_obs(self, raws: list[Any]) -> Obs:
        """The real last observations of the truncated episodes, normalized with the statistics as they are."""
        if not raws:
            return self.layout.pack(self.layout.empty((0,)))
        rows = [self.observe.normalized(raw, 1) for raw in raws]
        return self.layout.pack({k: np.concatenate([r[k] for r in rows]) for k in rows[0]})

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
