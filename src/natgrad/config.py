"""Configuration: one small frozen dataclass per algorithm family, validated on construction.

Each field's docstring (the string right after it) is its documentation; the CLI (``--set KEY=VALUE``),
the presets and the checkpoints use the same classes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import numbers
import operator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

import torch

from natgrad.errors import NatgradError

# Seeds are integers in [0, MAX_SEED]: numpy's default_rng and gymnasium's reset refuse negatives and
# torch.manual_seed refuses 2**64 and up; the seeds derived from one (seed + env steps for the rollouts,
# + env index for each env) stay far below 2**64.
MAX_SEED = 2**32 - 1

# The allowed values of the options that name a choice: the fields below are annotated with them, the config checks
# them, and the modules that branch on a choice import them.
Vectorization = Literal["sync", "async"]
"""How the envs run: ``"sync"`` (every env in this process) or ``"async"`` (one process per env)."""
Activation = Literal["tanh", "relu", "elu"]
"""The hidden layers' activation function."""
ImageChannels = Literal["auto", "first", "last"]
"""Where an image observation keeps its channels: ``"last"`` (H, W, C), ``"first"`` (C, H, W), ``"auto"`` (by shape)."""
Cnn = Literal["auto", "nature", "small"]
"""The image encoder's layout: the Nature-DQN CNN, one 3×3 convolution, or by image size."""
RecurrentCell = Literal["lstm", "gru"]
"""The cell of a recurrent core."""
Recurrent = Literal["none", RecurrentCell]
"""The recurrent core after the encoder: none, or layers of a ``RecurrentCell``."""
Projection = Literal["kl", "w2", "frobenius"]
"""TRPL's trust region on each state's covariance: KL, Wasserstein-2 or Frobenius (``objectives.projection``)."""
CriticStep = Literal["natural", "head", "adam"]
ActionDist = Literal["gaussian", "squashed", "beta"]
"""The distribution of Box actions: a Gaussian clipped to the bounds, a tanh-squashed Gaussian, or a Beta on them."""
"""How a critic that shares the actor's trunk moves it (``NaturalConfig.critic_step``)."""


