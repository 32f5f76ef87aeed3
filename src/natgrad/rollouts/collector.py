"""Rollout collection: the current actor steps a Gymnasium vector env, and the steps come back as a
``RolloutBatch`` of time-major tensors (observations normalized, masks and recurrent states kept, episode returns
counted).

An env whose ``reset`` and ``step`` return torch tensors (Gymnasium's ``NumpyToTorch`` / ``JaxToTorch``) is
stepped in torch: observations (every leaf kind, encoded by the same ``ObsLayout.encode``), masks, rewards and
ends stay on the model's device, the normalizer's statistics are kept and updated there, and the actions go to the
env as tensors on the env's device. Nothing is read back per step: once per batch, rewards and ends (to count the
episodes) and whether every observation was finite (a non-finite one is zeroed until then, so acting never sees it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import Space
from gymnasium.vector import VectorEnv

from natgrad.config import Config
from natgrad.policy.actor_critic import Actor, PolicyInputs
from natgrad.policy.inference import Acting
from natgrad.policy.spaces import MASK_KEY, VECTOR, ActionSpec, Obs, ObsLayout, check_masks
from natgrad.rollouts.batch import RolloutBatch, first_state
from natgrad.rollouts.envs import offers_action_masks
from natgrad.rollouts.finite import check_rewards, finite_rows
from natgrad.rollouts.normalization import ObsNormalizer, RewardScaler, wide_dtype


def uses_env_masks(env: VectorEnv, actor: Actor) -> bool:
    """Whether ``actor`` acting on ``env`` takes legal-action masks from the envs' ``action_masks()``: its actions
    are (Multi)Discrete, its observations carry no mask of their own, and the envs offer one."""
    return actor.action.mask_size > 0 and not actor.layout.has_mask and offers_action_masks(env)


class Observer:
    """Raw observations of a vector env's N envs → leaf arrays (the vector normalized) and legal-action masks.

    ``update``: the observations update the normalizer's statistics (training), or not (evaluation). Masks
    come from the observation's ``action_mask`` entry, else from the env's ``action_masks()`` if it has one.
    ``tensors``: the env returns torch tensors; the leaves and masks are tensors on ``actor.device`` (the masks
    checked by the caller, once per batch), the normalizer's statistics are moved there, and the observations'
    finiteness is checked by ``check_finite``.
    """

    def __init__(self, env: VectorEnv, actor: Actor, obs_normalizer: ObsNormalizer, update: bool = True,
                 tensors: bool = False) -> None:
        self.env, self.action, self.layout = env, actor.action, actor.layout
        self.obs_normalizer, self.update = obs_normalizer, update
        self.env_masks = uses_env_masks(env, actor)
        self.tensors, self.device = tensors, actor.device
        self.screened: list[tuple[torch.Tensor, torch.Tensor]] = []
        """a tensor env's encoded vectors since the last ``check_finite``, each with its rows' finiteness"""
        if tensors and obs_normalizer.device != self.device:
            obs_normalizer.to(self.device)

    @property
    def masked(self) -> bool:
        """Whether the envs give legal-action masks."""
        return self.layout.has_mask or self.env_masks

    def __call__(self, raw: Any) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        rows = self.env.num_envs
        arrays = self.normalized(raw, rows, self.update)
        if self.tensors:
            mask = raw[MASK_KEY] if self.layout.has_mask else None
            if self.env_masks:
                mask = torch.as_tensor(np.stack(self.env.call("action_masks")))
            return arrays, None if mask is None else mask.to(self.device).reshape(rows, -1).bool()
        mask = self.layout.mask(raw, rows)
        if self.env_masks:
            mask = np.stack(self.env.call("action_masks"))
        return arrays, None if mask is None else check_masks(mask, self.action)

    def encode(self, raw: Any, rows: int) -> dict[str, Any]:
        """``layout.encode``; for a tensor env, encoded on the env's device and moved to the model's, the vector in
        float64 (float32 on MPS)."""
        arrays = self.layout.encode(raw, rows)
        if self.tensors:
            wide = wide_dtype(self.device)
            arrays = {k: v.to(self.device, wide) if k == VECTOR else v.to(self.device) for k, v in arrays.items()}
        return arrays

    def normalized(self, raw: Any, rows: int, update: bool = False) -> dict[str, Any]:
        """Leaf arrays of ``rows`` raw observations, the vector normalized (the statistics updated if ``update``)."""
        return self.normalize(self.encode(raw, rows), rows, update)

    def normalize(self, arrays: dict[str, Any], rows: int, update: bool = False) -> dict[str, Any]:
        """Encoded leaf arrays with the vector normalized (the statistics updated first if ``update``); a NumPy vector
        is refused here unless finite, a tensor's non-finite rows are zeroed and noted for ``check_finite``."""
        if VECTOR in arrays:
            vector = self._screen(arrays[VECTOR]) if self.tensors else finite_rows(arrays[VECTOR], rows)
            arrays[VECTOR] = self.obs_normalizer.observe(vector) if update else self.obs_normalizer(vector)
        return arrays

    def _screen(self, vector: torch.Tensor) -> torch.Tensor:
        """A tensor vector with its non-finite rows zeroed, on the device (no read-back), and noted."""
        finite = torch.isfinite(vector).all(1, keepdim=True)
        self.screened.append((vector, finite))
        return torch.where(finite, vector, 0.0)

    def check_finite(self) -> None:
        """Refuse (``finite_rows``'s line) a non-finite observation among a tensor env's since the last check: one
        read-back."""
        screened, self.screened = self.screened, []
        if screened and not bool(torch.cat([finite for _, finite in screened]).all()):
            for vector, _ in screened:
                finite_rows(vector.cpu().numpy(), len(vector))


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
        self.tensors = holds_tensors(raw)
        self.env_device = _leaves(raw)[0].device if self.tensors else None
        self.observe = Observer(env, actor, obs_normalizer, tensors=self.tensors)
        self.acting = Acting(actor, self.n_envs, np.random.default_rng(seed), masks=self.observe.masked,
                             tensors=self.tensors)
        self.obs, self.mask = self.observe(raw)
        self.first = self._empty((self.n_envs,), bool)
        self.first[:] = True
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
        if self.tensors:
            obs = self.layout.unpack(self.layout.pack(obs, self.device))
        raw_rewards = self._empty((n_steps, n), np.float64)
        terminated, truncated, first = (self._empty((n_steps, n), bool) for _ in range(3))
        actions = self._empty((n_steps, n, *action.shape), action.dtype)
        masks = None if self.mask is None else self._empty((n_steps, n, self.mask.shape[1]), bool)
        states = None if self.acting.state is None else torch.empty(n_steps, n, self.actor.state_size,
                                                                     device=self.device)
        final_at, final_raw = [], []
        finals = _TensorFinals(n_steps, n, self.layout, self.device) if self.tensors else None
        for t in range(n_steps):
            for key, value in self.obs.items():
                obs[key][t] = value
            first[t] = self.first
            if masks is not None:
                masks[t] = self.mask
            if states is not None:
                states[t] = self.acting.state
            actions[t] = self.acting(self.obs, self.mask, self.first)
            raw, raw_rewards[t], terminated[t], truncated[t], info = self.env.step(self._to_env(action, actions[t]))
            if finals is not None and "final_obs" in info:
                finals.note(t, info["_final_obs"].to(self.device) & truncated[t] & ~terminated[t],
                            self.observe.encode(info["final_obs"], n))
            elif "final_obs" in info:
                for i in np.flatnonzero(info["_final_obs"] & truncated[t] & ~terminated[t]):
                    final_at.append((t, i))
                    final_raw.append(info["final_obs"][i])
            self.obs, self.mask = self.observe(raw)
            self.first = terminated[t] | truncated[t]
        ended = ended_host = terminated | truncated
        final_obs = finals.obs(self.observe, self.layout) if finals is not None else self._final_obs(final_raw)
        if self.tensors:  # the read-backs of a batch: the observations' finiteness, rewards and ends (for the
            self.observe.check_finite()  # episodes' returns and scaling), masks to check
            raw_rewards, ended_host = raw_rewards.cpu().numpy(), ended.cpu().numpy()
            if masks is not None:
                check_masks(masks.reshape(n_steps * n, -1).cpu().numpy(), action)
        check_rewards(raw_rewards, self.steps)
        self.steps += n_steps
        returns, lengths = self._finish_episodes(raw_rewards, ended_host)
        device = self.device
        to_device = lambda x: torch.as_tensor(x).to(device)  # one copy of each array to the device
        obs_t, actions_t, first_t = self.layout.pack(obs, device), to_device(actions), to_device(first)
        masks_t = None if masks is None else to_device(masks)
        return RolloutBatch(
            obs=obs_t,
            actions=actions_t,
            log_probs=self.actor(PolicyInputs(obs_t, masks_t, first_t, first_state(states))).log_prob(actions_t),
            rewards=to_device(self.reward_scaler(raw_rewards, ended_host).astype(np.float32)),
            terminated=to_device(terminated),
            ended=to_device(ended),
            first=first_t,
            masks=masks_t,
            actor_states=states,
            truncated_at=finals.at if finals is not None else to_device(np.array(final_at, np.int64).reshape(-1, 2)),
            final_obs=final_obs,
            last_obs=self.layout.pack({k: v if self.tensors else v.copy() for k, v in self.obs.items()}, device),
            episode_returns=returns,
            episode_lengths=lengths,
        )

    def _empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray | torch.Tensor:
        """Uninitialized storage of ``dtype`` (a NumPy dtype): an array, or for a tensor env a tensor on the device."""
        if not self.tensors:
            return np.empty(shape, dtype)
        return torch.empty(shape, dtype=torch_dtype(dtype), device=self.device)

    def _to_env(self, action: ActionSpec, actions: np.ndarray | torch.Tensor) -> Any:
        """Policy actions as the env takes them (``ActionSpec.to_env``); for a tensor env, tensors on its device."""
        return action.to_env(actions) if not self.tensors else action.to_env(actions).to(self.env_device)

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


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a NumPy dtype."""
    return torch.from_numpy(np.empty(0, dtype)).dtype


def holds_tensors(raw: Any) -> bool:
    """Whether a raw observation batch is a torch tensor, or a (nested) dict or tuple of them."""
    return all(isinstance(x, torch.Tensor) for x in _leaves(raw))


def _leaves(raw: Any) -> list[Any]:
    if isinstance(raw, dict):
        return [x for v in raw.values() for x in _leaves(v)]
    if isinstance(raw, tuple):
        return [x for v in raw for x in _leaves(v)]
    return [raw]


class _TensorFinals:
    """A tensor env's real last observations of truncated episodes, kept on the device through a batch: (T, N)
    flags and the encoded leaves of the steps where some env ended, chosen once the batch is done."""

    def __init__(self, n_steps: int, n_envs: int, layout: ObsLayout, device: torch.device) -> None:
        self.flags = torch.zeros(n_steps, n_envs, dtype=torch.bool, device=device)
        dtype = lambda leaf: wide_dtype(device) if leaf.kind == VECTOR else torch_dtype(leaf.dtype)
        self.leaves = {leaf.key: torch.zeros(n_steps, n_envs, *leaf.shape, dtype=dtype(leaf), device=device)
                       for leaf in layout.leaves}

    def note(self, t: int, truncated_only: torch.Tensor, encoded: dict[str, torch.Tensor]) -> None:
        """Step ``t``'s flags (ended by truncation only) and every env's encoded final observation."""
        self.flags[t] = truncated_only
        for key, value in encoded.items():
            self.leaves[key][t] = value

    @property
    def at(self) -> torch.Tensor:
        """(K, 2) int64 (t, n) of the flagged steps, in time order, then env order."""
        return self.flags.nonzero()

    def obs(self, observe: Observer, layout: ObsLayout) -> Obs:
        """The flagged final observations, normalized with the statistics as they are."""
        picked = {key: leaf[self.flags] for key, leaf in self.leaves.items()}
        rows = len(next(iter(picked.values())))
        return layout.pack(observe.normalize(picked, rows) if rows else layout.empty((0,)), self.flags.device)


def rollout_parts(observation_space: Space, action_space: Space, n_envs: int, cfg: Config
                  ) -> tuple[Actor, ObsNormalizer, RewardScaler]:
    """What stepping ``n_envs`` envs of these spaces takes: a fresh actor, and observation and reward
    statistics for them (the observation statistics cover the vector part of the observations only)."""
    layout = ObsLayout(observation_space, cfg.image_channels)
    actor = Actor.from_config(layout, action_space, cfg)
    obs_normalizer = ObsNormalizer((layout.vector_size,), cfg.normalize_obs)
    return actor, obs_normalizer, RewardScaler(n_envs, cfg.gamma, cfg.normalize_reward)
