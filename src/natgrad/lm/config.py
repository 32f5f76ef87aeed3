"""The configurations of the language-model updates: one small frozen dataclass per family, checked on construction.

The names are TRL's where users know them (``num_generations``, ``beta``, ``epsilon``, ``num_iterations``,
``scale_rewards``, ``loss_type``, ``max_completion_length``, ``temperature``, ``top_p``) and natgrad's for the
trust region (``max_kl``, ``cg_iters``, ``damping``, …).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

from natgrad.config import MAX_SEED, NaturalConfig, _check, check_choice
from natgrad.errors import NatgradError

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
"""How per-token losses become one number: per sequence then over sequences (``"grpo"``), over every token of the
batch (``"bnpo"``, ``"dapo"``: the same here, where each pass is one gradient step over the whole batch), or over
sequences × ``max_completion_length`` (``"dr_grpo"``)."""


@dataclass(frozen=True)
class LMConfig:
    """What every update shares: the prompts per update, sampling, the rewards and the KL to the reference."""

    num_generations: int = 8
    """G: completions sampled per prompt; the advantages are relative to the G of one prompt."""
    prompts_per_update: int = 4
    """Prompts per update; an update learns from ``prompts_per_update × num_generations`` completions."""
    max_completion_length: int = 32
    """Tokens sampled at most per completion."""
    temperature: float = 1.0
    """π = softmax(logits / temperature), in sampling and in every loss and KL."""
    top_p: float = 1.0
    """Nucleus sampling: draw from the smallest set of tokens whose probability reaches ``top_p`` (the losses score
    the whole tempered distribution, as TRL does)."""
    scale_rewards: bool = True
    """Divide each completion's advantage by its group's reward std + 1e-4."""
    beta: float = 0.0
    """Coefficient of the k3 estimate of KL(π_θ ‖ π_ref) to the frozen reference, per token, in the loss."""
    reward_weights: tuple[float, ...] = ()
    """One weight per reward function (empty: 1 each); the reward is Σ_k w_k r_k."""
    eos_token_id: int | None = None
    """The token that ends a completion (None: the tokenizer's, else the model config's, else none)."""
    seed: int = 0
    """Seeds the sampling and the order of the prompts."""

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.type in ("float", float):
                value = getattr(self, f.name)
                _check(isinstance(value, numbers.Real) and math.isfinite(value), f.name, value, "a finite number")
        for name, choices in _choices(self).items():
            check_choice(name, getattr(self, name), choices)
        _check(self.num_generations >= 2, "num_generations", self.num_generations, "an integer >= 2 (a group)")
        _check(self.prompts_per_update >= 1, "prompts_per_update", self.prompts_per_update, "an integer >= 1")
        _check(self.max_completion_length >= 1, "max_completion_length", self.max_completion_length, ">= 1")
        _check(self.temperature > 0, "temperature", self.temperature, "> 0")
        _check(0 < self.top_p <= 1, "top_p", self.top_p, "in (0, 1]")
        _check(self.beta >= 0, "beta", self.beta, ">= 0 (0: no KL to the reference)")
        _check(all(isinstance(w, numbers.Real) and math.isfinite(w) for w in self.reward_weights), "reward_weights",
               self.reward_weights, "finite numbers, one per reward function")
        _check(0 <= self.seed <= MAX_SEED, "seed", self.seed, f"an integer from 0 to {MAX_SEED}")

    @property
    def samples_per_update(self) -> int:
        """Completions per update: ``prompts_per_update × num_generations``."""
        return self.prompts_per_update * self.num_generations

    def to_dict(self) -> dict[str, Any]:
        """Every field by name, as checkpoints and ``config.json`` store it."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LMConfig:
        """The config with ``values`` (a checkpoint's, keywords, or ``--set`` strings); an unknown name is refused with
        the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise NatgradError(f"unknown {cls.__name__} option(s) {unknown}: known options are {sorted(known)}")
        hints = get_type_hints(cls)
        return cls(**{k: _parsed(k, v, hints[k]) for k, v in values.items()})


@dataclass(frozen=True)
class GradientConfig(LMConfig):
    """GRPO and GRPO-KL: ``num_iterations`` passes of Adam over each batch."""

    learning_rate: float = 1e-6
    """Adam's learning rate (TRL's default)."""
    num_iterations: int = 1
    """μ: gradient steps on each batch, each over all of it (1: the ratio is exactly 1)."""
    loss_type: LossType = "dapo"
    """Aggregation of the per-token loss: ``"grpo"``, ``"bnpo"``, ``"dr_grpo"`` or ``"dapo"`` (see ``LossType``)."""
    max_grad_norm: float = 1.0
    """Clip the gradient's global norm to this before each step (0: off)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.learning_rate > 0, "learning_rate", self.learning_rate, "> 0")
        _check(self.num_iterations >= 1, "num_iterations", self.num_iterations, "an integer >= 1")
        _check(self.max_grad_norm >= 0, "max_grad_norm", self.max_grad_norm, ">= 0 (0: off)")