@dataclass(frozen=True)
class Config:
    """What every algorithm shares: rollout, GAE, networks and normalization."""

    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keywords for the env's constructor (``gym.make`` or the factory), e.g. ``{"g": 9.81}`` on Pendulum-v1; saved
    with the model and used again by ``natgrad.load`` and evaluation."""
    n_envs: int = 1
    """Parallel environments in the vector env."""
    n_steps: int = 2048
    """Steps per env per update; the batch is ``n_envs * n_steps``."""
    vectorization: Vectorization = "sync"
    """``"sync"`` (every env in this process) or ``"async"`` (one process per env)."""
    gamma: float = 0.99
    """Discount γ."""
    gae_lambda: float = 0.97
    """GAE λ: 0 is the one-step TD advantage, 1 the Monte Carlo return minus V."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes of actor and critic (``--set hidden=64,64``)."""
    activation: Activation = "tanh"
    """Hidden-layer activation: ``tanh``, ``relu`` or ``elu``."""
    log_std_init: float = 0.0
    """Initial log σ of the Gaussian policy (Box actions; learned), in [-20, 20]; with ``state_dependent_std``, the
    log σ a near-zero network output gives, inside (log_std_min, log_std_max)."""
    action_dist: ActionDist = "gaussian"
    """Box actions' distribution: ``"gaussian"`` (clipped to the bounds by the env), ``"squashed"`` (a Gaussian
    squashed by tanh into the bounds) or ``"beta"`` (a Beta on the bounds; both need finite bounds); other action
    spaces set their own (leave it ``"gaussian"``)."""
    state_dependent_std: bool = False
    """Gaussian and squashed: log σ as a second output of the actor's network, per state, kept in
    (``log_std_min``, ``log_std_max``) by a tanh, instead of one learned vector."""
    log_std_min: float = -5.0
    """Lower bound of a state-dependent log σ."""
    log_std_max: float = 2.0
    """Upper bound of a state-dependent log σ."""
    normalize_obs: bool = True
    """Running mean/std normalization of the observations' vector part (the Box entries that are not images)."""
    normalize_reward: bool = False
    """Scale rewards by the running std of the discounted return."""
    normalize_advantage: bool = True
    """Â ← (Â − mean) / std over the batch (PPO: over each minibatch)."""
    image_channels: ImageChannels = "auto"
    """Layout of image observations: ``"last"`` (H, W, C), ``"first"`` (C, H, W), or ``"auto"`` (channels first
    only when the first axis is shorter than the last, e.g. (4, 84, 84))."""
    cnn: Cnn = "auto"
    """Image encoder: ``"nature"`` (the Nature-DQN CNN, images of at least 36×36), ``"small"`` (one 3×3
    convolution), ``"auto"`` (by image size)."""
    cnn_features: int = 0
    """Units of the CNN's last layer (0: 512 for ``nature``, 128 for ``small``)."""
    recurrent: Recurrent = "none"
    """Recurrent core after the encoder, in actor and critic: ``"none"``, ``"lstm"`` or ``"gru"``."""
    rnn_hidden: int = 64
    """Units of each recurrent layer."""
    rnn_layers: int = 1
    """Recurrent layers."""
    seq_len: int = 0
    """With a recurrent core: steps per sequence piece in minibatches (PPO, the critic fit), where backpropagation
    through time is cut; 0: the whole ``n_steps``. TRPO/NPG's policy step always uses whole sequences."""
    share_trunk: bool = False
    """Actor and critic share encoder, recurrent core and hidden layers (each keeps its own output layer);
    TRPO/NPG then move the shared part only within the trust region (see ``NaturalConfig.critic_step``)."""
    _retired: ClassVar[frozenset[str]] = frozenset()
    """Names ``from_dict`` drops (written by older natgrad)."""

    def __post_init__(self) -> None:
        for f in fields(self):  # every float option of every config class; the checks below add each one's range
            if f.type in ("float", float):
                value = getattr(self, f.name)
                _check(isinstance(value, numbers.Real) and math.isfinite(value), f.name, value, "a finite number")
        _check(isinstance(self.env_kwargs, dict) and all(isinstance(k, str) for k in self.env_kwargs),
               "env_kwargs", self.env_kwargs, 'a mapping of keyword to value, e.g. {"g": 9.81}')
        _check(self.n_envs >= 1, "n_envs", self.n_envs, "an integer >= 1")
        _check(self.n_steps >= 1, "n_steps", self.n_steps, "an integer >= 1")
        for name, choices in _choice_fields(type(self)).items():  # every option annotated with a Literal alias
            check_choice(name, getattr(self, name), choices)
        _check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        _check(0 <= self.gae_lambda <= 1, "gae_lambda", self.gae_lambda, "in [0, 1]")
        _check(abs(self.log_std_init) <= 20, "log_std_init", self.log_std_init, "in [-20, 20] (σ from 2e-9 to 5e8)")
        _check(self.log_std_min < self.log_std_max, "log_std_max", self.log_std_max,
               f"> log_std_min={self.log_std_min}")
        _check(not self.state_dependent_std or self.log_std_min < self.log_std_init < self.log_std_max,
               "log_std_init", self.log_std_init, f"inside (log_std_min, log_std_max) = ({self.log_std_min}, "
               f"{self.log_std_max}) with state_dependent_std")
        _check(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden", self.hidden,
               "one or more positive layer sizes, e.g. 64,64")
        _check(self.cnn_features >= 0, "cnn_features", self.cnn_features, ">= 0 (0: the layout's default)")
        _check(self.rnn_hidden >= 1, "rnn_hidden", self.rnn_hidden, ">= 1")
        _check(self.rnn_layers >= 1, "rnn_layers", self.rnn_layers, ">= 1")
        _check(self.seq_len >= 0 and (self.seq_len == 0 or self.n_steps % self.seq_len == 0), "seq_len",
               self.seq_len, f"0 (whole sequences) or a divisor of n_steps={self.n_steps}")

    @property
    def batch_size(self) -> int:
        """Env steps per update: ``n_envs * n_steps``."""
        return self.n_envs * self.n_steps

    @property
    def piece_length(self) -> int:
        """Steps per piece of the batch that minibatches draw whole: a sequence piece with a recurrent core,
        else one state."""
        return (self.seq_len or self.n_steps) if self.recurrent != "none" else 1

    @property
    def pieces(self) -> int:
        """Pieces per batch: n_envs · n_steps / piece_length."""
        return self.batch_size // self.piece_length

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes``; an unknown name is refused with the list of known ones."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise NatgradError(
                f"unknown {type(self).__name__} option(s) {unknown}: known options are {sorted(known)}"
            )
        return dataclasses.replace(self, **{k: _coerce(self, k, v) for k, v in changes.items()})

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, as checkpoints and ``config.json`` store it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Config:
        """The config that ``to_dict`` wrote (a checkpoint's), checked as on construction.

        Options that older natgrad wrote for this algorithm without using them are dropped.
        """
        return cls().replace(**{k: v for k, v in values.items() if k not in cls._retired})


