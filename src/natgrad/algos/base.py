"""What every algorithm shares: construction from an env, the learn loop, predict, save.

An algorithm subclass names its config class and implements ``_update`` (the policy
and critic step on one batch); everything else is here, once.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import Space
from gymnasium.vector import VectorEnv

from natgrad.algos.checkpoint import write as write_checkpoint
from natgrad.algos.compiled import Compiler
from natgrad.config import Config, check_seed, check_steps, resolve_device
from natgrad.errors import NatgradError
from natgrad.objectives.gae import normalize
from natgrad.policy.actor_critic import Critic, PolicyInputs
from natgrad.policy.spaces import VECTOR, check_masks, space_to_data
from natgrad.presets import preset as preset_of
from natgrad.rollouts.advantages import update_batch
from natgrad.rollouts.batch import RolloutBatch, UpdateBatch
from natgrad.rollouts.collector import rollout_parts, uses_env_masks
from natgrad.rollouts.envs import EnvLike, env_source, make_vec_env
from natgrad.rollouts.finite import check_finite, finite_input
from natgrad.rollouts.sampler import Sampler, make_sampler
from natgrad.rollouts.threads import check_threads, torch_threads
from natgrad.rollouts.workers import Sampling

Callback = Callable[["Algorithm", dict[str, float]], Any]
"""``callback(model, metrics)``, called by ``learn`` after every update; returning ``False`` stops training."""


class CallbackList:
    """Callbacks run in order after every update, all of them even once one has asked to stop (so a logger
    still writes the last row); training stops if any returned False. ``close()`` closes those that have one."""

    def __init__(self, callbacks: Sequence[Callback]) -> None:
        self.callbacks = list(callbacks)

    def __call__(self, model: Algorithm, metrics: dict[str, float]) -> bool:
        return all([c(model, metrics) is not False for c in self.callbacks])

    def close(self) -> None:
        """Close every callback that can be closed."""
        for c in self.callbacks:
            if hasattr(c, "close"):
                c.close()


class Algorithm:
    """``Algo(env, seed=0, **config).learn(steps)``; ``predict``; ``save``; ``natgrad.load``."""

    name: ClassVar[str]
    """The algorithm's name in the CLI and in checkpoints (``trpo``, ``npg``, ``vpg``, ``ppo``, ``ppo-kl``)."""
    config_cls: ClassVar[type[Config]]
    """Its config class: every hyperparameter, with defaults."""
    config: Config
    """This model's hyperparameters (an instance of ``config_cls``)."""
    env_id: str | None
    """The env's id or ``module:factory``, as checkpoints name it; None for an env object."""
    preset: dict[str, Any]
    """The preset values this model started from (empty without one)."""
    env: VectorEnv | None
    """The vector env the model trains on (None for a model that can only predict)."""
    no_env_reason: str
    """Why the model has no env and how to give it one (``natgrad.load`` says which file and env), as ``learn``
    and evaluation say it."""
    env_masks: bool
    """Whether training takes legal-action masks from the env's ``action_masks()`` (saved with the model)."""
    num_timesteps: int
    """Env steps trained so far, over every ``learn`` call (restored by ``natgrad.load``)."""
    num_updates: int
    """Updates made so far."""
    recent_returns: deque[float]
    """Raw returns of the last 100 training episodes (``rollout/ep_return_mean``)."""

    def __init__(self, env: EnvLike | None, seed: int = 0, config: Config | None = None,
                 preset: bool | Mapping[str, Any] = True,
                 workers: int = 1, ray_address: str | None = None, worker_cpus: float = 1.0,
                 threads: int | None = 1, device: str | torch.device = "auto", compile: bool = False,
                 spaces: tuple[Space, Space] | None = None, **overrides: Any) -> None:
        """``env``: a registered id (``"Hopper-v5"``, ``"module:EnvId"``), ``"module:factory"``, a zero-argument
        factory, a ``gymnasium.Env`` (then n_envs is 1) or a ``gymnasium.vector.VectorEnv`` made with same-step
        autoreset (``natgrad.rollouts.envs``).

        ``overrides`` go on top of ``config``; without a ``config``, on top of the tuned preset for
        ``env`` (an id: ``natgrad presets`` lists them) unless ``preset=False``, else the config's defaults.
        ``preset`` may also be the preset itself, a mapping of option to value (``natgrad.presets.preset_file``
        reads one from a TOML file, such as the one ``natgrad tune`` writes).

        ``workers > 1`` or a ``ray_address`` collect the rollouts on Ray workers that share the
        ``n_envs`` envs (``pip install natgrad[ray]``; see ``natgrad.rollouts.workers.Sampling``).

        ``threads``: torch threads while the model computes (``learn``, ``predict``, evaluation), restored
        after; 1 is fastest for small networks, more can help a CNN; None leaves torch's setting alone.
        Like ``workers``, it is not saved with the model.

        ``device``: where the networks, optimizers, batches, GAE and the update live: ``"auto"`` (CUDA when torch
        sees a GPU, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``. Not saved with the model either:
        ``natgrad.load(path, device=...)`` puts a checkpoint on any device. A NumPy env's observations are normalized
        on the host and cross to the device once per batch; a plain MLP actor acts through its NumPy copy there.

        ``compile=True``: the update's forward passes and losses through ``torch.compile``, as CUDA graphs on CUDA
        (``natgrad.algos.compiled``); the same update to float tolerance, eager where torch cannot compile (with a
        warning). It pays on accelerators; on a CPU with small networks it may be slower. Not saved with the model.

        ``env=None`` with ``spaces=(observation_space, action_space)``: a model that can ``predict`` only
        (``natgrad.load`` builds one when the env it was trained on cannot be made again)."""
        self.env_source = None if env is None else env_source(env)
        self.env_id = None if self.env_source is None else self.env_source.name
        self.preset = self._starting_preset(preset, config)
        self.config = self._resolved_config(config, overrides)
        self.seed = check_seed(seed)
        self.sampling = Sampling(workers, ray_address, worker_cpus).check(self.config.n_envs)
        self.threads = check_threads(threads)
        self.device = resolve_device(device)
        self.compiler = Compiler(compile, self.device)
        self.env = self._make_env()
        self.no_env_reason = ("this model has no env (it was built from spaces only): build or load it with env=... "
                              "to train or evaluate it")
        self.observation_space, self.action_space = self._spaces(spaces)
        self._build_networks()
        self._start_training_state()
        self._setup()

    def _starting_preset(self, preset: bool | Mapping[str, Any], config: Config | None) -> dict[str, Any]:
        """The preset under the overrides: ``preset`` itself when a mapping, else the tuned one for the env's id
        when ``preset`` is True; none when a ``config`` is given."""
        if isinstance(preset, Mapping):
            return dict(preset) if config is None else {}
        preset_id = None if self.env_source is None else self.env_source.id
        return preset_of(self.name, preset_id) if config is None and preset and preset_id else {}

    def _resolved_config(self, config: Config | None, overrides: dict[str, Any]) -> Config:
        """``config`` (else the defaults), then the preset, then a vector env's own n_envs, then ``overrides``."""
        vector = None if self.env_source is None else self.env_source.vector
        fixed = {"n_envs": vector.num_envs} if vector is not None and "n_envs" not in overrides else {}
        cfg = (config or self.config_cls()).replace(**{**self.preset, **fixed, **overrides})
        if not isinstance(cfg, self.config_cls):
            raise NatgradError(f"{type(self).__name__} takes a {self.config_cls.__name__}, got {type(cfg).__name__}")
        return cfg

    def _make_env(self) -> VectorEnv | None:
        """The model's vector env; with Ray the envs live in the workers, and the driver keeps one for its spaces."""
        source, cfg = self.env_source, self.config
        if source is None:
            return None
        if self.sampling.uses_ray:
            if not source.repeatable:
                raise NatgradError("Ray workers make their own envs: pass an env id, 'module:factory' or a "
                                   "picklable zero-argument factory, not an env instance")
            return make_vec_env(source, env_kwargs=cfg.env_kwargs)
        return make_vec_env(source, cfg.n_envs, cfg.vectorization, cfg.env_kwargs)

    def _spaces(self, spaces: tuple[Space, Space] | None) -> tuple[Space, Space]:
        """(observation space, action space): the env's, else the ``spaces`` given for a model without one."""
        if self.env is not None:
            return self.env.single_observation_space, self.env.single_action_space
        if spaces is None:
            raise NatgradError("a model needs an env, or spaces=(observation_space, action_space) to predict with")
        return spaces

    def _build_networks(self) -> None:
        """π_θ (the actor), the observation and reward normalizers and V_φ, their initial weights drawn from
        ``seed``; and the model's own generator for sampling and minibatches."""
        cfg = self.config
        torch.manual_seed(self.seed)
        self.actor, self.obs_normalizer, self.reward_scaler = rollout_parts(self.observation_space, self.action_space,
                                                                            cfg.n_envs, cfg)
        self.layout = self.actor.layout
        self.env_masks = self.env is not None and uses_env_masks(self.env, self.actor)
        self.critic = Critic.from_config(self.layout, cfg, self.actor)
        self.actor.to(self.device)  # drawn on the CPU, so that a seed gives the same weights on every device
        self.critic.to(self.device)
        self.generator = torch.Generator().manual_seed(self.seed)  # on the CPU: the same draws on every device

    def _start_training_state(self) -> None:
        """No steps or updates yet, no episodes, no sampler or recurrent critic state, no optimizers."""
        self.num_timesteps = 0
        self.num_updates = 0
        self.recent_returns = deque(maxlen=100)
        self.recent_lengths: deque[int] = deque(maxlen=100)
        self.last_episodes: list[tuple[float, int]] = []  # (return, length) of episodes ended in the last batch
        self._sampler: Sampler | None = None
        self._critic_state: torch.Tensor | None = None  # a recurrent critic's state entering the next batch
        self.optimizers: dict[str, torch.optim.Optimizer] = {}  # saved with checkpoints; _setup fills it

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
    def learn(self, total_timesteps: int, callback: Callback | Sequence[Callback] | None = None) -> Algorithm:
        """Train for ``total_timesteps`` more env steps (whole updates); ``num_timesteps`` keeps counting.

        Schedules (``anneal_lr``, ``anneal_kl``) see progress t/T, t = ``num_timesteps`` and T the step
        count this call ends at: a model loaded from a step-t checkpoint of a ``learn(T)`` run and given
        ``learn(T − t)`` goes on where that run's schedule was, not from its start.
        ``callback(model, metrics)`` runs after every update; returning False stops training. A list of
        callbacks runs as a ``CallbackList`` (ready ones: ``natgrad.runs.callbacks``).
        """
        steps = check_steps(total_timesteps, "total_timesteps")
        if total_timesteps < 0:
            raise NatgradError(f"total_timesteps must be >= 0, got {total_timesteps}")
        listed = isinstance(callback, (list, tuple))
        for c in callback if listed else [] if callback is None else [callback]:
            if not callable(c):
                raise NatgradError(f"learn got callback={c!r}: pass a function callback(model, metrics), a list of "
                                   "them, or None")
        with torch_threads(self.threads):
            return self._learn(steps, CallbackList(callback) if listed else callback)

    def _learn(self, total_timesteps: int, callback: Callback | None) -> Algorithm:
        if self.env is None:
            raise NatgradError(self.no_env_reason)
        if self._sampler is None:
            self._sampler = make_sampler(self)
        target = self.num_timesteps + total_timesteps
        while self.num_timesteps < target:
            t0 = time.perf_counter()
            batch = self._sampler.collect(self.config.n_steps)
            t1 = time.perf_counter()
            metrics = self._train_on(batch, progress=self.num_timesteps / max(1, target))
            t2 = time.perf_counter()
            check_finite(self.trained_modules(), f"after update {self.num_updates + 1}")
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
        """GAE on the batch, then the algorithm's update on it."""
        start = self._critic_state

        def gae() -> UpdateBatch:
            return update_batch(batch, self.critic, self.config.gamma, self.config.gae_lambda, start)

        data = gae()
        metrics = self._update(data, progress, gae)
        self._critic_state = data.critic_end
        if "policy/entropy" not in metrics:  # the update did not evaluate π_new on the whole batch itself
            with torch.no_grad():
                metrics["policy/entropy"] = float(self.actor(data.actor_inputs).entropy().mean())
        metrics["critic/explained_variance"] = _explained_variance(data.values, data.returns)
        return metrics

    # ---- using a model -------------------------------------------------------------------
    def predict(self, obs: Any, state: np.ndarray | None = None, episode_start: np.ndarray | None = None,
                deterministic: bool = False, action_masks: np.ndarray | None = None) -> Any:
        """Action(s) for raw observation(s), ready for ``env.step``: one observation gives one action, a batch
        (a leading dimension) a batch. Box actions are clipped to the action space's bounds.

        ``action_masks`` (True = legal), when the env offers ``action_masks()`` (a Dict observation with an
        ``action_mask`` entry carries its own); a model trained with them warns (``UserWarning``) when they are
        left out. A recurrent model returns ``(action, state)``: pass the state back with the next observation,
        and ``episode_start`` True where an episode has just begun (the state is reset there; ``state=None``
        starts from zeros).
        """
        rows, arrays = self._observation(obs)
        n, layout = max(rows, 1), self.layout
        mask = self._action_masks(obs, n, action_masks)
        with torch.no_grad(), torch_threads(self.threads):
            if self.actor.recurrent:
                first, start = self._recurrent_inputs(state, episode_start, n)
                inputs = PolicyInputs(layout.pack({k: v[None] for k, v in arrays.items()}, self.device),
                                      None if mask is None else mask[None], first[None], start)
                dist, new_state = self.actor.step(inputs)
            else:
                if state is not None:
                    raise NatgradError("predict got a state=, but this model has no recurrent core "
                                       "(recurrent='none'): leave state out")
                dist, new_state = self.actor(PolicyInputs(layout.pack(arrays, self.device), mask)), None
            sample = dist.mode() if deterministic else dist.sample(self.generator)
            action = self.actor.action.to_env(sample.cpu().numpy())
        action = action[0] if rows == 0 else action
        return (action, new_state.cpu().numpy()) if self.actor.recurrent else action

    def _observation(self, obs: Any) -> tuple[int, dict[str, np.ndarray]]:
        """How many observations ``obs`` holds (0: one, unbatched) and its leaf arrays, the vector normalized;
        refused in one line unless it fits the observation space and is finite."""
        try:
            rows = self.layout.rows_of(obs)
        except NatgradError as e:
            raise NatgradError(f"predict got an observation that does not fit {self.observation_space}: {e}") \
                from None
        arrays = self.layout.encode(obs, max(rows, 1))
        if VECTOR in arrays:
            arrays[VECTOR] = self.obs_normalizer(finite_input(arrays[VECTOR], "predict got a non-finite observation"))
        return rows, arrays

    def _action_masks(self, obs: Any, n: int, action_masks: Any) -> torch.Tensor | None:
        """The (n, mask size) legal-action mask: the observation's own, else ``action_masks``, checked; None
        without one (with a warning if the model was trained on its env's masks)."""
        mask = self.layout.mask(obs, n) if self.layout.has_mask else action_masks
        if mask is None:
            if self.env_masks:
                warnings.warn("this model was trained with legal-action masks from its env's action_masks(), but "
                              "predict got no action_masks=, so it may choose illegal actions: pass "
                              "action_masks=env.action_masks()", stacklevel=3)
            return None
        mask = np.asarray(mask)
        if mask.size % n:
            raise NatgradError(f"predict got action_masks of shape {mask.shape} for {n} observation(s): pass one "
                               f"mask of {self.actor.action.mask_size} entries per observation")
        return torch.from_numpy(check_masks(mask.reshape(n, -1), self.actor.action)).to(self.device)

    def _recurrent_inputs(self, state: Any, episode_start: Any, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``episode_start`` as (n,) bool (False without one) and ``state`` as (n, state size) floats (None: zeros),
        refused in one line unless they fit ``n`` observations."""
        first = np.zeros(n, bool) if episode_start is None else np.asarray(episode_start)
        if first.dtype.kind not in "biuf" or first.size != n:
            raise NatgradError(f"predict got episode_start of shape {first.shape} ({first.dtype}) for {n} "
                               "observation(s): pass one bool per observation")
        starts = torch.from_numpy(first.astype(bool).reshape(n)).to(self.device)
        if state is None:
            return starts, None
        size, values = self.actor.state_size, np.asarray(state)
        if values.dtype.kind not in "biuf" or values.size != n * size:
            raise NatgradError(f"predict got a recurrent state of shape {values.shape} ({values.dtype}) for {n} "
                               f"observation(s): this model's is ({n}, {size}); pass back the state predict returned, "
                               "or None to start from zeros")
        values = finite_input(values.reshape(n, size), "predict got a non-finite recurrent state")
        return starts, torch.as_tensor(values, dtype=torch.float32, device=self.device)

    def _advantages(self, batch: UpdateBatch) -> torch.Tensor:
        """The batch's Â, normalized to mean 0 and std 1 over the batch when ``normalize_advantage``."""
        return normalize(batch.advantages) if self.config.normalize_advantage else batch.advantages

    def trained_modules(self) -> dict[str, torch.nn.Module]:
        """The networks training changes, by the name checkpoints store them under."""
        return {"actor": self.actor, "critic": self.critic}

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write a self-describing checkpoint (``state``) to ``path``; ``natgrad.load`` rebuilds the model from it.
        A model holding a NaN or inf is never written."""
        return write_checkpoint(self.state(), path, overwrite)

    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds: algorithm, env, spaces, seed, config, counters, networks, optimizers,
        normalizer statistics and the algorithm's own state."""
        modules = self.trained_modules()
        check_finite(modules, f"at step {self.num_timesteps}")
        return {
            "algo": self.name,
            "env_id": self.env_id,  # an id or "module:factory"; None for an env natgrad cannot make again
            "spaces": {"observation": space_to_data(self.observation_space),
                       "action": space_to_data(self.action_space)},
            "seed": self.seed,
            "config": self.config.to_dict(),
            "num_timesteps": self.num_timesteps,
            "num_updates": self.num_updates,
            "env_masks": self.env_masks,
            **{name: module.state_dict() for name, module in modules.items()},
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "obs_rms": self.obs_normalizer.rms.state_dict(),
            "reward_rms": self.reward_scaler.rms.state_dict(),
            "extra": self._extra_state(),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Take networks, optimizers, statistics and counters from ``state`` (a checkpoint of this config)."""
        for name, module in self.trained_modules().items():
            module.load_state_dict(state[name])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        self.obs_normalizer.rms.load_state_dict(state["obs_rms"])
        self.reward_scaler.rms.load_state_dict(state["reward_rms"])
        self._load_extra_state(state["extra"])
        self.num_timesteps = int(state["num_timesteps"])
        self.num_updates = int(state["num_updates"])
        self.env_masks = bool(state.get("env_masks", self.env_masks))  # checkpoints before it: from the env

    def close(self) -> None:
        """Close the envs and, with Ray, the rollout workers."""
        if self._sampler is not None:
            self._sampler.close()
        if self.env is not None:
            self.env.close()


def _mean(xs: deque) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def _explained_variance(values: torch.Tensor, returns: torch.Tensor) -> float:
    """1 − Var[R − V] / Var[R]: 1 is a perfect critic, 0 no better than a constant."""
    var = returns.var()
    return float(1 - (returns - values).var() / var) if var > 0 else float("nan")