@dataclass(frozen=True)
class GRPOConfig(GradientConfig):
    """GRPO as TRL defines it: the clipped ratio per token."""

    epsilon: float = 0.2
    """ε: the ratio is clipped to [1 − ε, 1 + ε]."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(0 < self.epsilon < 1, "epsilon", self.epsilon, "in (0, 1)")


@dataclass(frozen=True)
class GRPOKLConfig(GradientConfig):
    """GRPO-KL: maximize E[r Â] − β_t KL(π_old ‖ π_θ) per token, β_t adapted toward ``kl_target`` after each update
    as PPO-KL does (no clip)."""

    kl_target: float = 0.01
    """d_targ: β_t doubles after an update whose mean token KL exceeds 1.5·d_targ, halves below d_targ / 1.5."""
    kl_coef_init: float = 1.0
    """β_0."""
    kl_coef_min: float = 1e-6
    """Lower bound of β_t."""
    kl_coef_max: float = 1e6
    """Upper bound of β_t."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.kl_target > 0, "kl_target", self.kl_target, "a finite d_targ > 0")
        _check(0 < self.kl_coef_min <= self.kl_coef_init <= self.kl_coef_max, "kl_coef_init", self.kl_coef_init,
               "finite, > 0 and within [kl_coef_min, kl_coef_max]")


@dataclass(frozen=True)
class TrustRegionConfig(LMConfig):
    """TRPO and NPG on tokens: the natural step in the trust region mean token KL(π_old ‖ π_θ) ≤ δ."""

    max_kl: float = 0.01
    """δ: the mean KL(π_old ‖ π_θ) per generated token allowed per update."""
    cg_iters: int = 10
    """Conjugate-gradient iterations for F x = g."""
    cg_tol: float = 1e-10
    """Stop CG when ‖r‖² falls below this."""
    damping: float = 0.1
    """F + damping·I in the Fisher-vector product."""
    backtrack_coef: float = 0.5
    """The line search tries θ_old + coef^j β x, j = 0, 1, … (TRPO only)."""
    backtrack_iters: int = 10
    """The line search tries at most this many j (TRPO only)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.natural()  # the solver's settings, checked as natgrad's TRPO checks them

    def natural(self) -> NaturalConfig:
        """The solver's settings as ``natgrad.natural.step.trust_region_step`` takes them."""
        return NaturalConfig(max_kl=self.max_kl, cg_iters=self.cg_iters, cg_tol=self.cg_tol, damping=self.damping,
                             backtrack_coef=self.backtrack_coef, backtrack_iters=self.backtrack_iters)


def _parsed(name: str, value: Any, hint: Any) -> Any:
    """A value as its field wants it: command-line strings parsed (``"0.02"``, ``"true"``, ``"1,0.5"``, ``"none"``),
    a list as a tuple; anything else as given, for the checks to judge."""
    if isinstance(value, list):
        return tuple(value)
    if not isinstance(value, str) or hint in (str, LossType):
        return value
    text = value.strip().lower()
    try:
        if hint is bool:
            return {"true": True, "1": True, "false": False, "0": False}[text]
        if text == "none" and type(None) in get_args(hint):
            return None
        if get_origin(hint) is tuple:
            return tuple(float(x) for x in text.split(",") if x.strip())
        return int(text) if int in (hint, *get_args(hint)) else float(text)
    except (KeyError, ValueError):
        raise NatgradError(f"invalid {name}={value!r}: not a value of type {getattr(hint, '__name__', hint)}") from None


def _choices(cfg: LMConfig) -> dict[str, Any]:
    """The options annotated with a ``Literal`` alias, and that alias."""
    return {"loss_type": LossType} if isinstance(cfg, GradientConfig) else {}