@dataclass(frozen=True)
class CriticFitConfig(Config):
    """A critic fit apart from the policy step (NPG, TRPO, VPG): minibatch Adam on ½(V − R)² after it."""

    vf_lr: float = 1e-3
    """Critic Adam learning rate."""
    vf_epochs: int = 5
    """Critic epochs over the batch per update."""
    vf_minibatch_size: int = 64
    """Critic minibatch size (states)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.vf_lr > 0, "vf_lr", self.vf_lr, "> 0")
        _check(self.vf_epochs >= 0, "vf_epochs", self.vf_epochs, ">= 0")
        _check(self.vf_minibatch_size >= 1, "vf_minibatch_size", self.vf_minibatch_size, ">= 1")


@dataclass(frozen=True)
class NaturalConfig(CriticFitConfig):
    """NPG and TRPO: the natural-gradient step in a KL trust region of radius δ."""

    max_kl: float = 0.01
    """δ: the mean KL(π_old ‖ π_θ) allowed per update, summed over the action dimensions (sb3-contrib's
    ``target_kl`` is per dimension: its value × d is this)."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for F x = g."""
    cg_tol: float = 1e-10
    """Stop CG when the squared residual ‖r‖² falls below this."""
    damping: float = 0.1
    """F + damping·I in the Fisher-vector product."""
    backtrack_coef: float = 0.5
    """The line search tries θ_old + coef^j β x, j = 0, 1, …"""
    backtrack_iters: int = 10
    """The line search tries at most this many j (TRPO only)."""
    fvp_fraction: float = 1.0
    """Fraction of the batch the Fisher-vector products use (drawn anew each update)."""
    anneal_kl: bool = False
    """δ_t = δ·(1 − t/T): t = ``num_timesteps``, T = where ``learn()`` ends (a resumed run keeps its schedule)."""
    critic_step: CriticStep = "natural"
    """With ``share_trunk``: how the critic moves the shared trunk after the policy step. ``"natural"``: its output
    layer by Adam, then the trunk by a natural-gradient step on the value loss that keeps the whole update's
    KL(π_old ‖ π) within ``max_kl + critic_kl``; ``"head"``: its output layer only (the trunk moves with the policy
    step alone); ``"adam"``: Adam on trunk and output layer, as peers do (the KL is unbounded)."""
    critic_kl: float = 0.005
    """ε_v: the KL the ``"natural"`` critic step may add to the update's."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.max_kl > 0, "max_kl", self.max_kl, "a finite δ > 0, e.g. 0.01")
        _check(self.cg_iters >= 1, "cg_iters", self.cg_iters, ">= 1")
        _check(self.cg_tol >= 0, "cg_tol", self.cg_tol, ">= 0")
        _check(self.damping >= 0, "damping", self.damping, ">= 0")
        _check(0 < self.backtrack_coef < 1, "backtrack_coef", self.backtrack_coef, "in (0, 1)")
        _check(self.backtrack_iters >= 1, "backtrack_iters", self.backtrack_iters, ">= 1")
        _check(0 < self.fvp_fraction <= 1, "fvp_fraction", self.fvp_fraction, "in (0, 1]")
        _check(self.critic_kl > 0, "critic_kl", self.critic_kl, "a finite ε_v > 0")


@dataclass(frozen=True)
class VPGConfig(CriticFitConfig):
    """The standard-gradient baseline: one Adam step on the surrogate per update."""

    pi_lr: float = 3e-3
    """Actor Adam learning rate."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.pi_lr > 0, "pi_lr", self.pi_lr, "> 0")


@dataclass(frozen=True)
class ProximalConfig(Config):
    """What PPO-Clip and PPO-KL share: epochs of shuffled minibatch Adam on actor and critic together.

    Defaults are the PPO paper's for MuJoCo: 10 epochs, 32 minibatches, lr 3e-4, λ = 0.95. The critic
    trains inside the same loss (``lr``, ``epochs``, ``vf_coef``), so there is no separate critic fit.
    """

    _retired: ClassVar[frozenset[str]] = frozenset({"vf_lr", "vf_epochs", "vf_minibatch_size"})
    """The critic-fit options that checkpoints before 2026-11-27 recorded (PPO never used them)."""

    gae_lambda: float = 0.95
    """GAE λ (the PPO paper's 0.95)."""
    lr: float = 3e-4
    """Adam learning rate (actor and critic)."""
    epochs: int = 10
    """Passes over the batch per update."""
    minibatches: int = 32
    """Minibatches per pass (2048 steps → 64 per minibatch); with a recurrent core, of whole sequence pieces. More
    than the batch has states (pieces) are capped at that number, with a warning."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value-loss coefficient; the value loss is ½ E[(V − R)²] (SB3's ``vf_coef`` × 2)."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm (0: off)."""
    anneal_lr: bool = False
    """lr_t = lr·(1 − t/T): t = ``num_timesteps``, T = where ``learn()`` ends."""
    clip_vf: float = 0.0
    """Clip V − V_old to ±``clip_vf`` in the value loss (0: off)."""
    target_kl: float = 0.0
    """End the update's epochs once the approximate KL exceeds this (0: off)."""
    recompute_advantages: bool = False
    """GAE again with the updated critic before every epoch after the first."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.lr > 0, "lr", self.lr, "> 0")
        _check(self.epochs >= 1, "epochs", self.epochs, ">= 1")
        _check(self.minibatches >= 1, "minibatches", self.minibatches, ">= 1")
        for name in ("ent_coef", "vf_coef", "max_grad_norm", "clip_vf", "target_kl"):
            value = getattr(self, name)
            _check(value >= 0, name, value, "a finite number >= 0")

    @property
    def minibatch_count(self) -> int:
        """Minibatches per pass: ``minibatches``, at most one per piece of the batch (``pieces``)."""
        return min(self.minibatches, self.pieces)


@dataclass(frozen=True)
class PPOConfig(ProximalConfig):
    """PPO-Clip: maximize E[min(r Â, clip(r, 1 − ε, 1 + ε) Â)]."""

    clip_range: float = 0.2
    """ε: the ratio r is clipped to [1 − ε, 1 + ε]."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.clip_range < 1, "clip_range", self.clip_range, "in (0, 1), e.g. 0.2")


@dataclass(frozen=True)
class PPOKLConfig(ProximalConfig):
    """PPO with adaptive KL penalty: maximize E[r Â] − β KL(π_old ‖ π_θ), β adapted every update."""

    kl_target: float = 0.01
    """d_targ: β doubles after an update whose KL exceeds 1.5·d_targ and halves after one below d_targ / 1.5."""
    beta_init: float = 1.0
    """Initial β."""
    beta_min: float = 1e-6
    """Lower bound of β, so that it can never run off to 0."""
    beta_max: float = 1e6
    """Upper bound of β, so that it can never run off to infinity."""
    kl_stop: float = 4.0
    """End the update's epochs once the mean KL(π_old ‖ π_θ) over the batch exceeds ``kl_stop``·d_targ (0: off):
    β reacts one update late, so after a run of small updates has halved it many times one update could otherwise
    move the policy by a hundred times d_targ."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.kl_target > 0, "kl_target", self.kl_target, "a finite d_targ > 0")
        _check(self.kl_stop == 0 or self.kl_stop >= 1, "kl_stop", self.kl_stop,
               "0 (off) or a finite multiple of kl_target >= 1")
        _check(0 < self.beta_min <= self.beta_init <= self.beta_max, "beta_init", self.beta_init,
               "finite, > 0 and within [beta_min, beta_max]")


@dataclass(frozen=True)
class TRPLConfig(ProximalConfig):
    """TRPL: PPO's epochs with the clip replaced by a per-state projection onto the trust region around π_old;
    maximize E[π̃_θ/π_old Â] − α E[d(π_θ, π̃_θ)] (Otto et al., 2021). The loop's options and defaults are PPO's."""

    projection: Projection = "kl"
    """The covariance's trust region: ``"kl"`` (KL(π̃ ‖ π_old)'s covariance part), ``"w2"`` (Wasserstein-2 in the
    metric of Σ_old) or ``"frobenius"`` (‖Σ̃ − Σ_old‖²_F, in the action's units squared)."""
    mean_bound: float = 0.03
    """ε_μ: per state, ½ (μ̃ − μ_old)ᵀ Σ_old⁻¹ (μ̃ − μ_old) ≤ ε_μ (every projection)."""
    cov_bound: float = 0.001
    """ε_Σ: per state, the ``projection``'s covariance part ≤ ε_Σ."""
    trust_region_coef: float = 8.0
    """α: weight of the regression E[d(π_θ, π̃_θ)] of the network's own policy onto its (fixed) projection, which
    keeps the policy that acts next near the trust region."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.mean_bound > 0, "mean_bound", self.mean_bound, "a finite ε_μ > 0, e.g. 0.03")
        _check(self.cov_bound > 0, "cov_bound", self.cov_bound, "a finite ε_Σ > 0, e.g. 0.001")
        _check(self.trust_region_coef >= 0, "trust_region_coef", self.trust_region_coef, "a finite α >= 0, e.g. 8")
        _check(self.action_dist == "gaussian", "action_dist", self.action_dist,
               "'gaussian' with TRPL (it projects Gaussian policies)")


def check_seed(seed: Any) -> int:
    """``seed`` as an int, or a one-line NatgradError unless it is an integer in [0, MAX_SEED]."""
    try:
        value = -1 if isinstance(seed, bool) else operator.index(seed)
    except TypeError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise NatgradError(f"invalid seed {seed!r}: use an integer from 0 to {MAX_SEED}")
    return value


def resolve_device(device: Any, name: str = "device") -> torch.device:
    """Where a model's tensors live: ``"auto"`` is CUDA when torch sees a GPU, else the CPU (as Stable-Baselines3);
    ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device`` as given; one line naming the fix for a
    string torch does not know or a device this machine lacks."""
    def shown(value: Any) -> str:  # as the user writes it: device='cpu' in Python, --device cpu on the command line
        return f"{name} {value}" if name.startswith("--") else f"{name}={value!r}"

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        resolved = torch.device("meta")
    if resolved.type not in ("cpu", "cuda", "mps"):
        raise NatgradError(f"invalid {shown(device)}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise NatgradError(f"{shown(device)} but torch sees no MPS device: use {shown('cpu')} or {shown('auto')}")
    if resolved.type != "cuda":
        return torch.device(resolved.type)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if not count:
        raise NatgradError(f"{shown(device)} but torch sees no CUDA device: use {shown('cpu')} or {shown('auto')}")
    index = torch.cuda.current_device() if resolved.index is None else resolved.index
    if index >= count:
        raise NatgradError(f"{shown(device)} but torch sees {count} CUDA device(s): use {shown('cuda:0')} up to "
                           f"{shown(f'cuda:{count - 1}')}, or {shown('auto')}")
    return torch.device("cuda", index)  # "cuda" as cuda:N, the device its tensors report


def check_steps(steps: Any, name: str) -> int:
    """A number of env steps (``1e6`` too) as an int, or a one-line NatgradError unless it is a finite number."""
    if isinstance(steps, bool) or not isinstance(steps, numbers.Real) or not math.isfinite(steps):
        raise NatgradError(f"{name} must be a finite number of env steps, e.g. 1e6; got {steps!r}")
    return int(steps)


def check_choice(name: str, value: Any, choices: Any) -> None:
    """A one-line NatgradError unless ``value`` is one of the ``Literal`` alias ``choices``, which it lists."""
    allowed = get_args(choices)
    listed = ", ".join(map(repr, allowed[:-1])) + f" or {allowed[-1]!r}"
    _check(isinstance(value, str) and value in allowed, name, value, listed)


@functools.cache
def _choice_fields(cls: type[Config]) -> dict[str, Any]:
    """The options of a config class annotated with a ``Literal`` alias, and that alias."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if get_origin(hints[f.name]) is Literal}


def _check(ok: bool, name: str, value: Any, want: str) -> None:
    if not ok:
        raise NatgradError(f"invalid {name}={value!r}: must be {want}")


def _coerce(cfg: Config, name: str, value: Any) -> Any:
    """Turn CLI strings and lists into the field's type (bool, int, float, tuple of ints, JSON object)."""
    current = getattr(cfg, name)
    try:
        if isinstance(current, dict):
            return json.loads(value) if isinstance(value, str) else value
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(current, int):
            as_float = float(value)
            if as_float != int(as_float):
                raise ValueError(value)
            return int(as_float)
        if isinstance(current, float):
            return float(value)
        if isinstance(current, tuple):
            items = value.split(",") if isinstance(value, str) else value
            return tuple(int(x) for x in items)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
        raise NatgradError(
            f"invalid {name}={value!r}: expected a value like {current!r}"
        ) from None
    return value
